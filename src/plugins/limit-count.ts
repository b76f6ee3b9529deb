import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, Reply } from "../plugin-api/plugin.js";
import { confVersion } from "../ratelimit/conf-version.js";
import { type CounterResult, floor2, type RateLimitCounter, retryAfter } from "../ratelimit/counter.js";
import { DelayedSyncCounter } from "../ratelimit/delayed-sync.js";
import { LocalFixedWindowCounter } from "../ratelimit/local-fixed.js";
import { LocalSlidingWindowCounter } from "../ratelimit/local-sliding.js";
import { type Quantity, quantity, quantityError, resolveQuantity } from "../ratelimit/quantity.js";
import { RedisFixedWindowCounter, RedisSlidingWindowCounter } from "../ratelimit/redis-counters.js";
import { REDIS_POLICY_SCHEMA, REDIS_SECRET_FIELDS, type RedisPolicyConfig } from "../ratelimit/redis-schema.js";
import { IntegerOrVariable, RulesSchema } from "../ratelimit/schema.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";

/**
 * limit-count: at most `count` requests per `time_window` seconds per key, in a fixed or a sliding window,
 * with APISIX's X-RateLimit-* headers on every answer, the rejection included.
 *
 * Counters live in one process-wide table per window type, like APISIX's shared dict, keyed by where the
 * config applies: a `group` shares one budget wherever it is configured; otherwise the budget belongs to
 * the matched route and service and to this exact config (APISIX's conf_type + conf_id + conf_version), so
 * two routes never share one, an edit elsewhere on the route keeps the count, and an edit of this plugin's
 * config starts afresh.
 */
export const name = "limit-count";
export const priority = 1002;

const StringEnum = <const T extends string>(values: readonly T[], defaultValue: T) =>
  Type.Unsafe<T>({ type: "string", enum: values, default: defaultValue });

export const schema = Type.Object(
  {
    // Required unless `rules` is given (APISIX's oneOf); check() says which is missing.
    count: Type.Optional(IntegerOrVariable),
    time_window: Type.Optional(IntegerOrVariable),
    window_type: Type.Optional(StringEnum(["fixed", "sliding"], "fixed")),
    group: Type.Optional(Type.String()),
    key: Type.Optional(Type.String({ default: "remote_addr" })),
    key_type: Type.Optional(StringEnum(["var", "var_combination", "constant"], "var")),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
    // APISIX's enum, so a Redis config gets check()'s "not supported yet" instead of an enum error.
    policy: Type.Optional(StringEnum(["local", "redis", "redis-cluster", "redis-sentinel"], "local")),
    allow_degradation: Type.Optional(Type.Boolean({ default: false })),
    show_limit_quota_header: Type.Optional(Type.Boolean({ default: true })),
    // Delayed Redis sync; -1 (APISIX's NO_DELAYED_SYNC) is stored as the default and means "every request".
    sync_interval: Type.Optional(Type.Number({ default: -1 })),
    // APISIX 3.x: several budgets at once, each keyed by a variable combination; see check() and access.
    rules: Type.Optional(RulesSchema),
  },
  // No additionalProperties: false, as in APISIX: redis_* fields next to policy "local" stay valid.
  REDIS_POLICY_SCHEMA,
);
export type LimitCountConfig = Static<typeof schema> & RedisPolicyConfig;

