import { Type } from "@sinclair/typebox";
import { ActiveCheckSchema } from "../config/schemas/upstream.js";
import { PROVIDER_NAMES } from "./providers.js";

/**
 * The config pieces ai-proxy and ai-proxy-multi share, as APISIX 3.x's ai-proxy/schema.lua has them.
 * Vertex AI and Bedrock are in the enum (APISIX scripts name them) but refused by `check()`.
 */
const authItem = Type.Record(Type.String({ pattern: "^[a-zA-Z0-9._-]+$" }), Type.String());

export const authSchema = Type.Object(
  {
    header: Type.Optional(authItem),
    query: Type.Optional(authItem),
    gcp: Type.Optional(Type.Object({}, { additionalProperties: true })),
    aws: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: false },
);

export const providerSchema = Type.Unsafe<string>({ type: "string", enum: PROVIDER_NAMES });

/** `options.model` picks the model; every other key is set on the request body as it is. */
export const optionsSchema = Type.Object({ model: Type.Optional(Type.String()) }, { additionalProperties: true });

const protocolBody = Type.Optional(Type.Object({}, { additionalProperties: true }));

export const overrideSchema = Type.Object({
  endpoint: Type.Optional(Type.String({ minLength: 1 })),
  llm_options: Type.Optional(
    Type.Object({ max_tokens: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false }),
  ),
  request_body: Type.Optional(
    Type.Object(
      {
        "openai-chat": protocolBody,
        "openai-responses": protocolBody,
        "openai-embeddings": protocolBody,
        "anthropic-messages": protocolBody,
        passthrough: protocolBody,
      },
      { additionalProperties: false },
    ),
  ),
  request_body_force_override: Type.Optional(Type.Boolean({ default: false })),
});

const loggingSchema = Type.Object({
  summaries: Type.Optional(Type.Boolean({ default: false })),
  payloads: Type.Optional(Type.Boolean({ default: false })),
});

/** Transport and limits, the same on both plugins. */
export const transportFields = {
  logging: Type.Optional(loggingSchema),
  timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600000, default: 30000 })),
  max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: 67108864 })),
  max_stream_duration_ms: Type.Optional(Type.Integer({ minimum: 1 })),
  max_response_bytes: Type.Optional(Type.Integer({ minimum: 1 })),
  keepalive: Type.Optional(Type.Boolean({ default: true })),
  keepalive_timeout: Type.Optional(Type.Integer({ minimum: 1000, default: 60000 })),
  keepalive_pool: Type.Optional(Type.Integer({ minimum: 1, default: 30 })),
  streaming_flush_interval_ms: Type.Optional(Type.Integer({ minimum: 0, default: 10 })),
  ssl_verify: Type.Optional(Type.Boolean({ default: true })),
};

export const instanceSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  provider: providerSchema,
  priority: Type.Optional(Type.Integer({ default: 0 })),
  weight: Type.Integer({ minimum: 0 }),
  auth: authSchema,
  options: Type.Optional(optionsSchema),
  override: Type.Optional(overrideSchema),
  provider_conf: Type.Optional(
    Type.Object({ project_id: Type.Optional(Type.String()), region: Type.Optional(Type.String({ minLength: 1 })) }),
  ),
  checks: Type.Optional(Type.Object({ active: ActiveCheckSchema }, { additionalProperties: false })),
});
