import { type Static, Type } from "@sinclair/typebox";
import {
  DescSchema,
  IdSchema,
  LabelsSchema,
  NameSchema,
  PluginsSchema,
  TimeoutSchema,
  TimestampSchema,
} from "./common.js";
import { UpstreamSchema } from "./upstream.js";

export const HttpMethodSchema = Type.Union(
  ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE"].map((m) => Type.Literal(m)),
);

export const RouteSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    uris: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, uniqueItems: true })),
    host: Type.Optional(Type.String()),
    hosts: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
    remote_addr: Type.Optional(Type.String()),
    remote_addrs: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
    methods: Type.Optional(Type.Array(HttpMethodSchema, { uniqueItems: true })),
    priority: Type.Optional(Type.Integer({ default: 0 })),
    /** lua-resty-expr style expressions: [[var, op, value], ...] with optional "AND"/"OR"/"!" nesting. */
    vars: Type.Optional(Type.Array(Type.Unknown())),
    filter_func: Type.Optional(Type.String()),
    script: Type.Optional(Type.String()),
    plugins: Type.Optional(PluginsSchema),
    upstream: Type.Optional(UpstreamSchema),
    upstream_id: Type.Optional(IdSchema),
    service_id: Type.Optional(IdSchema),
    plugin_config_id: Type.Optional(IdSchema),
    enable_websocket: Type.Optional(Type.Boolean()),
    timeout: Type.Optional(TimeoutSchema),
    status: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)], { default: 1 })),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type RouteConfig = Static<typeof RouteSchema>;
