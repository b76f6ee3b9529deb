import { type Static, Type } from "@sinclair/typebox";
import { type CostExpr, compileCostExpr } from "../ai/cost-expr.js";
import type { AiRequest } from "../ai/plan.js";
import type { LlmUsage } from "../ai/usage.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, Reply } from "../plugin-api/plugin.js";
import { ownerKey } from "../ratelimit/conf-version.js";
import {
  type CounterResult,
  floor2,
  type MaybePromise,
  type RateLimitCounter,
  retryAfter,
} from "../ratelimit/counter.js";
import { LocalFixedWindowCounter } from "../ratelimit/local-fixed.js";
import { type Quantity, quantity, quantityError, resolveQuantity } from "../ratelimit/quantity.js";
import { RedisFixedWindowCounter } from "../ratelimit/redis-counters.js";
import { REDIS_POLICY_SCHEMA, REDIS_SECRET_FIELDS, type RedisPolicyConfig } from "../ratelimit/redis-schema.js";
import { IntegerOrVariable, RulesSchema } from "../ratelimit/schema.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";

/**
 * ai-rate-limiting: token budgets for AI routes, APISIX 3.x semantics. Before the request it checks that
 * budget is left (cost 0: nothing is spent yet); after the answer it debits what the answer really cost
 * (total, prompt or completion tokens, or a cost expression over the usage figures). So the request that
 * crosses a budget is served, and the next one is refused.
 *
 * Budgets: `limit`/`time_window` (one budget for the route's instances together), `instances[]` (a budget
 * per instance; an exhausted one is skipped by ai-proxy-multi when its fallback_strategy names rate
 * limiting, else the request is refused), or `rules[]` keyed by variables (`$consumer_name` gives every
 * consumer its own budget).
 */
export const name = "ai-rate-limiting";
export const priority = 1030;

export const schema = Type.Object(
  {
    limit: Type.Optional(IntegerOrVariable),
    time_window: Type.Optional(IntegerOrVariable),
    show_limit_quota_header: Type.Optional(Type.Boolean({ default: true })),
    limit_strategy: Type.Optional(
      Type.Unsafe<"total_tokens" | "prompt_tokens" | "completion_tokens" | "expression">({
        type: "string",
        enum: ["total_tokens", "prompt_tokens", "completion_tokens", "expression"],
        default: "total_tokens",
      }),
    ),
    cost_expr: Type.Optional(Type.String({ minLength: 1 })),
    instances: Type.Optional(
      Type.Array(Type.Object({ name: Type.String(), limit: IntegerOrVariable, time_window: IntegerOrVariable }), {
        minItems: 1,
      }),
    ),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
    policy: Type.Optional(
      Type.Unsafe<string>({
        type: "string",
        enum: ["local", "redis", "redis-cluster", "redis-sentinel"],
        default: "local",
      }),
    ),
    allow_degradation: Type.Optional(Type.Boolean({ default: false })),
    rules: Type.Optional(RulesSchema),
  },
  {
    dependencies: { limit: ["time_window"], time_window: ["limit"] },
    oneOf: [{ anyOf: [{ required: ["limit", "time_window"] }, { required: ["instances"] }] }, { required: ["rules"] }],
    ...REDIS_POLICY_SCHEMA,
  },
);
export type AiRateLimitingConfig = Static<typeof schema> & RedisPolicyConfig;

function check(conf: AiRateLimitingConfig): string | undefined {
  const invalid =
    quantityError("limit", conf.limit) ??
    quantityError("time_window", conf.time_window) ??
    conf.instances
      ?.map(
        (inst, i) =>
          quantityError(`instances[${i}].limit`, inst.limit) ??
          quantityError(`instances[${i}].time_window`, inst.time_window),
      )
      .find((e) => e !== undefined) ??
    conf.rules
      ?.map(
        (rule, i) =>
          quantityError(`rules[${i}].count`, rule.count) ?? quantityError(`rules[${i}].time_window`, rule.time_window),
      )
      .find((e) => e !== undefined);
  if (invalid !== undefined) return invalid;
  if (conf.limit_strategy === "expression") {
    if (conf.cost_expr === undefined) return "cost_expr is required when limit_strategy is 'expression'";
    try {
      compileCostExpr(conf.cost_expr);
    } catch (err) {
      return `invalid cost_expr: ${(err as Error).message}`;
    }
  }
  return undefined;
}

