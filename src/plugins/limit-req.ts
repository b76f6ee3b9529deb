import { performance } from "node:perf_hooks";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, Reply } from "../plugin-api/plugin.js";
import { ownerKey } from "../ratelimit/conf-version.js";
import { monotonicEpochMs } from "../ratelimit/counter.js";
import { RedisLeakyBucketStore } from "../ratelimit/redis-counters.js";
import {
  REDIS_POLICY_SCHEMA_NO_SENTINEL,
  REDIS_SECRET_FIELDS,
  type RedisPolicyConfig,
} from "../ratelimit/redis-schema.js";
import { compileVarTemplate, type VarTemplate } from "./vars-template.js";

/**
 * limit-req: APISIX's leaky bucket, i.e. lua-resty-limit-traffic's resty.limit.req. A request that finds
 * `excess` requests queued in its key's bucket waits excess/rate seconds; past `burst` it is rejected.
 * Local buckets belong to one plugin instance, i.e. to one config revision of the owning route/service/
 * rule, as APISIX keys them by conf version: editing the route starts every key afresh. With a Redis
 * policy the buckets live in Redis, keyed by owner and plugin config, so every gateway instance shares them.
 */
export const name = "limit-req";
export const priority = 1001;

const StringEnum = <T extends string>(values: readonly T[], defaultValue: T) =>
  Type.Unsafe<T>({ type: "string", enum: values, default: defaultValue });

export const schema = Type.Object(
  {
    rate: Type.Number({ exclusiveMinimum: 0 }),
    burst: Type.Number({ minimum: 0 }),
    key: Type.String(),
    key_type: Type.Optional(StringEnum(["var", "var_combination"], "var")),
    // APISIX's: limit-req has no Sentinel policy.
    policy: Type.Optional(StringEnum(["local", "redis", "redis-cluster"], "local")),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
    nodelay: Type.Optional(Type.Boolean({ default: false })),
    allow_degradation: Type.Optional(Type.Boolean({ default: false })),
  },
  // No additionalProperties: false, as in APISIX: configs carrying redis_* fields next to policy "local"
  // are valid there and must stay valid here.
  REDIS_POLICY_SCHEMA_NO_SENTINEL,
);
export type LimitReqConfig = Static<typeof schema> & RedisPolicyConfig;

// ---- the bucket ---------------------------------------------------------------------------------------

/** What LeakyBucketStore.incoming returns for a request over rate + burst. */
export const REJECTED = -1;

/**
 * Where buckets live. The local store answers synchronously; a Redis store (APISIX's redis and
 * redis-cluster policies, one atomic script per request) will return a promise and reject on connection
 * errors, which `allow_degradation` then decides about.
 */
export interface LeakyBucketStore {
  /**
   * Counts one request for `key` arriving at `now` (ms) and returns how long it must wait in ms (0 for
   * none), or REJECTED, in which case nothing was recorded.
   */
  incoming(key: string, now: number): number | Promise<number>;
  /** Stops timers and releases connections; the store is not used afterwards. */
  close(): void;
}

interface BucketRecord {
  /** Queued requests in 1/1000 units, an integer as resty.limit.req's `unsigned long`. */
  excess: number;
  /** Integer ms of the last committed request. */
  last: number;
  /** Insertion order stamp for the approximate-LRU cap (see touch below). */
  seq: number;
}

export interface LocalStoreOptions {
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

  constructor(rate: number, burst: number, options: LocalStoreOptions = {}) {
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

// ---- the plugin ---------------------------------------------------------------------------------------

interface State {
  store: LeakyBucketStore;
  now: () => number;
  /** `key` when key_type is var. */
  keyVar: string;
  /** The parsed key when key_type is var_combination. */
  keyTemplate: VarTemplate | undefined;
  nodelay: boolean;
  allowDegradation: boolean;
  rejection: Reply;
}

const STORE_FAILED: Reply = { status: 500 };

/** compile() with the clock and store limits injectable (tests drive time by hand). */
export function compileWith(conf: LimitReqConfig, scope: PluginScope, options: LocalStoreOptions = {}): State {
  const code = conf.rejected_code ?? 503;
  const redis = conf.policy === "redis" || conf.policy === "redis-cluster";
  // Redis buckets are drained by every instance's requests: their times must be one clock, the epoch's.
  const now = options.now ?? (redis ? monotonicEpochMs : performance.now.bind(performance));
  return {
    store: redis
      ? scopedStore(new RedisLeakyBucketStore(conf, conf.rate, conf.burst), ownerKey(scope, conf))
      : new LocalLeakyBucketStore(conf.rate, conf.burst, { ...options, now }),
    now,
    keyVar: conf.key,
    keyTemplate: conf.key_type === "var_combination" ? compileVarTemplate(conf.key) : undefined,
    nodelay: conf.nodelay === true,
    allowDegradation: conf.allow_degradation === true,
    // APISIX sends rejected_msg as {"error_msg": ...} and otherwise only the status.
    rejection:
      conf.rejected_msg === undefined ? { status: code } : { status: code, body: { error_msg: conf.rejected_msg } },
  };
}

/** A store whose keys are prefixed with the budget's owner, so two routes never share a Redis bucket. */
function scopedStore(store: RedisLeakyBucketStore, owner: string): LeakyBucketStore {
  return { incoming: (key, now) => store.incoming(owner + key, now), close: () => store.close() };
}

function compile(conf: LimitReqConfig, scope: PluginScope): State {
  return compileWith(conf, scope);
}

/**
 * The bucket key. A variable that is unset or empty, or a combination in which no variable has a value,
 * falls back to the client address, so such clients are limited one by one instead of sharing one bucket.
 * (APISIX's code falls back only on nil while its log and docs say "empty"; Weir follows the docs.)
 */
export function limitKey(state: Pick<State, "keyVar" | "keyTemplate">, ctx: PluginContext): string {
  const key = state.keyTemplate !== undefined ? state.keyTemplate.renderIfResolved(ctx) : ctx.var(state.keyVar);
  return key === undefined || key === "" ? ctx.remoteAddr : key;
}

function access(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  let delay: number | Promise<number>;
  try {
    delay = state.store.incoming(limitKey(state, ctx), state.now());
  } catch {
    return state.allowDegradation ? undefined : STORE_FAILED;
  }
  if (typeof delay === "number") return admit(state, delay);
  return delay.then(
    (ms) => admit(state, ms),
    () => (state.allowDegradation ? undefined : STORE_FAILED),
  );
}

function admit(state: State, delayMs: number): Reply | Promise<undefined> | undefined {
  if (delayMs === REJECTED) return state.rejection;
  // APISIX sleeps only for delays of at least 1 ms (`delay >= 0.001`); the request stays counted.
  if (delayMs >= 1 && !state.nodelay) return sleep(delayMs);
  return undefined;
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(resolve, ms, undefined));
}

function destroy(state: State): void {
  state.store.close();
}

export const limitReq: Plugin<LimitReqConfig, State> = {
  name,
  priority,
  schema,
  encryptFields: REDIS_SECRET_FIELDS,
  compile,
  destroy,
  access,
};
