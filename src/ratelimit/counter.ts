/**
 * Counters that limit how much a key may spend per time window: requests for limit-count, tokens for
 * ai-rate-limiting. The local counters answer synchronously (a request pays no promise for them); a Redis
 * counter (APISIX's redis, redis-cluster and redis-sentinel policies) will answer with a promise, one atomic
 * script per call, and reject when Redis is unreachable, which the caller's `allow_degradation` then decides.
 *
 * Limit and window travel with every call instead of being fixed per counter, because APISIX lets both come
 * from variables resolved per request, and because routes sharing a `group` share one counter.
 */

export type MaybePromise<T> = T | Promise<T>;

export interface CounterResult {
  /** For incoming(): the cost fitted and was recorded. For commit(): the budget is not overdrawn. */
  allowed: boolean;
  /** Budget left in the window after this call, never negative. */
  remaining: number;
  /**
   * Seconds until budget comes back: the end of the fixed window, or for a sliding window when the
   * estimate falls below the limit. A fresh fixed window reports exactly `windowSeconds`.
   */
  resetSeconds: number;
}

export interface RateLimitCounter {
  /**
   * Check and spend in one atomic step: when `cost` fits into what `key` has left of `limit` in the current
   * window it is recorded and `allowed` is true; otherwise nothing is recorded. A cost of 0 only looks:
   * `allowed` then says whether any budget is left (ai-rate-limiting's check before the request).
   */
  incoming(key: string, cost: number, limit: number, windowSeconds: number): MaybePromise<CounterResult>;
  /**
   * Spends `cost` unconditionally, for usage measured after the fact (ai-rate-limiting debits the tokens an
   * answer really used). The window may end up overdrawn; later incoming() calls then find no budget.
   */
  commit(key: string, cost: number, limit: number, windowSeconds: number): MaybePromise<CounterResult>;
  /** Stops timers and releases connections; the counter is not used afterwards. */
  close(): void;
}

export interface LocalCounterOptions {
  /** Clock in ms since the epoch; sliding windows are aligned to it as APISIX's are to ngx.now(). */
  now?: () => number;
  /** How often expired windows are dropped; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
  /** Most keys kept at once; past it the least recently used one is forgotten. */
  maxKeys?: number;
}

export const DEFAULT_SWEEP_INTERVAL_MS = 10_000;
// APISIX's plugin-limit-count shared dict (10m) holds on the order of 100k keys before its LRU evicts.
export const DEFAULT_MAX_KEYS = 100_000;

/** Wall-clock ms that never runs backwards within the process (a clock step must not stretch a window). */
export function monotonicEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** APISIX floors the reset to two decimals (`math.floor(reset * 100) / 100`), never below 0. */
export function floor2(seconds: number): number {
  if (seconds <= 0) return 0;
  // Rounded to 1e-4 first so that binary noise (0.29 * 100 = 28.999…) does not cost a hundredth.
  return Math.floor(Math.round(seconds * 1e4) / 1e2) / 100;
}

/**
 * A rejection's `Retry-After` (RFC 9110 §10.2.3, delay-seconds): the whole seconds until budget comes back,
 * rounded up so a client that waits that long is let through, and at least 1 (0 invites a busy loop).
 */
export function retryAfter(seconds: number): string {
  return String(Math.max(1, Math.ceil(seconds - 1e-9)));
}