function check(conf: LimitCountConfig): string | undefined {
  const interval = conf.sync_interval;
  if (conf.policy !== undefined && conf.policy !== "local" && interval !== undefined && interval !== -1) {
    // APISIX's bounds and messages.
    if (interval < 0.1) return "sync_interval should not be smaller than 0.1";
    if (typeof conf.time_window === "number" && interval >= conf.time_window)
      return "sync_interval should be smaller than time_window";
  }
  if (conf.rules !== undefined) {
    // APISIX's messages, word for word.
    if (conf.count !== undefined || conf.time_window !== undefined)
      return "count/time_window and rules cannot be specified at the same time";
    if (conf.group !== undefined) return "group and rules cannot be specified at the same time";
    const keys = new Set<string>();
    for (let i = 0; i < conf.rules.length; i++) {
      const rule = conf.rules[i]!;
      if (keys.has(rule.key)) return `duplicate key '${rule.key}' in rules`;
      keys.add(rule.key);
      const err =
        quantityError(`rules[${i}].count`, rule.count) ?? quantityError(`rules[${i}].time_window`, rule.time_window);
      if (err !== undefined) return err;
    }
    return undefined;
  }
  if (conf.count === undefined) return 'property "count" is required';
  if (conf.time_window === undefined) return 'property "time_window" is required';
  return quantityError("count", conf.count) ?? quantityError("time_window", conf.time_window);
}

// ---- compiled state -----------------------------------------------------------------------------------

/** One of `rules`: a budget that applies when its key resolves. */
interface Rule {
  key: VarTemplate;
  count: Quantity;
  timeWindow: Quantity;
  /** Counter key part that keeps two rules apart even when their keys render alike. */
  tag: string;
  limitHeader: string;
  remainingHeader: string;
  resetHeader: string;
}

interface State {
  counter: RateLimitCounter;
  /** `rules` compiled; undefined for the count/time_window form. */
  rules: Rule[] | undefined;
  /** A Redis counter belongs to this instance (its lease on the shared connection); the local tables do not. */
  ownsCounter: boolean;
  count: Quantity;
  timeWindow: Quantity;
  keyType: "var" | "var_combination" | "constant";
  key: string;
  keyTemplate: VarTemplate | undefined;
  /** Counter key prefix fixed at config time (groups, global rules), else undefined: built per request. */
  fixedPrefix: string | undefined;
  /** This config's identity, so a changed config counts afresh (APISIX's conf_version). */
  fingerprint: string;
  showHeaders: boolean;
  allowDegradation: boolean;
  rejection: Reply;
}

export interface LimitCountOptions {
  /** The counter to use instead of the process-wide local one (tests drive its clock). */
  counter?: RateLimitCounter;
}

/** The counter a config names: the process-wide local table, or this instance's own Redis counter. */
function counterFor(conf: LimitCountConfig): { counter: RateLimitCounter; owned: boolean } {
  const windowType = conf.window_type ?? "fixed";
  if (conf.policy === undefined || conf.policy === "local") return { counter: localCounter(windowType), owned: false };
  if (windowType === "sliding") return { counter: new RedisSlidingWindowCounter(conf, "limit-count"), owned: true };
  const redis = new RedisFixedWindowCounter(conf, "limit-count");
  const interval = conf.sync_interval ?? -1;
  // Delayed sync (APISIX's sync_interval): Redis once per key and interval instead of once per request.
  return { counter: interval > 0 ? new DelayedSyncCounter(redis, interval) : redis, owned: true };
}

// One table per window type for the whole process, as APISIX's plugin-limit-count shared dict: instances
// come and go with config changes, the counts outlive them.
let sharedFixed: LocalFixedWindowCounter | undefined;
let sharedSliding: LocalSlidingWindowCounter | undefined;

function localCounter(windowType: "fixed" | "sliding"): RateLimitCounter {
  if (windowType === "sliding") return (sharedSliding ??= new LocalSlidingWindowCounter());
  return (sharedFixed ??= new LocalFixedWindowCounter());
}

