import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";

const KEY = "sk-sim-budget-0123456789";

type ApiError = { status?: number; headers?: Headers };

describe("ai-rate-limiting: token budgets, checked before and debited after", () => {
  let gw: TestGateway;
  let simA: LlmSimulator;
  let simB: LlmSimulator;

  const put = (path: string, body: unknown) => gw.put(path, body);
  const instance = (name: string, sim: LlmSimulator) => ({
    name,
    provider: "openai-compatible",
    weight: 1,
    auth: { header: { Authorization: `Bearer ${KEY}` } },
    override: { endpoint: sim.url },
  });
  const client = (prefix: string, headers: Record<string, string> = {}) =>
    new OpenAI({ baseURL: `${gw.proxyUrl}${prefix}/v1`, apiKey: "unused", maxRetries: 0, defaultHeaders: headers });
  const ask = (c: OpenAI) =>
    c.chat.completions.create({ model: "m", messages: [{ role: "user", content: "budget" }] }).withResponse();

  before(async () => {
    [simA, simB] = await Promise.all([
      startLlmSimulator({ name: "a", apiKey: KEY, answerTokens: 30 }),
      startLlmSimulator({ name: "b", apiKey: KEY, answerTokens: 30 }),
    ]);
    gw = await startTestGateway();
    await put("/apisix/admin/routes/route-budget", {
      uri: "/route/v1/chat/completions",
      plugins: {
        "ai-proxy": { provider: "openai-compatible", auth: instance("x", simA).auth, override: { endpoint: simA.url } },
        "ai-rate-limiting": { limit: 50, time_window: 60 },
      },
    });
    await put("/apisix/admin/consumers", { username: "alice", plugins: { "key-auth": { key: "alice-key-0001" } } });
    await put("/apisix/admin/consumers", { username: "bob", plugins: { "key-auth": { key: "bob-key-0002" } } });
    await put("/apisix/admin/routes/consumer-budget", {
      uri: "/consumer/v1/chat/completions",
      plugins: {
        "key-auth": {},
        "ai-proxy": { provider: "openai-compatible", auth: instance("x", simA).auth, override: { endpoint: simA.url } },
        "ai-rate-limiting": {
          rules: [{ count: 50, time_window: 60, key: "$consumer_name", header_prefix: "consumer" }],
          rejected_code: 429,
          rejected_msg: "token budget exhausted",
        },
      },
    });
    await put("/apisix/admin/routes/instance-budget", {
      uri: "/instances/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [
            { ...instance("a", simA), priority: 1 },
            { ...instance("b", simB), priority: 0 },
          ],
          fallback_strategy: ["rate_limiting", "http_429"],
        },
        "ai-rate-limiting": {
          instances: [{ name: "a", limit: 30, time_window: 60 }],
          limit_strategy: "completion_tokens",
        },
      },
    });
    await put("/apisix/admin/routes/expression-budget", {
      uri: "/expr/v1/chat/completions",
      plugins: {
        "ai-proxy": { provider: "openai-compatible", auth: instance("x", simA).auth, override: { endpoint: simA.url } },
        "ai-rate-limiting": {
          limit: 100,
          time_window: 60,
          limit_strategy: "expression",
          cost_expr: "completion_tokens * 2 + max(0, prompt_tokens - 1000)",
        },
      },
    });
  });

  after(async () => {
    await gw.stop();
    await Promise.all([simA.close(), simB.close()]);
  });

  beforeEach(() => {
    simA.reset();
    simB.reset();
  });

  test("the request that crosses the budget is served, the next one is refused, with X-AI-RateLimit-* headers", async () => {
    const c = client("/route");
    const first = await ask(c);
    const used = first.data.usage!.total_tokens;
    assert.ok(used > 30 && used < 50, `one answer costs ${used} tokens`);
    const name = "ai-proxy-openai-compatible";
    assert.equal(first.response.headers.get(`x-ai-ratelimit-limit-${name}`), "50");
    assert.equal(first.response.headers.get(`x-ai-ratelimit-remaining-${name}`), "50");
    const second = await ask(c);
    assert.equal(second.response.headers.get(`x-ai-ratelimit-remaining-${name}`), String(50 - used));
    await assert.rejects(ask(c), (err: ApiError) => {
      assert.equal(err.status, 503);
      assert.equal(err.headers?.get(`x-ai-ratelimit-remaining-${name}`), "0");
      return true;
    });
    assert.equal(simA.requests.length, 2, "the refused request never reached the model");
  });

  test("an edit elsewhere on the route keeps the budget spent; an edit of the budget itself starts afresh", async () => {
    const route = (desc: string, limit: number) => ({
      uri: "/edited/v1/chat/completions",
      desc,
      plugins: {
        "ai-proxy": { provider: "openai-compatible", auth: instance("x", simA).auth, override: { endpoint: simA.url } },
        "ai-rate-limiting": { limit, time_window: 60 },
      },
    });
    await put("/apisix/admin/routes/edited-budget", route("first", 30));
    const c = client("/edited");
    await ask(c); // about 40 tokens: over the 30 budget
    await assert.rejects(ask(c), (err: ApiError) => err.status === 503);
    await put("/apisix/admin/routes/edited-budget", route("renamed", 30));
    await assert.rejects(ask(c), (err: ApiError) => err.status === 503, "the route's edit did not refill the budget");
    await put("/apisix/admin/routes/edited-budget", route("renamed", 1000));
    const fresh = await ask(c);
    assert.equal(fresh.response.headers.get("x-ai-ratelimit-remaining-ai-proxy-openai-compatible"), "1000");
  });

  test("rules keyed by $consumer_name give every consumer its own budget", async () => {
    const alice = client("/consumer", { apikey: "alice-key-0001" });
    const bob = client("/consumer", { apikey: "bob-key-0002" });
    const a1 = await ask(alice);
    assert.equal(a1.response.headers.get("x-ai-consumer-ratelimit-limit"), "50");
    await ask(alice);
    await assert.rejects(ask(alice), (err: ApiError) => {
      assert.equal(err.status, 429);
      return true;
    });
    const raw = await fetch(`${gw.proxyUrl}/consumer/v1/chat/completions`, {
      method: "POST",
      headers: { apikey: "alice-key-0001", "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "budget" }] }),
    });
    assert.deepEqual([raw.status, await raw.json()], [429, { error_msg: "token budget exhausted" }]);
    const b1 = await ask(bob);
    assert.equal(b1.response.headers.get("x-ai-consumer-ratelimit-remaining"), "50");
    await assert.rejects(ask(client("/consumer")), (err: ApiError) => err.status === 401);
  });

  test("an instance over its budget is skipped by ai-proxy-multi's rate_limiting fallback", async () => {
    const c = client("/instances");
    const first = await ask(c);
    assert.equal(first.response.headers.get("x-ai-instance"), "a");
    assert.equal(first.response.headers.get("x-ai-ratelimit-limit-a"), "30");
    const second = await ask(c);
    assert.equal(second.response.headers.get("x-ai-instance"), "b", "a spent its 30 completion tokens");
    assert.equal(simA.requests.length, 1);
    assert.equal(simB.requests.length, 1);
  });

  test("cost_expr prices tokens: 2 per completion token", async () => {
    const c = client("/expr");
    const first = await ask(c);
    assert.equal(first.data.usage!.completion_tokens, 30);
    await ask(c); // 60 spent of 100: still allowed, and now 120
    await assert.rejects(ask(c), (err: ApiError) => err.status === 503);
  });

  test("bad configs get a 400 that names the field", async () => {
    const bad = [
      [{ limit: 10 }, /time_window/],
      [{ limit: 10, time_window: 60, limit_strategy: "expression" }, /cost_expr is required/],
      [{ limit: 10, time_window: 60, limit_strategy: "expression", cost_expr: "os.exit()" }, /invalid cost_expr/],
      [{ limit: 10, time_window: 60, policy: "redis" }, /redis_host/],
      [{ limit: "ten", time_window: 60 }, /property "limit" validation failed/],
      [{ rules: [{ count: 5, time_window: "soon", key: "$consumer_name" }] }, /rules\[0\]\.time_window/],
    ] as const;
    for (const [conf, pattern] of bad) {
      const res = await gw.admin("PUT", "/apisix/admin/routes/bad-budget", {
        uri: "/bad",
        plugins: { "ai-rate-limiting": conf },
      });
      assert.equal(res.status, 400, JSON.stringify(conf));
      assert.match(res.body.error_msg, pattern);
    }
  });
});
