import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { type RedisServer, redisCommand, startRedis, startRedisCluster, startRedisSentinel } from "./helpers/redis.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";
import { type Running, startWeir } from "./helpers/weir-process.js";

const SIM_KEY = "sk-sim-redis-0123456789";

/**
 * The Redis policies of limit-count and ai-rate-limiting against real Redis servers, with two gateway
 * instances that share nothing but Redis: one in this process, one a separate `weir start` process.
 */
describe("Redis policies: one budget across gateway instances", () => {
  let redis: RedisServer;
  let up: TestUpstream;
  let sim: LlmSimulator;
  let a: TestGateway;
  let b: Running;

  const putBoth = async (path: string, body: unknown) => {
    await a.put(path, body);
    const res = await fetch(`${b.admin}${path}`, {
      method: "PUT",
      headers: { "X-API-KEY": b.key },
      body: JSON.stringify(body),
    });
    assert.ok(res.status === 200 || res.status === 201, `${path} on b: ${await res.text()}`);
  };
  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });
  const redisConf = (extra: Record<string, unknown> = {}) => ({
    policy: "redis",
    redis_host: "127.0.0.1",
    redis_port: redis.port,
    ...extra,
  });
  const onA = (path: string, headers: Record<string, string> = {}) => fetchBody(`${a.proxyUrl}${path}`, { headers });
  const onB = (path: string, headers: Record<string, string> = {}) => fetchBody(`${b.proxy}${path}`, { headers });
  /** Until b's data plane runs what its Admin API took (it syncs from its own store asynchronously). */
  const settledOnB = async (path: string, ok: (status: number) => boolean) => {
    for (let i = 0; i < 100; i++) {
      if (ok((await onB(path)).status)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  before(async () => {
    [redis, up, sim] = await Promise.all([
      startRedis(),
      startUpstream("redis-policy"),
      startLlmSimulator({ name: "redis-sim", apiKey: SIM_KEY, ttftMs: 1, interTokenMs: 1, answerTokens: 30 }),
    ]);
    [a, b] = await Promise.all([startTestGateway(), startWeir()]);
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
    await Promise.all([redis.close(), up.close(), sim.close()]);
  });

  test("limit-count: two instances spend one budget; 200 concurrent clients across both admit exactly 50", async () => {
    await putBoth("/apisix/admin/routes/shared", {
      uri: "/shared",
      upstream: upstream(),
      plugins: { "limit-count": { count: 5, time_window: 60, key_type: "constant", key: "all", ...redisConf() } },
    });
    await settledOnB("/shared", (s) => s !== 404);
    await redisCommand(redis.port, ["FLUSHALL"]); // what the probes spent
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await (i % 2 === 0 ? onA : onB)("/shared")).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 503, 503, 503], "5 in all, alternating a and b");
    const last = await onA("/shared");
    assert.equal(last.headers.get("x-ratelimit-limit"), "5");
    assert.equal(last.headers.get("x-ratelimit-remaining"), "0");

    await putBoth("/apisix/admin/routes/crowd", {
      uri: "/crowd",
      upstream: upstream(),
      plugins: { "limit-count": { count: 50, time_window: 60, key_type: "constant", key: "crowd", ...redisConf() } },
    });
    await settledOnB("/crowd", (s) => s !== 404);
    await redisCommand(redis.port, ["FLUSHALL"]);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? onA : onB)("/crowd").then((r) => r.status)),
    );
    assert.equal(answers.filter((s) => s === 200).length, 50);
    assert.equal(answers.filter((s) => s === 503).length, 150);
  });

  test("limit-req: one leaky bucket across both instances: rate + burst admitted at once, the rest refused", async () => {
    await putBoth("/apisix/admin/routes/bucket", {
      uri: "/bucket",
      upstream: upstream(),
      plugins: {
        "limit-req": { rate: 1, burst: 3, key: "http_x_client", nodelay: true, rejected_code: 429, ...redisConf() },
      },
    });
    await settledOnB("/bucket", (s) => s !== 404);
    const client = { "x-client": "one-client" };
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? onA : onB)("/bucket", client).then((r) => r.status)),
    );
    // 1 (the empty bucket) + burst 3 within the same second, whichever instance took them.
    assert.equal(answers.filter((s) => s === 200).length, 4, answers.join(","));
    assert.equal(answers.filter((s) => s === 429).length, 16);
    assert.equal((await onA("/bucket", { "x-client": "other-client" })).status, 200, "buckets are per key");
  });

  test("limit-conn: requests in flight are counted across both instances, and leave when done", async () => {
    const slow = await startUpstream("slow", (_req, res) => setTimeout(() => res.end("done"), 400));
    try {
      await putBoth("/apisix/admin/routes/conn", {
        uri: "/conn",
        upstream: { nodes: [{ host: "127.0.0.1", port: slow.port, weight: 1 }] },
        plugins: {
          "limit-conn": {
            conn: 2,
            burst: 0,
            default_conn_delay: 0.1,
            key_type: "var",
            key: "http_x_tenant",
            ...redisConf(),
          },
        },
      });
      await settledOnB("/conn", (s) => s !== 404);
      const tenant = { "x-tenant": "t1" };
      const wave = () =>
        Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? onA : onB)("/conn", tenant).then((r) => r.status)),
        );
      const first = await wave();
      assert.equal(first.filter((s) => s === 200).length, 2, first.join(","));
      assert.equal(first.filter((s) => s === 503).length, 4);
      // Each request leaves in its log phase, just after its answer: wait until Redis holds none in flight.
      const inFlight = () =>
        redisCommand(redis.port, [
          "EVAL",
          "local n = 0 for _, k in ipairs(redis.call('KEYS', 'weir:limit-conn:*')) do n = n + redis.call('ZCARD', k) end return n",
          "0",
        ]);
      for (let i = 0; i < 100 && !(await inFlight()).startsWith(":0"); i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(await inFlight(), /^:0/, "every request of the first wave left");
      const second = await wave();
      assert.equal(second.filter((s) => s === 200).length, 2, "the first wave left: room for two again");
    } finally {
      await slow.close();
    }
  });

  test("limit-count sync_interval: one Redis round trip per interval, not per request; instances still share the budget", async () => {
    await putBoth("/apisix/admin/routes/delayed", {
      uri: "/delayed",
      upstream: upstream(),
      plugins: {
        "limit-count": {
          count: 20,
          time_window: 60,
          key: "http_x_budget",
          sync_interval: 0.2,
          ...redisConf(),
        },
      },
    });
    await settledOnB("/delayed", (st) => st !== 404);
    await new Promise((r) => setTimeout(r, 300)); // b's probe (its own key: no x-budget) synced
    await redisCommand(redis.port, ["CONFIG", "RESETSTAT"]);
    const budget = { "x-budget": "shared" };
    const onAStatuses = [];
    for (let i = 0; i < 12; i++) onAStatuses.push((await onA("/delayed", budget)).status);
    assert.deepEqual(new Set(onAStatuses), new Set([200]));
    await new Promise((r) => setTimeout(r, 500)); // a's spending reached Redis
    const stats = await redisCommand(redis.port, ["INFO", "commandstats"]);
    const scriptCalls = [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    assert.ok(scriptCalls <= 4, `12 requests cost ${scriptCalls} script calls`);
    const onBStatuses = [];
    for (let i = 0; i < 12; i++) onBStatuses.push((await onB("/delayed", budget)).status);
    assert.equal(onBStatuses.filter((st) => st === 200).length, 8, `b sees a's 12: ${onBStatuses.join(",")}`);
    const invalid = await a.admin("PUT", "/apisix/admin/routes/delayed-bad", {
      uri: "/delayed-bad",
      upstream: upstream(),
      plugins: { "limit-count": { count: 1, time_window: 1, sync_interval: 2, ...redisConf() } },
    });
    assert.equal(invalid.status, 400);
    assert.match(invalid.body.error_msg, /sync_interval should be smaller than time_window/);
  });

  test("limit-count: the sliding window in Redis admits the quota, then refuses with the time until room", async () => {
    await a.put("/apisix/admin/routes/sliding", {
      uri: "/sliding",
      upstream: upstream(),
      plugins: { "limit-count": { count: 3, time_window: 10, window_type: "sliding", ...redisConf() } },
    });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await onA("/sliding"));
    assert.deepEqual(
      got.map((r) => r.status),
      [200, 200, 200, 503],
    );
    assert.deepEqual(
      got.map((r) => r.headers.get("x-ratelimit-remaining")),
      ["2", "1", "0", "0"],
    );
    const reset = Number(got[3]!.headers.get("x-ratelimit-reset"));
    assert.ok(reset > 0 && reset <= 10, `reset ${reset}`);
  });

  test("Redis down: 500 within redis_timeout, or through with allow_degradation; back when Redis is", async () => {
    await a.put("/apisix/admin/routes/strict", {
      uri: "/strict",
      upstream: upstream(),
      plugins: { "limit-count": { count: 100, time_window: 60, ...redisConf({ redis_timeout: 300 }) } },
    });
    await a.put("/apisix/admin/routes/lenient", {
      uri: "/lenient",
      upstream: upstream(),
      plugins: {
        "limit-count": { count: 100, time_window: 60, allow_degradation: true, ...redisConf({ redis_timeout: 300 }) },
      },
    });
    assert.equal((await onA("/strict")).status, 200);
    await redis.stop();
    try {
      const started = Date.now();
      const strict = await onA("/strict");
      assert.equal(strict.status, 500);
      assert.deepEqual(strict.body, { error_msg: "failed to limit count" });
      assert.ok(Date.now() - started < 3_000, "answered within the timeout, not after a long queue");
      assert.equal((await onA("/lenient")).status, 200);
    } finally {
      await redis.start();
    }
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await onA("/strict")).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, "reconnected");
  });

  test("ai-rate-limiting: a token budget spent on one instance is refused on the other", async () => {
    const route = {
      uri: "/ai/v1/chat/completions",
      plugins: {
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${SIM_KEY}` } },
          override: { endpoint: sim.url },
        },
        "ai-rate-limiting": { limit: 30, time_window: 60, ...redisConf() },
      },
    };
    await putBoth("/apisix/admin/routes/ai-budget", route);
    const ask = (base: string) =>
      new OpenAI({ baseURL: `${base}/ai/v1`, apiKey: "unused", maxRetries: 0 }).chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "budget" }],
      });
    for (let i = 0; i < 100; i++) {
      const probe = await fetch(`${b.proxy}/ai/v1/chat/completions`, { method: "POST", body: "{" });
      if (probe.status !== 404) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const first = await ask(a.proxyUrl);
    assert.ok(first.usage!.total_tokens > 30, "one answer crosses the budget");
    await assert.rejects(ask(b.proxy), (err: { status?: number }) => err.status === 503);
  });

  test("a password-protected Redis: redis_password is stored encrypted, masked for viewers, and used", async () => {
    const guarded = await startRedis({ password: "redis-secret-0123" });
    try {
      const conf = { count: 1, time_window: 60, policy: "redis", redis_host: "127.0.0.1", redis_port: guarded.port };
      await a.put("/apisix/admin/routes/auth-redis", {
        uri: "/auth-redis",
        upstream: upstream(),
        plugins: { "limit-count": { ...conf, redis_password: "redis-secret-0123" } },
      });
      assert.deepEqual([(await onA("/auth-redis")).status, (await onA("/auth-redis")).status], [200, 503]);
      const viewer = await fetchBody(`${a.adminUrl}/apisix/admin/routes/auth-redis`, {
        headers: { "X-API-KEY": a.viewerKey },
      });
      const shown = viewer.body.value.plugins["limit-count"].redis_password;
      assert.notEqual(shown, "redis-secret-0123");
      await a.put("/apisix/admin/routes/auth-redis-wrong", {
        uri: "/auth-redis-wrong",
        upstream: upstream(),
        plugins: { "limit-count": { ...conf, redis_password: "wrong-password", redis_timeout: 300 } },
      });
      assert.equal((await onA("/auth-redis-wrong")).status, 500);
    } finally {
      await guarded.close();
    }
  });

  test("redis-cluster: the budget holds across the cluster's slots", async () => {
    const cluster = await startRedisCluster();
    try {
      await a.put("/apisix/admin/routes/cluster", {
        uri: "/cluster",
        upstream: upstream(),
        plugins: {
          "limit-count": {
            count: 3,
            time_window: 60,
            key: "http_x_user",
            policy: "redis-cluster",
            redis_cluster_nodes: cluster.nodes,
            redis_cluster_name: "weir-test",
          },
        },
      });
      for (const user of ["ann", "bob", "cyd", "dan"]) {
        const statuses = [];
        for (let i = 0; i < 4; i++) statuses.push((await onA("/cluster", { "x-user": user })).status);
        assert.deepEqual(statuses, [200, 200, 200, 503], user);
      }
    } finally {
      await cluster.close();
    }
  });

  test("redis-sentinel: the master is found through Sentinel", async () => {
    const sentinel = await startRedisSentinel("weir-master");
    try {
      await a.put("/apisix/admin/routes/sentinel", {
        uri: "/sentinel",
        upstream: upstream(),
        plugins: {
          "limit-count": {
            count: 2,
            time_window: 60,
            policy: "redis-sentinel",
            redis_sentinels: [sentinel.sentinel],
            redis_master_name: "weir-master",
          },
        },
      });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await onA("/sentinel")).status);
      assert.deepEqual(statuses, [200, 200, 503]);
      const keys = await redisCommand(sentinel.masterPort, ["KEYS", "weir:limit-count:*"]);
      assert.match(keys, /weir:limit-count:/, "the counter lives on the master");
    } finally {
      await sentinel.close();
    }
  });
});
