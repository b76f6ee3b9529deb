import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";

/** The Admin API as an APISIX user's scripts drive it, over a real socket. */
describe("Admin API (APISIX v3 shapes)", () => {
  let gw: TestGateway;
  const upstream = { type: "roundrobin", nodes: [{ host: "127.0.0.1", port: 1980, weight: 1 }] };

  before(async () => {
    gw = await startTestGateway();
  });
  after(async () => gw.stop());

  const raw = (path: string, init: RequestInit = {}) => fetch(`${gw.adminUrl}${path}`, init);

  test("PUT creates (201) then replaces (200) with APISIX's envelope, defaults and timestamps", async () => {
    const created = await gw.admin("PUT", "/apisix/admin/upstreams/u1", upstream);
    assert.equal(created.status, 201);
    assert.equal(created.body.key, "/apisix/upstreams/u1");
    assert.equal(created.body.value.id, "u1");
    assert.equal(created.body.value.pass_host, "pass", "schema defaults are stored");
    assert.equal(typeof created.body.value.create_time, "number");
    assert.equal(typeof created.body.createdIndex, "number");
    const replaced = await gw.admin("PUT", "/apisix/admin/upstreams/u1", { ...upstream, desc: "second" });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.value.create_time, created.body.value.create_time, "create_time survives replace");
    assert.equal(replaced.body.createdIndex, created.body.createdIndex);
    assert.ok(replaced.body.modifiedIndex > created.body.modifiedIndex);
  });

  test("health check configs are accepted with APISIX's fields", async () => {
    const res = await gw.admin("PUT", "/apisix/admin/upstreams/checked", {
      ...upstream,
      checks: {
        active: {
          type: "http",
          host: "models.internal",
          http_path: "/health",
          req_headers: ["User-Agent: weir-check"],
          healthy: { interval: 2, successes: 1, http_statuses: [200] },
          unhealthy: { interval: 1, http_failures: 2, tcp_failures: 1, timeouts: 3 },
        },
        passive: { unhealthy: { http_statuses: [502, 503], http_failures: 3 } },
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await gw.admin("DELETE", "/apisix/admin/upstreams/checked");
  });

  test("GET one, GET missing (404 Key not found), list with total and paging", async () => {
    const one = await gw.admin("GET", "/apisix/admin/upstreams/u1");
    assert.equal(one.status, 200);
    assert.equal(one.body.value.desc, "second");
    const missing = await gw.admin("GET", "/apisix/admin/upstreams/nope");
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { message: "Key not found" });
    for (let i = 0; i < 12; i++)
      await gw.admin("PUT", `/apisix/admin/upstreams/page${i}`, { ...upstream, name: `p${i}` });
    const list = await gw.admin("GET", "/apisix/admin/upstreams");
    assert.equal(list.body.total, 13);
    assert.equal(list.body.list.length, 13);
    const page2 = await gw.admin("GET", "/apisix/admin/upstreams?page=2&page_size=10");
    assert.equal(page2.body.total, 13);
    assert.equal(page2.body.list.length, 3);
    const named = await gw.admin("GET", "/apisix/admin/upstreams?name=p1");
    assert.deepEqual(named.body.list.map((e: { value: { name: string } }) => e.value.name).sort(), [
      "p1",
      "p10",
      "p11",
    ]);
  });

  test("POST generates an id and answers 201", async () => {
    const res = await gw.admin("POST", "/apisix/admin/routes", { uri: "/posted", upstream_id: "u1" });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.value.id, /^\d{20}$/);
    assert.equal(res.body.key, `/apisix/routes/${res.body.value.id}`);
  });

  test("PATCH merges objects, replaces arrays, deletes with null; sub-path PATCH replaces one field", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/p", {
      uri: "/p",
      methods: ["GET", "POST"],
      upstream_id: "u1",
      labels: { team: "ml", env: "dev" },
    });
    const patched = await gw.admin("PATCH", "/apisix/admin/routes/p", {
      methods: ["PUT"],
      labels: { env: null, tier: "gold" },
    });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.body.value.methods, ["PUT"]);
    assert.deepEqual(patched.body.value.labels, { team: "ml", tier: "gold" });
    const sub = await gw.admin("PATCH", "/apisix/admin/routes/p/uri", '"/q"');
    assert.equal(sub.status, 200);
    assert.equal(sub.body.value.uri, "/q");
    const bad = await gw.admin("PATCH", "/apisix/admin/routes/p", { uri: 42 });
    assert.equal(bad.status, 400);
    assert.equal(
      (await gw.admin("GET", "/apisix/admin/routes/p")).body.value.uri,
      "/q",
      "failed PATCH changed nothing",
    );
  });

  test("concurrent PATCHes to different fields all land", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/c", { uri: "/c", upstream_id: "u1", labels: {} });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => gw.admin("PATCH", "/apisix/admin/routes/c", { labels: { [`l${i}`]: "v" } })),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      Array(20).fill(200),
    );
    const labels = (await gw.admin("GET", "/apisix/admin/routes/c")).body.value.labels;
    assert.equal(Object.keys(labels).length, 20);
  });

  test("DELETE answers APISIX's body; a referenced upstream is protected unless force=true", async () => {
    await gw.admin("PUT", "/apisix/admin/upstreams/used", upstream);
    await gw.admin("PUT", "/apisix/admin/routes/user", { uri: "/user", upstream_id: "used" });
    const refused = await gw.admin("DELETE", "/apisix/admin/upstreams/used");
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error_msg, "can not delete this upstream, route [user] is still using it now");
    const forced = await gw.admin("DELETE", "/apisix/admin/upstreams/used?force=true");
    assert.deepEqual(forced.body, { deleted: "1", key: "/apisix/upstreams/used" });
    assert.equal((await gw.admin("DELETE", "/apisix/admin/upstreams/used")).status, 404);
  });

  test("bad bodies get 400 with an error_msg naming the field, and the previous config stays", async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ["PUT", "/apisix/admin/routes/bad", { uri: 42, upstream_id: "u1" }, /"uri".*expected string, got number/],
      ["PUT", "/apisix/admin/routes/bad", { upstream_id: "u1" }, /"uri" is required/],
      [
        "PUT",
        "/apisix/admin/routes/bad",
        { uri: "/x", upstream_id: "ghost" },
        /failed to fetch upstream info by upstream id \[ghost\]/,
      ],
      [
        "PUT",
        "/apisix/admin/routes/bad",
        { uri: "/x", upstream_id: "u1", plugins: { nope: {} } },
        /unknown plugin \[nope\]/,
      ],
      [
        "PUT",
        "/apisix/admin/routes/bad",
        { uri: "/x", upstream_id: "u1", plugins: { "limit-req": { rate: 1 } } },
        /limit-req.*burst/,
      ],
      ["PUT", "/apisix/admin/routes/bad", { uri: "/x", upstream_id: "u1", vars: [["arg_a", "~~", "("]] }, /vars/],
      [
        "PUT",
        "/apisix/admin/routes/bad",
        { uri: "/x", upstream_id: "u1", remote_addrs: ["10.0.0.0/99"] },
        /remote_addrs/,
      ],
      ["PUT", "/apisix/admin/upstreams/bad", { nodes: [{ host: "h", port: 99999, weight: 1 }] }, /nodes\[0\]\.port/],
      ["PUT", "/apisix/admin/upstreams/bad", { nodes: [], pass_host: "rewrite" }, /upstream_host/],
      ["PUT", "/apisix/admin/routes/bad id", { uri: "/x" }, /"id"/],
      [
        "PUT",
        "/apisix/admin/upstreams/bad",
        { nodes: [], checks: { active: { healthy: { intreval: 1 } } } },
        /checks\.active\.healthy.*intreval/,
      ],
      [
        "PUT",
        "/apisix/admin/upstreams/bad",
        { nodes: [], checks: { active: { unhealthy: { http_failures: 0 } } } },
        /checks\.active\.unhealthy\.http_failures/,
      ],
      ["PUT", "/apisix/admin/routes/one", { id: "two", uri: "/x", upstream_id: "u1" }, /wrong route id/],
      ["PUT", "/apisix/admin/routes/bad", "{not json", /invalid request body/],
    ];
    for (const [method, path, body, pattern] of cases) {
      const res = await gw.admin(method, path.replace(" ", "%20"), body);
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body)} → ${JSON.stringify(res.body)}`);
      assert.match(res.body.error_msg, pattern);
    }
    assert.equal((await gw.admin("GET", "/apisix/admin/routes/bad")).status, 404, "nothing was written");
  });

  test("keys: X-API-KEY in any casing, ?api_key=, cookie; viewers may only read; wrong keys get 401", async () => {
    const path = "/apisix/admin/upstreams/u1";
    assert.equal((await raw(path, { headers: { "x-api-key": gw.adminKey } })).status, 200);
    assert.equal((await raw(`${path}?api_key=${gw.adminKey}`)).status, 200);
    assert.equal((await raw(path, { headers: { cookie: `x_api_key=${gw.adminKey}` } })).status, 200);
    const none = await raw(path);
    assert.equal(none.status, 401);
    assert.deepEqual(await none.json(), { error_msg: "failed to check token", description: "missing apikey" });
    assert.equal((await raw(path, { headers: { "X-API-KEY": "wrong-key-wrong-key" } })).status, 401);
    assert.equal((await raw(path, { headers: { "X-API-KEY": gw.viewerKey } })).status, 200);
    const viewerWrite = await raw(path, {
      method: "PUT",
      headers: { "X-API-KEY": gw.viewerKey },
      body: JSON.stringify(upstream),
    });
    assert.equal(viewerWrite.status, 401);
  });

  test("plugins list, plugin schema, and schema validation endpoint", async () => {
    const list = await gw.admin("GET", "/apisix/admin/plugins/list");
    assert.ok(list.body.includes("limit-req") && list.body.includes("proxy-rewrite"));
    const schema = await gw.admin("GET", "/apisix/admin/plugins/limit-req");
    assert.equal(schema.status, 200);
    assert.ok(schema.body.properties.rate);
    const valid = await gw.admin("POST", "/apisix/admin/schema/validate/routes", { uri: "/ok", upstream_id: "u1" });
    assert.equal(valid.status, 200);
    const invalid = await gw.admin("POST", "/apisix/admin/schema/validate/routes", { uri: 1 });
    assert.equal(invalid.status, 400);
  });
});
