import { performance } from "node:perf_hooks";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, Reply } from "../plugin-api/plugin.js";
import { ownerKey } from "../ratelimit/conf-version.js";
import { monotonicEpochMs, retryAfter } from "../ratelimit/counter.js";
import { type LeakyBucketStore, REJECTED } from "../ratelimit/leaky-bucket.js";
import { LocalLeakyBucketStore, type LocalLeakyOptions } from "../ratelimit/local-leaky.js";
import { RedisLeakyBucketStore } from "../ratelimit/redis-counters.js";
import {
  REDIS_POLICY_SCHEMA_NO_SENTINEL,
  REDIS_SECRET_FIELDS,
  type RedisPolicyConfig,
} from "../ratelimit/redis-schema.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";

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

// The buckets are ratelimit/'s, beside limit-count's counters; named here too for this plugin's tests.
export { type LeakyBucketStore, LocalLeakyBucketStore, REJECTED };

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
export function compileWith(conf: LimitReqConfig, scope: PluginScope, options: LocalLeakyOptions = {}): State {
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
    // APISIX sends rejected_msg as {"error_msg": ...} and otherwise only the status. Retry-After is Weir's:
    // a request is rejected when its bucket would hold more than `burst`, and what it holds is never more
    // than `burst` before the request adds its 1, so 1/rate seconds always make room for one more.
    rejection: rejectionOf(conf, code),
  };
}

function rejectionOf(conf: LimitReqConfig, code: number): Reply {
  const reply: Reply = { status: code };
  if (conf.rejected_msg !== undefined) reply.body = { error_msg: conf.rejected_msg };
  if (code >= 400) reply.headers = { "Retry-After": retryAfter(1 / conf.rate) };
  return reply;
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
