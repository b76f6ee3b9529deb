import type { Pool } from "undici";
import type { UpstreamConfig } from "../config/schemas/upstream.js";
import type { Balancer, UpstreamNode } from "./balancer.js";
import { createBalancer } from "./balancers.js";
import type { ChecksConfig, HealthChecker, HealthCheckManager } from "./health.js";
import type { PoolManager, PoolOptions } from "./pool.js";

/** A node with everything the proxy needs to talk to it, resolved once per config change. */
export interface CompiledNode extends UpstreamNode {
  readonly pool: Pool;
  readonly poolKey: string;
  /** Host header value for pass_host "node": host, plus port when not the scheme default. */
  readonly hostHeader: string;
}

export interface CompiledUpstream {
  readonly id: string | undefined;
  readonly nodes: readonly CompiledNode[];
  readonly balancer: Balancer<CompiledNode>;
  readonly scheme: "http" | "https";
  readonly passHost: "pass" | "node" | "rewrite";
  readonly upstreamHost: string | undefined;
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** Extra attempts after the first on connect errors and timeouts. */
  readonly retries: number;
  /** Total time budget for retries in ms; 0 = unbounded (APISIX retry_timeout 0). */
  readonly retryTimeoutMs: number;
  /** Conditions that trigger a retry (`retry_on`); APISIX's default is connect errors and timeouts. */
  readonly retryOnError: boolean;
  readonly retryOnTimeout: boolean;
  readonly retryOnStatuses: ReadonlySet<number> | undefined;
  readonly retryNonIdempotent: boolean;
  /** Active/passive health of the nodes when the upstream has `checks`. */
  readonly health: HealthChecker | undefined;
}

/** nginx's proxy_*_timeout default, which APISIX inherits. */
const DEFAULT_TIMEOUT_S = 60;

export interface TimeoutOverride {
  connect: number;
  send: number;
  read: number;
}

/**
 * Turns an upstream config into its runtime form. `timeoutOverride` is a route's `timeout`, which APISIX
 * lets win over the upstream's.
 */
export function compileUpstream(
  config: UpstreamConfig,
  id: string | undefined,
  pools: PoolManager,
  timeoutOverride?: TimeoutOverride,
  log?: (msg: string) => void,
  health?: { manager: HealthCheckManager; key: string; name: string },
): CompiledUpstream {
  const scheme = config.scheme === "https" || config.scheme === "grpcs" ? "https" : "http";
  const timeout = timeoutOverride ?? config.timeout;
  const connectTimeoutMs = secondsToMs(timeout?.connect ?? DEFAULT_TIMEOUT_S);
  const poolOptions: PoolOptions = {
    connectTimeoutMs,
    keepAliveTimeoutMs: secondsToMs(config.keepalive_pool?.idle_timeout ?? 60),
    maxRequestsPerConnection: config.keepalive_pool?.requests ?? 1000,
    maxConnections: 0,
    // APISIX does not verify upstream certificates unless tls.verify is true; Weir verifies unless
    // tls.verify is false (docs/apisix-compatibility.md).
    tls:
      scheme === "https"
        ? { verify: config.tls?.verify !== false, cert: config.tls?.client_cert, key: config.tls?.client_key }
        : undefined,
  };
  const defaultPort = scheme === "https" ? 443 : 80;
  const nodes: CompiledNode[] = [];
  for (const n of normalizeNodes(config.nodes)) {
    const port = n.port ?? defaultPort;
    const hostForUrl = n.host.includes(":") && !n.host.startsWith("[") ? `[${n.host}]` : n.host;
    const { key: poolKey, pool } = pools.get(`${scheme}://${hostForUrl}:${port}`, poolOptions);
    nodes.push({
      host: n.host,
      port,
      weight: n.weight,
      priority: n.priority ?? 0,
      key: `${hostForUrl}:${port}`,
      metadata: n.metadata as Record<string, unknown> | undefined,
      pool,
      poolKey,
      hostHeader: port === defaultPort ? hostForUrl : `${hostForUrl}:${port}`,
    });
  }
  const type = config.type ?? "roundrobin";
  const balancer = createBalancer(type, nodes, { key: config.key, hashOn: config.hash_on }, log);
  const usable = nodes.filter((n) => n.weight > 0).length;
  const checks = config.checks as ChecksConfig | undefined;
  const checker =
    health !== undefined && checks !== undefined && (checks.active !== undefined || checks.passive !== undefined)
      ? health.manager.acquire(health.key, health.name, nodes, checks)
      : undefined;
  const retryOn = config.retry_on ?? ["error", "timeout"];
  const statuses = retryOn.filter((r) => r.startsWith("http_")).map((r) => Number(r.slice(5)));
  return {
    id,
    nodes,
    balancer,
    health: checker,
    retryOnError: retryOn.includes("error"),
    retryOnTimeout: retryOn.includes("timeout"),
    retryOnStatuses: statuses.length > 0 ? new Set(statuses) : undefined,
    retryNonIdempotent: config.retry_non_idempotent === true,
    scheme,
    passHost: config.pass_host ?? "pass",
    upstreamHost: config.upstream_host,
    connectTimeoutMs,
    sendTimeoutMs: secondsToMs(timeout?.send ?? DEFAULT_TIMEOUT_S),
    readTimeoutMs: secondsToMs(timeout?.read ?? DEFAULT_TIMEOUT_S),
    retries: config.retries ?? Math.max(usable - 1, 0),
    retryTimeoutMs: secondsToMs(config.retry_timeout ?? 0),
  };
}

interface NormalizedNode {
  host: string;
  port: number | undefined;
  weight: number;
  priority?: number;
  metadata?: unknown;
}

/** APISIX accepts `{"host:port": weight}` as well as an array of node objects. */
export function normalizeNodes(nodes: UpstreamConfig["nodes"]): NormalizedNode[] {
  if (nodes === undefined) return [];
  if (Array.isArray(nodes)) return nodes.map((n) => ({ ...n, port: n.port }));
  const out: NormalizedNode[] = [];
  for (const [addr, weight] of Object.entries(nodes)) {
    const { host, port } = splitHostPort(addr);
    out.push({ host, port, weight });
  }
  return out;
}

function splitHostPort(addr: string): { host: string; port: number | undefined } {
  if (addr.startsWith("[")) {
    const end = addr.indexOf("]");
    const host = addr.slice(1, end);
    const port = addr[end + 1] === ":" ? Number(addr.slice(end + 2)) : undefined;
    return { host, port };
  }
  const colon = addr.lastIndexOf(":");
  if (colon === -1 || addr.indexOf(":") !== colon) return { host: addr, port: undefined };
  return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
}

function secondsToMs(s: number): number {
  return Math.round(s * 1000);
}
