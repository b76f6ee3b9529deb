import { type Static, Type } from "@sinclair/typebox";
import { HostSchema, HTTP_METHODS, IdSchema, ResourceMetaFields, StringEnum, TimeoutSchema } from "./common.js";

/** One element of schema_def's array form of `nodes`. Extra keys are allowed, as in APISIX. */
export const UpstreamNodeSchema = Type.Object({
  host: HostSchema,
  port: Type.Optional(Type.Integer({ description: "port of node", minimum: 1, maximum: 65535 })),
  weight: Type.Integer({ description: "weight of node", minimum: 0 }),
  priority: Type.Optional(Type.Integer({ description: "priority of node", default: 0 })),
  metadata: Type.Optional(Type.Object({}, { description: "metadata of node", additionalProperties: true })),
});
export type UpstreamNodeConfig = Static<typeof UpstreamNodeSchema>;

/**
 * APISIX accepts nodes as an array of objects or as a `{"host:port": weight}` hash (schema_def: anyOf of the
 * two). Written as one schema with `type: [array, object]` because Ajv ignores `default`s inside anyOf, and
 * APISIX fills `priority: 0` into every array node.
 */
export const UpstreamNodesSchema = Type.Unsafe<UpstreamNodeConfig[] | Record<string, number>>({
  type: ["array", "object"],
  items: UpstreamNodeSchema,
  patternProperties: { ".*": { description: "weight of node", type: "integer", minimum: 0 } },
});

const statuses = (defaults: number[]) =>
  Type.Array(Type.Integer({ minimum: 200, maximum: 599 }), { minItems: 1, uniqueItems: true, default: defaults });
const count = (min: number, defaultValue: number) =>
  Type.Integer({ minimum: min, maximum: 254, default: defaultValue });
const CheckType = StringEnum(["http", "https", "tcp"], { default: "http" });

// Weir closes these objects (additionalProperties: false) where APISIX leaves them open: a typo such as
// `intreval` would otherwise silently leave a node without health checks.
const closed = { additionalProperties: false } as const;

/** schema_def.health_checker_active, with APISIX's defaults. */
export const ActiveCheckSchema = Type.Object(
  {
    type: Type.Optional(CheckType),
    timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 1 })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, default: 10 })),
    host: Type.Optional(HostSchema),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    http_method: Type.Optional(StringEnum(HTTP_METHODS, { default: "GET" })),
    http_path: Type.Optional(Type.String({ default: "/" })),
    http_req_body: Type.Optional(Type.String({ default: "" })),
    https_verify_certificate: Type.Optional(Type.Boolean({ default: true })),
    healthy: Type.Optional(
      Type.Object(
        {
          interval: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
          http_statuses: Type.Optional(statuses([200, 302])),
          successes: Type.Optional(count(1, 2)),
        },
        closed,
      ),
    ),
    unhealthy: Type.Optional(
      Type.Object(
        {
          interval: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
          http_statuses: Type.Optional(statuses([429, 404, 500, 501, 502, 503, 504, 505])),
          http_failures: Type.Optional(count(1, 5)),
          tcp_failures: Type.Optional(count(1, 2)),
          timeouts: Type.Optional(count(1, 3)),
        },
        closed,
      ),
    ),
    req_headers: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  },
  closed,
);

/** schema_def.health_checker_passive, with APISIX's defaults. */
export const PassiveCheckSchema = Type.Object(
  {
    type: Type.Optional(CheckType),
    healthy: Type.Optional(
      Type.Object(
        {
          http_statuses: Type.Optional(
            statuses([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]),
          ),
          successes: Type.Optional(count(0, 5)),
        },
        closed,
      ),
    ),
    unhealthy: Type.Optional(
      Type.Object(
        {
          http_statuses: Type.Optional(statuses([429, 500, 503])),
          tcp_failures: Type.Optional(count(0, 2)),
          timeouts: Type.Optional(count(0, 7)),
          http_failures: Type.Optional(count(0, 5)),
        },
        closed,
      ),
    ),
  },
  closed,
);

