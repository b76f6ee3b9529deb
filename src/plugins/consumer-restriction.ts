import { type Static, Type } from "@sinclair/typebox";
import { HttpMethodSchema, StringEnum } from "../config/schemas/common.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * consumer-restriction: allows or refuses a request by who it is (consumer name or consumer group, as an
 * auth plugin identified it) or by where it goes (route or service id), and can limit each consumer to
 * some HTTP methods. It runs in access, after the auth plugins of the rewrite phase.
 */
export const name = "consumer-restriction";
export const priority = 2400;

const TYPES = ["consumer_name", "service_id", "route_id", "consumer_group_id"] as const;
type RestrictionType = (typeof TYPES)[number];

export const schema = Type.Object(
  {
    type: Type.Optional(StringEnum(TYPES, { default: "consumer_name" })),
    blacklist: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    whitelist: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    allowed_by_methods: Type.Optional(
      Type.Array(
        Type.Object({
          user: Type.Optional(Type.String()),
          methods: Type.Optional(Type.Array(HttpMethodSchema, { minItems: 1 })),
        }),
      ),
    ),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, default: 403 })),
    rejected_msg: Type.Optional(Type.String()),
  },
  { anyOf: [{ required: ["blacklist"] }, { required: ["whitelist"] }, { required: ["allowed_by_methods"] }] },
);
export type ConsumerRestrictionConfig = Static<typeof schema>;

interface State {
  valueOf: (ctx: PluginContext) => string | undefined;
  blacklist: ReadonlySet<string> | undefined;
  whitelist: ReadonlySet<string> | undefined;
  /** user → the methods it may use; users not listed may use any. */
  methodsByUser: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  rejection: Reply;
  /** When the request carries no value of `type` (no consumer identified, no service). */
  unidentified: Reply;
}

const VALUE_OF: Record<RestrictionType, (ctx: PluginContext) => string | undefined> = {
  consumer_name: (ctx) => ctx.consumerName,
  consumer_group_id: (ctx) => ctx.var("consumer_group_id"),
  route_id: (ctx) => ctx.routeId,
  service_id: (ctx) => ctx.serviceId,
};

function compile(conf: ConsumerRestrictionConfig): State {
  const type = conf.type ?? "consumer_name";
  return {
    valueOf: VALUE_OF[type],
    blacklist: conf.blacklist === undefined ? undefined : new Set(conf.blacklist),
    whitelist: conf.whitelist === undefined ? undefined : new Set(conf.whitelist),
    methodsByUser: compileMethods(conf.allowed_by_methods),
    rejection: {
      status: conf.rejected_code ?? 403,
      body: { message: conf.rejected_msg ?? `The ${type} is forbidden.` },
    },
    unidentified: {
      status: 401,
      body: { message: `The request is rejected, please check the ${type} for this request` },
    },
  };
}

/** APISIX's order: blacklist first; then the whitelist; allowed_by_methods only for values not whitelisted. */
function access(state: State, ctx: PluginContext): Reply | undefined {
  const value = state.valueOf(ctx);
  if (value === undefined) return state.unidentified;
  if (state.blacklist?.has(value)) return state.rejection;
  const whitelisted = state.whitelist?.has(value) === true;
  if (state.whitelist !== undefined && !whitelisted) return state.rejection;
  if (state.methodsByUser !== undefined && !whitelisted) {
    const methods = state.methodsByUser.get(value);
    // The method as proxy-rewrite may have changed it (APISIX reads ngx.req.get_method()).
    if (methods !== undefined && !methods.has(ctx.var("request_method") ?? ctx.method)) return state.rejection;
  }
  return undefined;
}

/** The first entry for a user decides, as APISIX's loop stops at the first matching `user`. */
function compileMethods(
  entries: ConsumerRestrictionConfig["allowed_by_methods"],
): ReadonlyMap<string, ReadonlySet<string>> | undefined {
  if (entries === undefined || entries.length === 0) return undefined;
  const out = new Map<string, ReadonlySet<string>>();
  for (const entry of entries) {
    if (entry.user === undefined || out.has(entry.user)) continue;
    out.set(entry.user, new Set(entry.methods ?? []));
  }
  return out;
}

export const consumerRestriction: Plugin<ConsumerRestrictionConfig, State> = {
  name,
  priority,
  schema,
  compile,
  access,
};