// ---- compiled state -----------------------------------------------------------------------------------

interface Budget {
  /** Counter key (rules add the rendered request key to it). */
  key: string;
  limit: Quantity;
  window: Quantity;
  limitHeader: string;
  remainingHeader: string;
  resetHeader: string;
}

interface Rule extends Budget {
  requestKey: VarTemplate;
}

interface State {
  counter: RateLimitCounter;
  /** A Redis counter is this instance's lease on a shared connection; the local table is the process's. */
  ownsCounter: boolean;
  allowDegradation: boolean;
  showHeaders: boolean;
  cost: (usage: LlmUsage) => number;
  rules: Rule[] | undefined;
  perInstance: Map<string, Budget>;
  /** The route-wide budget shared by instances without their own (APISIX's "ai-rate-limiting#global"). */
  shared: Omit<Budget, "limitHeader" | "remainingHeader" | "resetHeader"> | undefined;
  rejectedCode: number;
  rejectedMsg: string | undefined;
}

/** What access found, for the headers and the debit after the answer. */
interface Checked {
  /** Where access files it: the instance name, or `rule<i>`. */
  slot: string;
  budget: Budget;
  key: string;
  limit: number;
  window: number;
  result: CounterResult;
}

/** A budget looked at, the counter's answer possibly still on its way (Redis). */
interface Pending extends Omit<Checked, "result"> {
  result: MaybePromise<CounterResult>;
}

function costFunction(conf: AiRateLimitingConfig): (usage: LlmUsage) => number {
  switch (conf.limit_strategy ?? "total_tokens") {
    case "prompt_tokens":
      return (u) => u.prompt;
    case "completion_tokens":
      return (u) => u.completion;
    case "expression": {
      const expr: CostExpr = compileCostExpr(conf.cost_expr!);
      return (u) => {
        const value = expr(usageVariables(u));
        return Number.isFinite(value) && value > 0 ? Math.ceil(value) : 0;
      };
    }
    default:
      return (u) => u.total;
  }
}

/** The names a cost expression may use: OpenAI's and Anthropic's usage fields, from the normalised usage. */
function usageVariables(u: LlmUsage): Record<string, number> {
  const uncached = u.prompt - u.cacheRead - u.cacheCreation;
  return {
    prompt_tokens: u.prompt,
    completion_tokens: u.completion,
    total_tokens: u.total,
    input_tokens: uncached,
    output_tokens: u.completion,
    cache_read_input_tokens: u.cacheRead,
    cache_creation_input_tokens: u.cacheCreation,
    cached_tokens: u.cacheRead,
    reasoning_tokens: u.reasoning,
  };
}

// One table for the whole process, as limit-count's: plugin instances come and go with every edit of the
// route, the budgets spent outlive them.
let sharedCounter: LocalFixedWindowCounter | undefined;

/** The local policy's process-wide table, or for a Redis policy this instance's own counter on it. */
function counterFor(conf: AiRateLimitingConfig): { counter: RateLimitCounter; ownsCounter: boolean } {
  if (conf.policy === undefined || conf.policy === "local")
    return { counter: (sharedCounter ??= new LocalFixedWindowCounter()), ownsCounter: false };
  return { counter: new RedisFixedWindowCounter(conf, "ai-rate-limiting"), ownsCounter: true };
}

