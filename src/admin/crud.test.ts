import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startAdmin, type TestAdmin } from "../../test/helpers/admin-server.js";

const UPSTREAM_BODY = {
  nodes: [
    { host: "127.0.0.1", port: 8001, weight: 1 },
    { host: "127.0.0.1", port: 8002, weight: 1 },
  ],
  type: "roundrobin",
  retries: 2,
  timeout: { connect: 6, send: 6, read: 6 },
};
const ROUTE_BODY = {
  uri: "/ai/predict",
  methods: ["POST"],
  upstream_id: "ai_models_upstream",
  plugins: { "limit-req": { rate: 100, burst: 200, key: "remote_addr", rejected_code: 503 } },
};

describe("Admin API resources: the APISIX walkthrough and CRUD envelopes", () => {
  let admin: TestAdmin;
  before(async () => {
    admin = await startAdmin();
  });
  after(() => admin.close());

  test("PUT the walkthrough upstream: 201, APISIX envelope, defaults filled in, timestamps set", async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await admin.call("PUT", "/apisix/admin/upstreams/ai_models_upstream", UPSTREAM_BODY);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.key, "/apisix/upstreams/ai_models_upstream");
    const v = res.body.value;
    assert.equal(v.id, "ai_models_upstream");
    assert.deepEqual(v.nodes, [
      { host: "127.0.0.1", port: 8001, weight: 1, priority: 0 },
      { host: "127.0.0.1", port: 8002, weight: 1, priority: 0 },
    ]);
    assert.equal(v.hash_on, "vars");
    assert.equal(v.scheme, "http");
    assert.equal(v.pass_host, "pass");
    assert.ok(v.create_time >= before && v.update_time >= before);
    assert.equal(typeof res.body.createdIndex, "number");
    assert.equal(res.body.modifiedIndex, res.body.createdIndex);
    const stored = await admin.store.get("/apisix/upstreams/ai_models_upstream");
    assert.deepEqual(stored?.value, v, "the answer is what the store holds");
  });

  test("PUT the walkthrough route with upstream_id and limit-req: 201, plugin defaults filled in", async () => {
    const res = await admin.call("PUT", "/apisix/admin/routes/ai_prediction_route", ROUTE_BODY);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.key, "/apisix/routes/ai_prediction_route");
    assert.equal(res.body.value.priority, 0);
    assert.equal(res.body.value.status, 1);
    assert.deepEqual(res.body.value.plugins["limit-req"], {
      rate: 100,
      burst: 200,
      key: "remote_addr",
      rejected_code: 503,
      key_type: "var",
    });
  });

  test("every answer is JSON with Weir's Server header and X-API-VERSION v3", async () => {
    const res = await admin.call("GET", "/apisix/admin/routes/ai_prediction_route");
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.match(res.headers.get("server") ?? "", /^Weir\/\d+\.\d+\.\d+/);
    assert.equal(res.headers.get("x-api-version"), "v3");
  });

  test("PUT again replaces (200), keeps create_time and createdIndex, moves modifiedIndex", async () => {
    const first = await admin.call("GET", "/apisix/admin/upstreams/ai_models_upstream");
    const res = await admin.call("PUT", "/apisix/admin/upstreams/ai_models_upstream", { ...UPSTREAM_BODY, retries: 1 });
    assert.equal(res.status, 200);
    assert.equal(res.body.value.retries, 1);
    assert.equal(res.body.value.create_time, first.body.value.create_time);
    assert.equal(res.body.createdIndex, first.body.createdIndex);
    assert.ok(res.body.modifiedIndex > first.body.modifiedIndex);
  });

  test("PUT without an id in the path takes body.id; a body id equal to the path id is fine", async () => {
    const res = await admin.call("PUT", "/apisix/admin/services", { id: "svc", upstream_id: "ai_models_upstream" });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.key, "/apisix/services/svc");
    const same = await admin.call("PUT", "/apisix/admin/services/svc", {
      id: "svc",
      upstream_id: "ai_models_upstream",
    });
    assert.equal(same.status, 200);
    const numeric = await admin.call("PUT", "/apisix/admin/services/7", { id: 7, upstream_id: "ai_models_upstream" });
    assert.equal(numeric.status, 201, "an integer body id equal to the path id");
  });

  test("POST generates a 20-digit zero-padded id and answers 201 with the envelope", async () => {
    const res = await admin.call("POST", "/apisix/admin/routes", { uri: "/posted", upstream_id: "ai_models_upstream" });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.value.id, /^\d{20}$/);
    assert.equal(res.body.key, `/apisix/routes/${res.body.value.id}`);
    const again = await admin.call("POST", "/apisix/admin/routes", {
      uri: "/posted2",
      upstream_id: "ai_models_upstream",
    });
    assert.ok(again.body.value.id > res.body.value.id, "ids increase");
    assert.equal((await admin.call("GET", res.body.key.replace("/apisix/", "/apisix/admin/"))).status, 200);
  });

  test("GET one answers the envelope; a missing key is 404 Key not found", async () => {
    const one = await admin.call("GET", "/apisix/admin/routes/ai_prediction_route");
    assert.equal(one.status, 200);
    assert.deepEqual(Object.keys(one.body).sort(), ["createdIndex", "key", "modifiedIndex", "value"]);
    const missing = await admin.call("GET", "/apisix/admin/routes/nope");
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { message: "Key not found" });
  });

  test("consumers are keyed by username: PUT /consumers with the username in the body", async () => {
    const res = await admin.call("PUT", "/apisix/admin/consumers", {
      username: "jack",
      plugins: { "test-auth": { user: "jack" } },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.key, "/apisix/consumers/jack");
    assert.equal(res.body.value.id, undefined, "consumers carry no id");
    const byPath = await admin.call("PUT", "/apisix/admin/consumers/jack", { username: "jack" });
    assert.equal(byPath.status, 200);
    assert.equal((await admin.call("GET", "/apisix/admin/consumers/jack")).body.value.username, "jack");
  });

  test("consumer groups, global rules and plugin configs round-trip", async () => {
    for (const [path, body] of [
      ["/apisix/admin/consumer_groups/gold", { plugins: { "limit-req": { rate: 1, burst: 1, key: "consumer_name" } } }],
      ["/apisix/admin/global_rules/1", { plugins: { "test-logger": {} } }],
      [
        "/apisix/admin/plugin_configs/pc",
        { name: "shared", plugins: { "limit-req": { rate: 2, burst: 0, key: "k" } } },
      ],
    ] as const) {
      const res = await admin.call("PUT", path, body);
      assert.equal(res.status, 201, `${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.value.id, path.split("/").pop());
    }
  });

  test("plugin metadata: PUT checks the plugin's metadataSchema, stores id = plugin name, no timestamps", async () => {
    const res = await admin.call("PUT", "/apisix/admin/plugin_metadata/test-logger", { log_format: { host: "$host" } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.value, { log_format: { host: "$host" }, batch: 10, id: "test-logger" });
    assert.equal(
      (await admin.call("PUT", "/apisix/admin/plugin_metadata/test-logger", { log_format: {} })).status,
      200,
    );
    const bad = await admin.call("PUT", "/apisix/admin/plugin_metadata/test-logger", { log_format: { a: 1 } });
    assert.equal(bad.status, 400);
    assert.equal(
      bad.body.error_msg,
      'invalid configuration: property "log_format.a" validation failed: wrong type: expected string, got number',
    );
    const noSchema = await admin.call("PUT", "/apisix/admin/plugin_metadata/limit-req", { anything: true });
    assert.equal(noSchema.status, 201, "plugins without a metadata schema accept any object, as APISIX injects one");
    assert.deepEqual((await admin.call("PUT", "/apisix/admin/plugin_metadata/nope", {})).body, {
      error_msg: "invalid plugin name",
    });
    assert.deepEqual((await admin.call("PUT", "/apisix/admin/plugin_metadata", {})).body, {
      error_msg: "missing plugin name",
    });
    const list = await admin.call("GET", "/apisix/admin/plugin_metadata");
    assert.equal(list.body.total, 2);
    const patch = await admin.call("PATCH", "/apisix/admin/plugin_metadata/test-logger", {});
    assert.deepEqual(
      [patch.status, patch.body],
      [405, { error_msg: "not supported `PATCH` method for plugin_metadata" }],
    );
    const del = await admin.call("DELETE", "/apisix/admin/plugin_metadata/limit-req");
    assert.deepEqual(del.body, { deleted: "1", key: "/apisix/plugin_metadata/limit-req" });
  });

  test("DELETE answers {deleted, key}; deleting again is 404", async () => {
    await admin.call("PUT", "/apisix/admin/routes/gone", { uri: "/gone", upstream_id: "ai_models_upstream" });
    const del = await admin.call("DELETE", "/apisix/admin/routes/gone");
    assert.equal(del.status, 200);
    assert.deepEqual(del.body, { deleted: "1", key: "/apisix/routes/gone" });
    const again = await admin.call("DELETE", "/apisix/admin/routes/gone");
    assert.equal(again.status, 404);
    assert.deepEqual(again.body, { message: "Key not found" });
    assert.deepEqual((await admin.call("DELETE", "/apisix/admin/routes")).body, { error_msg: "missing route id" });
  });
});

describe("Admin API lists: total, paging and filters as APISIX 3.x", () => {
  let admin: TestAdmin;
  before(async () => {
    admin = await startAdmin();
    await admin.call("PUT", "/apisix/admin/upstreams/u", { nodes: { "127.0.0.1:80": 1 } });
    await admin.call("PUT", "/apisix/admin/services/s1", { upstream_id: "u" });
    // Created in an order that differs from key order, so paging (createdIndex) and listing (key) differ.
    for (let i = 14; i >= 0; i--) {
      const body: Record<string, unknown> = { uri: `/r/${i}`, name: `route-${i}`, upstream_id: "u" };
      if (i % 2 === 0) body.labels = { team: "ml" };
      if (i < 3) body.service_id = "s1";
      const res = await admin.call("PUT", `/apisix/admin/routes/r${String(i).padStart(2, "0")}`, body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    await admin.call("PUT", "/apisix/admin/routes/multi", { uris: ["/a/x", "/b/y"], upstream_id: "u" });
  });
  after(() => admin.close());

  const ids = (body: { list: { value: { id: string } }[] }) => body.list.map((e) => e.value.id);

  test("GET list answers {total, list} of envelopes, in key order", async () => {
    const res = await admin.call("GET", "/apisix/admin/routes");
    assert.equal(res.status, 200);
    assert.equal(res.body.total, 16);
    assert.equal(res.body.list.length, 16);
    assert.deepEqual(ids(res.body).slice(0, 3), ["multi", "r00", "r01"]);
    assert.deepEqual(Object.keys(res.body.list[0]).sort(), ["createdIndex", "key", "modifiedIndex", "value"]);
  });

  test("an empty list is {total: 0, list: []}", async () => {
    assert.deepEqual((await admin.call("GET", "/apisix/admin/plugin_configs")).body, { total: 0, list: [] });
  });

  test("page and page_size page by createdIndex; total counts everything", async () => {
    const p1 = await admin.call("GET", "/apisix/admin/routes?page=1&page_size=10");
    assert.equal(p1.body.total, 16);
    assert.deepEqual(ids(p1.body).slice(0, 2), ["r14", "r13"], "oldest first");
    assert.equal(p1.body.list.length, 10);
    const p2 = await admin.call("GET", "/apisix/admin/routes?page=2&page_size=10");
    assert.deepEqual(ids(p2.body), ["r04", "r03", "r02", "r01", "r00", "multi"]);
    const p0 = await admin.call("GET", "/apisix/admin/routes?page=0&page_size=10");
    assert.deepEqual(ids(p0.body), ids(p1.body), "a page below 1 is page 1");
    const far = await admin.call("GET", "/apisix/admin/routes?page=5&page_size=10");
    assert.deepEqual(far.body, { total: 16, list: [] });
    const onlyPage = await admin.call("GET", "/apisix/admin/routes?page=2");
    assert.equal(onlyPage.body.list.length, 16, "paging needs both arguments");
  });

  test("page_size outside 10..500 is a 400", async () => {
    for (const size of [5, 501]) {
      const res = await admin.call("GET", `/apisix/admin/routes?page=1&page_size=${size}`);
      assert.equal(res.status, 400);
      assert.deepEqual(res.body, { error_msg: "page_size must be between 10 and 500" });
    }
  });

  test("name and uri are regular expressions; label names a label key; filters intersect", async () => {
    const named = await admin.call("GET", "/apisix/admin/routes?name=route-1");
    assert.deepEqual(ids(named.body).sort(), ["r01", "r10", "r11", "r12", "r13", "r14"]);
    assert.equal(named.body.total, 6);
    const anchored = await admin.call("GET", `/apisix/admin/routes?name=${encodeURIComponent("^route-1$")}`);
    assert.deepEqual(ids(anchored.body), ["r01"]);
    const byUri = await admin.call("GET", "/apisix/admin/routes?uri=/b/");
    assert.deepEqual(ids(byUri.body), ["multi"], "matches inside uris too");
    const labelled = await admin.call("GET", "/apisix/admin/routes?label=team");
    assert.equal(labelled.body.total, 8);
    const both = await admin.call("GET", "/apisix/admin/routes?label=team&name=route-1");
    assert.deepEqual(ids(both.body).sort(), ["r10", "r12", "r14"]);
    const emptyLabel = await admin.call("GET", "/apisix/admin/routes?label=");
    assert.equal(emptyLabel.body.total, 16, "an empty label puts no restriction");
    const paged = await admin.call("GET", "/apisix/admin/routes?label=team&page=1&page_size=10");
    assert.equal(paged.body.total, 8, "total is counted after filtering");
  });

  test("filter=service_id%3D... selects routes by reference (APISIX 3.13)", async () => {
    const res = await admin.call("GET", "/apisix/admin/routes?filter=service_id%3Ds1");
    assert.deepEqual(ids(res.body), ["r00", "r01", "r02"]);
    const ignored = await admin.call("GET", "/apisix/admin/routes?filter=name%3Droute-1");
    assert.equal(ignored.body.total, 16, "fields the resource does not support are ignored");
  });
});
