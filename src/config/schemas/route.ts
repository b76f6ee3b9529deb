import { type Static, Type } from "@sinclair/typebox";
import {
  HostSchema,
  HttpMethodSchema,
  IdSchema,
  PluginsSchema,
  RemoteAddrSchema,
  ResourceMetaFields,
  TimeoutSchema,
} from "./common.js";
import { UpstreamSchema } from "./upstream.js";

export { HttpMethodSchema } from "./common.js";

const requireBoth = (a: string, b: string) => ({ required: [a, b] });
const atMostOne = (a: string, b: string) => ({
  oneOf: [{ not: { anyOf: [{ required: [a] }, { required: [b] }] } }, { required: [a] }, { required: [b] }],
});

/** schema_def.route, including its cross-field rules (allOf / anyOf / not), as APISIX publishes it. */
export const RouteSchema = Type.Object(
  {
    ...ResourceMetaFields,

    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    // APISIX only requires strings here; Weir also bounds each one like `uri`, since an empty path can
    // never match and is always a mistake.
    uris: Type.Optional(
      Type.Array(Type.String({ description: "HTTP uri", minLength: 1, maxLength: 4096 }), {
        minItems: 1,
        uniqueItems: true,
      }),
    ),
    priority: Type.Optional(Type.Integer({ default: 0 })),
    methods: Type.Optional(Type.Array(HttpMethodSchema, { uniqueItems: true })),
    host: Type.Optional(HostSchema),
    hosts: Type.Optional(Type.Array(HostSchema, { minItems: 1, uniqueItems: true })),
    remote_addr: Type.Optional(RemoteAddrSchema),
    remote_addrs: Type.Optional(Type.Array(RemoteAddrSchema, { minItems: 1, uniqueItems: true })),
    timeout: Type.Optional(TimeoutSchema),
    /** lua-resty-expr expressions: [[var, op, value], ...] with optional "AND"/"OR"/"!" nesting. */
    vars: Type.Optional(Type.Array(Type.Unknown())),
    filter_func: Type.Optional(Type.String({ minLength: 10, pattern: "^function" })),
    script: Type.Optional(Type.String({ minLength: 10, maxLength: 102400 })),
    script_id: Type.Optional(IdSchema),
    plugins: Type.Optional(PluginsSchema),
    plugin_config_id: Type.Optional(IdSchema),
    upstream: Type.Optional(UpstreamSchema),
    service_id: Type.Optional(IdSchema),
    upstream_id: Type.Optional(IdSchema),
    enable_websocket: Type.Optional(Type.Boolean({ description: "enable websocket for request" })),
    status: Type.Optional(
      Type.Unsafe<0 | 1>({
        description: "route status, 1 to enable, 0 to disable",
        type: "integer",
        enum: [1, 0],
        default: 1,
      }),
    ),
  },
  {
    additionalProperties: false,
    allOf: [
      { oneOf: [{ required: ["uri"] }, { required: ["uris"] }] },
      atMostOne("host", "hosts"),
      atMostOne("remote_addr", "remote_addrs"),
    ],
    anyOf: [
      requireBoth("plugins", "uri"),
      requireBoth("upstream", "uri"),
      requireBoth("upstream_id", "uri"),
      requireBoth("service_id", "uri"),
      requireBoth("plugins", "uris"),
      requireBoth("upstream", "uris"),
      requireBoth("upstream_id", "uris"),
      requireBoth("service_id", "uris"),
      requireBoth("script", "uri"),
      requireBoth("script", "uris"),
    ],
    not: { anyOf: [requireBoth("script", "plugins"), requireBoth("script", "plugin_config_id")] },
  },
);
export type RouteConfig = Static<typeof RouteSchema>;
