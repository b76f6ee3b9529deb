import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("proxy-mirror", () => {
  let gw: TestGateway;
  let primary: TestUpstream;
  let shadow: TestUpstream;
  before(async () => {
    gw = await startTestGateway();
    primary = await startUpstream("primary");
    // a slow shadow: the primary answer must not wait for it
    shadow = await startUpstream("shadow", (_req, res) => setTimeout(() => res.end("ignored"), 3_000));
  });
  after(async () => {
    await gw.stop();
    await primary.close();
    await shadow.close();
  });

  test("a copy with method, path prefix, headers and body reaches the shadow; the client never waits for it", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/mirror", {
      uri: "/v1/*",
      upstream: { nodes: [{ host: "127.0.0.1", port: primary.port, weight: 1 }] },
      plugins: {
        "proxy-mirror": { host: `http://127.0.0.1:${shadow.port}`, path: "/shadow", path_concat_mode: "prefix" },
      },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const started = Date.now();
    const res = await fetchBody(`${gw.proxyUrl}/v1/chat?x=1`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tenant": "t1" },
      body: '{"prompt":"hi"}',
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.node, "primary");
    assert.equal(res.body.body, '{"prompt":"hi"}', "the primary still gets the whole body");
    assert.ok(Date.now() - started < 2_000, "the slow shadow (3 s) did not delay the answer");
    for (let i = 0; i < 40 && shadow.received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    const copy = shadow.received[0]!;
    assert.equal(copy.method, "POST");
    assert.equal(copy.url, "/shadow/v1/chat?x=1");
    assert.equal(copy.headers["x-tenant"], "t1");
    assert.equal(copy.body, '{"prompt":"hi"}');
  });

  test("a dead shadow costs the client nothing", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/mirror-dead", {
      uri: "/dead",
      upstream: { nodes: [{ host: "127.0.0.1", port: primary.port, weight: 1 }] },
      plugins: { "proxy-mirror": { host: "http://127.0.0.1:1" } },
    });
    for (let i = 0; i < 3; i++) assert.equal((await fetchBody(`${gw.proxyUrl}/dead`)).status, 200);
  });
});
