import { performance } from "node:perf_hooks";
import { type LeakyBucketStore, REJECTED } from "./leaky-bucket.js";

interface BucketRecord {
  /** Queued requests in 1/1000 units, an integer as resty.limit.req's `unsigned long`. */
  excess: number;
  /** Integer ms of the last committed request. */
  last: number;
  /** Insertion order stamp for the approximate-LRU cap (see touch below). */
  seq: number;
}

export interface LocalLeakyOptions {
  /** Clock for the idle sweep; the same one the caller passes to incoming(). */
  now?: () => number;
  /** How often fully drained buckets are dropped; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
  /** Most keys kept at once; past it the least recently used one is forgotten. */
  maxKeys?: number;
}

const DEFAULT_SWEEP_INTERVAL_MS = 10_000;
// APISIX's shared dict (10m) holds on the order of 100k buckets before its LRU starts forgetting keys.
const DEFAULT_MAX_KEYS = 100_000;

/**
 * In-process buckets with resty.limit.req's exact arithmetic: rate and burst scaled by 1000, the bucket
 * leaks rate*elapsed/1000 per ms, every request adds 1000, and the stored excess is truncated to an integer.
 */
export class LocalLeakyBucketStore implements LeakyBucketStore {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly records = new Map<string, BucketRecord>();
  private readonly sweeper: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(rate: number, burst: number, options: LocalLeakyOptions = {}) {
    this.rate = rate * 1000;
    this.burst = burst * 1000;
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    const interval = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    if (interval > 0) {
      const now = options.now ?? performance.now.bind(performance);
      this.sweeper = setInterval(() => this.sweep(now()), interval);
      // Idle buckets are a memory concern only; they must never keep the process alive.
      this.sweeper.unref();
    }
  }

  /** Number of keys currently tracked. */
  get size(): number {
    return this.records.size;
  }

  incoming(key: string, nowMs: number): number {
    // ngx.now() has millisecond resolution; flooring keeps the arithmetic identical to resty's.
    const now = Math.floor(nowMs);
    const rec = this.records.get(key);
    if (rec === undefined) {
      this.insert(key, now);
      return 0;
    }
    const excess = Math.max(rec.excess - (this.rate * Math.abs(now - rec.last)) / 1000 + 1000, 0);
    if (excess > this.burst) return REJECTED;
    rec.excess = Math.trunc(excess);
    rec.last = now;
    this.touch(key, rec);
    // The delay uses the untruncated excess, as resty returns it before storing.
    return (excess / this.rate) * 1000;
  }

  /**
   * Drops buckets the next request could not tell from a missing one: those that leaked their excess plus
   * the 1000 the next request adds, so it would compute excess 0 either way. Returns how many went.
   */
  sweep(nowMs: number): number {
    const now = Math.floor(nowMs);
    let dropped = 0;
    for (const [key, rec] of this.records) {
      if (rec.excess + 1000 - (this.rate * Math.abs(now - rec.last)) / 1000 <= 0) {
        this.records.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  close(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.records.clear();
  }

  private insert(key: string, now: number): void {
    if (this.records.size >= this.maxKeys) {
      // Map iteration is insertion order, and touch() re-inserts live keys: the first key is the stalest.
      const oldest = this.records.keys().next();
      if (oldest.done !== true) this.records.delete(oldest.value);
    }
    this.records.set(key, { excess: 0, last: now, seq: this.seq++ });
  }

  /**
   * Approximate LRU at nearly no cost: a key moves to the back of the Map only once it has drifted into
   * the older half, so a busy key is re-inserted at most once per maxKeys/2 new keys rather than on every
   * request, and a flood of fresh keys cannot push it out (which would hand it a fresh burst).
   */
  private touch(key: string, rec: BucketRecord): void {
    if (this.seq - rec.seq > this.maxKeys >>> 1) {
      this.records.delete(key);
      rec.seq = this.seq++;
      this.records.set(key, rec);
    }
  }
}
