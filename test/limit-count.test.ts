import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { headerAuth } from "./helpers/header-auth.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const testAuth = headerAuth();

interface Answer {
  status: number;
  limit: string | null;
  remaining: string | null;
  reset: string | null;
  body: any;
}

describe("limit-count over real sockets", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  before(async () => {
    gw = await startTestGateway({ extraPlugins: [testAuth] });
    up = await startUpstream("model");
    for (const username of ["jack", "rose"]) {
      const res = await gw.admin("PUT", "/apisix/admin/consumers", {
        username,
        plugins: { "test-auth": { user: username } },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });

  async function route(id: string, body: Record<string, unknown>): Promise<void> {
    const res = await gw.admin("PUT", `/apisix/admin/routes/${id}`, { upstream: upstream(), ...body });
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
  }

  async function call(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    const res = await fetchBody(`${gw.proxyUrl}${path}`, { headers });
    return {
      status: res.status,
      limit: res.headers.get("x-ratelimit-limit"),
      remaining: res.headers.get("x-ratelimit-remaining"),
      reset: res.headers.get("x-ratelimit-reset"),
      body: res.body,
    };
  }

  test("APISIX's doc example: quota 1 per 30 s by remote_addr, 429 after, headers on both answers", async () => {
    await route("doc", {
      uri: "/doc",
      plugins: {
        "limit-count": { count: 1, time_window: 30, rejected_code: 429, key_type: "var", key: "remote_addr" },
      },
    });
    const first = await call("/doc");
    assert.equal(first.status, 200);
    assert.deepEqual([first.limit, first.remaining, first.reset], ["1", "0", "30"]);
    const second = await call("/doc");
    assert.equal(second.status, 429);
    assert.deepEqual([second.limit, second.remaining], ["1", "0"]);
    const reset = Number(second.reset);
    assert.ok(reset > 25 && reset <= 30, `reset ${second.reset}`);
    assert.deepEqual(second.body, { error_msg: "Too Many Requests" }, "a bare rejection gets the JSON error shape");
  });

  test("200 concurrent clients on one key with count 50: exactly 50 admitted, headers right on every answer", async () => {
    const N = 50;
    await route("burst", {
      uri: "/burst",
      plugins: { "limit-count": { count: N, time_window: 60, rejected_msg: "over quota" } },
    });
    const answers = await Promise.all(Array.from({ length: 200 }, () => call("/burst")));
    const admitted = answers.filter((a) => a.status === 200);
    const rejected = answers.filter((a) => a.status !== 200);
    assert.equal(admitted.length, N);
    assert.ok(
      rejected.every((a) => a.status === 503),
      `rejections are 503: ${[...new Set(rejected.map((a) => a.status))]}`,
    );
    assert.ok(
      answers.every((a) => a.limit === String(N)),
      "X-RateLimit-Limit on every answer",
    );
    const remaining = admitted.map((a) => Number(a.remaining)).sort((a, b) => a - b);
    assert.deepEqual(
      remaining,
      Array.from({ length: N }, (_, i) => i),
      "each admitted request saw its own remaining",
    );
    assert.ok(
      rejected.every((a) => a.remaining === "0"),
      "rejections say 0 remaining",
    );
    assert.ok(
      answers.every((a) => /^\d+(\.\d{1,2})?$/.test(a.reset!) && Number(a.reset) > 0 && Number(a.reset) <= 60),
      "reset in (0, 60] with at most 2 decimals",
    );
    assert.deepEqual(rejected[0]!.body, { error_msg: "over quota" });
    assert.equal(up.received.filter((r) => r.url === "/burst").length, N, "only admitted requests reached upstream");
  });

  test("a window reset lets requests in again", async () => {
    await route("window", { uri: "/window", plugins: { "limit-count": { count: 2, time_window: 1 } } });
    assert.equal((await call("/window")).status, 200);
    assert.equal((await call("/window")).status, 200);
    const rejected = await call("/window");
    assert.equal(rejected.status, 503);
    assert.ok(Number(rejected.reset) <= 1, `reset ${rejected.reset}`);
    await new Promise((r) => setTimeout(r, 1_300));
    const again = await call("/window");
    assert.equal(again.status, 200);
    assert.deepEqual([again.remaining, again.reset], ["1", "1"], "a fresh window");
  });

  test("routes sharing a group share one budget; routes without one each have their own", async () => {
    const conf = { count: 3, time_window: 60, rejected_code: 429, group: "shared-quota" };
    await route("group-a", { uri: "/group-a", plugins: { "limit-count": conf } });
    await route("group-b", { uri: "/group-b", plugins: { "limit-count": conf } });
    const statuses = [];
    for (const path of ["/group-a", "/group-b", "/group-a", "/group-b", "/group-a"]) {
      statuses.push((await call(path)).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);

    const own = { count: 1, time_window: 60, rejected_code: 429 };
    await route("own-a", { uri: "/own-a", plugins: { "limit-count": own } });
    await route("own-b", { uri: "/own-b", plugins: { "limit-count": own } });
    assert.equal((await call("/own-a")).status, 200);
    assert.equal((await call("/own-b")).status, 200, "identical config on another route: its own budget");
    assert.equal((await call("/own-a")).status, 429);
  });

  test("a service's group is shared by its routes (APISIX's 'share quota among routes' example)", async () => {
    const svc = await gw.admin("PUT", "/apisix/admin/services/limit-count-service", {
      plugins: { "limit-count": { count: 1, time_window: 30, rejected_code: 429, policy: "local", group: "srv1" } },
      upstream: upstream(),
    });
    assert.equal(svc.status, 201, JSON.stringify(svc.body));
    for (const n of [1, 2]) {
      const res = await gw.admin("PUT", `/apisix/admin/routes/limit-count-route-${n}`, {
        service_id: "limit-count-service",
        uri: `/get${n}`,
        plugins: { "proxy-rewrite": { uri: "/get" } },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    assert.equal((await call("/get1")).status, 200);
    assert.equal((await call("/get2")).status, 429);
  });

  test("per-consumer keys: each consumer has its own budget; a route-wide key is not split by consumers", async () => {
    await route("per-consumer", {
      uri: "/per-consumer",
      plugins: {
        "test-auth": {},
        "limit-count": { count: 2, time_window: 60, rejected_code: 429, key: "consumer_name" },
      },
    });
    const as = (user: string) => call("/per-consumer", { "x-test-user": user });
    assert.deepEqual(
      [(await as("jack")).status, (await as("jack")).status, (await as("jack")).status],
      [200, 200, 429],
    );
    const rose = await as("rose");
    assert.equal(rose.status, 200, "rose's budget is untouched by jack's");
    assert.equal(rose.remaining, "1");

    // APISIX's `$remote_addr $consumer_name` example.
    await route("combo", {
      uri: "/combo",
      plugins: {
        "test-auth": {},
        "limit-count": {
          count: 1,
          time_window: 30,
          rejected_code: 429,
          key_type: "var_combination",
          key: "$remote_addr $consumer_name",
        },
      },
    });
    const combo = (user: string) => call("/combo", { "x-test-user": user });
    assert.equal((await combo("rose")).status, 200);
    assert.equal((await combo("rose")).status, 429);
    assert.equal((await combo("jack")).status, 200);
    assert.equal((await combo("jack")).status, 429);

    // Consumers run a merged plugin chain of their own; the route's remote_addr budget must span them all.
    await route("per-ip", {
      uri: "/per-ip",
      plugins: { "test-auth": {}, "limit-count": { count: 2, time_window: 60, rejected_code: 429 } },
    });
    const ip = (user: string) => call("/per-ip", { "x-test-user": user });
    assert.deepEqual(
      [(await ip("jack")).status, (await ip("rose")).status, (await ip("jack")).status],
      [200, 200, 429],
    );
  });

  test("a consumer's own limit-count applies to that consumer only (APISIX's anonymous-consumer example)", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "john",
      plugins: { "test-auth": { user: "john" }, "limit-count": { count: 3, time_window: 30, rejected_code: 429 } },
    });
    await route("consumer-conf", { uri: "/consumer-conf", plugins: { "test-auth": {} } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await call("/consumer-conf", { "x-test-user": "john" })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    const jack = await call("/consumer-conf", { "x-test-user": "jack" });
    assert.equal(jack.status, 200);
    assert.equal(jack.limit, null, "jack has no limit-count");
  });

  test("sliding window: admits the quota, then rejects with the time until room as the reset", async () => {
    await route("sliding", {
      uri: "/sliding",
      plugins: { "limit-count": { count: 2, time_window: 60, window_type: "sliding", rejected_code: 429 } },
    });
    const a = await call("/sliding");
    const b = await call("/sliding");
    const c = await call("/sliding");
    assert.deepEqual([a.status, b.status, c.status], [200, 200, 429]);
    assert.deepEqual([a.remaining, b.remaining, c.remaining], ["1", "0", "0"]);
    assert.ok(Number(c.reset) > 0 && Number(c.reset) <= 60);
  });

  test("show_limit_quota_header false: no X-RateLimit-* headers", async () => {
    await route("quiet", {
      uri: "/quiet",
      plugins: { "limit-count": { count: 1, time_window: 60, show_limit_quota_header: false } },
    });
    const ok = await call("/quiet");
    const no = await call("/quiet");
    assert.deepEqual([ok.status, no.status], [200, 503]);
    assert.deepEqual([ok.limit, ok.remaining, ok.reset, no.limit], [null, null, null, null]);
  });

  test("rules: each applicable rule spends its own budget with its own headers; none applicable is a 500", async () => {
    await route("rules", {
      uri: "/rules",
      plugins: {
        "limit-count": {
          rules: [
            { count: 2, time_window: 60, key: "$http_x_user", header_prefix: "user" },
            { count: 3, time_window: 60, key: "$http_x_team" },
          ],
        },
      },
    });
    const get = (headers: Record<string, string>) => fetchBody(`${gw.proxyUrl}/rules`, { headers });
    const first = await get({ "x-user": "ann", "x-team": "red" });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("x-user-ratelimit-limit"), "2");
    assert.equal(first.headers.get("x-user-ratelimit-remaining"), "1");
    assert.equal(first.headers.get("x-2-ratelimit-limit"), "3", "no header_prefix: the rule's 1-based index");
    assert.equal(first.headers.get("x-2-ratelimit-remaining"), "2");
    const teamOnly = await get({ "x-team": "red" });
    assert.equal(teamOnly.status, 200);
    assert.equal(teamOnly.headers.get("x-user-ratelimit-limit"), null, "a rule whose key is absent does not apply");
    assert.equal(teamOnly.headers.get("x-2-ratelimit-remaining"), "1");
    assert.equal((await get({ "x-user": "ann" })).status, 200);
    const annOver = await get({ "x-user": "ann", "x-team": "blue" });
    assert.equal(annOver.status, 503, "ann's budget of 2 is spent");
    assert.equal(annOver.headers.get("x-user-ratelimit-remaining"), "0");
    assert.equal((await get({ "x-team": "red" })).status, 200, "red's third");
    assert.equal((await get({ "x-team": "red" })).status, 503);
    assert.equal((await get({})).status, 500, "APISIX: no rule applies, the request fails");
  });

  test("the Admin API refuses bad configs with 400 naming the field", async () => {
    const put = (conf: Record<string, unknown>) =>
      gw.admin("PUT", "/apisix/admin/routes/bad", {
        uri: "/bad",
        upstream: upstream(),
        plugins: { "limit-count": conf },
      });
    const redis = await put({ count: 1, time_window: 1, policy: "redis" });
    assert.equal(redis.status, 400);
    assert.match(redis.body.error_msg, /property "redis_host" is required/);
    const zero = await put({ count: 0, time_window: 1 });
    assert.equal(zero.status, 400);
    assert.match(zero.body.error_msg, /property "count" validation failed/);
    const missing = await put({ count: 1 });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error_msg, /property "time_window" is required/);
  });
});
