import type { IncomingMessage, ServerResponse } from "node:http";
import type { ConfigSync } from "../snapshot/config-sync.js";
import type { ResourceType } from "../store/keys.js";

/**
 * APISIX's Control API (read-only, bound to loopback by default): health checker state and the routes and
 * upstreams the data plane is running right now, which can differ from the store during a change.
 */
export function createControlHandler(sync: ConfigSync): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "");
    const answer = route(sync, req.method ?? "GET", path);
    const body = `${JSON.stringify(answer.body)}\n`;
    res.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  };
}

function route(sync: ConfigSync, method: string, path: string): { status: number; body: unknown } {
  if (method !== "GET") return { status: 405, body: { error_msg: "the Control API is read-only" } };
  const parts = path.split("/").filter((p) => p !== "");
  if (parts[0] !== "v1") return notFound();
  const [, what, kind, id] = parts;
  const checkers = [...sync.health.all()];
  if (what === "healthcheck") {
    if (kind === undefined) return { status: 200, body: checkers.map((c) => c.status()) };
    if ((kind === "upstreams" || kind === "routes") && id !== undefined) {
      const checker = checkers.find((c) => c.name === `/apisix/${kind}/${id}`);
      return checker === undefined
        ? { status: 404, body: { error_msg: `no health checker for ${kind.slice(0, -1)} ${id}` } }
        : { status: 200, body: checker.status() };
    }
    return notFound();
  }
  if (what === "routes" || what === "upstreams" || what === "services") {
    const table = sync.entries(what as ResourceType);
    if (kind !== undefined) {
      const entry = table.get(kind);
      return entry === undefined ? notFound() : { status: 200, body: view(entry) };
    }
    return { status: 200, body: [...table.values()].map(view) };
  }
  return notFound();
}

function view(entry: { key: string; value: unknown; modRevision: number; createRevision: number }) {
  return { key: entry.key, value: entry.value, modifiedIndex: entry.modRevision, createdIndex: entry.createRevision };
}

function notFound() {
  return { status: 404, body: { error_msg: "not found" } };
}
