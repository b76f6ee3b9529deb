import type { IncomingMessage, ServerResponse } from "node:http";
import type { HealthChecker } from "../upstream/health.js";
import type { GatewayMetrics } from "./gateway-metrics.js";

export interface ExportSources {
  connections(): { active: number; accepted: number; handled: number; writing: number };
  requests(): number;
  checkers(): Iterable<HealthChecker>;
  /** Present when etcd is the config store: asks it now (bounded by its timeout). */
  etcd?(): Promise<{ reachable: boolean; indexes: Readonly<Record<string, number>> }>;
}

/**
 * APISIX's metrics export server (`plugin_attr.prometheus.export_addr`, 127.0.0.1:9091): GET `uri` answers
 * the exposition text; anything else 404. It runs on its own listener so scrapes never reach the data plane
 * or the Admin API.
 */
export function createExportHandler(
  metrics: GatewayMetrics,
  uri: string,
  sources: ExportSources,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== uri || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error_msg":"404 Route Not Found"}\n');
      return;
    }
    const health = [...sources.checkers()].map((c) => {
      const status = c.status();
      return {
        name: status.name,
        nodes: status.nodes.map((n) => ({
          ip: String(n.ip),
          port: Number(n.port),
          healthy: n.status === "healthy",
        })),
      };
    });
    // ping() never throws; a failure here is a bug, answered as one instead of left unhandled.
    const etcd = await sources.etcd?.().catch(() => undefined);
    const body = metrics.render({ connections: sources.connections(), requests: sources.requests(), health, etcd });
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}
