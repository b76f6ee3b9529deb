import { type CounterResult, DEFAULT_MAX_KEYS, type MaybePromise, type RateLimitCounter } from "./counter.js";

interface KeyState {
  limit: number;
  windowSeconds: number;
  /** What Redis had left at the last sync (this instance's and every other's spending included). */
  remoteRemaining: number;
  /** Epoch ms when the window ends, as Redis reported it. */
  resetAt: number;
  /** Spent here since the last sync. */
  delta: number;
}

/**
 * APISIX's delayed synchronization (`sync_interval`) over a Redis counter: after a key's first request,
 * which goes to Redis, requests are decided from what Redis had left minus what this instance spent since,
 * and the spending is sent to Redis once per interval, which also brings back what the other instances
 * spent. One Redis round trip per key and interval instead of per request, at the price APISIX documents:
 * the instances together may overshoot by up to one interval's local spending.
 */
export class DelayedSyncCounter implements RateLimitCounter {
  private readonly keys = new Map<string, KeyState>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly remote: RateLimitCounter,
    intervalSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => this.sync(), intervalSeconds * 1000);
    this.timer.unref();
  }

  incoming(key: string, cost: number, limit: number, windowSeconds: number): MaybePromise<CounterResult> {
    const now = this.now();
    const st = this.keys.get(key);
    if (st === undefined || now >= st.resetAt || st.limit !== limit || st.windowSeconds !== windowSeconds) {
      return Promise.resolve(this.remote.incoming(key, cost, limit, windowSeconds)).then((r) => {
        // A flood of distinct keys is answered by Redis request by request rather than grow this table.
        if (st === undefined && this.keys.size >= DEFAULT_MAX_KEYS) return r;
        this.keys.set(key, {
          limit,
          windowSeconds,
          remoteRemaining: r.remaining,
          resetAt: this.now() + r.resetSeconds * 1000,
          delta: 0,
        });
        return r;
      });
    }
    const left = st.remoteRemaining - st.delta;
    const allowed = cost === 0 ? left > 0 : cost <= left;
    if (allowed) st.delta += cost;
    return { allowed, remaining: Math.max(0, allowed ? left - cost : left), resetSeconds: (st.resetAt - now) / 1000 };
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): MaybePromise<CounterResult> {
    const st = this.keys.get(key);
    if (st === undefined || this.now() >= st.resetAt) return this.remote.commit(key, cost, limit, windowSeconds);
    st.delta += cost;
    const left = st.remoteRemaining - st.delta;
    return { allowed: left >= 0, remaining: Math.max(0, left), resetSeconds: (st.resetAt - this.now()) / 1000 };
  }

  /** Sends every key's local spending; what comes back is the total left, everyone's spending included. */
  sync(): Promise<void> {
    const now = this.now();
    const pending: Promise<unknown>[] = [];
    for (const [key, st] of this.keys) {
      if (now >= st.resetAt && st.delta === 0) {
        this.keys.delete(key);
        continue;
      }
      if (st.delta === 0) continue;
      const spent = st.delta;
      st.delta = 0;
      pending.push(
        Promise.resolve(this.remote.commit(key, spent, st.limit, st.windowSeconds)).then(
          (r) => {
            st.remoteRemaining = r.remaining;
            st.resetAt = this.now() + r.resetSeconds * 1000;
          },
          // Redis did not take it: it goes with the next sync.
          () => {
            st.delta += spent;
          },
        ),
      );
    }
    return Promise.all(pending).then(() => undefined);
  }

  close(): void {
    clearInterval(this.timer);
    // What this instance spent since the last sync still counts for the others.
    void this.sync().finally(() => this.remote.close());
  }
}
