import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("traffic plugins", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let slow: TestUpstream;
  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("model");
    slow = await startUpstream("slow", (_req, res) => setTimeout(() => res.end("done"), 400));
  });
  after(async () => {
    await gw.stop();
    await up.close();
    await slow.close();
  });

  test("fault-injection abort answers with the configured status, body (with variables) and headers", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/abort", {
      uri: "/abort",
      plugins: {
        "fault-injection": {
          abort: {
            http_status: 418,
            body: "no tea for $arg_who",
            headers: { "X-Fault": "yes" },
            vars: [[["arg_who", "~=", "admin"]]],
          },
        },
      },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const hit = await fetchBody(`${gw.proxyUrl}/abort?who=jack`);
    assert.equal(hit.status, 418);
    assert.equal(hit.body, "no tea for jack");
    assert.equal(hit.headers.get("x-fault"), "yes");
    assert.equal((await fetchBody(`${gw.proxyUrl}/abort?who=admin`)).status, 200, "vars exempt this request");
  });

  test("fault-injection delay holds requests for the duration; percentage 0 never fires", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/delay", {
      uri: "/delay",
      plugins: { "fault-injection": { delay: { duration: 0.3 }, abort: { http_status: 500, percentage: 0 } } },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    const started = Date.now();
    const res = await fetchBody(`${gw.proxyUrl}/delay`);
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started >= 280, "delayed");
    const bad = await gw.admin("PUT", "/apisix/admin/routes/delay", {
      uri: "/delay",
      plugins: { "fault-injection": { abort: { http_status: 500, vars: [[["arg_x", "~~", "("]]] } } },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_msg, /abort\.vars\[0\]/);
  });

  test("api-breaker opens on unhealthy answers and half-opens on schedule", async () => {
    let status = 500;
    const flaky = await startUpstream("flaky", (_req, res) => res.writeHead(status).end(String(status)));
    try {
      await gw.admin("PUT", "/apisix/admin/routes/breaker", {
        uri: "/breaker",
        plugins: {
          "api-breaker": {
            break_response_code: 502,
            break_response_body: "circuit open",
            break_response_headers: [{ key: "X-Breaker", value: "open" }],
            unhealthy: { http_statuses: [500], failures: 1 },
            healthy: { successes: 1 },
          },
        },
        upstream: { nodes: [{ host: "127.0.0.1", port: flaky.port, weight: 1 }] },
      });
      assert.equal((await fetchBody(`${gw.proxyUrl}/breaker`)).status, 500, "first failure passes through");
      flaky.received.length = 0;
      const open = await fetchBody(`${gw.proxyUrl}/breaker`);
      assert.equal(open.status, 502);
      assert.equal(open.body, "circuit open");
      assert.equal(open.headers.get("x-breaker"), "open");
      assert.equal(flaky.received.length, 0, "the upstream was spared");
      status = 200;
      await new Promise((r) => setTimeout(r, 2_100));
      assert.equal((await fetchBody(`${gw.proxyUrl}/breaker`)).status, 200, "half-open after 2 s");
      assert.equal((await fetchBody(`${gw.proxyUrl}/breaker`)).status, 200, "closed after a success");
    } finally {
      await flaky.close();
    }
  });

  test("limit-conn admits conn at once, delays the burst, rejects beyond, and releases on completion", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/conn", {
      uri: "/conn",
      plugins: {
        "limit-conn": { conn: 2, burst: 1, default_conn_delay: 0.2, key: "remote_addr", rejected_code: 429 },
      },
      upstream: { nodes: [{ host: "127.0.0.1", port: slow.port, weight: 1 }] },
    });
    const one = () =>
      new Promise<{ status: number; ms: number }>((resolve, reject) => {
        const t0 = Date.now();
        const req = request(`${gw.proxyUrl}/conn`, { agent: false }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode!, ms: Date.now() - t0 }));
        });
        req.on("error", reject);
        req.end();
      });
    const results = await Promise.all([one(), one(), one(), one(), one()]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    // all done: the counter is back to zero, so a new pair runs at once
    const after = await Promise.all([one(), one()]);
    assert.deepEqual(
      after.map((r) => r.status),
      [200, 200],
    );
    assert.ok(Math.max(...after.map((r) => r.ms)) < 390 + 200, "no delay once connections were released");
  });
});
