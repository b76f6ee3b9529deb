import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { Cluster, Redis, RedisOptions } from "ioredis";
import type { RedisPolicyConfig } from "./redis-schema.js";

/**
 * ioredis is loaded on the first Redis policy, not at start: importing it costs about 20 MB of RSS that a
 * gateway with only local limits should not carry. require() keeps acquiring a connection synchronous.
 */
let ioredis: typeof import("ioredis") | undefined;
function client(): typeof import("ioredis") {
  ioredis ??= createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  return ioredis;
}

/** What counters need of a connection: ioredis's single-node, sentinel and cluster clients all qualify. */
export type RedisConnection = Redis | Cluster;

interface Shared {
  connection: RedisConnection;
  users: number;
}

/**
 * One connection per distinct Redis target and credentials for the whole process, shared by every plugin
 * instance that names it (APISIX keeps a keepalive pool per host, port, database and credentials). Counted:
 * the last release closes it, so a config change that drops the Redis policy leaves no socket behind.
 */
const shared = new Map<string, Shared>();

export interface RedisLease {
  readonly connection: RedisConnection;
  release(): void;
}

export function acquireRedis(conf: RedisPolicyConfig): RedisLease {
  const key = connectionKey(conf);
  let entry = shared.get(key);
  if (entry === undefined) {
    const connection = connect(conf);
    // Failures surface on the commands (and allow_degradation decides); the connection's own error events
    // while it reconnects would otherwise be printed for every retry.
    connection.on("error", () => {});
    entry = { connection, users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  const held = entry;
  let released = false;
  return {
    connection: held.connection,
    release() {
      if (released) return;
      released = true;
      if (--held.users > 0) return;
      shared.delete(key);
      held.connection.disconnect();
    },
  };
}

function connectionKey(conf: RedisPolicyConfig): string {
  const { policy } = conf;
  const target =
    policy === "redis-cluster"
      ? [conf.redis_cluster_name, ...(conf.redis_cluster_nodes ?? [])].join(",")
      : policy === "redis-sentinel"
        ? [
            conf.redis_master_name,
            conf.redis_role,
            ...(conf.redis_sentinels ?? []).map((s) => `${s.host}:${s.port}`),
          ].join(",")
        : `${conf.redis_host}:${conf.redis_port ?? 6379}`;
  const secret = createHash("sha256")
    .update(`${conf.redis_username ?? ""}\u0000${conf.redis_password ?? ""}\u0000${conf.sentinel_password ?? ""}`)
    .digest("base64url");
  const tls =
    policy === "redis-cluster"
      ? [conf.redis_cluster_ssl, conf.redis_cluster_ssl_verify]
      : [conf.redis_ssl, conf.redis_ssl_verify];
  return `${policy}|${target}|db${conf.redis_database ?? 0}|${tls.join(",")}|${conf.redis_timeout ?? 1000}|${secret}`;
}

function connect(conf: RedisPolicyConfig): RedisConnection {
  const timeout = conf.redis_timeout ?? 1000;
  // A rate limit must answer within its timeout whatever Redis does: commands fail after `timeout` instead
  // of waiting in a queue for a reconnect, and allow_degradation decides what the request gets then.
  const common: RedisOptions = {
    connectTimeout: timeout,
    commandTimeout: timeout,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    lazyConnect: false,
  };
  if (conf.policy === "redis-cluster") {
    const nodes = (conf.redis_cluster_nodes ?? []).map((n) => {
      const colon = n.lastIndexOf(":");
      return colon === -1 ? { host: n, port: 6379 } : { host: n.slice(0, colon), port: Number(n.slice(colon + 1)) };
    });
    const tls = conf.redis_cluster_ssl ? { rejectUnauthorized: conf.redis_cluster_ssl_verify === true } : undefined;
    return new (client().Cluster)(nodes, {
      redisOptions: { ...common, password: conf.redis_password || undefined, tls },
      clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
      enableOfflineQueue: true,
      slotsRefreshTimeout: timeout,
    });
  }
  if (conf.policy === "redis-sentinel") {
    return new (client().Redis)({
      ...common,
      connectTimeout: conf.redis_connect_timeout ?? timeout,
      commandTimeout: conf.redis_read_timeout ?? timeout,
      sentinels: conf.redis_sentinels,
      name: conf.redis_master_name,
      role: conf.redis_role ?? "master",
      db: conf.redis_database ?? 0,
      username: conf.redis_username,
      password: conf.redis_password || undefined,
      sentinelUsername: conf.sentinel_username,
      sentinelPassword: conf.sentinel_password || undefined,
    });
  }
  return new (client().Redis)({
    ...common,
    host: conf.redis_host,
    port: conf.redis_port ?? 6379,
    db: conf.redis_database ?? 0,
    username: conf.redis_username,
    password: conf.redis_password || undefined,
    tls: conf.redis_ssl ? { rejectUnauthorized: conf.redis_ssl_verify === true } : undefined,
  });
}
