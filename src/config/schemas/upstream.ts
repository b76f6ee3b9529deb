import { type Static, Type } from "@sinclair/typebox";
import { DescSchema, IdSchema, LabelsSchema, NameSchema, TimeoutSchema, TimestampSchema } from "./common.js";

export const UpstreamNodeSchema = Type.Object(
  {
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    weight: Type.Integer({ minimum: 0 }),
    priority: Type.Optional(Type.Integer({ default: 0 })),
    metadata: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: true },
);
export type UpstreamNodeConfig = Static<typeof UpstreamNodeSchema>;

/** APISIX accepts nodes as an array of objects, or as a `{"host:port": weight}` hash. */
export const UpstreamNodesSchema = Type.Union([
  Type.Array(UpstreamNodeSchema),
  Type.Record(Type.String({ pattern: "^\\S+$" }), Type.Integer({ minimum: 0 })),
]);

const Statuses = Type.Array(Type.Integer({ minimum: 200, maximum: 599 }), { minItems: 1, uniqueItems: true });
const Count = (max: number) => Type.Integer({ minimum: 1, maximum: max });
const CheckType = Type.Union([Type.Literal("http"), Type.Literal("https"), Type.Literal("tcp")]);

/** lua-resty-healthcheck's schema as APISIX exposes it (upstream.checks), with its limits. */
export const ChecksSchema = Type.Object(
  {
    active: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(CheckType),
          timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
          concurrency: Type.Optional(Type.Integer({ minimum: 1 })),
          host: Type.Optional(Type.String({ pattern: "^\\*?[0-9a-zA-Z-._\\[\\]:]+$" })),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          http_path: Type.Optional(Type.String()),
          https_verify_certificate: Type.Optional(Type.Boolean()),
          req_headers: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
          healthy: Type.Optional(
            Type.Object(
              {
                interval: Type.Optional(Type.Integer({ minimum: 1 })),
                http_statuses: Type.Optional(Statuses),
                successes: Type.Optional(Count(254)),
              },
              { additionalProperties: false },
            ),
          ),
          unhealthy: Type.Optional(
            Type.Object(
              {
                interval: Type.Optional(Type.Integer({ minimum: 1 })),
                http_statuses: Type.Optional(Statuses),
                http_failures: Type.Optional(Count(254)),
                tcp_failures: Type.Optional(Count(254)),
                timeouts: Type.Optional(Count(254)),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    passive: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(CheckType),
          healthy: Type.Optional(
            Type.Object(
              {
                http_statuses: Type.Optional(Statuses),
                successes: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
              },
              { additionalProperties: false },
            ),
          ),
          unhealthy: Type.Optional(
            Type.Object(
              {
                http_statuses: Type.Optional(Statuses),
                http_failures: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
                tcp_failures: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
                timeouts: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const UpstreamSchema = Type.Object(
  {
    id: Type.Optional(IdSchema),
    name: Type.Optional(NameSchema),
    desc: Type.Optional(DescSchema),
    labels: Type.Optional(LabelsSchema),
    nodes: Type.Optional(UpstreamNodesSchema),
    service_name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    discovery_type: Type.Optional(Type.String()),
    discovery_args: Type.Optional(Type.Object({}, { additionalProperties: true })),
    type: Type.Optional(Type.String({ default: "roundrobin" })),
    hash_on: Type.Optional(
      Type.Union(
        [
          Type.Literal("vars"),
          Type.Literal("header"),
          Type.Literal("cookie"),
          Type.Literal("consumer"),
          Type.Literal("vars_combinations"),
        ],
        { default: "vars" },
      ),
    ),
    key: Type.Optional(Type.String()),
    checks: Type.Optional(ChecksSchema),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    retry_timeout: Type.Optional(Type.Number({ minimum: 0 })),
    /**
     * Weir extension: what is retried on the next node. APISIX (nginx) retries connect errors and
     * timeouts only, which stays the default; statuses are opt-in.
     */
    retry_on: Type.Optional(
      Type.Array(
        Type.Union(
          ["error", "timeout", "http_429", "http_500", "http_502", "http_503", "http_504"].map((v) => Type.Literal(v)),
        ),
        { uniqueItems: true },
      ),
    ),
    /** Weir extension: allow retrying POST/PATCH (non-idempotent) requests after an upstream answered. */
    retry_non_idempotent: Type.Optional(Type.Boolean()),
    timeout: Type.Optional(TimeoutSchema),
    pass_host: Type.Optional(
      Type.Union([Type.Literal("pass"), Type.Literal("node"), Type.Literal("rewrite")], { default: "pass" }),
    ),
    upstream_host: Type.Optional(Type.String()),
    scheme: Type.Optional(
      Type.Union([Type.Literal("http"), Type.Literal("https"), Type.Literal("grpc"), Type.Literal("grpcs")], {
        default: "http",
      }),
    ),
    keepalive_pool: Type.Optional(
      Type.Object(
        {
          size: Type.Integer({ minimum: 1, default: 320 }),
          idle_timeout: Type.Number({ minimum: 0, default: 60 }),
          requests: Type.Integer({ minimum: 1, default: 1000 }),
        },
        { additionalProperties: false },
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          client_cert: Type.Optional(Type.String({ minLength: 128, maxLength: 65536 })),
          client_key: Type.Optional(Type.String({ minLength: 128, maxLength: 65536 })),
          client_cert_id: Type.Optional(Type.String()),
          verify: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    create_time: Type.Optional(TimestampSchema),
    update_time: Type.Optional(TimestampSchema),
  },
  { additionalProperties: false },
);
export type UpstreamConfig = Static<typeof UpstreamSchema>;
