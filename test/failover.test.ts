import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { deadPort } from "./helpers/upstream.js";

const KEY = "sk-sim-failover-0123456789";
const CLAUDE_KEY = "sk-ant-sim-failover-0123";
const logPath = join(mkdtempSync(join(tmpdir(), "weir-failover-log-")), "access.log");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type ApiError = { status?: number; headers?: Headers; error?: any; message?: string };
/** The error a call must fail with. */
const failure = (call: Promise<unknown>): Promise<ApiError> =>
  call.then(
    () => assert.fail("expected the call to fail"),
    (err: ApiError) => err,
  );

describe("failover: sit-outs (Retry-After, failures in a row) and Weir's own Retry-After", () => {
  let gw: TestGateway;
  let simA: LlmSimulator;
  let simB: LlmSimulator;
  let dead: number;

  /**
   * An instance of simulator `sim`. `model` (options.model) makes it a deployment of its own: sit-outs
   * belong to the deployment (provider, endpoint, credentials, model), so each test uses its own and none
   * waits for another's sit-out to end.
   */
  const instance = (name: string, sim: LlmSimulator | string, model: string, extra: Record<string, unknown> = {}) => ({
    name,
    provider: "openai-compatible",
    weight: 1,
    auth: { header: { Authorization: `Bearer ${KEY}` } },
    options: { model },
    override: { endpoint: typeof sim === "string" ? sim : sim.url },
    ...extra,
  });
  const route = (id: string, plugins: Record<string, unknown>, uris?: string[]) =>
    gw.put(`/apisix/admin/routes/${id}`, {
      uris: uris ?? [`/${id}/v1/chat/completions`, `/${id}/v1/messages`],
      plugins,
    });
  const openai = (prefix: string, headers: Record<string, string> = {}) =>
    new OpenAI({ baseURL: `${gw.proxyUrl}/${prefix}/v1`, apiKey: "client", maxRetries: 0, defaultHeaders: headers });
  const ask = (prefix: string, headers: Record<string, string> = {}) =>
    openai(prefix, headers)
      .chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
  const servedBy = async (prefix: string, headers: Record<string, string> = {}) =>
    (await ask(prefix, headers)).response.headers.get("x-ai-instance");
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
    const text = await (
      await fetch(`http://127.0.0.1:${gw.gateway.metricsAddress!.port}/apisix/prometheus/metrics`)
    ).text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(`${name}{`)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
        total += Number(line.split(" ").at(-1));
    }
    return total;
  };

  before(async () => {
    [simA, simB] = await Promise.all([
      startLlmSimulator({ name: "a", apiKey: KEY, ttftMs: 1, interTokenMs: 1 }),
      startLlmSimulator({ name: "b", apiKey: KEY, ttftMs: 1, interTokenMs: 1 }),
    ]);
    dead = await deadPort();
    gw = await startTestGateway({ accessLog: logPath });
  });

  after(async () => {
    await gw.stop();
    await Promise.all([simA.close(), simB.close()]);
  });

  beforeEach(() => {
    simA.reset();
    simB.reset();
  });

  test("Retry-After obeyed to the second: an instance that answered 429 with retry-after: 2 is skipped, then used again", async () => {
    await route("to-the-second", {
      "ai-proxy-multi": {
        instances: [instance("a", simA, "m-second"), instance("b", simB, "m-second")],
        fallback_strategy: ["http_429"],
      },
    });
    simA.behave({ fail: 429, retryAfterS: 2, times: 1 });
    // Round robin starts at either instance: ask until a has given its 429 (b answers meanwhile).
    let start = 0;
    for (let i = 0; i < 4 && simA.requests.length === 0; i++) {
      start = performance.now();
      assert.equal(await servedBy("to-the-second"), "b", "the 429 moved on to b");
    }
    assert.equal(simA.requests.length, 1, "a answered its 429");
    // For the next second every request goes to b, whatever round robin's turn says.
    while (performance.now() - start < 1000) {
      assert.equal(await servedBy("to-the-second"), "b");
      await sleep(100);
    }
    assert.equal(simA.requests.length, 1, "a was not asked while it sat out");
    let back = 0;
    while (performance.now() - start < 3500) {
      if ((await servedBy("to-the-second")) === "a") {
        back = performance.now() - start;
        break;
      }
      await sleep(100);
    }
    assert.ok(back > 1900, `a came back after ${Math.round(back)} ms, not before its 2 s were up`);
    assert.ok(back > 0, "a is back in the rotation by +3.5 s");
    assert.equal(await metric("apisix_llm_instance_cooldowns", { instance: "a", reason: "rate_limited" }), 1);
  });

  test("every balancer skips an instance that sits out: roundrobin, chash, least_conn, ewma", async () => {
    for (const algorithm of ["roundrobin", "chash", "least_conn", "ewma"]) {
      const id = `skip-${algorithm.replace("_", "-")}`;
      await route(id, {
        "ai-proxy-multi": {
          balancer: algorithm === "chash" ? { algorithm, hash_on: "header", key: "x-user" } : { algorithm },
          instances: [instance("a", simA, `m-${id}`), instance("b", simB, `m-${id}`)],
          fallback_strategy: ["http_429"],
        },
      });
      simA.reset();
      simA.behave({ fail: 429, retryAfterS: 5, times: 1 });
      // chash: find a user whose requests hash to a, so a is where they go until it sits out.
      let user = "u0";
      for (let i = 0; i < 20 && simA.requests.length === 0; i++) {
        user = `u${i}`;
        await servedBy(id, { "x-user": user });
      }
      assert.equal(simA.requests.length, 1, `${algorithm}: a answered 429 once`);
      for (let i = 0; i < 6; i++) assert.equal(await servedBy(id, { "x-user": user }), "b", `${algorithm}: call ${i}`);
      assert.equal(simA.requests.length, 1, `${algorithm}: a was skipped while sitting out`);
    }
  });

  test("every instance sitting out: Weir answers 429 with Retry-After in the client's dialect, asking no upstream", async () => {
    await route("all-limited", {
      "ai-proxy-multi": {
        instances: [instance("a", simA, "m-all"), instance("b", simB, "m-all")],
        fallback_strategy: ["http_429"],
      },
    });
    simA.behave({ fail: 429, retryAfterS: 3, times: 1 });
    simB.behave({ fail: 429, retryAfterS: 3, times: 1 });
    // Both answer 429: the last one's answer (with its own retry-after) is the client's.
    await assert.rejects(ask("all-limited"), (err: ApiError) => err.status === 429);
    const asked = simA.requests.length + simB.requests.length;
    assert.equal(asked, 2);

    const err = await failure(ask("all-limited"));
    assert.equal(err.status, 429);
    const seconds = Number(err.headers?.get("retry-after"));
    assert.ok(seconds >= 1 && seconds <= 3, `retry-after ${seconds}: the soonest end, in whole seconds`);
    assert.equal(err.error?.code, "rate_limit_exceeded", "OpenAI's error object");
    assert.equal(err.error?.type, "requests");

    const anthropic = new Anthropic({ baseURL: `${gw.proxyUrl}/all-limited`, apiKey: "client", maxRetries: 0 });
    const aerr = await failure(
      anthropic.messages.create({ model: "m", max_tokens: 16, messages: [{ role: "user", content: "hi" }] }),
    );
    assert.equal(aerr.status, 429);
    assert.ok(Number(aerr.headers?.get("retry-after")) >= 1);
    assert.deepEqual(aerr.error?.error?.type, "rate_limit_error", "Anthropic's error shape");
    assert.equal(simA.requests.length + simB.requests.length, asked, "no upstream was contacted");
  });

  test("a pool sitting out for overload (503 + Retry-After) gets a 503, not a 429", async () => {
    await route("overloaded", {
      "ai-proxy-multi": {
        instances: [instance("a", simA, "m-over"), instance("b", simB, "m-over")],
        fallback_strategy: ["http_429", "http_5xx"],
      },
    });
    simA.behave({ fail: 503, retryAfterS: 3, times: 1 });
    simB.behave({ fail: 429, retryAfterS: 3, times: 1 });
    await assert.rejects(ask("overloaded"));
    const err = await failure(ask("overloaded"));
    assert.equal(err.status, 503);
    assert.ok(Number(err.headers?.get("retry-after")) >= 1);
    assert.equal(err.error?.type, "server_error");
  });

  test("ai-proxy honours Retry-After too: its one instance's 429 is relayed, then Weir answers until it is over", async () => {
    await route("single", {
      "ai-proxy": {
        provider: "openai-compatible",
        auth: { header: { Authorization: `Bearer ${KEY}` } },
        options: { model: "m-single" },
        override: { endpoint: simA.url },
      },
    });
    simA.behave({ fail: 429, retryAfterS: 1, times: 1 });
    const first: ApiError = await failure(ask("single"));
    assert.equal(first.headers?.get("retry-after"), "1", "the provider's own answer and header");
    const second: ApiError = await failure(ask("single"));
    assert.equal(second.status, 429);
    assert.equal(second.headers?.get("retry-after"), "1");
    assert.equal(simA.requests.length, 1, "the sitting-out provider was not asked again");
    await sleep(1100);
    assert.equal(await servedBy("single"), "ai-proxy-openai-compatible", "served again once the second is up");
  });

  test("regression: editing the route while an instance sits out does not put it back in the rotation", async () => {
    const conf = (desc: string, weight: number) => ({
      uri: "/edited/v1/chat/completions",
      desc,
      plugins: {
        "ai-proxy-multi": {
          instances: [instance("a", simA, "m-edit", { priority: 1, weight }), instance("b", simB, "m-edit")],
          fallback_strategy: ["http_429"],
        },
      },
    });
    await gw.put("/apisix/admin/routes/edited", conf("first", 1));
    simA.behave({ fail: 429, retryAfterS: 5, times: 1 });
    assert.equal(await servedBy("edited"), "b");
    await gw.put("/apisix/admin/routes/edited", conf("second", 3));
    await gw.settled();
    for (let i = 0; i < 3; i++) assert.equal(await servedBy("edited"), "b");
    assert.equal(simA.requests.length, 1, "a still sits out after the route and its weight changed");
  });

  test("cooldown.failures: after that many failures in a row an instance sits out cooldown.duration", async () => {
    await route("flaky", {
      "ai-proxy-multi": {
        instances: [instance("a", simA, "m-flaky", { priority: 1 }), instance("b", simB, "m-flaky")],
        fallback_strategy: ["http_5xx"],
        cooldown: { failures: 2, duration: 1 },
      },
    });
    simA.behave({ fail: 500, times: 2 });
    assert.equal(await servedBy("flaky"), "b", "first failure: fallback");
    assert.equal(await servedBy("flaky"), "b", "second failure: fallback, and a sits out");
    const sitOut = performance.now();
    for (let i = 0; i < 3; i++) {
      const { response } = await ask("flaky");
      assert.equal(response.headers.get("x-ai-instance"), "b");
      assert.equal(response.headers.get("x-apisix-upstream-status"), null, "straight to b, no failed attempt first");
    }
    assert.equal(simA.requests.length, 2, "a was not asked while it sat out");
    assert.equal(await metric("apisix_llm_instance_cooldowns", { instance: "a", reason: "failures" }), 1);
    let back = false;
    while (!back && performance.now() - sitOut < 3000) {
      back = (await servedBy("flaky")) === "a";
      if (!back) await sleep(100);
    }
    assert.ok(back, "a is back after its second");
  });

  test("cooldown.failures counts connect errors: a dead instance is skipped after them, without a 502 attempt first", async () => {
    await route("dead", {
      "ai-proxy-multi": {
        instances: [
          instance("gone", `http://127.0.0.1:${dead}`, "m-dead", { priority: 1 }),
          instance("b", simB, "m-dead"),
        ],
        fallback_strategy: ["http_5xx"],
        cooldown: { failures: 1, duration: 30 },
      },
    });
    const first = await ask("dead");
    assert.equal(first.response.headers.get("x-apisix-upstream-status"), "502, 200", "tried the dead one first");
    for (let i = 0; i < 3; i++) {
      const { response } = await ask("dead");
      assert.equal(response.headers.get("x-ai-instance"), "b");
      assert.equal(response.headers.get("x-apisix-upstream-status"), null, "no connect attempt to the dead one");
    }
  });

  test("without cooldown, failures never park an instance (only Retry-After does)", async () => {
    await route("no-cooldown", {
      "ai-proxy-multi": {
        instances: [instance("a", simA, "m-nocd", { priority: 1 }), instance("b", simB, "m-nocd")],
        fallback_strategy: ["http_5xx"],
      },
    });
    simA.behave({ fail: 500, times: 5 });
    for (let i = 0; i < 5; i++) assert.equal(await servedBy("no-cooldown"), "b");
    assert.equal(await servedBy("no-cooldown"), "a");
    assert.equal(simA.requests.length, 6, "a was asked every time");
  });

  test("bad cooldown configs get a 400 naming the field", async () => {
    for (const cooldown of [{ failures: 0 }, { duration: 0 }, { duration: 7200 }, { failure: 3 }]) {
      const res = await gw.admin("PUT", "/apisix/admin/routes/bad-cooldown", {
        uri: "/bad-cooldown",
        plugins: { "ai-proxy-multi": { instances: [instance("a", simA, "m")], cooldown } },
      });
      assert.equal(res.status, 400, JSON.stringify(cooldown));
      assert.match(res.body.error_msg, /cooldown/);
    }
  });

  describe("Weir's own rejections carry Retry-After", () => {
    const call = (path: string, body?: unknown) =>
      fetch(`${gw.proxyUrl}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    test("limit-count: the 429 says when the window gives budget back", async () => {
      await gw.put("/apisix/admin/routes/counted", {
        uri: "/counted",
        plugins: { "limit-count": { count: 1, time_window: 60, rejected_code: 429 } },
        upstream: { type: "roundrobin", nodes: { [new URL(simA.url).host]: 1 } },
      });
      assert.equal((await call("/counted")).status, 404, "the simulator's answer: let through");
      const rejected = await call("/counted");
      assert.equal(rejected.status, 429);
      const seconds = Number(rejected.headers.get("retry-after"));
      assert.ok(seconds >= 59 && seconds <= 60, `retry-after ${seconds}`);
      assert.equal(rejected.headers.get("x-ratelimit-remaining"), "0", "APISIX's headers stay");
    });

    test("limit-req: a rejection says 1/rate seconds", async () => {
      await gw.put("/apisix/admin/routes/req-limited", {
        uri: "/req-limited",
        plugins: { "limit-req": { rate: 0.5, burst: 0, key: "remote_addr", rejected_code: 429 } },
        upstream: { type: "roundrobin", nodes: { [new URL(simA.url).host]: 1 } },
      });
      assert.equal((await call("/req-limited")).status, 404);
      const rejected = await call("/req-limited");
      assert.equal(rejected.status, 429);
      assert.equal(rejected.headers.get("retry-after"), "2");
    });

    test("ai-rate-limiting: an exhausted token budget says when it refills", async () => {
      await route("budget", {
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${KEY}` } },
          options: { model: "m-budget" },
          override: { endpoint: simA.url },
        },
        "ai-rate-limiting": { limit: 10, time_window: 30, rejected_code: 429 },
      });
      await ask("budget");
      const err: ApiError = await failure(ask("budget"));
      assert.equal(err.status, 429);
      const seconds = Number(err.headers?.get("retry-after"));
      assert.ok(seconds >= 29 && seconds <= 30, `retry-after ${seconds}`);
    });
  });
});

