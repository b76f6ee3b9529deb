import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("key-auth and basic-auth (APISIX doc examples)", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });
  const get = (path: string, headers: Record<string, string> = {}) => fetchBody(`${gw.proxyUrl}${path}`, { headers });
  const put = (path: string, body: unknown) => gw.put(path, body);

  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("svc");
    await put("/apisix/admin/consumers", { username: "jack", plugins: { "key-auth": { key: "jack-key" } } });
    await put("/apisix/admin/consumers", { username: "john" });
    await put("/apisix/admin/consumers/john/credentials/cred-john-basic-auth", {
      plugins: { "basic-auth": { username: "johndoe", password: "john-key" } },
    });
    await put("/apisix/admin/consumers", { username: "anonymous" });
    await put("/apisix/admin/routes/key-auth-route", {
      uri: "/anything",
      plugins: { "key-auth": {} },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/key-auth-custom", {
      uri: "/custom",
      plugins: { "key-auth": { header: "Authorization", query: "auth", hide_credentials: true } },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/key-auth-rewritten", {
      uri: "/rewritten/*",
      plugins: {
        "key-auth": { hide_credentials: true },
        "proxy-rewrite": { regex_uri: ["^/rewritten/(.*)", "/inner/$1"] },
      },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/key-auth-anon", {
      uri: "/anon",
      plugins: { "key-auth": { anonymous_consumer: "anonymous", hide_credentials: true } },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/basic-auth-route", {
      uri: "/basic",
      plugins: { "basic-auth": {} },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/basic-auth-hide", {
      uri: "/basic-hide",
      plugins: { "basic-auth": { hide_credentials: true, realm: "staff" } },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/basic-anon", {
      uri: "/basic-anon",
      plugins: { "basic-auth": { anonymous_consumer: "missing-consumer" } },
      upstream: upstream(),
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test("key-auth: valid key in the header or the query authenticates", async () => {
    const header = await get("/anything", { apikey: "jack-key" });
    assert.equal(header.status, 200);
    assert.equal(header.body.headers["x-consumer-username"], "jack");
    assert.equal(header.body.headers.apikey, "jack-key", "kept without hide_credentials");
    assert.equal(header.body.headers["x-credential-identifier"], undefined, "consumer-level key: no credential id");
    const query = await get("/anything?apikey=jack-key");
    assert.equal(query.status, 200);
    assert.equal(query.body.url, "/anything?apikey=jack-key");
  });

  test("key-auth: missing and invalid keys get APISIX's 401s", async () => {
    const missing = await get("/anything");
    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body, { message: "Missing API key in request" });
    assert.equal(missing.headers.get("www-authenticate"), 'apikey realm="key"');
    const wrong = await get("/anything", { apikey: "wrong-key" });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.body, { message: "Invalid API key in request" });
    assert.equal(up.received.filter((r) => r.headers.apikey === "wrong-key").length, 0);
  });

  test("key-auth: custom header and query names, hide_credentials strips them", async () => {
    const header = await get("/custom", { Authorization: "jack-key" });
    assert.equal(header.status, 200);
    assert.equal(header.body.headers.authorization, undefined);
    const query = await get("/custom?a=1&auth=jack-key&b=2");
    assert.equal(query.status, 200);
    assert.equal(query.body.url, "/custom?a=1&b=2");
    assert.equal((await get("/custom", { apikey: "jack-key" })).status, 401, "the default name no longer works");
  });

  test("key-auth: a hidden query key stays hidden when proxy-rewrite rebuilds the uri from the query", async () => {
    const res = await get("/rewritten/x?a=1&apikey=jack-key&b=2");
    assert.equal(res.status, 200);
    assert.equal(res.body.url, "/inner/x?a=1&b=2");
  });

  test("key-auth: anonymous_consumer takes requests without a valid key, credentials stripped", async () => {
    const anon = await get("/anon?apikey=bad", { apikey: "bad" });
    assert.equal(anon.status, 200);
    assert.equal(anon.body.headers["x-consumer-username"], "anonymous");
    assert.equal(anon.body.headers.apikey, undefined);
    assert.equal(anon.body.url, "/anon");
    const known = await get("/anon", { apikey: "jack-key" });
    assert.equal(known.body.headers["x-consumer-username"], "jack");
  });

  test("basic-auth: the doc example (credential johndoe:john-key)", async () => {
    const ok = await get("/basic", { Authorization: basic("johndoe", "john-key") });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.headers["x-consumer-username"], "john");
    assert.equal(ok.body.headers["x-credential-identifier"], "cred-john-basic-auth");
    assert.ok(ok.body.headers.authorization, "kept without hide_credentials");
  });

  test("basic-auth: failures answer 401 with WWW-Authenticate", async () => {
    const cases: [Record<string, string>, string][] = [
      [{}, "Missing authorization in request"],
      [{ Authorization: "Bearer abc" }, "Invalid authorization in request"],
      [{ Authorization: `Basic ${Buffer.from("no-colon").toString("base64")}` }, "Invalid authorization in request"],
      [{ Authorization: basic("johndoe", "wrong") }, "Invalid user authorization"],
      [{ Authorization: basic("johndoe", "john-ke") }, "Invalid user authorization"],
      [{ Authorization: basic("nobody", "john-key") }, "Invalid user authorization"],
    ];
    for (const [headers, message] of cases) {
      const res = await get("/basic", headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.deepEqual(res.body, { message });
      assert.equal(res.headers.get("www-authenticate"), 'Basic realm="basic"');
    }
    assert.equal((await get("/basic-hide")).headers.get("www-authenticate"), 'Basic realm="staff"');
  });

  test("basic-auth: hide_credentials removes Authorization; a missing anonymous consumer is a 401", async () => {
    const hidden = await get("/basic-hide", { Authorization: basic("johndoe", "john-key") });
    assert.equal(hidden.status, 200);
    assert.equal(hidden.body.headers.authorization, undefined);
    const anon = await get("/basic-anon");
    assert.equal(anon.status, 401);
    assert.deepEqual(anon.body, { message: "Invalid user authorization" });
  });

  test("bad plugin configs are 400s naming the field", async () => {
    const realm = await gw.admin("PUT", "/apisix/admin/routes/bad", {
      uri: "/bad",
      plugins: { "basic-auth": { realm: 'a"b' } },
      upstream: upstream(),
    });
    assert.equal(realm.status, 400);
    assert.match(realm.body.error_msg, /realm/);
    const consumer = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "broken",
      plugins: { "basic-auth": { username: "broken" } },
    });
    assert.equal(consumer.status, 400);
    assert.match(consumer.body.error_msg, /password/);
  });

  test("limit-req keyed by consumer_name gives each consumer its own budget", async () => {
    await put("/apisix/admin/consumers", { username: "alice", plugins: { "key-auth": { key: "alice-key" } } });
    await put("/apisix/admin/consumers", { username: "bob", plugins: { "key-auth": { key: "bob-key" } } });
    await put("/apisix/admin/routes/limited", {
      uri: "/limited",
      plugins: {
        "key-auth": {},
        "limit-req": { rate: 0.001, burst: 0, key: "consumer_name", rejected_code: 429, nodelay: true },
      },
      upstream: upstream(),
    });
    assert.equal((await get("/limited", { apikey: "alice-key" })).status, 200);
    assert.equal((await get("/limited", { apikey: "alice-key" })).status, 429, "alice's budget is spent");
    assert.equal((await get("/limited", { apikey: "bob-key" })).status, 200, "bob has his own");
    assert.equal((await get("/limited", { apikey: "bob-key" })).status, 429);
  });
});
