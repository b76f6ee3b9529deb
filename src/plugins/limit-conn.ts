import { randomUUID } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, Reply } from "../plugin-api/plugin.js";
import { ownerKey } from "../ratelimit/conf-version.js";
import { RedisConcurrencyCounter } from "../ratelimit/redis-counters.js";
import {
  REDIS_POLICY_SCHEMA_NO_SENTINEL,
  REDIS_SECRET_FIELDS,
  type RedisPolicyConfig,
} from "../ratelimit/redis-schema.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";

/**
 * limit-conn: concurrent requests per key (resty.limit.conn). Up to `conn` run at once; the next `burst`
 * are delayed by default_conn_delay per `conn` ahead of them; beyond that, rejected. Counted per gateway
 * instance, or with a Redis policy across all of them; a request leaves in the log phase, which runs on
 * every way a request can end.
 */
export const name = "limit-conn";
export const priority = 1003;

export const schema = Type.Object(
  {
    conn: Type.Integer({ exclusiveMinimum: 0 }),
    burst: Type.Integer({ minimum: 0 }),
    default_conn_delay: Type.Number({ exclusiveMinimum: 0 }),
    only_use_default_delay: Type.Optional(Type.Boolean({ default: false })),
    key: Type.String(),
    key_type: Type.Optional(
      Type.Unsafe<"var" | "var_combination">({ type: "string", enum: ["var", "var_combination"], default: "var" }),
    ),
    policy: Type.Optional(
      Type.Unsafe<"local" | "redis" | "redis-cluster">({
        type: "string",
        enum: ["local", "redis", "redis-cluster"],
        default: "local",
      }),
    ),
    // APISIX's: how long a request that never left (its gateway died) keeps counting in Redis.
    key_ttl: Type.Optional(Type.Integer({ minimum: 1, default: 3600 })),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
    allow_degradation: Type.Optional(Type.Boolean({ default: false })),
  },
  REDIS_POLICY_SCHEMA_NO_SENTINEL,
);
export type LimitConnConfig = Static<typeof schema> & RedisPolicyConfig;

interface State {
  max: number;
  burst: number;
  unitDelayMs: number;
  onlyDefaultDelay: boolean;
  keyVar: string;
  keyTemplate: VarTemplate | undefined;
  active: Map<string, number>;
  /** The Redis policy's counter, and the prefix that makes its keys this route's and config's. */
  redis: RedisConcurrencyCounter | undefined;
  owner: string;
  allowDegradation: boolean;
  rejection: Reply;
}

function compile(conf: LimitConnConfig, scope: PluginScope): State {
  const redis = conf.policy === "redis" || conf.policy === "redis-cluster";
  return {
    redis: redis ? new RedisConcurrencyCounter(conf, conf.key_ttl ?? 3600) : undefined,
    owner: ownerKey(scope, conf),
    allowDegradation: conf.allow_degradation === true,
    max: conf.conn,
    burst: conf.burst,
    unitDelayMs: conf.default_conn_delay * 1000,
    onlyDefaultDelay: conf.only_use_default_delay === true,
    keyVar: conf.key,
    keyTemplate: conf.key_type === "var_combination" ? compileVarTemplate(conf.key) : undefined,
    active: new Map(),
    rejection: {
      status: conf.rejected_code ?? 503,
      body: conf.rejected_msg === undefined ? undefined : { error_msg: conf.rejected_msg },
    },
  };
}

function keyOf(state: State, ctx: PluginContext): string {
  const key = state.keyTemplate !== undefined ? state.keyTemplate.renderIfResolved(ctx) : ctx.var(state.keyVar);
  return key === undefined || key === "" ? ctx.remoteAddr : key;
}

const COUNTER_FAILED: Reply = { status: 500 };

/** What a request holds until its log phase: its key, and in Redis its own id there. */
interface Held {
  key: string;
  id: string | undefined;
}

function hold(state: State, ctx: PluginContext, held: Held): void {
  // Keyed by instance: a global rule and a route may both run limit-conn on one request.
  let all = ctx.pluginData.get(name) as Map<State, Held> | undefined;
  if (all === undefined) ctx.pluginData.set(name, (all = new Map()));
  all.set(state, held);
}

function access(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  const key = keyOf(state, ctx);
  if (state.redis !== undefined) {
    const id = randomUUID();
    const redisKey = state.owner + key;
    return state.redis.enter(redisKey, id, state.max + state.burst).then(
      (conn) => {
        if (conn < 0) return state.rejection;
        hold(state, ctx, { key: redisKey, id });
        return delayFor(state, conn);
      },
      () => (state.allowDegradation ? undefined : COUNTER_FAILED),
    );
  }
  const conn = (state.active.get(key) ?? 0) + 1;
  if (conn > state.max + state.burst) return state.rejection;
  state.active.set(key, conn);
  hold(state, ctx, { key, id: undefined });
  return delayFor(state, conn);
}

function delayFor(state: State, conn: number): Promise<undefined> | undefined {
  if (conn <= state.max) return undefined;
  // resty.limit.conn: excess requests wait one unit per full `conn` ahead of them.
  const delay = state.onlyDefaultDelay ? state.unitDelayMs : state.unitDelayMs * Math.floor((conn - 1) / state.max);
  return new Promise((resolve) => setTimeout(resolve, delay, undefined));
}

function log(state: State, ctx: PluginContext): void {
  const held = (ctx.pluginData.get(name) as Map<State, Held> | undefined)?.get(state);
  if (held === undefined) return;
  if (held.id !== undefined) {
    // A leave Redis misses is not lost for good: key_ttl expires the entry.
    state.redis?.leave(held.key, held.id).catch(() => {});
    return;
  }
  const key = held.key;
  const left = (state.active.get(key) ?? 1) - 1;
  if (left <= 0) state.active.delete(key);
  else state.active.set(key, left);
}

function destroy(state: State): void {
  state.redis?.close();
}

export const limitConn: Plugin<LimitConnConfig, State> = {
  name,
  priority,
  schema,
  encryptFields: REDIS_SECRET_FIELDS,
  compile,
  destroy,
  access,
  log,
};