/** compile() with the counter injectable. */
export function compileWith(conf: LimitCountConfig, scope: PluginScope, options: LimitCountOptions = {}): State {
  const keyType = conf.key_type ?? "var";
  const key = conf.key ?? "remote_addr";
  const fingerprint = confVersion(conf);
  const code = conf.rejected_code ?? 503;
  let fixedPrefix: string | undefined;
  // Length-prefixed so that no group name and key can be spelled as another group name and key.
  if (conf.group !== undefined) fixedPrefix = `group:${conf.group.length}:${conf.group}:`;
  else if (scope.kind === "global_rule") fixedPrefix = `global_rule:${fingerprint}:`;
  // A consumer's own limit-count is that consumer's budget (APISIX keys it by conf_type "consumer" and the
  // consumer's name), even when another consumer carries an identical config.
  else if (scope.kind === "consumer") fixedPrefix = `consumer:${scope.id.length}:${scope.id}:${fingerprint}:`;
  const { counter, owned } =
    options.counter === undefined ? counterFor(conf) : { counter: options.counter, owned: false };
  return {
    counter,
    ownsCounter: owned,
    rules: conf.rules?.map((r, i) => {
      // APISIX: X-<header_prefix or the rule's 1-based index>-RateLimit-*
      const prefix = r.header_prefix ?? String(i + 1);
      return {
        key: compileVarTemplate(r.key),
        count: quantity(r.count),
        timeWindow: quantity(r.time_window),
        tag: `rule${i}:`,
        limitHeader: `X-${prefix}-RateLimit-Limit`,
        remainingHeader: `X-${prefix}-RateLimit-Remaining`,
        resetHeader: `X-${prefix}-RateLimit-Reset`,
      };
    }),
    count: conf.count === undefined ? 1 : quantity(conf.count),
    timeWindow: conf.time_window === undefined ? 1 : quantity(conf.time_window),
    keyType,
    key,
    keyTemplate: keyType === "var_combination" ? compileVarTemplate(key) : undefined,
    fixedPrefix,
    fingerprint,
    showHeaders: conf.show_limit_quota_header !== false,
    allowDegradation: conf.allow_degradation === true,
    // APISIX sends rejected_msg as {"error_msg": ...} and otherwise only the status.
    rejection:
      conf.rejected_msg === undefined ? { status: code } : { status: code, body: { error_msg: conf.rejected_msg } },
  };
}

function compile(conf: LimitCountConfig, scope: PluginScope): State {
  return compileWith(conf, scope);
}

// ---- the request ----------------------------------------------------------------------------------------

/**
 * The value counted by. An unset or empty variable, or a combination in which no variable has a value,
 * falls back to the client address, so such clients are limited one by one instead of sharing one budget
 * (APISIX falls back only when the value is nil; Weir also on "", as limit-req does). A constant is used as is.
 */
export function limitKey(state: Pick<State, "keyType" | "key" | "keyTemplate">, ctx: PluginContext): string {
  if (state.keyType === "constant") return state.key;
  const key = state.keyTemplate !== undefined ? state.keyTemplate.renderIfResolved(ctx) : ctx.var(state.key);
  return key === undefined || key === "" ? ctx.remoteAddr : key;
}

/** Whose budget this request spends: the fixed owner (group, global rule, consumer) or the matched route's. */
function ownerPrefix(state: State, ctx: PluginContext): string {
  return state.fixedPrefix ?? `${ctx.routeId ?? ""}&${ctx.serviceId ?? ""}:${state.fingerprint}:`;
}

/** The counter's key: the owner of the budget, then the limit key. */
export function counterKey(state: State, ctx: PluginContext): string {
  return ownerPrefix(state, ctx) + limitKey(state, ctx);
}

const RESOLVE_FAILED: Reply = { status: 500 };
const COUNTER_FAILED: Reply = { status: 500, body: { error_msg: "failed to limit count" } };

const NO_RULE: Reply = { status: 500 };

function access(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  if (state.rules !== undefined) return accessRules(state, ctx);
  const limit = resolveQuantity(state.count, ctx);
  const window = resolveQuantity(state.timeWindow, ctx);
  // A variable that does not hold a positive integer fails the request (or lets it through with
  // allow_degradation) rather than skipping the limit: a client-controlled variable must not switch it off.
  if (limit === undefined || window === undefined) return state.allowDegradation ? undefined : RESOLVE_FAILED;
  let answer: CounterResult | Promise<CounterResult>;
  try {
    answer = state.counter.incoming(counterKey(state, ctx), 1, limit, window);
  } catch {
    return state.allowDegradation ? undefined : COUNTER_FAILED;
  }
  if (!(answer instanceof Promise)) return admit(state, ctx, answer, limit);
  return answer.then(
    (result) => admit(state, ctx, result, limit),
    () => (state.allowDegradation ? undefined : COUNTER_FAILED),
  );
}