/**
 * schema_def.health_checker. APISIX requires `active` (passive alone is refused); Weir runs passive checks
 * on their own, so either one is enough.
 */
export const ChecksSchema = Type.Object(
  { active: Type.Optional(ActiveCheckSchema), passive: Type.Optional(PassiveCheckSchema) },
  { ...closed, anyOf: [{ required: ["active"] }, { required: ["passive"] }] },
);

export const BALANCER_TYPES = ["roundrobin", "chash", "ewma", "least_conn"] as const;
export const HASH_ON = ["vars", "header", "cookie", "consumer", "vars_combinations"] as const;

/** The upstream object (schema_def.upstream_schema), standalone or inline in a route/service. */
export const UpstreamSchema = Type.Object(
  {
    ...ResourceMetaFields,

    nodes: Type.Optional(UpstreamNodesSchema),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    retry_timeout: Type.Optional(Type.Number({ minimum: 0 })),
    /**
     * Weir extension: what is retried on the next node. APISIX (nginx) retries connect errors and
     * timeouts only, which stays the default; statuses are opt-in.
     */
    retry_on: Type.Optional(
      Type.Array(
        StringEnum(["error", "timeout", "http_429", "http_500", "http_502", "http_503", "http_504"] as const),
        { uniqueItems: true },
      ),
    ),
    /** Weir extension: allow retrying POST/PATCH (non-idempotent) requests after an upstream answered. */
    retry_non_idempotent: Type.Optional(Type.Boolean()),
    timeout: Type.Optional(TimeoutSchema),
    tls: Type.Optional(
      Type.Object({
        client_cert_id: Type.Optional(IdSchema),
        client_cert: Type.Optional(Type.String({ minLength: 128, maxLength: 65536 })),
        client_key: Type.Optional(Type.String({ minLength: 64, maxLength: 65536 })),
        // APISIX defaults this to false; Weir verifies unless told not to (docs/apisix-compatibility.md),
        // so no default is written into the stored object.
        verify: Type.Optional(Type.Boolean()),
      }),
    ),
    keepalive_pool: Type.Optional(
      Type.Object({
        size: Type.Optional(Type.Integer({ minimum: 1, default: 320 })),
        idle_timeout: Type.Optional(Type.Number({ minimum: 0, default: 60 })),
        requests: Type.Optional(Type.Integer({ minimum: 1, default: 1000 })),
      }),
    ),
    type: Type.Optional(
      StringEnum(BALANCER_TYPES, { description: "algorithms of load balancing", default: "roundrobin" }),
    ),
    checks: Type.Optional(ChecksSchema),
    hash_on: Type.Optional(StringEnum(HASH_ON, { default: "vars" })),
    key: Type.Optional(Type.String({ description: "the key of chash for dynamic load balancing" })),
    scheme: Type.Optional(
      StringEnum(["grpc", "grpcs", "http", "https", "tcp", "tls", "udp", "kafka"] as const, { default: "http" }),
    ),
    discovery_type: Type.Optional(Type.String({ description: "discovery type" })),
    discovery_args: Type.Optional(
      Type.Object({
        namespace_id: Type.Optional(Type.String({ description: "namespace id" })),
        group_name: Type.Optional(Type.String({ description: "group name" })),
      }),
    ),
    pass_host: Type.Optional(StringEnum(["pass", "node", "rewrite"] as const, { default: "pass" })),
    upstream_host: Type.Optional(HostSchema),
    service_name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  {
    additionalProperties: false,
    oneOf: [{ required: ["nodes"] }, { required: ["service_name", "discovery_type"] }],
  },
);
export type UpstreamConfig = Static<typeof UpstreamSchema>;

/** schema_def.upstream_hash_vars_schema: the variables `hash_on: vars` may hash on. */
export const UpstreamHashVarsSchema = Type.String({
  pattern:
    "^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$",
});
/** schema_def.upstream_hash_header_schema: header and cookie names. */
export const UpstreamHashHeaderSchema = Type.String({ pattern: "^[a-zA-Z0-9-_]+$" });
/** schema_def.upstream_hash_vars_combinations_schema. */
export const UpstreamHashVarsCombinationsSchema = Type.String();
