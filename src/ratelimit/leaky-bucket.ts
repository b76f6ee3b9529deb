/**
 * limit-req's leaky buckets (lua-resty-limit-traffic's resty.limit.req): a request that finds `excess`
 * requests queued in its key's bucket waits excess/rate seconds; past `burst` it is rejected. The local
 * store answers synchronously (a request pays no promise for it); the Redis store (APISIX's redis and
 * redis-cluster policies, one atomic script per request) answers with a promise and rejects on connection
 * errors, which the plugin's `allow_degradation` then decides about.
 */

/** What LeakyBucketStore.incoming returns for a request over rate + burst. */
export const REJECTED = -1;

/** Where buckets live. */
export interface LeakyBucketStore {
  /**
   * Counts one request for `key` arriving at `now` (ms) and returns how long it must wait in ms (0 for
   * none), or REJECTED, in which case nothing was recorded.
   */
  incoming(key: string, now: number): number | Promise<number>;
  /** Stops timers and releases connections; the store is not used afterwards. */
  close(): void;
}