function compile(conf: AiRateLimitingConfig, scope: PluginScope): State {
  // Whose budget (APISIX's resource key) and which config of it (its plugin-level conf_version).
  const where = ownerKey(scope, conf);
  const perInstance = new Map<string, Budget>();
  for (const inst of conf.instances ?? []) {
    perInstance.set(inst.name, {
      key: `${where}#instance:${inst.name}`,
      limit: quantity(inst.limit),
      window: quantity(inst.time_window),
      limitHeader: `X-AI-RateLimit-Limit-${inst.name}`,
      remainingHeader: `X-AI-RateLimit-Remaining-${inst.name}`,
      resetHeader: `X-AI-RateLimit-Reset-${inst.name}`,
    });
  }
  const rules = conf.rules?.map((r, i) => {
    const prefix = r.header_prefix ?? String(i + 1);
    const cased = prefix.charAt(0).toUpperCase() + prefix.slice(1);
    return {
      key: `${where}#rule${i}`,
      requestKey: compileVarTemplate(r.key),
      limit: quantity(r.count),
      window: quantity(r.time_window),
      limitHeader: `X-AI-${cased}-RateLimit-Limit`,
      remainingHeader: `X-AI-${cased}-RateLimit-Remaining`,
      resetHeader: `X-AI-${cased}-RateLimit-Reset`,
    };
  });
  return {
    ...counterFor(conf),
    allowDegradation: conf.allow_degradation === true,
    showHeaders: conf.show_limit_quota_header !== false,
    cost: costFunction(conf),
    rules: rules !== undefined && rules.length > 0 ? rules : undefined,
    perInstance,
    shared:
      conf.limit === undefined || conf.time_window === undefined
        ? undefined
        : { key: `${where}#global`, limit: quantity(conf.limit), window: quantity(conf.time_window) },
    rejectedCode: conf.rejected_code ?? 503,
    rejectedMsg: conf.rejected_msg,
  };
}

function budgetOf(state: State, instance: string): Budget | undefined {
  const own = state.perInstance.get(instance);
  if (own !== undefined || state.shared === undefined) return own;
  return {
    ...state.shared,
    limitHeader: `X-AI-RateLimit-Limit-${instance}`,
    remainingHeader: `X-AI-RateLimit-Remaining-${instance}`,
    resetHeader: `X-AI-RateLimit-Reset-${instance}`,
  };
}

function look(
  state: State,
  ctx: PluginContext,
  slot: string,
  budget: Budget,
  requestKey?: string,
): Pending | undefined {
  const limit = resolveQuantity(budget.limit, ctx);
  const window = resolveQuantity(budget.window, ctx);
  if (limit === undefined || window === undefined) return undefined;
  const key = requestKey === undefined ? budget.key : `${budget.key}:${requestKey}`;
  return { slot, budget, key, limit, window, result: state.counter.incoming(key, 0, limit, window) };
}

function headersOf(checked: Checked): Record<string, string> {
  return {
    [checked.budget.limitHeader]: String(checked.limit),
    [checked.budget.remainingHeader]: String(checked.result.remaining),
    [checked.budget.resetHeader]: String(floor2(checked.result.resetSeconds)),
  };
}

/** The refusal, with Retry-After (Weir's, not APISIX's) at the window's end, when tokens come back. */
function rejection(state: State, checked: Checked): Reply {
  const headers = state.showHeaders ? headersOf(checked) : {};
  headers["Retry-After"] = retryAfter(checked.result.resetSeconds);
  return {
    status: state.rejectedCode,
    body: state.rejectedMsg === undefined ? undefined : { error_msg: state.rejectedMsg },
    headers,
  };
}

/** Per request: the budgets looked at, by instance name (or rule index) for headers and the debit. */
type Seen = Map<string, Checked>;

function seenOf(ctx: PluginContext, state: State): Seen {
  let all = ctx.pluginData.get(name) as Map<State, Seen> | undefined;
  if (all === undefined) ctx.pluginData.set(name, (all = new Map()));
  let seen = all.get(state);
  if (seen === undefined) all.set(state, (seen = new Map()));
  return seen;
}