/**
 * APISIX's rules: every rule whose key resolves (at least one of its variables has a value) spends from its
 * own budget, in order, and the first that has none left rejects. When no rule applies the request fails
 * (500, or passes with allow_degradation), as APISIX's "failed to get rate limit rules".
 */
function accessRules(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  const applicable: { rule: Rule; key: string }[] = [];
  const owner = ownerPrefix(state, ctx);
  for (const rule of state.rules!) {
    const rendered = rule.key.renderIfResolved(ctx);
    if (rendered !== undefined) applicable.push({ rule, key: owner + rule.tag + rendered });
  }
  if (applicable.length === 0) return state.allowDegradation ? undefined : NO_RULE;
  const step = (i: number): Reply | Promise<Reply | undefined> | undefined => {
    for (; i < applicable.length; i++) {
      const { rule, key } = applicable[i]!;
      const limit = resolveQuantity(rule.count, ctx);
      const window = resolveQuantity(rule.timeWindow, ctx);
      // The rule applies: a variable that does not hold a positive integer must not switch it off.
      if (limit === undefined || window === undefined) return state.allowDegradation ? undefined : RESOLVE_FAILED;
      let answer: CounterResult | Promise<CounterResult>;
      try {
        answer = state.counter.incoming(key, 1, limit, window);
      } catch {
        return state.allowDegradation ? undefined : COUNTER_FAILED;
      }
      if (answer instanceof Promise) {
        const next = i + 1;
        return answer.then(
          (result) => admitRule(state, ctx, rule, result, limit) ?? step(next),
          () => (state.allowDegradation ? undefined : COUNTER_FAILED),
        );
      }
      const rejected = admitRule(state, ctx, rule, answer, limit);
      if (rejected !== undefined) return rejected;
    }
    return undefined;
  };
  return step(0);
}

function admitRule(state: State, ctx: PluginContext, rule: Rule, result: CounterResult, limit: number) {
  if (state.showHeaders) {
    ctx.setResponseHeader(rule.limitHeader, String(limit));
    ctx.setResponseHeader(rule.remainingHeader, result.allowed ? String(result.remaining) : "0");
    ctx.setResponseHeader(rule.resetHeader, String(floor2(result.resetSeconds)));
  }
  return result.allowed ? undefined : reject(state, ctx, result);
}

function admit(state: State, ctx: PluginContext, result: CounterResult, limit: number): Reply | undefined {
  if (state.showHeaders) {
    ctx.setResponseHeader("X-RateLimit-Limit", String(limit));
    // APISIX shows 0 remaining on a rejection, whatever the counter holds.
    ctx.setResponseHeader("X-RateLimit-Remaining", result.allowed ? String(result.remaining) : "0");
    ctx.setResponseHeader("X-RateLimit-Reset", String(floor2(result.resetSeconds)));
  }
  return result.allowed ? undefined : reject(state, ctx, result);
}

/**
 * The rejection, with Retry-After (Weir's; APISIX sends only X-RateLimit-Reset, and only with the quota
 * headers): when the window gives budget back, so clients and SDKs that honour it wait exactly that long.
 */
function reject(state: State, ctx: PluginContext, result: CounterResult): Reply {
  ctx.setResponseHeader("Retry-After", retryAfter(result.resetSeconds));
  return state.rejection;
}

function destroy(state: State): void {
  if (state.ownsCounter) state.counter.close();
}

export const limitCount: Plugin<LimitCountConfig, State> = {
  name,
  priority,
  schema,
  encryptFields: REDIS_SECRET_FIELDS,
  check,
  compile,
  destroy,
  access,
};
