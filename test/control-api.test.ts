import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("Control API (APISIX /v1 read views)", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let control: string;
  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("model");
    control = `http://127.0.0.1:${gw.gateway.controlAddress!.port}`;
    await gw.admin("PUT", "/apisix/admin/upstreams/u1", {
      nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }],
      checks: { active: { http_path: "/", healthy: { interval: 1, successes: 1 } } },
    });
    await gw.admin("PUT", "/apisix/admin/routes/r1", { uri: "/r1", upstream_id: "u1" });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test("GET /v1/healthcheck lists every checker with node status and counters", async () => {
    const res = await fetchBody(`${control}/v1/healthcheck`);
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 1);
    assert.equal(res.body[0].name, "/apisix/upstreams/u1");
    assert.equal(res.body[0].type, "http");
    assert.deepEqual(Object.keys(res.body[0].nodes[0]).sort(), ["counter", "ip", "port", "status"]);
    assert.equal(res.body[0].nodes[0].status, "healthy");
  });

  test("GET /v1/healthcheck/upstreams/{id}; unknown ids are 404", async () => {
    const one = await fetchBody(`${control}/v1/healthcheck/upstreams/u1`);
    assert.equal(one.status, 200);
    assert.equal(one.body.nodes[0].port, up.port);
    assert.equal((await fetchBody(`${control}/v1/healthcheck/upstreams/nope`)).status, 404);
  });

  test("GET /v1/routes and /v1/upstreams show what the data plane runs; writes are refused", async () => {
    const routes = await fetchBody(`${control}/v1/routes`);
    assert.deepEqual(
      routes.body.map((r: { value: { id: string } }) => r.value.id),
      ["r1"],
    );
    const upstream = await fetchBody(`${control}/v1/upstreams/u1`);
    assert.equal(upstream.body.value.id, "u1");
    assert.equal((await fetchBody(`${control}/v1/routes`, { method: "PUT" })).status, 405);
  });
});
