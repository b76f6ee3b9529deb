import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody as call } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

/** Plugins driven through a real gateway: phases, precedence and merging as APISIX defines them. */
describe("plugin pipeline", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let node: { host: string; port: number; weight: number }[];

  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("model");
    node = [{ host: "127.0.0.1", port: up.port, weight: 1 }];
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test("proxy-rewrite: uri template keeps the client's query string; headers add/set/remove; host; method", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/rw", {
      uri: "/ai/:model/predict",
      upstream: { nodes: node },
      plugins: {
        "proxy-rewrite": {
          uri: "/v1/$arg_version/predict",
          method: "PUT",
          host: "models.internal",
          headers: { set: { "X-Model": "$http_x_client" }, add: { "X-Added": "yes" }, remove: ["X-Secret"] },
        },
      },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const res = await call(`${gw.proxyUrl}/ai/llama/predict?version=7`, {
      headers: { "x-client": "sdk", "x-secret": "s3cr3t" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.url, "/v1/7/predict?version=7");
    assert.equal(res.body.method, "PUT");
    assert.equal(res.body.headers.host, "models.internal");
    assert.equal(res.body.headers["x-model"], "sdk");
    assert.equal(res.body.headers["x-added"], "yes");
    assert.equal(res.body.headers["x-secret"], undefined);
  });

  test("proxy-rewrite: regex_uri with captures", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/regex", {
      uri: "/ai/*",
      upstream: { nodes: node },
      plugins: { "proxy-rewrite": { regex_uri: ["^/ai/(.*)", "/$1"] } },
    });
    const res = await call(`${gw.proxyUrl}/ai/predict`);
    assert.equal(res.body.url, "/predict");
  });

  test("request-id: generated, forwarded and returned; a client's id is kept", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/rid", {
      uri: "/rid",
      upstream: { nodes: node },
      plugins: { "request-id": {} },
    });
    const a = await call(`${gw.proxyUrl}/rid`);
    const id = a.headers.get("x-request-id");
    assert.match(id ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(a.body.headers["x-request-id"], id);
    const b = await call(`${gw.proxyUrl}/rid`, { headers: { "X-Request-Id": "client-chosen" } });
    assert.equal(b.headers.get("x-request-id"), "client-chosen");
    assert.equal(b.body.headers["x-request-id"], "client-chosen");
  });

  test("limit-req nodelay rejects immediately with rejected_code and rejected_msg", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/tight", {
      uri: "/tight",
      upstream: { nodes: node },
      plugins: {
        "limit-req": {
          rate: 1,
          burst: 0,
          key: "remote_addr",
          rejected_code: 429,
          rejected_msg: "slow down",
          nodelay: true,
        },
      },
    });
    const first = await call(`${gw.proxyUrl}/tight`);
    const second = await call(`${gw.proxyUrl}/tight`);
    assert.equal(first.status, 200);
    assert.equal(second.status, 429);
    assert.deepEqual(second.body, { error_msg: "slow down" });
  });

  test("global rules run for every route, and before the 404 of unmatched requests", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/global_rules/1", {
      plugins: { "request-id": { header_name: "X-Trace-Id" } },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const routed = await call(`${gw.proxyUrl}/rid`);
    assert.ok(routed.headers.get("x-trace-id"));
    assert.ok(routed.body.headers["x-trace-id"]);
    const missing = await call(`${gw.proxyUrl}/no/such/route`);
    assert.equal(missing.status, 404);
    assert.ok(missing.headers.get("x-trace-id"), "global rule ran on the 404");
    await gw.admin("DELETE", "/apisix/admin/global_rules/1");
    assert.equal((await call(`${gw.proxyUrl}/rid`)).headers.get("x-trace-id"), null);
  });

  test("precedence: route plugins win over plugin_config, which wins over the service", async () => {
    await gw.admin("PUT", "/apisix/admin/services/svc", {
      upstream: { nodes: node },
      plugins: { "proxy-rewrite": { uri: "/from-service" }, "request-id": { header_name: "X-Service-Id" } },
    });
    await gw.admin("PUT", "/apisix/admin/plugin_configs/pc", {
      plugins: { "proxy-rewrite": { uri: "/from-plugin-config" } },
    });
    await gw.admin("PUT", "/apisix/admin/routes/merged", { uri: "/merged", service_id: "svc", plugin_config_id: "pc" });
    let res = await call(`${gw.proxyUrl}/merged`);
    assert.equal(res.body.url, "/from-plugin-config");
    assert.ok(res.headers.get("x-service-id"), "service-only plugins still apply");
    await gw.admin("PATCH", "/apisix/admin/routes/merged", { plugins: { "proxy-rewrite": { uri: "/from-route" } } });
    res = await call(`${gw.proxyUrl}/merged`);
    assert.equal(res.body.url, "/from-route");
  });

  test("_meta.disable turns a plugin off without removing its config", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/meta", {
      uri: "/meta",
      upstream: { nodes: node },
      plugins: { "proxy-rewrite": { uri: "/rewritten", _meta: { disable: true } } },
    });
    assert.equal((await call(`${gw.proxyUrl}/meta`)).body.url, "/meta");
  });

  test("an unrelated config change does not reset limit-req counters", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/keep-count", {
      uri: "/keep-count",
      upstream: { nodes: node },
      plugins: { "limit-req": { rate: 0.1, burst: 0, key: "remote_addr", nodelay: true } },
    });
    assert.equal((await call(`${gw.proxyUrl}/keep-count`)).status, 200);
    await gw.admin("PUT", "/apisix/admin/upstreams/unrelated", { nodes: node });
    assert.equal((await call(`${gw.proxyUrl}/keep-count`)).status, 503, "bucket survived the snapshot swap");
  });
});
