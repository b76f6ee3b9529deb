import type { TSchema } from "@sinclair/typebox";
import {
  ConsumerGroupSchema,
  ConsumerSchema,
  GlobalRuleSchema,
  PluginConfigSchema,
  ServiceSchema,
} from "../config/schemas/others.js";
import { RouteSchema } from "../config/schemas/route.js";
import { UpstreamSchema } from "../config/schemas/upstream.js";
import { validatePlugins, validateSchema } from "../config/validate.js";
import type { Plugin } from "../plugins/types.js";
import type { ResourceType } from "../store/keys.js";

/** What the semantic checks may look at besides the body. */
export interface CheckContext {
  registry: ReadonlyMap<string, Plugin>;
  validateVars: ((expr: unknown) => string | undefined) | undefined;
  validateIp: ((entry: string) => string | undefined) | undefined;
  exists(type: ResourceType, id: string): Promise<boolean>;
}

/** A reference from one resource to another, checked on write and on delete. */
export interface Reference {
  field: string;
  target: ResourceType;
  /** APISIX's wording for the missing target, e.g. "upstream" → "failed to fetch upstream info by upstream id". */
  targetName: string;
}

export interface ResourceDef {
  type: ResourceType;
  /** Singular, as APISIX names it in messages ("route", "plugin config"). */
  name: string;
  schema: TSchema;
  idField: "id" | "username";
  references: Reference[];
  /** Checks the schema cannot express. Returns a message naming the field. */
  check(value: Record<string, unknown>, ctx: CheckContext): Promise<string | undefined>;
}

const UPSTREAM_REF: Reference = { field: "upstream_id", target: "upstreams", targetName: "upstream" };

async function checkReferences(
  value: Record<string, unknown>,
  refs: Reference[],
  ctx: CheckContext,
): Promise<string | undefined> {
  for (const ref of refs) {
    const id = value[ref.field];
    if (id === undefined) continue;
    if (!(await ctx.exists(ref.target, String(id)))) {
      return `failed to fetch ${ref.targetName} info by ${ref.targetName} id [${String(id)}], response code: 404`;
    }
  }
  return undefined;
}

/** Upstream rules beyond the schema, as APISIX's check_upstream_conf. */
export function checkUpstream(up: Record<string, unknown>, where: string): string | undefined {
  const p = (field: string) => (where === "" ? field : `${where}.${field}`);
  // Deliberately unsupported for now (docs/apisix-compatibility.md): refuse rather than accept and ignore.
  if (up.service_name !== undefined || up.discovery_type !== undefined) {
    return `property "${p("service_name")}": service discovery is not supported by Weir yet; list the nodes instead`;
  }
  if (up.scheme === "grpc" || up.scheme === "grpcs") {
    return `property "${p("scheme")}": gRPC upstreams are not supported by Weir yet`;
  }
  const tls = up.tls as { client_cert?: string; client_key?: string; client_cert_id?: string } | undefined;
  if (tls?.client_cert_id !== undefined) {
    return `property "${p("tls.client_cert_id")}": SSL objects are not supported yet; use tls.client_cert and tls.client_key`;
  }
  if ((tls?.client_cert === undefined) !== (tls?.client_key === undefined)) {
    return `property "${p("tls")}": client_cert and client_key go together`;
  }
  if (up.nodes === undefined) return `property "${p("nodes")}" is required`;
  if (up.pass_host === "rewrite" && (up.upstream_host === undefined || up.upstream_host === "")) {
    return `property "${p("upstream_host")}" is required when "${p("pass_host")}" is "rewrite"`;
  }
  const type = up.type ?? "roundrobin";
  if (!["roundrobin", "chash", "ewma", "least_conn"].includes(String(type))) {
    return `property "${p("type")}" validation failed: unknown balancer type "${String(type)}"`;
  }
  if (type === "chash" && up.hash_on !== "consumer" && (up.key === undefined || up.key === "")) {
    return `property "${p("key")}" is required when "${p("type")}" is "chash"`;
  }
  if (up.pass_host === "node" && Array.isArray(up.nodes) && up.nodes.length > 1) {
    // APISIX allows this; the Host then follows the picked node. Nothing to reject.
  }
  return undefined;
}

