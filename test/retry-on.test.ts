import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("retry_on (opt-in retries on upstream statuses)", () => {
  let gw: TestGateway;
  let busy: TestUpstream;
  let ok: TestUpstream;
  before(async () => {
    gw = await startTestGateway();
    busy = await startUpstream("busy", (_req, res) => res.writeHead(503, { "content-type": "text/plain" }).end("busy"));
    ok = await startUpstream("ok");
  });
  after(async () => {
    await gw.stop();
    await busy.close();
    await ok.close();
  });
  const nodes = () => [
    { host: "127.0.0.1", port: busy.port, weight: 1 },
    { host: "127.0.0.1", port: ok.port, weight: 1 },
  ];

  test("by default (APISIX) a 503 answer is passed through, not retried", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/default", { uri: "/default", upstream: { nodes: nodes() } });
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await fetchBody(`${gw.proxyUrl}/default`)).status);
    assert.deepEqual([...statuses].sort(), [200, 503]);
  });

  test("http_503 in retry_on sends idempotent requests to the next node; every attempt is in the header", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/retry", {
      uri: "/retry",
      upstream: { nodes: nodes(), retry_on: ["error", "timeout", "http_503"] },
    });
    let sawRetry = false;
    for (let i = 0; i < 4; i++) {
      const res = await fetchBody(`${gw.proxyUrl}/retry`);
      assert.equal(res.status, 200);
      assert.equal(res.body.node, "ok");
      if (res.headers.get("x-apisix-upstream-status") === "503, 200") sawRetry = true;
    }
    assert.ok(sawRetry, "a retried request lists both attempts");
  });

  test("a POST is not repeated after an upstream answered, unless retry_non_idempotent allows it", async () => {
    const post = () =>
      fetchBody(`${gw.proxyUrl}/retry`, {
        method: "POST",
        body: '{"prompt":"hi"}',
        headers: { "content-type": "application/json" },
      });
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await post()).status);
    assert.ok(statuses.has(503), "the busy node's answer reached the client");

    await gw.admin("PATCH", "/apisix/admin/routes/retry", { upstream: { retry_non_idempotent: true } });
    for (let i = 0; i < 4; i++) {
      const res = await post();
      assert.equal(res.status, 200);
      assert.equal(res.body.body, '{"prompt":"hi"}', "the replayed body arrives whole");
    }
  });
});
