import { type Static, Type } from "@sinclair/typebox";
import {
  DescSchema,
  HostSchema,
  IdSchema,
  LabelsSchema,
  PluginsSchema,
  ResourceMetaFields,
  TimestampSchema,
  withRequired,
} from "./common.js";
import { UpstreamSchema } from "./upstream.js";

/** schema_def.service. */
export const ServiceSchema = Type.Object(
  {
    ...ResourceMetaFields,

    plugins: Type.Optional(PluginsSchema),
    upstream: Type.Optional(UpstreamSchema),
    upstream_id: Type.Optional(IdSchema),
    script: Type.Optional(Type.String({ minLength: 10, maxLength: 102400 })),
    enable_websocket: Type.Optional(Type.Boolean({ description: "enable websocket for request" })),
    hosts: Type.Optional(Type.Array(HostSchema, { minItems: 1, uniqueItems: true })),
  },
  { additionalProperties: false },
);
export type ServiceConfig = Static<typeof ServiceSchema>;

/** schema_def.consumer: identified by `username`, which is also its key in the store. */
export const ConsumerSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    username: Type.String({ minLength: 1, maxLength: 256, pattern: "^[a-zA-Z0-9_\\-]+$" }),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),

    group_id: Type.Optional(IdSchema),
    plugins: Type.Optional(PluginsSchema),
  },
  { additionalProperties: false },
);
export type ConsumerConfig = Static<typeof ConsumerSchema>;

/** schema_def.consumer_group. */
export const ConsumerGroupSchema = withRequired(
  Type.Object(
    {
      ...ResourceMetaFields,

      plugins: PluginsSchema,
    },
    { additionalProperties: false },
  ),
  ["id", "plugins"],
);
export type ConsumerGroupConfig = Static<typeof ConsumerGroupSchema>;

/** schema_def.global_rule. */
export const GlobalRuleSchema = withRequired(
  Type.Object(
    {
      id: Type.Optional(IdSchema),
      create_time: Type.Optional(TimestampSchema),
      update_time: Type.Optional(TimestampSchema),

      plugins: PluginsSchema,
    },
    { additionalProperties: false },
  ),
  ["id", "plugins"],
);
export type GlobalRuleConfig = Static<typeof GlobalRuleSchema>;

/** schema_def.plugin_config (its `name` has no length limits in APISIX). */
export const PluginConfigSchema = withRequired(
  Type.Object(
    {
      id: Type.Optional(IdSchema),
      name: Type.Optional(Type.String()),
      desc: Type.Optional(DescSchema),
      labels: Type.Optional(LabelsSchema),
      create_time: Type.Optional(TimestampSchema),
      update_time: Type.Optional(TimestampSchema),

      plugins: PluginsSchema,
    },
    { additionalProperties: false },
  ),
  ["id", "plugins"],
);
export type PluginConfigConfig = Static<typeof PluginConfigSchema>;

/**
 * schema_def.plugin_injected_schema._meta: accepted inside every plugin's config. APISIX injects it into each
 * plugin's schema; Weir checks it on its own so plugin schemas with `additionalProperties: false` need no
 * changes, and shows it injected in `GET /apisix/admin/plugins/<name>`.
 */
export const PluginMetaSchema = Type.Object(
  {
    disable: Type.Optional(Type.Boolean()),
    error_response: Type.Optional(
      Type.Unsafe<string | Record<string, unknown>>({ oneOf: [{ type: "string" }, { type: "object" }] }),
    ),
    priority: Type.Optional(Type.Integer({ description: "priority of plugins by customized order" })),
    filter: Type.Optional(
      Type.Array(Type.Unknown(), {
        description: "filter determines whether the plugin needs to be executed at runtime",
      }),
    ),
    pre_function: Type.Optional(
      Type.String({
        description:
          "function to be executed in each phase before execution of plugins. The pre_function will have access to two arguments: `conf` and `ctx`.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type PluginMeta = Static<typeof PluginMetaSchema>;

export const PLUGIN_INJECTED_COMMENT = "this is a mark for our injected plugin schema";
export const PluginInjectedSchema = { $comment: PLUGIN_INJECTED_COMMENT, _meta: PluginMetaSchema };
