import { DEFAULT_MAX_KEYS, DEFAULT_SWEEP_INTERVAL_MS } from "./counter.js";

/** What a table entry carries besides its own fields: its insertion stamp for the approximate LRU. */
export interface Stamped {
  seq: number;
}

/**
 * The per-key records of a local counter, bounded twice: a timer drops records whose windows are over, and
 * past `maxKeys` the stalest key is forgotten (the same approximate LRU as limit-req's buckets), so a flood
 * of distinct keys costs bounded memory.
 */
export class KeyTable<R extends Stamped> {
  private readonly records = new Map<string, R>();
  private readonly maxKeys: number;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(
    options: { sweepIntervalMs?: number; maxKeys?: number },
    now: () => number,
    private readonly expired: (record: R, now: number) => boolean,
  ) {
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    const interval = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    if (interval > 0) {
      this.sweeper = setInterval(() => this.sweep(now()), interval);
      // Expired windows are a memory concern only; they must never keep the process alive.
      this.sweeper.unref();
    }
  }

  get size(): number {
    return this.records.size;
  }

  /** The live record of `key`, moved towards the back of the LRU order when it has grown stale. */
  get(key: string): R | undefined {
    const rec = this.records.get(key);
    if (rec !== undefined && this.seq - rec.seq > this.maxKeys >>> 1) {
      // Re-inserted at most once per maxKeys/2 new keys, not on every request, and a flood of fresh keys
      // cannot push a busy key out (which would hand it a fresh window).
      this.records.delete(key);
      rec.seq = this.seq++;
      this.records.set(key, rec);
    }
    return rec;
  }

  /** Adds a record for a key not in the table, forgetting the stalest key when full. */
  insert(key: string, record: Omit<R, "seq">): R {
    if (this.records.size >= this.maxKeys) {
      // Map iteration is insertion order and get() re-inserts live keys: the first key is the stalest.
      const oldest = this.records.keys().next();
      if (oldest.done !== true) this.records.delete(oldest.value);
    }
    const rec = record as R;
    rec.seq = this.seq++;
    this.records.set(key, rec);
    return rec;
  }

  /** Drops every record whose window is over; returns how many went. */
  sweep(now: number): number {
    let dropped = 0;
    for (const [key, rec] of this.records) {
      if (this.expired(rec, now)) {
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
}
