import type { CounterResult, RateLimitCounter } from "./counter.js";
import { type LeakyBucketStore, REJECTED } from "./leaky-bucket.js";
import { slidingCommitResult, slidingResult } from "./local-sliding.js";
import { acquireRedis, type RedisConnection, type RedisLease } from "./redis-client.js";
import type { RedisPolicyConfig } from "./redis-schema.js";

/**
 * The Redis policies (APISIX's redis, redis-cluster, redis-sentinel): the same fixed and sliding windows as
 * the local counters, kept in Redis so every gateway instance spends one budget. Each call is one script,
 * so check and spend stay atomic across instances; a call that fails (Redis down, timeout) rejects, and the
 * plugin's allow_degradation decides.
 */

// KEYS[1]: the window. ARGV: cost, limit, window ms, "1" to spend unconditionally (commit).
// Returns {admitted, spent in the window after the call, ms left in the window}.
const FIXED_SCRIPT = `
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local commit = ARGV[4] == '1'
local ttl = redis.call('PTTL', KEYS[1])
local used = 0
if ttl > 0 then
  used = tonumber(redis.call('GET', KEYS[1]) or '0')
else
  ttl = window
end
local admitted
if commit then
  admitted = true
elseif cost == 0 then
  admitted = used < limit
else
  admitted = used + cost <= limit
end
if admitted and cost > 0 then
  if used == 0 and ttl == window then
    redis.call('SET', KEYS[1], cost, 'PX', window)
  else
    redis.call('INCRBY', KEYS[1], cost)
  end
  used = used + cost
end
return {admitted and 1 or 0, used, ttl}
`;

// KEYS[1]: this window, KEYS[2]: the one before (same hash slot). ARGV: cost, limit, ms left in this
// window, window ms, "1" to spend unconditionally. The verdict is local-sliding's slidingAdmits(), made atomically.
// Returns {admitted, this window's count after the call, the previous window's count}.
const SLIDING_SCRIPT = `
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local left = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local commit = ARGV[5] == '1'
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local estimate = math.min(previous, limit) * (left / window) + current
local admitted
if commit then
  admitted = true
elseif cost == 0 then
  admitted = estimate < limit
else
  admitted = math.floor(estimate) + cost <= limit
end
if admitted and cost > 0 then
  current = redis.call('INCRBY', KEYS[1], cost)
  redis.call('PEXPIRE', KEYS[1], window * 2 + 1000)
end
return {admitted and 1 or 0, current, previous}
`;

// limit-req's leaky bucket, resty.limit.req's arithmetic as the local store's. KEYS[1]: the bucket (a hash).
// ARGV: rate and burst (both x1000), now (epoch ms), ttl (s). Returns {admitted, excess before truncation}
// with the excess as a string so its fraction survives the reply.
const LEAKY_BUCKET_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'excess', 'last')
local excess = 0
if state[1] and state[2] then
  excess = math.max(tonumber(state[1]) - rate * math.abs(now - tonumber(state[2])) / 1000 + 1000, 0)
  if excess > burst then
    return {0, tostring(excess)}
  end
