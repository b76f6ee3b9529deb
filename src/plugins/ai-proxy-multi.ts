import { type Static, Type } from "@sinclair/typebox";
import type { CooldownPolicy } from "../ai/cooldown.js";
import {
  type AiPlan,
  buildPlan,
  checkInstance,
  compileInstance,
  type FallbackPolicy,
  instanceBalancer,
} from "../ai/plan.js";
import { instanceSchema, transportFields } from "../ai/schema.js";
import type { Plugin, PluginScope } from "../plugin-api/plugin.js";
import { prepareAiRequest } from "./ai/request.js";

/**
 * ai-proxy-multi: a pool of model instances (self-hosted and cloud) behind one route, balanced by
 * weight and priority (roundrobin, chash, least_conn or ewma), each with its own credentials and optional active health
 * checks, and a fallback to the next instance on 429s, 5xx, listed statuses or exhausted token budgets,
 * before the first byte went to the client. The `X-AI-Instance` response header names the one that served.
 */
export const name = "ai-proxy-multi";
export const priority = 1041;

const FALLBACKS = ["rate_limiting", "http_429", "http_5xx"] as const;

export const schema = Type.Object({
  balancer: Type.Optional(
    Type.Object(
      {
        // APISIX's chash and roundrobin (semantic is refused by check()); least_conn and ewma are Weir's.
        algorithm: Type.Optional(
          Type.Unsafe<"roundrobin" | "chash" | "least_conn" | "ewma">({
            type: "string",
            enum: ["chash", "roundrobin", "semantic", "least_conn", "ewma"],
          }),
        ),
        hash_on: Type.Optional(
          Type.Unsafe<string>({
            type: "string",
            enum: ["vars", "header", "cookie", "consumer", "vars_combinations"],
            default: "vars",
          }),
        ),
        key: Type.Optional(Type.String()),
        // Weir extension, chash only: consistent hashing with bounded loads (upstream/chash.ts). No instance
        // holds more than bounded_load × its weight's share of the calls in flight, so affinity (a user, a
        // prompt prefix) yields when its instance is saturated. 1.25 is the usual choice.
        bounded_load: Type.Optional(Type.Number({ minimum: 1, maximum: 10 })),
      },
      { default: { algorithm: "roundrobin" } },
    ),
  ),
  instances: Type.Array(instanceSchema, { minItems: 1 }),
  fallback_strategy: Type.Optional(
    Type.Unsafe<string | string[]>({
      anyOf: [
        { type: "string", enum: ["instance_health_and_rate_limiting", "http_429", "http_5xx"] },
        { type: "array", items: { type: "string", enum: FALLBACKS } },
      ],
    }),
  ),
  fallback_http_statuses: Type.Optional(
    Type.Array(Type.Integer({ minimum: 400, maximum: 599 }), { minItems: 1, uniqueItems: true }),
  ),
  max_retries: Type.Optional(Type.Integer({ minimum: 0 })),
  retry_on_failure_within_ms: Type.Optional(Type.Integer({ minimum: 1 })),
  // Weir's: after `failures` failed attempts in a row an instance sits out `duration` seconds. Off unless
  // set; a Retry-After on a 429/503 is honoured either way (docs/plugins/ai-proxy-multi.md).
  cooldown: Type.Optional(
    Type.Object(
      {
        failures: Type.Optional(Type.Integer({ minimum: 1, default: 3 })),
        duration: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 30 })),
      },
      { additionalProperties: false },
    ),
  ),
  ...transportFields,
});
export type AiProxyMultiConfig = Static<typeof schema>;

function check(conf: AiProxyMultiConfig): string | undefined {
  if (conf.balancer?.bounded_load !== undefined && conf.balancer.algorithm !== "chash") {
    return 'property "balancer.bounded_load" validation failed: only applies to algorithm "chash"';
  }
  if (conf.balancer?.algorithm === ("semantic" as string)) {
    return 'property "balancer.algorithm" validation failed: the semantic balancer is not supported by Weir';
  }
  const seen = new Set<string>();
  for (let i = 0; i < conf.instances.length; i++) {
    const inst = conf.instances[i]!;
    const path = `instances[${i}].`;
    if (seen.has(inst.name)) return `${path}name: duplicate instance name ${inst.name}`;
    seen.add(inst.name);
    const err = checkInstance(inst, path);
    if (err !== undefined) return err;
  }
  return undefined;
}

function fallbackPolicy(conf: AiProxyMultiConfig): FallbackPolicy | undefined {
  const strategy = conf.fallback_strategy;
  if (strategy === undefined && conf.fallback_http_statuses === undefined) return undefined;
  const items = strategy === undefined ? [] : Array.isArray(strategy) ? strategy : [strategy];
  return {
    http429: items.includes("http_429"),
    http5xx: items.includes("http_5xx"),
    rateLimiting: items.includes("rate_limiting") || items.includes("instance_health_and_rate_limiting"),
    statuses: new Set(conf.fallback_http_statuses ?? []),
    maxRetries: conf.max_retries ?? Number.POSITIVE_INFINITY,
    withinMs: conf.retry_on_failure_within_ms ?? Number.POSITIVE_INFINITY,
  };
}

function cooldownPolicy(conf: AiProxyMultiConfig): CooldownPolicy | undefined {
  if (conf.cooldown === undefined) return undefined;
  return { failures: conf.cooldown.failures ?? 3, durationMs: (conf.cooldown.duration ?? 30) * 1000 };
}

function compile(conf: AiProxyMultiConfig, scope: PluginScope): AiPlan {
  const instances = conf.instances.map((inst) => compileInstance(inst, conf, scope.upstreams!, scope.keep));
  return buildPlan(
    instances,
    conf,
    instanceBalancer(instances, conf.balancer),
    fallbackPolicy(conf),
    conf.balancer?.algorithm === "chash" ? conf.balancer.key : undefined,
    cooldownPolicy(conf),
  );
}

export const aiProxyMulti: Plugin<AiProxyMultiConfig, AiPlan> = {
  name,
  priority,
  version: "0.5",
  schema,
  encryptFields: ["instances.*.auth.header.*", "instances.*.auth.query.*"],
  check,
  compile,
  access: prepareAiRequest,
};
