import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import type { UpstreamNode } from "./balancer.js";

/**
 * Health of one upstream's nodes, as APISIX's `checks` (lua-resty-healthcheck) define it: active probes
 * (http/https/tcp) on an interval that depends on the node's state, and passive judgement of real traffic.
 * A node turns unhealthy after N failures of a kind and healthy again after M successes. One checker runs
 * per upstream config revision for the whole gateway instance, however many routes share the upstream.
 */
export interface ChecksConfig {
  active?: {
    type?: "http" | "https" | "tcp";
    timeout?: number;
    concurrency?: number;
    host?: string;
    port?: number;
    http_path?: string;
    https_verify_certificate?: boolean;
    req_headers?: string[];
    healthy?: { interval?: number; http_statuses?: number[]; successes?: number };
    unhealthy?: {
      interval?: number;
      http_statuses?: number[];
      tcp_failures?: number;
      timeouts?: number;
      http_failures?: number;
    };
  };
  passive?: {
    type?: "http" | "https" | "tcp";
    healthy?: { http_statuses?: number[]; successes?: number };
    unhealthy?: { http_statuses?: number[]; tcp_failures?: number; timeouts?: number; http_failures?: number };
  };
}

interface NodeHealth {
  node: UpstreamNode;
  healthy: boolean;
  success: number;
  httpFailure: number;
  tcpFailure: number;
  timeoutFailure: number;
  lastProbe: number;
}

export type Outcome = { kind: "status"; status: number } | { kind: "tcp" } | { kind: "timeout" };

const DEFAULT_ACTIVE_HEALTHY = [200, 302];
const DEFAULT_ACTIVE_UNHEALTHY = [429, 404, 500, 501, 502, 503, 504, 505];
const DEFAULT_PASSIVE_HEALTHY = [
  200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
];
const DEFAULT_PASSIVE_UNHEALTHY = [429, 500, 503];

interface Thresholds {
  healthyStatuses: ReadonlySet<number>;
  unhealthyStatuses: ReadonlySet<number>;
  successes: number;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

export class HealthChecker {
  /** Keys of nodes currently unhealthy; empty in the common case, so the proxy path checks `.size`. */
  readonly unhealthy = new Set<string>();
  readonly name: string;
  readonly type: string;
  private readonly nodes: NodeHealth[];
  private readonly byKey = new Map<string, NodeHealth>();
  private readonly config: ChecksConfig;
  private readonly active: Thresholds | undefined;
  private readonly passive: Thresholds | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private probing = 0;
  private readonly log: (msg: string) => void;

  constructor(name: string, nodes: readonly UpstreamNode[], config: ChecksConfig, log: (msg: string) => void) {
    this.name = name;
    this.config = config;
    this.log = log;
    this.type = config.active?.type ?? config.passive?.type ?? "http";
    this.nodes = nodes.map((node) => ({
      node,
      healthy: true,
      success: 0,
      httpFailure: 0,
      tcpFailure: 0,
      timeoutFailure: 0,
      lastProbe: 0,
    }));
    for (const n of this.nodes) this.byKey.set(n.node.key, n);
    const a = config.active;
    this.active =
      a === undefined
        ? undefined
        : {
            healthyStatuses: new Set(a.healthy?.http_statuses ?? DEFAULT_ACTIVE_HEALTHY),
            unhealthyStatuses: new Set(a.unhealthy?.http_statuses ?? DEFAULT_ACTIVE_UNHEALTHY),
            successes: a.healthy?.successes ?? 2,
            httpFailures: a.unhealthy?.http_failures ?? 5,
            tcpFailures: a.unhealthy?.tcp_failures ?? 2,
            timeouts: a.unhealthy?.timeouts ?? 3,
          };
    const p = config.passive;
    this.passive =
      p === undefined
        ? undefined
        : {
            healthyStatuses: new Set(p.healthy?.http_statuses ?? DEFAULT_PASSIVE_HEALTHY),
            unhealthyStatuses: new Set(p.unhealthy?.http_statuses ?? DEFAULT_PASSIVE_UNHEALTHY),
            successes: p.healthy?.successes ?? 5,
            httpFailures: p.unhealthy?.http_failures ?? 5,
            tcpFailures: p.unhealthy?.tcp_failures ?? 2,
            timeouts: p.unhealthy?.timeouts ?? 7,
          };
  }