describe("cut streams end with the client protocol's error event, never a [DONE]", () => {
  let gw: TestGateway;
  let sim: LlmSimulator;
  let claude: LlmSimulator;

  const broken = { "x-sim-fail": "broken-stream:3" };
  const accessLogLine = async (agent: string): Promise<string> => {
    for (let i = 0; i < 250; i++) {
      const line = readFileSync(logPath, "utf8")
        .split("\n")
        .find((l) => l.includes(`"${agent}"`));
      if (line !== undefined) return line;
      await sleep(20);
    }
    throw new Error(`no access log line for ${agent}`);
  };
  const raw = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.proxyUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
      body: JSON.stringify(body),
    });
    // text() resolves: the response ended cleanly after the error event, it was not reset.
    return { status: res.status, text: await res.text() };
  };

  before(async () => {
    [sim, claude] = await Promise.all([
      startLlmSimulator({ name: "oa", apiKey: KEY, ttftMs: 1, interTokenMs: 1 }),
      startLlmSimulator({ name: "claude", apiKey: CLAUDE_KEY, ttftMs: 1, interTokenMs: 1 }),
    ]);
    gw = await startTestGateway({ accessLog: logPath });
    const openaiCompatible = (extra: Record<string, unknown> = {}) => ({
      "ai-proxy": {
        provider: "openai-compatible",
        auth: { header: { Authorization: `Bearer ${KEY}` } },
        override: { endpoint: sim.url },
        ...extra,
      },
    });
    const anthropic = {
      "ai-proxy": {
        provider: "anthropic",
        auth: { header: { "x-api-key": CLAUDE_KEY } },
        options: { model: "claude-sonnet-4-5" },
        override: { endpoint: claude.url },
      },
    };
    await gw.put("/apisix/admin/routes/oa", {
      uris: ["/oa/v1/chat/completions", "/oa/v1/responses", "/oa/v1/messages"],
      plugins: openaiCompatible(),
    });
    await gw.put("/apisix/admin/routes/claude", {
      uris: ["/claude/v1/chat/completions", "/claude/v1/messages"],
      plugins: anthropic,
    });
    await gw.put("/apisix/admin/routes/capped", {
      uris: ["/capped/v1/chat/completions", "/capped/v1/messages"],
      plugins: openaiCompatible({ max_stream_duration_ms: 150 }),
    });
    await gw.put("/apisix/admin/routes/bytes", {
      uri: "/bytes/v1/chat/completions",
      plugins: openaiCompatible({ max_response_bytes: 3000 }),
    });
  });

  after(async () => {
    await gw.stop();
    await Promise.all([sim.close(), claude.close()]);
  });

  const chatBody = { model: "m", stream: true, messages: [{ role: "user", content: "hi" }] };
  const messagesBody = { model: "m", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] };

  test("OpenAI chat: the SDK throws the cut's error; the wire has a data: {error} frame and no [DONE]", async () => {
    const client = new OpenAI({ baseURL: `${gw.proxyUrl}/oa/v1`, apiKey: "c", maxRetries: 0 });
    const stream = await client.chat.completions.create(chatBody as OpenAI.ChatCompletionCreateParamsStreaming, {
      headers: { ...broken, "user-agent": "cut-chat" },
    });
    let tokens = 0;
    await assert.rejects(
      async () => {
        for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) tokens++;
      },
      (err: Error) => err instanceof OpenAI.APIError && /broke the stream/.test(err.message),
    );
    assert.equal(tokens, 3, "the tokens before the cut arrived");
    const { status, text } = await raw("/oa/v1/chat/completions", chatBody, broken);
    assert.equal(status, 200);
    assert.match(text, /data: \{"error":\{"message":"AI instance [^"]+ broke the stream","type":"server_error"/);
    assert.match(text, /"code":"upstream_broken"\}\}\n\n$/, "the error frame is the last thing sent");
    assert.ok(!text.includes("[DONE]"), "never a fabricated [DONE]");
    assert.match(await accessLogLine("cut-chat"), /" 200 .* llm_stream_cut=upstream_broken$/);
  });

  test("OpenAI Responses: the stream ends with response.failed (status failed, an error), no response.completed", async () => {
    const client = new OpenAI({ baseURL: `${gw.proxyUrl}/oa/v1`, apiKey: "c", maxRetries: 0 });
    const stream = await client.responses.create(
      { model: "gpt-4o-mini", input: "hi", stream: true },
      { headers: broken },
    );
    const types: string[] = [];
    let failed: OpenAI.Responses.ResponseFailedEvent | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.failed") failed = event;
    }
    assert.equal(types.at(-1), "response.failed", types.join(","));
    assert.ok(!types.includes("response.completed"));
    assert.equal(failed!.response.status, "failed");
    assert.equal(failed!.response.error?.code, "server_error");
    assert.match(failed!.response.error?.message ?? "", /broke the stream/);
    assert.match(failed!.response.id, /^resp_/, "the response the stream was about");
    const created = types.indexOf("response.created");
    assert.ok(created >= 0 && failed!.sequence_number > 0, "numbered after the events before it");
    const { text } = await raw("/oa/v1/responses", { model: "gpt-4o-mini", input: "hi", stream: true }, broken);
    assert.match(text, /event: response\.failed\ndata: \{"type":"response\.failed"/);
    assert.ok(!text.includes("[DONE]"));
  });

  test("Anthropic SDK client → OpenAI upstream (translated): the SDK throws on event: error; no message_stop", async () => {
    const client = new Anthropic({ baseURL: `${gw.proxyUrl}/oa`, apiKey: "c", maxRetries: 0 });
    const stream = await client.messages.create(messagesBody as Anthropic.MessageCreateParamsStreaming, {
      headers: broken,
    });
    let text = "";
    await assert.rejects(
      async () => {
        for await (const event of stream)
          if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      },
      (err: Error) => err instanceof Anthropic.APIError && /broke the stream/.test(err.message),
    );
    assert.ok(text.length > 0, "the tokens before the cut arrived");
    const wire = (await raw("/oa/v1/messages", messagesBody, broken)).text;
    assert.match(wire, /event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"[^"]+"\}\}\n\n$/);
    assert.ok(!wire.includes("message_stop") && !wire.includes("[DONE]"));
  });

  test("native Anthropic: the SDK throws on event: error", async () => {
    const client = new Anthropic({ baseURL: `${gw.proxyUrl}/claude`, apiKey: "c", maxRetries: 0 });
    const stream = await client.messages.create(messagesBody as Anthropic.MessageCreateParamsStreaming, {
      headers: broken,
    });
    await assert.rejects(async () => {
      for await (const _ of stream);
    }, Anthropic.APIError);
    const wire = (await raw("/claude/v1/messages", messagesBody, broken)).text;
    assert.match(wire, /event: error\n/);
    assert.ok(!wire.includes("message_stop"));
  });

  test("OpenAI SDK client → Anthropic upstream (translated): the SDK throws; the translator adds no [DONE]", async () => {
    const client = new OpenAI({ baseURL: `${gw.proxyUrl}/claude/v1`, apiKey: "c", maxRetries: 0 });
    const stream = await client.chat.completions.create(chatBody as OpenAI.ChatCompletionCreateParamsStreaming, {
      headers: broken,
    });
    await assert.rejects(async () => {
      for await (const _ of stream);
    }, OpenAI.APIError);
    const wire = (await raw("/claude/v1/chat/completions", chatBody, broken)).text;
    assert.match(wire, /data: \{"error":/);
    assert.ok(!wire.includes("[DONE]") && !wire.includes('"finish_reason":"stop"'));
  });

  test("max_stream_duration_ms and max_response_bytes cut the same way, with their own reason", async () => {
    const slow = { "x-sim-itl-ms": "20", "x-sim-tokens": "200" };
    const client = new OpenAI({ baseURL: `${gw.proxyUrl}/capped/v1`, apiKey: "c", maxRetries: 0 });
    const stream = await client.chat.completions.create(chatBody as OpenAI.ChatCompletionCreateParamsStreaming, {
      headers: { ...slow, "user-agent": "cut-duration" },
    });
    await assert.rejects(
      async () => {
        for await (const _ of stream);
      },
      (err: Error) => /AI stream exceeded 150 ms/.test(err.message),
    );
    assert.match(await accessLogLine("cut-duration"), /llm_stream_cut=max_stream_duration$/);
    const anthropic = new Anthropic({ baseURL: `${gw.proxyUrl}/capped`, apiKey: "c", maxRetries: 0 });
    const astream = await anthropic.messages.create(messagesBody as Anthropic.MessageCreateParamsStreaming, {
      headers: slow,
    });
    await assert.rejects(
      async () => {
        for await (const _ of astream);
      },
      (err: ApiError) => err.error?.error?.type === "timeout_error",
    );
    const big = await raw("/bytes/v1/chat/completions", chatBody, { "x-sim-tokens": "400", "user-agent": "cut-bytes" });
    assert.match(big.text, /data: \{"error":\{"message":"AI response exceeded 3000 bytes"/);
    assert.ok(!big.text.includes("[DONE]"));
    assert.match(await accessLogLine("cut-bytes"), /llm_stream_cut=max_response_bytes$/);
  });

  test("cut streams are counted per route, instance and reason; clean streams are not", async () => {
    const port = gw.gateway.metricsAddress!.port;
    const before = await (await fetch(`http://127.0.0.1:${port}/apisix/prometheus/metrics`)).text();
    const count = (text: string) =>
      Number(
        text
          .split("\n")
          .find(
            (l) =>
              l.startsWith("apisix_llm_stream_cuts{") && l.includes('route_id="oa"') && l.includes("upstream_broken"),
          )
          ?.split(" ")
          .at(-1) ?? 0,
      );
    await raw("/oa/v1/chat/completions", chatBody, broken);
    await raw("/oa/v1/chat/completions", chatBody);
    const afterText = await (await fetch(`http://127.0.0.1:${port}/apisix/prometheus/metrics`)).text();
    assert.equal(count(afterText) - count(before), 1);
    assert.match(
      afterText,
      /apisix_llm_stream_cuts\{route_id="oa",service_id="",instance="ai-proxy-openai-compatible",reason="upstream_broken"\}/,
    );
  });
});
