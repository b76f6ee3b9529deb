import { HostSchema, HttpMethodSchema, IdSchema, IP_DEF } from "./common.js";
import {
  ConsumerGroupSchema,
  ConsumerSchema,
  GlobalRuleSchema,
  PluginConfigSchema,
  PluginInjectedSchema,
  ServiceSchema,
} from "./others.js";
import { RouteSchema } from "./route.js";
import {
  ActiveCheckSchema,
  ChecksSchema,
  PassiveCheckSchema,
  UpstreamHashHeaderSchema,
  UpstreamHashVarsCombinationsSchema,
  UpstreamHashVarsSchema,
  UpstreamSchema,
} from "./upstream.js";

/** The schema of each resource the Admin API stores, by its store/Admin API type name. */
export const RESOURCE_SCHEMAS = {
  routes: RouteSchema,
  services: ServiceSchema,
  upstreams: UpstreamSchema,
  consumers: ConsumerSchema,
  consumer_groups: ConsumerGroupSchema,
  global_rules: GlobalRuleSchema,
  plugin_configs: PluginConfigSchema,
} as const;
export type SchemaResourceType = keyof typeof RESOURCE_SCHEMAS;

export function isSchemaResourceType(type: string): type is SchemaResourceType {
  return Object.hasOwn(RESOURCE_SCHEMAS, type);
}

/** schema_def.plugins: the `/apisix/plugins` list of enabled plugins. */
const PluginListSchema = {
  type: "array",
  items: {
    type: "object",
    properties: { name: { type: "string", minLength: 1 }, stream: { type: "boolean" } },
    required: ["name"],
  },
};

/** `GET /apisix/admin/schema/<name>`: schema_def.lua's entries under their APISIX names. */
export const NAMED_SCHEMAS: ReadonlyMap<string, unknown> = new Map<string, unknown>([
  ["route", RouteSchema],
  ["service", ServiceSchema],
  ["upstream", UpstreamSchema],
  ["consumer", ConsumerSchema],
  ["consumer_group", ConsumerGroupSchema],
  ["global_rule", GlobalRuleSchema],
  ["plugin_config", PluginConfigSchema],
  ["plugins", PluginListSchema],
  ["plugin_injected_schema", PluginInjectedSchema],
  ["id_schema", IdSchema],
  ["host_def", HostSchema],
  ["ip_def", IP_DEF],
  ["method_schema", HttpMethodSchema],
  ["health_checker", ChecksSchema],
  ["health_checker_active", ActiveCheckSchema],
  ["health_checker_passive", PassiveCheckSchema],
  ["upstream_hash_vars_schema", UpstreamHashVarsSchema],
  ["upstream_hash_header_schema", UpstreamHashHeaderSchema],
  ["upstream_hash_vars_combinations_schema", UpstreamHashVarsCombinationsSchema],
]);