end
redis.call('HSET', KEYS[1], 'excess', math.floor(excess), 'last', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, tostring(excess)}
`;

// limit-conn's concurrency: a sorted set of the requests in flight, each scored with when it stops counting
// (now + key_ttl), so requests of a gateway that died without releasing them expire. KEYS[1]: the set.
// ARGV: the most allowed at once, ttl (s), now (s), the request's id. Returns {admitted, count with it}.
const CONCURRENCY_SCRIPT = `
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
return {1, count + 1}
`;

interface ScriptedConnection {
  weirConcurrency(key: string, limit: number, ttl: number, now: number, id: string): Promise<[number, number]>;
  weirLeakyBucket(key: string, rate: number, burst: number, now: number, ttl: number): Promise<[number, string]>;
  weirFixedWindow(key: string, cost: number, limit: number, windowMs: number, commit: string): Promise<number[]>;
  weirSlidingWindow(
    current: string,
    previous: string,
    cost: number,
    limit: number,
    leftMs: number,
    windowMs: number,
    commit: string,
  ): Promise<number[]>;
}

const scripted = new WeakSet<RedisConnection>();

function withScripts(connection: RedisConnection): ScriptedConnection {
  if (!scripted.has(connection)) {
    // EVALSHA with a fallback to EVAL: the script is sent once per connection, not per call.
    connection.defineCommand("weirFixedWindow", { numberOfKeys: 1, lua: FIXED_SCRIPT });
    connection.defineCommand("weirSlidingWindow", { numberOfKeys: 2, lua: SLIDING_SCRIPT });
    connection.defineCommand("weirLeakyBucket", { numberOfKeys: 1, lua: LEAKY_BUCKET_SCRIPT });
    connection.defineCommand("weirConcurrency", { numberOfKeys: 1, lua: CONCURRENCY_SCRIPT });
    scripted.add(connection);
  }
  return connection as unknown as ScriptedConnection;
}

/** Keys in Redis: one namespace for Weir, the plugin's own key in a hash tag so a window's keys share a slot. */
function redisKey(prefix: string, key: string): string {
  return `weir:${prefix}:{${key}}`;
}

/** What every Redis counter holds: its lease on the shared connection, with Weir's scripts defined. */
abstract class RedisScripts {
  protected readonly lease: RedisLease;
  protected readonly redis: ScriptedConnection;

  constructor(conf: RedisPolicyConfig) {
    this.lease = acquireRedis(conf);
    this.redis = withScripts(this.lease.connection);
  }

  close(): void {
    this.lease.release();
  }
}

export class RedisFixedWindowCounter extends RedisScripts implements RateLimitCounter {
  constructor(
    conf: RedisPolicyConfig,
    private readonly prefix: string,
  ) {
    super(conf);
  }

  incoming(key: string, cost: number, limit: number, windowSeconds: number): Promise<CounterResult> {
    return this.call(key, cost, limit, windowSeconds, "0");
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): Promise<CounterResult> {
    return this.call(key, cost, limit, windowSeconds, "1");
  }

  private async call(key: string, cost: number, limit: number, windowSeconds: number, commit: string) {
    const [admitted, used, ttl] = await this.redis.weirFixedWindow(
      redisKey(this.prefix, key),
      cost,
      limit,
      Math.round(windowSeconds * 1000),
      commit,
    );
    return {
      allowed: commit === "1" ? used! <= limit : admitted === 1,
      remaining: Math.max(0, limit - used!),
      resetSeconds: ttl! / 1000,
    };
  }
}

export class RedisSlidingWindowCounter extends RedisScripts implements RateLimitCounter {
  constructor(
    conf: RedisPolicyConfig,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    super(conf);
  }

  incoming(key: string, cost: number, limit: number, windowSeconds: number): Promise<CounterResult> {
    return this.call(key, cost, limit, windowSeconds, false);
  }

  commit(key: string, cost: number, limit: number, windowSeconds: number): Promise<CounterResult> {
    return this.call(key, cost, limit, windowSeconds, true);
  }

  private async call(key: string, cost: number, limit: number, windowSeconds: number, commit: boolean) {
    const windowMs = Math.round(windowSeconds * 1000);
    // Windows aligned to the epoch on every instance's clock, as the local counter and APISIX's store do.
    const now = this.now();
    const id = Math.floor(now / windowMs);
    const left = windowMs - (now % windowMs);
    const base = redisKey(this.prefix, key);
    const [admitted, current, previous] = await this.redis.weirSlidingWindow(
      `${base}:${windowMs}:${id}`,
      `${base}:${windowMs}:${id - 1}`,
      cost,
      limit,
      left,
      windowMs,
      commit ? "1" : "0",
    );
    if (commit) return slidingCommitResult(current!, previous!, limit, left, windowMs);
    return slidingResult(admitted === 1, current!, previous!, limit, cost, left, windowMs);
  }
}

/**
 * limit-req's buckets in Redis (APISIX's redis and redis-cluster policies): `incoming` answers the delay in
 * ms, or REJECTED past rate + burst, in which case nothing was recorded. Times are epoch ms so every
 * instance's requests drain the same bucket.
 */
export class RedisLeakyBucketStore extends RedisScripts implements LeakyBucketStore {
  private readonly rate: number;
  private readonly burst: number;
  private readonly ttlSeconds: number;

  constructor(conf: RedisPolicyConfig, rate: number, burst: number) {
    super(conf);
    this.rate = rate * 1000;
    this.burst = burst * 1000;
    // A bucket drains fully within (burst + 1) / rate seconds; after that it says nothing a missing one would not.
    this.ttlSeconds = Math.ceil((burst + 1) / rate) + 1;
  }

  async incoming(key: string, nowMs: number): Promise<number> {
    const [admitted, excess] = await this.redis.weirLeakyBucket(
      redisKey("limit-req", key),
      this.rate,
      this.burst,
      Math.floor(nowMs),
      this.ttlSeconds,
    );
    return admitted === 1 ? (Number(excess) / this.rate) * 1000 : REJECTED;
  }
}

/**
 * limit-conn's requests in flight in Redis (APISIX's redis and redis-cluster policies), shared by every
 * gateway instance. A request enters with its own id and leaves by removing it; one that never leaves
 * (its gateway died) stops counting after `ttlSeconds`.
 */
export class RedisConcurrencyCounter extends RedisScripts {
  constructor(
    conf: RedisPolicyConfig,
    private readonly ttlSeconds: number,
  ) {
    super(conf);
  }

  /** The number in flight with this request, or -1 when `limit` are in flight already (nothing recorded). */
  async enter(key: string, id: string, limit: number): Promise<number> {
    const [admitted, count] = await this.redis.weirConcurrency(
      redisKey("limit-conn", key),
      limit,
      this.ttlSeconds,
      Math.floor(Date.now() / 1000),
      id,
    );
    return admitted === 1 ? count : -1;
  }

  async leave(key: string, id: string): Promise<void> {
    await this.lease.connection.zrem(redisKey("limit-conn", key), id);
  }
}
