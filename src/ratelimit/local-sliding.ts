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
    const allowed = slidingAdmits(w.current, w.previous, limit, cost, left, w.windowMs);
    if (allowed) w.current += cost;
    return slidingResult(allowed, w.current, w.previous, limit, cost, left, w.windowMs);
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): CounterResult {
    const now = this.now();
    const w = this.window(key, now, windowSeconds * 1000);
    const left = w.windowMs - (now % w.windowMs);
    w.current += cost;
    return slidingCommitResult(w.current, w.previous, limit, left, w.windowMs);
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
 * The sliding estimate: `previous` weighs in by the share of its window still covered, capped at the limit
 * since a commit() may have overdrawn it. The Redis counter's script computes the same, atomically.
 */
function estimateOf(current: number, previous: number, limit: number, leftMs: number, windowMs: number): number {
  return Math.min(previous, limit) * (leftMs / windowMs) + current;
}

/** Whether `cost` is admitted (APISIX rejects once the estimate reaches the limit). */
function slidingAdmits(
  current: number,
  previous: number,
  limit: number,
  cost: number,
  leftMs: number,
  windowMs: number,
): boolean {
  const estimate = estimateOf(current, previous, limit, leftMs, windowMs);
  return cost === 0 ? estimate < limit : Math.floor(estimate) + cost <= limit;
}

/** What incoming() answers, from the counts after the call (`current` includes the cost when admitted). */
export function slidingResult(
  allowed: boolean,
  current: number,
  previous: number,
  limit: number,
  cost: number,
  leftMs: number,
  windowMs: number,
): CounterResult {
  const estimate = estimateOf(current, previous, limit, leftMs, windowMs);
  if (allowed) return { allowed, remaining: remainingOf(limit, estimate), resetSeconds: ceil2(leftMs / 1000) };
  return {
    allowed,
    remaining: remainingOf(limit, estimate),
    resetSeconds: ceil2(retryAfter(current, previous, windowMs, limit, cost, leftMs)),
  };
}

/** What commit() answers, from the counts after the cost was added. */
export function slidingCommitResult(
  current: number,
  previous: number,
  limit: number,
  leftMs: number,
  windowMs: number,
): CounterResult {
  const estimate = estimateOf(current, previous, limit, leftMs, windowMs);
  return { allowed: estimate <= limit, remaining: remainingOf(limit, estimate), resetSeconds: ceil2(leftMs / 1000) };
}

/**
 * Seconds until the estimate lets `cost` in: with the current window already full, only the next window
 * helps; otherwise the previous window's share shrinks at its rate (APISIX's get_desired_delay).
 */
function retryAfter(
  current: number,
  previous: number,
  windowMs: number,
  limit: number,
  cost: number,
  leftMs: number,
): number {
  const room = limit - current - cost + 1;
  const previousRate = Math.min(previous, limit) / windowMs;
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
