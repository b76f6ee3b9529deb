import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { deadPort } from "./helpers/upstream.js";

const KEY = "sk-sim-multi-0123456789";

describe("ai-proxy-multi: pools of instances, health, protocols, secrets", () => {
  let gw: TestGateway;
  let simA: LlmSimulator;
  let simB: LlmSimulator;
  let claude: LlmSimulator;
  let dead: number;

  const put = (path: string, body: unknown) => gw.put(path, body);
  const instance = (name: string, endpoint: string, extra: Record<string, unknown> = {}) => ({
    name,
    provider: "openai-compatible",
    weight: 1,
    auth: { header: { Authorization: `Bearer ${KEY}` } },
    override: { endpoint },
    ...extra,
  });
  const client = (prefix: string) =>
    new OpenAI({ baseURL: `${gw.proxyUrl}${prefix}/v1`, apiKey: "client", maxRetries: 0 });
  const ask = (prefix: string, headers?: Record<string, string>) =>
    client(prefix)
      .chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }, { headers })
      .withResponse();

  before(async () => {
    [simA, simB, claude] = await Promise.all([
      startLlmSimulator({ name: "a", apiKey: KEY }),
      startLlmSimulator({ name: "b", apiKey: KEY }),
      startLlmSimulator({ name: "claude", apiKey: KEY }),
    ]);
    dead = await deadPort();
    gw = await startTestGateway();
    await put("/apisix/admin/routes/weighted", {
      uris: ["/weighted/v1/chat/completions", "/weighted/v1/embeddings", "/weighted/v1/responses"],
      plugins: {
        "ai-proxy-multi": {
          instances: [instance("a", simA.url, { weight: 3 }), instance("b", simB.url, { weight: 1 })],
        },
      },
    });
    await put("/apisix/admin/routes/dead-first", {
      uri: "/dead/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [instance("gone", `http://127.0.0.1:${dead}`, { priority: 1 }), instance("b", simB.url)],
          fallback_strategy: "http_5xx",
        },
      },
    });
    await put("/apisix/admin/routes/no-fallback", {
      uri: "/strict/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [instance("a", simA.url, { priority: 1 }), instance("b", simB.url)],
        },
      },
    });
    await put("/apisix/admin/routes/bounded", {
      uri: "/bounded/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [
            instance("a", simA.url, { priority: 2 }),
            instance("b", simB.url, { priority: 1 }),
            instance("c", claude.url, { priority: 0 }),
          ],
          fallback_strategy: ["http_429"],
          max_retries: 1,
          max_response_bytes: 400,
        },
      },
    });
    await put("/apisix/admin/routes/checked", {
      uri: "/checked/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [
            instance("gone", `http://127.0.0.1:${dead}`, {
              priority: 1,
              checks: {
                active: {
                  type: "tcp",
                  healthy: { interval: 1, successes: 1 },
                  unhealthy: { interval: 1, tcp_failures: 1 },
                },
              },
            }),
            instance("b", simB.url),
          ],
        },
      },
    });
    await put("/apisix/admin/routes/sticky", {
      uri: "/sticky/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          balancer: { algorithm: "chash", hash_on: "header", key: "x-user", bounded_load: 1.25 },
          instances: [instance("a", simA.url), instance("b", simB.url), instance("c", claude.url)],
        },
      },
    });
    for (const algorithm of ["least_conn", "ewma"]) {
      await put(`/apisix/admin/routes/${algorithm}`, {
        uri: `/${algorithm}/v1/chat/completions`,
        plugins: {
          "ai-proxy-multi": { balancer: { algorithm }, instances: [instance("a", simA.url), instance("b", simB.url)] },
        },
      });
    }
    await put("/apisix/admin/routes/prefix", {
      uri: "/prefix/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          balancer: { algorithm: "chash", hash_on: "vars", key: "llm_prompt_prefix", bounded_load: 1.25 },
          instances: [instance("a", simA.url), instance("b", simB.url), instance("c", claude.url)],
        },
      },
    });
    await put("/apisix/admin/routes/mixed", {
      uri: "/mixed/v1/chat/completions",
      plugins: {
        "ai-proxy-multi": {
          instances: [
            {
              name: "claude",
              provider: "anthropic",
              weight: 1,
              auth: { header: { "x-api-key": KEY } },
              options: { model: "claude-sonnet-4-5" },
              override: { endpoint: claude.url },
            },
          ],
        },
      },
    });
  });

  after(async () => {
    await gw.stop();
    await Promise.all([simA.close(), simB.close(), claude.close()]);
  });

  beforeEach(() => {
    simA.reset();
    simB.reset();
    claude.reset();
  });

  test("weights 3:1 share requests 3:1 (smooth round robin)", async () => {
    const served: string[] = [];
    for (let i = 0; i < 8; i++) served.push((await ask("/weighted")).response.headers.get("x-ai-instance")!);
    assert.equal(served.filter((s) => s === "a").length, 6);
    assert.equal(served.filter((s) => s === "b").length, 2);
  });

  test("embeddings and the Responses API pass through with usage", async () => {
    const c = client("/weighted");
    const emb = await c.embeddings.create({ model: "text-embedding-3-small", input: "a weir" });
    assert.ok(emb.data[0]!.embedding.length > 0);
    assert.ok(emb.usage.prompt_tokens > 0);
    const resp = await c.responses.create({ model: "gpt-4o-mini", input: "What is a weir?" });
    assert.ok(resp.output_text.length > 0);
    assert.ok((resp.usage?.output_tokens ?? 0) > 0);
    const stream = await c.responses.create({ model: "gpt-4o-mini", input: "stream it", stream: true });
    let text = "";
    for await (const event of stream) if (event.type === "response.output_text.delta") text += event.delta;
    assert.ok(text.length > 0);
  });

  test("a dead instance falls back to the next with http_5xx; without a fallback strategy the 502 is the answer", async () => {
    const res = await ask("/dead");
    assert.equal(res.response.headers.get("x-ai-instance"), "b");
    // retry-after 0: no sit-out, so the next tests find a in the rotation (sit-outs: test/failover.test.ts).
    simA.behave({ fail: 503, retryAfterS: 0, times: 1 });
    await assert.rejects(ask("/strict"), (err: { status?: number }) => err.status === 503);
    assert.equal(simB.requests.length, 1, "only the dead-first route reached b");
  });

  test("max_retries bounds the fallbacks; max_response_bytes cuts an oversized answer", async () => {
    simA.behave({ fail: 429, retryAfterS: 0, times: 1 });
    simB.behave({ fail: 429, retryAfterS: 0, times: 1 });
    await assert.rejects(ask("/bounded"), (err: { status?: number }) => err.status === 429);
    assert.deepEqual([simA.requests.length, simB.requests.length, claude.requests.length], [1, 1, 0]);
    simA.behave({ tokens: 400, times: 1 });
    await assert.rejects(ask("/bounded"), "an answer over 400 bytes never reaches the client whole");
  });

  test("active checks take a dead instance out of the rotation", async () => {
    // Until the first probe fails the dead instance is still picked (and, without fallback, fails).
    let served = "";
    for (let i = 0; i < 40 && served !== "b"; i++) {
      try {
        served = (await ask("/checked")).response.headers.get("x-ai-instance")!;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.equal(served, "b");
    for (let i = 0; i < 5; i++) assert.equal((await ask("/checked")).response.headers.get("x-ai-instance"), "b");
    const health = await fetch(`http://127.0.0.1:${gw.gateway.controlAddress!.port}/v1/healthcheck`);
    assert.equal(health.status, 200);
  });

  test("chash keeps each user on one instance", async () => {
    const seen = new Map<string, Set<string>>();
    for (const user of ["u1", "u2", "u3", "u4", "u5", "u6"]) {
      const set = new Set<string>();
      for (let i = 0; i < 3; i++)
        set.add((await ask("/sticky", { "x-user": user })).response.headers.get("x-ai-instance")!);
      seen.set(user, set);
    }
    for (const [user, set] of seen) assert.equal(set.size, 1, `${user} stayed on one instance`);
  });

  test("least_conn counts LLM calls in flight: while one instance holds a call, the next calls go to the other", async () => {
    const held = new AbortController();
    const holding = fetch(`${gw.proxyUrl}/least_conn/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sim-fail": "timeout" },
      body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hold" }] }),
      signal: held.signal,
    }).catch(() => undefined);
    for (let i = 0; i < 200 && simA.inFlight + simB.inFlight === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const busy = simA.inFlight === 1 ? "a" : "b";
    assert.equal(simA.inFlight + simB.inFlight, 1, "the held call reached one instance");
    const served = [];
    for (let i = 0; i < 4; i++) served.push((await ask("/least_conn")).response.headers.get("x-ai-instance"));
    assert.deepEqual(served, Array(4).fill(busy === "a" ? "b" : "a"));
    held.abort();
    await holding;
    for (let i = 0; i < 200 && simA.inFlight + simB.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(simA.inFlight + simB.inFlight, 0, "the held call was cancelled upstream when its client left");
  });

  test("ewma learns each instance's time to first token and sends the calls to the faster one", async () => {
    simA.behave({ ttftMs: 150 });
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 30; i++) {
      const { data: stream, response } = await client("/ewma")
        .chat.completions.create({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] })
        .withResponse();
      for await (const _ of stream);
      if (i >= 10) counts[response.headers.get("x-ai-instance")!]!++;
    }
    // ewma compares two instances per pick and keeps learning, so the slow one still gets the odd call.
    assert.ok(counts.b! >= 16, `after warm-up the fast instance served ${counts.b} of 20 (${JSON.stringify(counts)})`);
  });

  test("prefix affinity: every turn of a conversation reaches the instance that served its first turn", async () => {
    const system = { role: "system" as const, content: "You answer questions about rivers. ".repeat(40) };
    const homes = new Set<string>();
    for (let c = 0; c < 6; c++) {
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [system, { role: "user", content: `topic ${c}` }];
      const served = new Set<string>();
      for (let turn = 0; turn < 3; turn++) {
        const { data, response } = await client("/prefix")
          .chat.completions.create({ model: "m", messages })
          .withResponse();
        served.add(response.headers.get("x-ai-instance")!);
        messages.push({ role: "assistant", content: data.choices[0]!.message.content ?? "" });
        messages.push({ role: "user", content: `follow-up ${turn}` });
      }
      assert.equal(served.size, 1, `conversation ${c} stayed on one instance: ${[...served]}`);
      homes.add([...served][0]!);
    }
    assert.ok(homes.size > 1, "different conversations spread over the instances");
  });

  test("tool calls cross the OpenAI <-> Anthropic translation, both ways", async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather for a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ];
    const res = await client("/mixed").chat.completions.create({
      model: "gpt-4o",
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
      messages: [{ role: "user", content: "Please call the get_weather tool for Paris" }],
    });
    const call = res.choices[0]!.message.tool_calls?.[0];
    assert.ok(call !== undefined && call.type === "function", JSON.stringify(res.choices[0]));
    assert.equal(call.function.name, "get_weather");
    assert.doesNotThrow(() => JSON.parse(call.function.arguments));
    const upstream = claude.requests.at(-1)!.body as { tools: { name: string; input_schema: unknown }[] };
    assert.equal(upstream.tools[0]!.name, "get_weather");

    const stream = await client("/mixed").chat.completions.create({
      model: "gpt-4o",
      tools,
      tool_choice: "required",
      stream: true,
      messages: [{ role: "user", content: "Please call the get_weather tool for Paris" }],
    });
    let args = "";
    let name = "";
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta?.tool_calls?.[0];
      if (d?.function?.name) name = d.function.name;
      args += d?.function?.arguments ?? "";
    }
    assert.equal(name, "get_weather");
    assert.doesNotThrow(() => JSON.parse(args));
  });

  test("an Anthropic SDK client's tool use reaches an OpenAI-compatible model and comes back as tool_use", async () => {
    await put("/apisix/admin/routes/anthropic-tools", {
      uri: "/atools/v1/messages",
      plugins: { "ai-proxy-multi": { instances: [instance("a", simA.url)] } },
    });
    const c = new Anthropic({ baseURL: `${gw.proxyUrl}/atools`, apiKey: "client", maxRetries: 0 });
    const msg = await c.messages.create({
      model: "gpt-4o-mini",
      max_tokens: 128,
      tools: [
        {
          name: "get_weather",
          description: "Weather for a city",
          input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      ],
      tool_choice: { type: "tool", name: "get_weather" },
      messages: [{ role: "user", content: "Please call the get_weather tool for Paris" }],
    });
    const block = msg.content.find((b) => b.type === "tool_use");
    assert.ok(block !== undefined && block.type === "tool_use", JSON.stringify(msg.content));
    assert.equal(block.name, "get_weather");
    assert.equal(msg.stop_reason, "tool_use");
  });

  test("provider keys are stored encrypted and shown masked to viewer keys", async () => {
    const asViewer = await fetch(`${gw.adminUrl}/apisix/admin/routes/weighted`, {
      headers: { "X-API-KEY": gw.viewerKey },
    });
    const viewed = JSON.stringify(await asViewer.json());
    assert.ok(!viewed.includes(KEY), "viewer must not see the provider key");
    assert.match(viewed, /\*\*\*\*\*\*/);
    const asAdmin = await gw.admin("GET", "/apisix/admin/routes/weighted");
    assert.equal(asAdmin.body.value.plugins["ai-proxy-multi"].instances[0].auth.header.Authorization, `Bearer ${KEY}`);
    const stored = await gw.gateway.configStore.get("/apisix/routes/weighted");
    assert.ok(!JSON.stringify(stored!.value).includes(KEY), "the store holds ciphertext");
  });

  test("bad instance configs get a 400 naming the field", async () => {
    const cases = [
      [{ instances: [instance("a", simA.url), instance("a", simB.url)] }, /duplicate instance name/],
      [{ instances: [{ ...instance("a", simA.url), override: undefined }] }, /override\.endpoint is required/],
      [{ instances: [{ ...instance("a", simA.url), provider: "bedrock" }] }, /bedrock/],
      [{ instances: [{ ...instance("a", "ftp://x") }] }, /http or https/],
      [{ instances: [{ ...instance("a", simA.url), weight: undefined }] }, /weight/],
      [{ balancer: { algorithm: "fastest" }, instances: [instance("a", simA.url)] }, /balancer\.algorithm/],
      [{ balancer: { algorithm: "chash", bounded_load: 0.5 }, instances: [instance("a", simA.url)] }, /bounded_load/],
      [
        { balancer: { algorithm: "roundrobin", bounded_load: 1.25 }, instances: [instance("a", simA.url)] },
        /bounded_load/,
      ],
    ] as const;
    for (const [conf, pattern] of cases) {
      const res = await gw.admin("PUT", "/apisix/admin/routes/bad-ai", {
        uri: "/bad-ai",
        plugins: { "ai-proxy-multi": conf },
      });
      assert.equal(res.status, 400, JSON.stringify(conf));
      assert.match(res.body.error_msg, pattern);
    }
  });
});
