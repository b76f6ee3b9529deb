import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { headerAuth } from "./helpers/header-auth.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const testAuth = headerAuth();

describe("consumers: plugin merging after authentication", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  before(async () => {
    gw = await startTestGateway({ extraPlugins: [testAuth] });
    up = await startUpstream("model");
    const group = await gw.admin("PUT", "/apisix/admin/consumer_groups/gold", {
      plugins: { "proxy-rewrite": { uri: "/from-group", headers: { set: { "X-Tier": "gold" } } } },
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    const jack = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "jack",
      group_id: "gold",
      plugins: { "test-auth": { user: "jack" }, "proxy-rewrite": { uri: "/from-consumer" } },
    });
    assert.equal(jack.status, 201, JSON.stringify(jack.body));
    await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "rose",
      group_id: "gold",
      plugins: { "test-auth": { user: "rose" } },
    });
    await gw.admin("PUT", "/apisix/admin/consumers", { username: "tom", plugins: { "test-auth": { user: "tom" } } });
    await gw.admin("PUT", "/apisix/admin/routes/merge", {
      uri: "/merge",
      plugins: { "test-auth": {}, "proxy-rewrite": { uri: "/from-route" }, "request-id": {} },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  const call = (user?: string) =>
    fetchBody(`${gw.proxyUrl}/merge`, { headers: user === undefined ? {} : { "x-test-user": user } });

  test("precedence is consumer > consumer group > route", async () => {
    const jack = await call("jack");
    assert.equal(jack.status, 200);
    assert.equal(jack.body.url, "/from-consumer", "the consumer's own config wins");
    const rose = await call("rose");
    assert.equal(rose.body.url, "/from-group", "the group's config beats the route's");
    assert.equal(rose.body.headers["x-tier"], "gold");
    const tom = await call("tom");
    assert.equal(tom.body.url, "/from-route", "no consumer or group config: the route's");
  });

  test("route plugins the consumer does not override keep running, and consumer_name is a variable", async () => {
    const jack = await call("jack");
    assert.ok(jack.headers.get("x-request-id"), "request-id from the route still ran");
  });

  test("unknown consumers are rejected by the auth plugin", async () => {
    assert.equal((await call("nobody")).status, 401);
    assert.equal((await call()).status, 401);
  });

  test("a consumer change reaches the data plane", async () => {
    await gw.admin("PATCH", "/apisix/admin/consumers/jack", { plugins: { "proxy-rewrite": { uri: "/changed" } } });
    assert.equal((await call("jack")).body.url, "/changed");
  });
});
