import { type Static, Type } from "@sinclair/typebox";
import { DescSchema, IdSchema, LabelsSchema, NameSchema, PluginsSchema, TimestampSchema } from "./common.js";
import { UpstreamSchema } from "./upstream.js";

export const ServiceSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    plugins: Type.Optional(PluginsSchema),
    upstream: Type.Optional(UpstreamSchema),
    upstream_id: Type.Optional(IdSchema),
    script: Type.Optional(Type.String()),
    enable_websocket: Type.Optional(Type.Boolean()),
    hosts: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type ServiceConfig = Static<typeof ServiceSchema>;

export const ConsumerSchema = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 100, pattern: "^[a-zA-Z0-9_\\-]+$" }),
    group_id: Type.Optional(IdSchema),
    plugins: Type.Optional(PluginsSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type ConsumerConfig = Static<typeof ConsumerSchema>;

export const ConsumerGroupSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    plugins: PluginsSchema,
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type ConsumerGroupConfig = Static<typeof ConsumerGroupSchema>;

export const GlobalRuleSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    plugins: PluginsSchema,
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type GlobalRuleConfig = Static<typeof GlobalRuleSchema>;

export const PluginConfigSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    plugins: PluginsSchema,
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type PluginConfigConfig = Static<typeof PluginConfigSchema>;
