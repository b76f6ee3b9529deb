import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";

/** A model server that can be stopped and started again on the same port. */
class Node {
  server: Server | undefined;
  port = 0;
  status = 200;
  hits = 0;
  constructor(readonly name: string) {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url !== "/health") this.hits++;
      res.writeHead(req.url === "/health" ? 200 : this.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ node: this.name }));
    });
    await new Promise<void>((r) => this.server!.listen(this.port, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

async function until(what: string, cond: () => boolean, ms = 6_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("health checks", () => {
  let gw: TestGateway;
  const a = new Node("a");
  const b = new Node("b");
  before(async () => {
    gw = await startTestGateway();
    await a.start();
    await b.start();
  });
  after(async () => {
    await gw.stop();
    await a.stop();
    await b.stop();
  });

  const checker = (name: string) => [...gw.gateway.configSync.health.all()].find((c) => c.name === name);
  const statusOf = (name: string, port: number) =>
    checker(name)
      ?.status()
      .nodes.find((n) => n.port === port)?.status;

  test("active checks take a dead node out and bring it back within interval × successes", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/upstreams/checked", {
      nodes: [
        { host: "127.0.0.1", port: a.port, weight: 1 },
        { host: "127.0.0.1", port: b.port, weight: 1 },
      ],
      retries: 0,
      checks: {
        active: {
          http_path: "/health",
          timeout: 1,
          healthy: { interval: 1, successes: 1 },
          unhealthy: { interval: 1, tcp_failures: 1, http_failures: 1 },
        },
      },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    await gw.admin("PUT", "/apisix/admin/routes/checked", { uri: "/checked", upstream_id: "checked" });
    const name = "/apisix/upstreams/checked";
    await until("checker running", () => checker(name) !== undefined);

    await b.stop();
    await until("b marked unhealthy", () => statusOf(name, b.port) === "unhealthy");
    // With retries 0, any request sent to b would fail: none is.
    for (let i = 0; i < 10; i++) {
      const res = await fetchBody(`${gw.proxyUrl}/checked`);
      assert.equal(res.status, 200);
      assert.equal(res.body.node, "a");
    }

    const downAt = Date.now();
    await b.start();
    await until("b healthy again", () => statusOf(name, b.port) === "healthy", 4_000);
    assert.ok(Date.now() - downAt < 3_000, "back within about interval × successes");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await fetchBody(`${gw.proxyUrl}/checked`)).body.node);
    assert.deepEqual([...seen].sort(), ["a", "b"]);
  });

  test("passive checks judge real traffic; when every node is unhealthy all are used", async () => {
    b.status = 503;
    await gw.admin("PUT", "/apisix/admin/routes/passive", {
      uri: "/passive",
      upstream: {
        nodes: [
          { host: "127.0.0.1", port: a.port, weight: 1 },
          { host: "127.0.0.1", port: b.port, weight: 1 },
        ],
        checks: { passive: { unhealthy: { http_statuses: [503], http_failures: 2 } } },
      },
    });
    const name = "/apisix/routes/passive";
    for (let i = 0; i < 6; i++) await fetchBody(`${gw.proxyUrl}/passive`);
    assert.equal(statusOf(name, b.port), "unhealthy");
    b.hits = 0;
    for (let i = 0; i < 10; i++) assert.equal((await fetchBody(`${gw.proxyUrl}/passive`)).body.node, "a");
    assert.equal(b.hits, 0, "the unhealthy node gets no traffic");

    a.status = 503;
    for (let i = 0; i < 4; i++) await fetchBody(`${gw.proxyUrl}/passive`);
    assert.equal(statusOf(name, a.port), "unhealthy");
    b.hits = 0;
    for (let i = 0; i < 4; i++) await fetchBody(`${gw.proxyUrl}/passive`);
    assert.ok(b.hits > 0, "with every node unhealthy, all nodes are used");
    a.status = 200;
    b.status = 200;
  });

  test("deleting the upstream stops its checker", async () => {
    await gw.admin("DELETE", "/apisix/admin/routes/checked");
    await gw.admin("DELETE", "/apisix/admin/upstreams/checked");
    await gw.admin("DELETE", "/apisix/admin/routes/passive");
    assert.equal([...gw.gateway.configSync.health.all()].length, 0);
  });
});
