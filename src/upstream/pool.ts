import { createHash } from "node:crypto";
import { Pool } from "undici";

export interface PoolOptions {
  connectTimeoutMs: number;
  /** Idle keep-alive time before a pooled connection is closed (APISIX keepalive_pool.idle_timeout). */
  keepAliveTimeoutMs: number;
  /** Requests served by one connection before it is recycled (keepalive_pool.requests). */
  maxRequestsPerConnection: number;
  /** Upper bound of connections per node; 0 = unbounded, like nginx's upstream connections. */
  maxConnections: number;
  /** https upstreams: verify the server certificate (Weir's default) and an optional client certificate. */
  tls?: { verify: boolean; cert?: string; key?: string };
}

/**
 * "How to talk": one undici Pool per (origin, pool settings), shared by every upstream and snapshot that
 * uses the same node so keep-alive connections survive config changes. Pools no snapshot uses any more are
 * closed gracefully (in-flight requests finish first).
 */
export class PoolManager {
  private pools = new Map<string, Pool>();

  static keyOf(origin: string, o: PoolOptions): string {
    const tls =
      o.tls === undefined
        ? ""
        : `|${o.tls.verify}|${o.tls.cert === undefined ? "" : fingerprint(o.tls.cert + o.tls.key)}`;
    return `${origin}|${o.connectTimeoutMs}|${o.keepAliveTimeoutMs}|${o.maxRequestsPerConnection}|${o.maxConnections}${tls}`;
  }

  get(origin: string, options: PoolOptions): { key: string; pool: Pool } {
    const key = PoolManager.keyOf(origin, options);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: options.maxConnections > 0 ? options.maxConnections : null,
        connectTimeout: options.connectTimeoutMs,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs, 1000),
        maxRequestsPerClient: options.maxRequestsPerConnection,
        // The gateway enforces its own read timeouts per request; these are per-request defaults only.
        headersTimeout: 0,
        bodyTimeout: 0,
        pipelining: 1,
        ...(options.tls === undefined
          ? {}
          : { connect: { rejectUnauthorized: options.tls.verify, cert: options.tls.cert, key: options.tls.key } }),
      });
      this.pools.set(key, pool);
    }
    return { key, pool };
  }

  /** Closes every pool whose key is not in `inUse`. */
  retain(inUse: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      if (inUse.has(key)) continue;
      this.pools.delete(key);
      pool.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const closing = [...this.pools.values()].map((p) => p.close().catch(() => undefined));
    this.pools.clear();
    await Promise.all(closing);
  }

  async destroy(): Promise<void> {
    const closing = [...this.pools.values()].map((p) => p.destroy().catch(() => undefined));
    this.pools.clear();
    await Promise.all(closing);
  }
}

function fingerprint(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 16);
}