const COUNTER_FAILED: Reply = { status: 500, body: { error_msg: "failed to limit count" } };

/** Looks at every budget that applies (all at once, so Redis answers them in one round trip), then decides. */
function access(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  const ai: AiRequest | undefined = ctx.aiRequest;
  if (ai === undefined) return undefined;
  const pending: Pending[] = [];
  if (state.rules !== undefined) {
    for (let i = 0; i < state.rules.length; i++) {
      const rule = state.rules[i]!;
      const requestKey = rule.requestKey.renderIfResolved(ctx);
      if (requestKey === undefined) continue; // APISIX: a rule whose key is absent does not apply
      const p = look(state, ctx, `rule${i}`, rule, requestKey);
      if (p !== undefined) pending.push(p);
    }
  } else {
    for (const inst of ai.plan.instances) {
      const budget = budgetOf(state, inst.name);
      const p = budget === undefined ? undefined : look(state, ctx, inst.name, budget);
      if (p !== undefined) pending.push(p);
    }
  }
  if (!pending.some((p) => p.result instanceof Promise)) return decide(state, ctx, ai, pending as Checked[]);
  return Promise.all(pending.map((p) => p.result)).then(
    (results) =>
      decide(
        state,
        ctx,
        ai,
        pending.map((p, i) => ({ ...p, result: results[i]! })),
      ),
    () => (state.allowDegradation ? undefined : COUNTER_FAILED),
  );
}

function decide(state: State, ctx: PluginContext, ai: AiRequest, checks: Checked[]): Reply | undefined {
  const seen = seenOf(ctx, state);
  if (state.rules !== undefined) {
    for (const checked of checks) {
      seen.set(checked.slot, checked);
      if (!checked.result.allowed) return rejection(state, checked);
    }
    return undefined;
  }
  let exhausted = 0;
  let first: Checked | undefined;
  for (const checked of checks) {
    seen.set(checked.slot, checked);
    if (checked.result.allowed) continue;
    exhausted++;
    first ??= checked;
    (ai.skip ??= new Map()).set(checked.slot, rejection(state, checked));
  }
  // Every instance is over budget: nothing a fallback could do.
  if (first !== undefined && exhausted === ai.plan.instances.length) return rejection(state, first);
  return undefined;
}

function header_filter(state: State, ctx: PluginContext): void {
  if (!state.showHeaders || ctx.aiRequest === undefined) return;
  const seen = seenOf(ctx, state);
  if (state.rules !== undefined) {
    for (const checked of seen.values())
      for (const [k, v] of Object.entries(headersOf(checked))) ctx.setResponseHeader(k, v);
    return;
  }
  const instance = ctx.var("ai_instance");
  const checked = instance === undefined ? undefined : seen.get(instance);
  if (checked !== undefined) for (const [k, v] of Object.entries(headersOf(checked))) ctx.setResponseHeader(k, v);
}

function log(state: State, ctx: PluginContext): void {
  const result = ctx.aiRequest?.result;
  if (result === undefined) return;
  const cost = state.cost(result.usage);
  if (cost <= 0) return;
  const seen = seenOf(ctx, state);
  if (state.rules !== undefined) {
    for (const checked of seen.values()) debit(state, checked, cost);
    return;
  }
  const checked = seen.get(result.instance);
  if (checked !== undefined) debit(state, checked, cost);
}

/** After the answer nothing can be refused any more: a debit Redis could not take is lost, not fatal. */
function debit(state: State, checked: Checked, cost: number): void {
  const done = state.counter.commit(checked.key, cost, checked.limit, checked.window);
  if (done instanceof Promise) done.catch(() => {});
}

function destroy(state: State): void {
  if (state.ownsCounter) state.counter.close();
}

export const aiRateLimiting: Plugin<AiRateLimitingConfig, State> = {
  name,
  priority,
  version: "0.1",
  schema,
  encryptFields: REDIS_SECRET_FIELDS,
  check,
  compile,
  destroy,
  access,
  header_filter,
  log,
};
