import { type Static, Type } from "@sinclair/typebox";
import { UpstreamSchema } from "../config/schemas/upstream.js";
import { validateSchema } from "../config/validate.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, UpstreamHandle } from "../plugin-api/plugin.js";
import { compileVars, type VarsPredicate } from "../router/vars.js";

/**
 * traffic-split: canary and blue-green releases. Rules are tried in order; the first whose `match`
 * accepts the request (any of its `vars` expressions; no match = every request) splits it across
 * `weighted_upstreams` by smooth weighted round robin. An entry without an upstream stands for the route's
 * own upstream, as in APISIX.
 */
export const name = "traffic-split";
export const priority = 966;

export const schema = Type.Object({
  rules: Type.Optional(
    Type.Array(
      Type.Object({
        match: Type.Optional(Type.Array(Type.Object({ vars: Type.Optional(Type.Array(Type.Unknown())) }))),
        weighted_upstreams: Type.Array(
          Type.Object({
            upstream_id: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1 })])),
            upstream: Type.Optional(Type.Object({}, { additionalProperties: true })),
            weight: Type.Optional(Type.Integer({ minimum: 0, default: 1 })),
          }),
          { minItems: 1 },
        ),
      }),
    ),
  ),
});
export type TrafficSplitConfig = Static<typeof schema>;

interface Slot {
  target: UpstreamHandle | undefined;
  weight: number;
  current: number;
}

interface Rule {
  match: VarsPredicate[] | undefined;
  slots: Slot[];
}

function check(conf: TrafficSplitConfig): string | undefined {
  for (const [r, rule] of (conf.rules ?? []).entries()) {
    for (const [m, match] of (rule.match ?? []).entries()) {
      try {
        compileVars(match.vars ?? []);
      } catch (err) {
        return `property "rules[${r}].match[${m}].vars" validation failed: ${(err as Error).message}`;
      }
    }
    for (const [u, wu] of rule.weighted_upstreams.entries()) {
      if (wu.upstream !== undefined && wu.upstream_id !== undefined) {
        return `rules[${r}].weighted_upstreams[${u}]: only one of "upstream" or "upstream_id" is allowed`;
      }
      if (wu.upstream !== undefined) {
        const err = validateSchema(UpstreamSchema, wu.upstream);
        if (err !== undefined) return `rules[${r}].weighted_upstreams[${u}].upstream: ${err}`;
      }
    }
  }
  return undefined;
}

function compile(conf: TrafficSplitConfig, scope: PluginScope): Rule[] {
  return (conf.rules ?? []).map((rule) => ({
    match: rule.match?.map((m) => compileVars(m.vars ?? [])),
    slots: rule.weighted_upstreams
      .filter((wu) => (wu.weight ?? 1) > 0)
      .map((wu) => ({
        target:
          wu.upstream_id !== undefined
            ? scope.upstreams?.byId(String(wu.upstream_id))
            : wu.upstream !== undefined
              ? scope.upstreams?.inline(wu.upstream as Record<string, unknown>)
              : undefined,
        weight: wu.weight ?? 1,
        current: 0,
      })),
  }));
}

function pick(slots: Slot[]): Slot | undefined {
  let best: Slot | undefined;
  let total = 0;
  for (const s of slots) {
    s.current += s.weight;
    total += s.weight;
    if (best === undefined || s.current > best.current) best = s;
  }
  if (best !== undefined) best.current -= total;
  return best;
}

function access(rules: Rule[], ctx: PluginContext): undefined {
  for (const rule of rules) {
    if (rule.match !== undefined && !rule.match.some((m) => m(ctx))) continue;
    const slot = pick(rule.slots);
    if (slot?.target !== undefined) ctx.setUpstream(slot.target);
    return undefined;
  }
  return undefined;
}

export const trafficSplit: Plugin<TrafficSplitConfig, Rule[]> = { name, priority, schema, check, compile, access };
