import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * api-breaker: a circuit breaker on upstream answers, as APISIX's. After `unhealthy.failures` unhealthy
 * statuses the route answers `break_response_code` itself for 2, 4, 8 … seconds (capped by
 * max_breaker_sec), then lets a request through (half-open); `healthy.successes` healthy statuses close
 * it again. State is per host + uri, per gateway instance.
 */
export const name = "api-breaker";
export const priority = 1005;

const Statuses = (defaults: number[]) =>
  Type.Array(Type.Integer({ minimum: 200, maximum: 599 }), { minItems: 1, uniqueItems: true, default: defaults });

export const schema = Type.Object({
  break_response_code: Type.Integer({ minimum: 200, maximum: 599 }),
  break_response_body: Type.Optional(Type.String()),
  break_response_headers: Type.Optional(
    Type.Array(Type.Object({ key: Type.String({ minLength: 1 }), value: Type.String({ minLength: 1 }) }), {
      minItems: 1,
    }),
  ),
  max_breaker_sec: Type.Optional(Type.Integer({ minimum: 3, default: 300 })),
  unhealthy: Type.Optional(
    Type.Object(
      {
        http_statuses: Type.Optional(Statuses([500])),
        failures: Type.Optional(Type.Integer({ minimum: 1, default: 3 })),
      },
      { default: {} },
    ),
  ),
  healthy: Type.Optional(
    Type.Object(
      {
        http_statuses: Type.Optional(Statuses([200])),
        successes: Type.Optional(Type.Integer({ minimum: 1, default: 3 })),
      },
      { default: {} },
    ),
  ),
});
export type ApiBreakerConfig = Static<typeof schema>;

interface Circuit {
  unhealthy: number;
  healthy: number;
  /** Seconds (wall clock) when the breaker last tripped. */
  trippedAt: number | undefined;
}

interface State {
  reply: Reply;
  maxBreakerSec: number;
  unhealthyStatuses: ReadonlySet<number>;
  failures: number;
  healthyStatuses: ReadonlySet<number>;
  successes: number;
  circuits: Map<string, Circuit>;
  now: () => number;
}

const MAX_CIRCUITS = 10_000;

export function compileWith(conf: ApiBreakerConfig, now: () => number): State {
  const headers: Record<string, string> = {};
  for (const h of conf.break_response_headers ?? []) headers[h.key] = h.value;
  return {
    reply: { status: conf.break_response_code, body: conf.break_response_body, headers },
    maxBreakerSec: conf.max_breaker_sec ?? 300,
    unhealthyStatuses: new Set(conf.unhealthy?.http_statuses ?? [500]),
    failures: conf.unhealthy?.failures ?? 3,
    healthyStatuses: new Set(conf.healthy?.http_statuses ?? [200]),
    successes: conf.healthy?.successes ?? 3,
    circuits: new Map(),
    now,
  };
}

function compile(conf: ApiBreakerConfig): State {
  return compileWith(conf, () => Date.now() / 1000);
}

const keyOf = (ctx: PluginContext) => `${ctx.var("host") ?? ""}${ctx.path}`;

function access(state: State, ctx: PluginContext): Reply | undefined {
  const c = state.circuits.get(keyOf(ctx));
  if (c === undefined || c.unhealthy < state.failures || c.trippedAt === undefined) return undefined;
  // APISIX's back-off: 2^trips seconds (2, 4, 8 …), trips = floor(unhealthy / failures).
  const open = Math.min(2 ** Math.max(1, Math.floor(c.unhealthy / state.failures)), state.maxBreakerSec);
  return c.trippedAt + open >= state.now() ? state.reply : undefined;
}

function log(state: State, ctx: PluginContext): void {
  const statuses = ctx.var("upstream_status");
  if (statuses === undefined) return; // answered by the gateway itself (e.g. by this breaker)
  const status = Number(statuses.slice(statuses.lastIndexOf(",") + 1));
  const key = keyOf(ctx);
  let c = state.circuits.get(key);
  if (state.unhealthyStatuses.has(status)) {
    if (c === undefined) {
      if (state.circuits.size >= MAX_CIRCUITS) return;
      state.circuits.set(key, (c = { unhealthy: 0, healthy: 0, trippedAt: undefined }));
    }
    c.unhealthy++;
    c.healthy = 0;
    if (c.unhealthy % state.failures === 0) c.trippedAt = state.now();
    return;
  }
  if (c === undefined || !state.healthyStatuses.has(status)) return;
  if (++c.healthy >= state.successes) state.circuits.delete(key);
}

export const apiBreaker: Plugin<ApiBreakerConfig, State> = { name, priority, schema, compile, access, log };