function checkRouteLike(value: Record<string, unknown>, ctx: CheckContext): string | undefined {
  if (value.filter_func !== undefined) return 'property "filter_func" is not supported: Weir does not run Lua';
  if (value.script !== undefined) return 'property "script" is not supported: Weir does not run Lua';
  if (value.host !== undefined && value.hosts !== undefined) return 'only one of "host" or "hosts" is allowed';
  if (value.remote_addr !== undefined && value.remote_addrs !== undefined) {
    return 'only one of "remote_addr" or "remote_addrs" is allowed';
  }
  if (value.upstream !== undefined && value.upstream_id !== undefined) {
    return 'only one of "upstream" or "upstream_id" is allowed';
  }
  if (value.vars !== undefined && ctx.validateVars !== undefined) {
    const err = ctx.validateVars(value.vars);
    if (err !== undefined) return `property "vars" validation failed: ${err}`;
  }
  const addrs = value.remote_addrs ?? (value.remote_addr === undefined ? undefined : [value.remote_addr]);
  if (Array.isArray(addrs) && ctx.validateIp !== undefined) {
    for (const a of addrs) {
      const err = ctx.validateIp(String(a));
      if (err !== undefined) return `property "remote_addrs" validation failed: ${err}`;
    }
  }
  if (value.upstream !== undefined) {
    const err = checkUpstream(value.upstream as Record<string, unknown>, "upstream");
    if (err !== undefined) return err;
  }
  return validatePlugins(value.plugins, ctx.registry);
}

export const RESOURCES: ReadonlyMap<string, ResourceDef> = new Map<string, ResourceDef>(
  (
    [
      {
        type: "routes",
        name: "route",
        schema: RouteSchema,
        idField: "id",
        references: [
          UPSTREAM_REF,
          { field: "service_id", target: "services", targetName: "service" },
          { field: "plugin_config_id", target: "plugin_configs", targetName: "plugin config" },
        ],
        async check(value, ctx) {
          if (value.uri === undefined && value.uris === undefined) return 'property "uri" is required (or "uris")';
          if (value.uri !== undefined && value.uris !== undefined) return 'only one of "uri" or "uris" is allowed';
          return checkRouteLike(value, ctx) ?? (await checkReferences(value, this.references, ctx));
        },
      },
      {
        type: "services",
        name: "service",
        schema: ServiceSchema,
        idField: "id",
        references: [UPSTREAM_REF],
        async check(value, ctx) {
          return checkRouteLike(value, ctx) ?? (await checkReferences(value, this.references, ctx));
        },
      },
      {
        type: "upstreams",
        name: "upstream",
        schema: UpstreamSchema,
        idField: "id",
        references: [],
        async check(value) {
          return checkUpstream(value, "");
        },
      },
      {
        type: "consumers",
        name: "consumer",
        schema: ConsumerSchema,
        idField: "username",
        references: [{ field: "group_id", target: "consumer_groups", targetName: "consumer group" }],
        async check(value, ctx) {
          return (
            validatePlugins(value.plugins, ctx.registry, "consumer") ??
            (await checkReferences(value, this.references, ctx))
          );
        },
      },
      {
        type: "consumer_groups",
        name: "consumer group",
        schema: ConsumerGroupSchema,
        idField: "id",
        references: [],
        async check(value, ctx) {
          return validatePlugins(value.plugins, ctx.registry);
        },
      },
      {
        type: "global_rules",
        name: "global rule",
        schema: GlobalRuleSchema,
        idField: "id",
        references: [],
        async check(value, ctx) {
          return validatePlugins(value.plugins, ctx.registry);
        },
      },
      {
        type: "plugin_configs",
        name: "plugin config",
        schema: PluginConfigSchema,
        idField: "id",
        references: [],
        async check(value, ctx) {
          return validatePlugins(value.plugins, ctx.registry);
        },
      },
    ] satisfies ResourceDef[]
  ).map((d) => [d.type, d]),
);

/** Resources that others point at, and who points at them (APISIX refuses such deletes without force). */
export const REFERENCED_BY: ReadonlyMap<ResourceType, { from: ResourceType; field: string; fromName: string }[]> =
  new Map([
    [
      "upstreams",
      [
        { from: "routes", field: "upstream_id", fromName: "route" },
        { from: "services", field: "upstream_id", fromName: "service" },
      ],
    ],
    ["services", [{ from: "routes", field: "service_id", fromName: "route" }]],
    ["plugin_configs", [{ from: "routes", field: "plugin_config_id", fromName: "route" }]],
    ["consumer_groups", [{ from: "consumers", field: "group_id", fromName: "consumer" }]],
  ]);

export function validateResource(def: ResourceDef, value: unknown): string | undefined {
  const err = validateSchema(def.schema, value);
  return err === undefined ? undefined : `invalid configuration: ${err}`;
}
