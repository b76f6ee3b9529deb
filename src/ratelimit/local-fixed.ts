import { type CounterResult, type LocalCounterOptions, monotonicEpochMs, type RateLimitCounter } from "./counter.js";
import { KeyTable, type Stamped } from "./key-table.js";

interface FixedWindow extends Stamped {
  /** Budget spent in this window (may exceed the limit after commit()). */
  used: number;
  /** ms when the window closes; the next call after it opens a new one. */
  endsAt: number;
}

/**
 * In-process fixed windows, as resty.limit.count with APISIX's reset bookkeeping: the first call for a key
 * opens a window of `windowSeconds` that closes that long after, whatever happens in between, and the reset
 * is the time left until then. One process, one event loop: check and spend cannot interleave, so N
 * concurrent requests on a budget of N admit exactly N.
 */
export class LocalFixedWindowCounter implements RateLimitCounter {
  private readonly now: () => number;
  private readonly table: KeyTable<FixedWindow>;

  constructor(options: LocalCounterOptions = {}) {
    this.now = options.now ?? monotonicEpochMs;
    this.table = new KeyTable<FixedWindow>(options, this.now, (w, now) => now >= w.endsAt);
  }

  get size(): number {
    return this.table.size;
  }

  incoming(key: string, cost: number, limit: number, windowSeconds: number): CounterResult {
    const now = this.now();
    const w = this.window(key, now, windowSeconds);
    const allowed = cost === 0 ? w.used < limit : w.used + cost <= limit;
    if (allowed) w.used += cost;
    return result(allowed, w, limit, now);
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): CounterResult {
    const now = this.now();
    const w = this.window(key, now, windowSeconds);
    w.used += cost;
    return result(w.used <= limit, w, limit, now);
  }

  sweep(now = this.now()): number {
    return this.table.sweep(now);
  }

  close(): void {
    this.table.close();
  }

  private window(key: string, now: number, windowSeconds: number): FixedWindow {
    const w = this.table.get(key);
    if (w === undefined) return this.table.insert(key, { used: 0, endsAt: now + windowSeconds * 1000 });
    if (now >= w.endsAt) {
      w.used = 0;
      w.endsAt = now + windowSeconds * 1000;
    }
    return w;
  }
}

function result(allowed: boolean, w: FixedWindow, limit: number, now: number): CounterResult {
  return { allowed, remaining: Math.max(0, limit - w.used), resetSeconds: (w.endsAt - now) / 1000 };
}
