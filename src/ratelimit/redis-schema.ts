/**
 * APISIX's Redis connection fields for the rate-limiting plugins (apisix/utils/redis-schema.lua and
 * limit-count's sentinel block), applied with its if/then chain on `policy`, so a config that works on
 * APISIX validates identically here.
 */
const redis = {
  properties: {
    redis_host: { type: "string", minLength: 2 },
    redis_port: { type: "integer", minimum: 1, default: 6379 },
    redis_username: { type: "string", minLength: 1 },
    redis_password: { type: "string", minLength: 0 },
    redis_database: { type: "integer", minimum: 0, default: 0 },
    redis_timeout: { type: "integer", minimum: 1, default: 1000 },
    redis_ssl: { type: "boolean", default: false },
    redis_ssl_verify: { type: "boolean", default: false },
    redis_keepalive_timeout: { type: "integer", minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: "integer", minimum: 1, default: 100 },
  },
  required: ["redis_host"],
};

const redisCluster = {
  properties: {
    redis_cluster_nodes: {
      type: "array",
      minItems: 1,
      items: { type: "string", minLength: 2, maxLength: 100 },
    },
    redis_password: { type: "string", minLength: 0 },
    redis_timeout: { type: "integer", minimum: 1, default: 1000 },
    redis_cluster_name: { type: "string" },
    redis_cluster_ssl: { type: "boolean", default: false },
    redis_cluster_ssl_verify: { type: "boolean", default: false },
    redis_keepalive_timeout: { type: "integer", minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: "integer", minimum: 1, default: 100 },
  },
  required: ["redis_cluster_nodes", "redis_cluster_name"],
};

const redisSentinel = {
  properties: {
    redis_sentinels: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        properties: {
          host: { type: "string", minLength: 2 },
          port: { type: "integer", minimum: 1, maximum: 65535 },
        },
        required: ["host", "port"],
        additionalProperties: false,
      },
    },
    redis_master_name: { type: "string", minLength: 1 },
    redis_role: { type: "string", enum: ["master", "slave"], default: "master" },
    redis_connect_timeout: { type: "integer", minimum: 1, default: 1000 },
    redis_read_timeout: { type: "integer", minimum: 1, default: 1000 },
    redis_keepalive_timeout: { type: "integer", minimum: 1, default: 60000 },
    redis_database: { type: "integer", minimum: 0, default: 0 },
    redis_username: { type: "string", minLength: 1 },
    redis_password: { type: "string", minLength: 0 },
    sentinel_username: { type: "string", minLength: 1 },
    sentinel_password: { type: "string", minLength: 0 },
  },
  required: ["redis_sentinels", "redis_master_name"],
};

/** JSON Schema's `if policy is <policy> then <fields> else <otherwise>`. */
function whenPolicy(policy: string, fields: object, otherwise?: object): Record<string, unknown> {
  const keywords: Record<string, unknown> = {
    if: { required: ["policy"], properties: { policy: { enum: [policy] } } },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, never awaited
    then: fields,
  };
  if (otherwise !== undefined) keywords.else = otherwise;
  return keywords;
}

/** The schema keywords a plugin's object schema takes to check its Redis fields by `policy`. */
export const REDIS_POLICY_SCHEMA = whenPolicy(
  "redis",
  redis,
  whenPolicy("redis-cluster", redisCluster, whenPolicy("redis-sentinel", redisSentinel)),
);

/** The same for plugins without a Sentinel policy (limit-req, as in APISIX). */
export const REDIS_POLICY_SCHEMA_NO_SENTINEL = whenPolicy("redis", redis, whenPolicy("redis-cluster", redisCluster));

/** The fields above as a plugin config holds them after validation (defaults filled). */
export interface RedisPolicyConfig {
  policy?: string;
  redis_host?: string;
  redis_port?: number;
  redis_username?: string;
  redis_password?: string;
  redis_database?: number;
  redis_timeout?: number;
  redis_ssl?: boolean;
  redis_ssl_verify?: boolean;
  redis_cluster_nodes?: string[];
  redis_cluster_name?: string;
  redis_cluster_ssl?: boolean;
  redis_cluster_ssl_verify?: boolean;
  redis_sentinels?: { host: string; port: number }[];
  redis_master_name?: string;
  redis_role?: "master" | "slave";
  redis_connect_timeout?: number;
  redis_read_timeout?: number;
  sentinel_username?: string;
  sentinel_password?: string;
}

/** Fields of a Redis policy that are secrets: stored encrypted and masked for viewer keys. */
export const REDIS_SECRET_FIELDS = ["redis_password", "sentinel_password"];