  start(): void {
    if (this.active === undefined || this.stopped) return;
    // One tick a (short) period; each node is probed when its own interval (healthy or unhealthy) is due.
    const healthyMs = (this.config.active?.healthy?.interval ?? 1) * 1000;
    const unhealthyMs = (this.config.active?.unhealthy?.interval ?? 1) * 1000;
    const tickMs = Math.max(50, Math.min(healthyMs || unhealthyMs, unhealthyMs || healthyMs) / 2);
    this.timer = setInterval(() => this.tick(healthyMs, unhealthyMs), tickMs);
    this.timer.unref();
    this.tick(healthyMs, unhealthyMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Passive checks: the proxy reports every attempt's outcome. */
  report(key: string, outcome: Outcome): void {
    if (this.passive === undefined) return;
    const n = this.byKey.get(key);
    if (n !== undefined) this.record(n, outcome, this.passive, "passive");
  }

  /** APISIX's /v1/healthcheck shape for this upstream. */
  status(): { name: string; type: string; nodes: Record<string, unknown>[] } {
    return {
      name: this.name,
      type: this.type,
      nodes: this.nodes.map((n) => ({
        ip: n.node.host,
        port: n.node.port,
        status: n.healthy ? "healthy" : "unhealthy",
        counter: {
          success: n.success,
          http_failure: n.httpFailure,
          tcp_failure: n.tcpFailure,
          timeout_failure: n.timeoutFailure,
        },
      })),
    };
  }

  private tick(healthyMs: number, unhealthyMs: number): void {
    const now = Date.now();
    const concurrency = this.config.active?.concurrency ?? 10;
    for (const n of this.nodes) {
      const interval = n.healthy ? healthyMs : unhealthyMs;
      if (interval <= 0 || now - n.lastProbe < interval || this.probing >= concurrency) continue;
      n.lastProbe = now;
      this.probing++;
      this.probe(n.node).then((outcome) => {
        this.probing--;
        if (!this.stopped) this.record(n, outcome, this.active!, "active");
      });
    }
  }

  private probe(node: UpstreamNode): Promise<Outcome> {
    const a = this.config.active!;
    const timeoutMs = (a.timeout ?? 1) * 1000;
    const port = a.port ?? node.port;
    return new Promise((resolve) => {
      let done = false;
      const finish = (o: Outcome) => {
        if (done) return;
        done = true;
        resolve(o);
      };
      if (this.type === "tcp") {
        const socket = connect(port, node.host);
        socket.setTimeout(timeoutMs, () => {
          socket.destroy();
          finish({ kind: "timeout" });
        });
        socket.once("connect", () => {
          socket.destroy();
          finish({ kind: "status", status: 200 });
        });
        socket.once("error", () => finish({ kind: "tcp" }));
        return;
      }
      const headers: Record<string, string> = { host: a.host ?? node.host, connection: "close" };
      for (const line of a.req_headers ?? []) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
      }
      const send = this.type === "https" ? httpsRequest : httpRequest;
      const req = send(
        {
          host: node.host,
          port,
          path: a.http_path ?? "/",
          method: "GET",
          headers,
          agent: false,
          timeout: timeoutMs,
          rejectUnauthorized: a.https_verify_certificate !== false,
          servername: a.host,
        },
        (res) => {
          res.resume();
          finish({ kind: "status", status: res.statusCode ?? 0 });
        },
      );
      req.once("timeout", () => {
        req.destroy();
        finish({ kind: "timeout" });
      });
      req.once("error", () => finish({ kind: "tcp" }));
      req.end();
    });
  }

  private record(n: NodeHealth, outcome: Outcome, t: Thresholds, source: string): void {
    if (outcome.kind === "status" && t.healthyStatuses.has(outcome.status)) {
      n.success++;
      n.httpFailure = n.tcpFailure = n.timeoutFailure = 0;
      if (!n.healthy && n.success >= t.successes) this.mark(n, true, `${source}: ${n.success} successes`);
      return;
    }
    let tripped = false;
    if (outcome.kind === "tcp") tripped = ++n.tcpFailure >= t.tcpFailures;
    else if (outcome.kind === "timeout") tripped = ++n.timeoutFailure >= t.timeouts;
    else if (t.unhealthyStatuses.has(outcome.status)) tripped = ++n.httpFailure >= t.httpFailures;
    else return; // a status in neither list says nothing about health
    n.success = 0;
    if (tripped && n.healthy)
      this.mark(n, false, `${source}: ${outcome.kind === "status" ? `status ${outcome.status}` : outcome.kind}`);
  }

  private mark(n: NodeHealth, healthy: boolean, why: string): void {
    n.healthy = healthy;
    n.success = n.httpFailure = n.tcpFailure = n.timeoutFailure = 0;
    if (healthy) this.unhealthy.delete(n.node.key);
    else this.unhealthy.add(n.node.key);
    this.log(`upstream ${this.name}: node ${n.node.key} is now ${healthy ? "healthy" : "unhealthy"} (${why})`);
  }
}

/**
 * Checkers live outside snapshots: one per upstream (id and config revision), created when a snapshot
 * first needs it and stopped as soon as no snapshot does, so no timer or socket outlives its upstream.
 */
export class HealthCheckManager {
  private checkers = new Map<string, HealthChecker>();

  constructor(private readonly log: (msg: string) => void) {}

  acquire(key: string, name: string, nodes: readonly UpstreamNode[], config: ChecksConfig): HealthChecker {
    let checker = this.checkers.get(key);
    if (checker === undefined) {
      checker = new HealthChecker(name, nodes, config, this.log);
      this.checkers.set(key, checker);
      checker.start();
    }
    return checker;
  }

  retain(inUse: ReadonlySet<string>): void {
    for (const [key, checker] of this.checkers) {
      if (inUse.has(key)) continue;
      checker.stop();
      this.checkers.delete(key);
    }
  }

  all(): IterableIterator<HealthChecker> {
    return this.checkers.values();
  }

  stop(): void {
    this.retain(new Set());
  }
}
