import { type CounterResult, type LocalCounterOptions, monotonicEpochMs, type RateLimitCounter } from "./counter.js";
import { KeyTable, type Stamped } from "./key-table.js";

interface SlidingWindow extends Stamped {
  /** floor(now / windowMs) of the window `current` counts. */
  id: number;
  windowMs: number;
  current: number;
  /** What the window before `id` spent (0 when that window saw nothing). */
  previous: number;
}

/**
 * In-process sliding windows, APISIX's sliding-window.lua (the Cloudflare estimate): windows are aligned to
 * the epoch, and the previous window's count weighs in by the share of it the sliding window still
 * covers, so `estimate = previous * (time left in this window / window) + current`. A request is admitted
 * while the estimate is below the limit (APISIX's `estimated >= limit` rejects), which for a cost c reads
 * floor(estimate) + c <= limit.
 */
export class LocalSlidingWindowCounter implements RateLimitCounter {
  private readonly now: () => number;
  private readonly table: KeyTable<SlidingWindow>;

  constructor(options: LocalCounterOptions = {}) {
    this.now = options.now ?? monotonicEpochMs;
    // Once the window after `id` has passed too, the record says nothing a missing one would not.
    this.table = new KeyTable<SlidingWindow>(options, this.now, (w, now) => w.id < Math.floor(now / w.windowMs) - 1);
  }

  get size(): number {
    return this.table.size;
  }

  incoming(key: string, cost: number, limit: number, windowSeconds: number): CounterResult {
    const now = this.now();
    const w = this.window(key, now, windowSeconds * 1000);
    const left = w.windowMs - (now % w.windowMs);
    // APISIX caps the previous window's weight at the limit (a commit() may have overdrawn it).
    const previous = Math.min(w.previous, limit) * (left / w.windowMs);
    const estimate = previous + w.current;
    const allowed = cost === 0 ? estimate < limit : Math.floor(estimate) + cost <= limit;
    if (allowed) {
      w.current += cost;
      return { allowed, remaining: remainingOf(limit, w.current + previous), resetSeconds: ceil2(left / 1000) };
    }
    return { allowed, remaining: remainingOf(limit, estimate), resetSeconds: ceil2(retryAfter(w, limit, cost, left)) };
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): CounterResult {
    const now = this.now();
    const w = this.window(key, now, windowSeconds * 1000);
    const left = w.windowMs - (now % w.windowMs);
    w.current += cost;
    const estimate = Math.min(w.previous, limit) * (left / w.windowMs) + w.current;
    return { allowed: estimate <= limit, remaining: remainingOf(limit, estimate), resetSeconds: ceil2(left / 1000) };
  }

  sweep(now = this.now()): number {
    return this.table.sweep(now);
  }

  close(): void {
    this.table.close();
  }

  private window(key: string, now: number, windowMs: number): SlidingWindow {
    const id = Math.floor(now / windowMs);
    const w = this.table.get(key);
    if (w === undefined) return this.table.insert(key, { id, windowMs, current: 0, previous: 0 });
    if (w.windowMs !== windowMs) {
      // A different window length (a group whose routes disagree, or a time_window from a variable)
      // makes the old counts meaningless: start over.
      w.windowMs = windowMs;
      w.previous = 0;
      w.current = 0;
    } else if (w.id === id - 1) {
      w.previous = w.current;
      w.current = 0;
    } else if (w.id !== id) {
      w.previous = 0;
      w.current = 0;
    }
    w.id = id;
    return w;
  }
}

/**
 * Seconds until the estimate lets `cost` in: with the current window already full, only the next window
 * helps; otherwise the previous window's share shrinks at its rate (APISIX's get_desired_delay).
 */
function retryAfter(w: SlidingWindow, limit: number, cost: number, leftMs: number): number {
  const room = limit - w.current - cost + 1;
  const previousRate = Math.min(w.previous, limit) / w.windowMs;
  if (room <= 0 || previousRate === 0) return leftMs / 1000;
  return Math.max(0, leftMs - room / previousRate) / 1000;
}

function remainingOf(limit: number, estimate: number): number {
  return Math.max(0, Math.floor(limit - estimate));
}

/** APISIX rounds sliding-window times up to two decimals. */
function ceil2(seconds: number): number {
  return Math.ceil(Math.round(seconds * 1e6) / 1e4) / 100;
}
