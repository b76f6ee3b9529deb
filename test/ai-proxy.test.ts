import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { promisify } from "node:util";
import Anthropic from "@anthropic-ai/sdk";
import { countTokens } from "gpt-tokenizer";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";

const run = promisify(execFile);
const logPath = join(mkdtempSync(join(tmpdir(), "weir-ai-log-")), "access.log");

/**
 * The access log line of the request sent with user agent `agent`. A line is written when its response has
 * finished, which can be after the client already has the answer, so wait for it to land.
 */
async function accessLogLineOf(agent: string): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const line = readFileSync(logPath, "utf8")
      .split("\n")
      .find((l) => l.includes(`"${agent}"`));
    if (line !== undefined) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no access log line for user agent ${agent}`);
}
const KEY_A = "sk-sim-instance-a-0123456789";
const KEY_B = "sk-sim-instance-b-0123456789";
const CLAUDE_KEY = "sk-ant-sim-0123456789";

describe("AI proxying (ai-proxy, ai-proxy-multi) with the official SDKs", () => {
  let gw: TestGateway;
  let simA: LlmSimulator;
  let simB: LlmSimulator;
  let claude: LlmSimulator;
  let openai: OpenAI;

  before(async () => {
    [simA, simB, claude] = await Promise.all([
      startLlmSimulator({ name: "a", apiKey: KEY_A, ttftMs: 5, interTokenMs: 2 }),
      startLlmSimulator({ name: "b", apiKey: KEY_B, ttftMs: 5, interTokenMs: 2 }),
      startLlmSimulator({ name: "claude", apiKey: CLAUDE_KEY, ttftMs: 5, interTokenMs: 2 }),
    ]);
    gw = await startTestGateway({ accessLog: logPath });
    const route = (uri: string, plugins: Record<string, unknown>) =>
      gw.admin("PUT", `/apisix/admin/routes/${uri.replaceAll("/", "_")}`, { uri, plugins });
    const instance = (name: string, sim: LlmSimulator, key: string, extra: Record<string, unknown> = {}) => ({
      name,
      provider: "openai-compatible",
      weight: 1,
      auth: { header: { Authorization: `Bearer ${key}` } },
      override: { endpoint: sim.url },
      ...extra,
    });
    const results = await Promise.all([
      route("/single/v1/chat/completions", {
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${KEY_A}` } },
          options: { model: "gpt-4o-mini" },
          override: { endpoint: sim(simA) },
        },
      }),
      route("/multi/v1/chat/completions", {
        "ai-proxy-multi": {
          instances: [instance("a", simA, KEY_A, { priority: 1 }), instance("b", simB, KEY_B)],
          fallback_strategy: ["http_429", "http_5xx"],
        },
      }),
      route("/claude/v1/chat/completions", {
        "ai-proxy": {
          provider: "anthropic",
          auth: { header: { "x-api-key": CLAUDE_KEY } },
          options: { model: "claude-sonnet-4-5" },
          override: { endpoint: claude.url },
        },
      }),
      route("/anthropic-client/v1/messages", {
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${KEY_A}` } },
          override: { endpoint: simA.url },
        },
      }),
      route("/native/v1/messages", {
        "ai-proxy": {
          provider: "anthropic",
          auth: { header: { "x-api-key": CLAUDE_KEY } },
          override: { endpoint: claude.url },
        },
      }),
      route("/capped/v1/chat/completions", {
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${KEY_A}` } },
          override: { endpoint: simA.url },
          max_stream_duration_ms: 150,
        },
      }),
    ]);
    for (const r of results) assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
    openai = new OpenAI({ baseURL: `${gw.proxyUrl}/single/v1`, apiKey: "client-key-not-forwarded", maxRetries: 0 });
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

  const sim = (s: LlmSimulator) => s.url;
  const client = (prefix: string) =>
    new OpenAI({ baseURL: `${gw.proxyUrl}${prefix}/v1`, apiKey: "client-key", maxRetries: 0 });

  test("chat completion: credentials injected, client key dropped, model overridden, usage exact", async () => {
    const res = await openai.chat.completions.create({
      model: "whatever-the-client-says",
      messages: [{ role: "user", content: "Tell me about weirs." }],
    });
    assert.equal(res.object, "chat.completion");
    assert.equal(res.model, "gpt-4o-mini");
    const seen = simA.requests.at(-1)!;
    assert.equal(seen.headers.authorization, `Bearer ${KEY_A}`);
    assert.equal((seen.body as { model: string }).model, "gpt-4o-mini");
    const text = res.choices[0]!.message.content!;
    assert.equal(res.usage!.completion_tokens, countTokens(text));
    assert.ok(res.usage!.prompt_tokens > 0);
  });

  test("streaming: chunks arrive as they are made, usage injected upstream but only sent when asked", async () => {
    const stream = await openai.chat.completions.create({
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "stream please" }],
    });
    const arrivals: number[] = [];
    let text = "";
    let usageChunks = 0;
    for await (const chunk of stream) {
      arrivals.push(performance.now());
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usageChunks++;
    }
    assert.ok(text.length > 0);
    assert.equal(usageChunks, 0, "the client did not ask for usage");
    const upstreamBody = simA.requests.at(-1)!.body as { stream_options?: { include_usage?: boolean } };
    assert.equal(upstreamBody.stream_options?.include_usage, true, "Weir asked for usage to count tokens");
    // 32 tokens 2 ms apart: a re-batching proxy would deliver them in a handful of bursts.
    assert.ok(arrivals.length >= 10, `events arrived as they were made (${arrivals.length} reads)`);

    const withUsage = await openai.chat.completions.create({
      model: "m",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "stream please" }],
    });
    let usage: OpenAI.CompletionUsage | undefined;
    let streamed = "";
    for await (const chunk of withUsage) {
      streamed += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(usage !== undefined);
    assert.equal(usage.completion_tokens, countTokens(streamed));
  });

  test("fallback: a 429 on the first instance is answered by the next, and the response names it", async () => {
    // retry-after 0 asks for no sit-out, so a is back at once (sit-outs: test/failover.test.ts).
    simA.behave({ fail: 429, retryAfterS: 0, times: 1 });
    const res = await client("/multi")
      .chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    assert.equal(res.response.headers.get("x-ai-instance"), "b");
    assert.equal(simA.requests.length, 1);
    assert.equal(simB.requests.length, 1);
    assert.equal((simB.requests[0]!.headers as Record<string, string>).authorization, `Bearer ${KEY_B}`);
    // Without the failure the higher-priority instance serves.
    const again = await client("/multi")
      .chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    assert.equal(again.response.headers.get("x-ai-instance"), "a");
  });

  test("fallback also covers a stream that breaks before its first token, and a dead instance", async () => {
    simA.behave({ fail: "broken-stream:0", times: 1 });
    const stream = await client("/multi").chat.completions.create({
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.ok(text.length > 0);
    assert.equal(simB.requests.length, 1);
  });

  test("a stream cut mid-way after tokens went out reaches the client as a broken stream", async () => {
    simA.behave({ fail: "broken-stream:5", times: 1 });
    const stream = await client("/multi").chat.completions.create({
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) received++;
    });
    assert.ok(received >= 1 && received <= 5, `got ${received} tokens before the cut`);
    assert.equal(simB.requests.length, 0, "no fallback once tokens reached the client");
  });

  test("a client that disconnects cancels the upstream request at once", async () => {
    simA.behave({ interTokenMs: 50, tokens: 200, times: 1 });
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: "m", stream: true, messages: [{ role: "user", content: "long answer" }] },
      { signal: controller.signal },
    );
    let n = 0;
    try {
      for await (const _ of stream) if (++n === 3) controller.abort();
    } catch {
      // the SDK may end the loop or throw on abort; either way the request is gone
    }
    assert.equal(n, 3);
    for (let i = 0; i < 100 && simA.aborted.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(simA.aborted.length, 1, "the simulator saw the gateway hang up");
    assert.ok(simA.aborted[0]!.tokensSent < 20, `stopped early (${simA.aborted[0]!.tokensSent} tokens)`);
  });

  test("an OpenAI SDK client gets answers from a Claude instance, streamed and not", async () => {
    const c = client("/claude");
    const res = await c.chat.completions.create({
      model: "gpt-4o",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hello Claude" },
      ],
    });
    assert.equal(res.object, "chat.completion");
    assert.ok(res.choices[0]!.message.content!.length > 0);
    assert.ok(res.usage!.completion_tokens > 0);
    const upstream = claude.requests.at(-1)!;
    assert.equal(upstream.url, "/v1/messages");
    assert.equal(upstream.headers["x-api-key"], CLAUDE_KEY);
    assert.equal(upstream.headers["anthropic-version"], "2023-06-01");
    assert.equal((upstream.body as { system: unknown }).system, "You are terse.");

    const stream = await c.chat.completions.create({
      model: "gpt-4o",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "Hello Claude" }],
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(text.length > 0);
    assert.equal(usage?.completion_tokens, countTokens(text));
  });

  test("an Anthropic SDK client gets answers from an OpenAI-compatible instance, and from Claude natively", async () => {
    const viaOpenAI = new Anthropic({ baseURL: `${gw.proxyUrl}/anthropic-client`, apiKey: "client", maxRetries: 0 });
    const msg = await viaOpenAI.messages.create({
      model: "gpt-4o-mini",
      max_tokens: 64,
      messages: [{ role: "user", content: "Hi there" }],
    });
    assert.equal(msg.type, "message");
    assert.ok(msg.content[0]?.type === "text" && msg.content[0].text.length > 0);
    assert.equal(simA.requests.at(-1)!.url, "/v1/chat/completions");
    const streamed = await viaOpenAI.messages
      .stream({ model: "gpt-4o-mini", max_tokens: 64, messages: [{ role: "user", content: "Hi there" }] })
      .finalMessage();
    assert.ok(streamed.usage.output_tokens > 0);

    const native = new Anthropic({ baseURL: `${gw.proxyUrl}/native`, apiKey: "client", maxRetries: 0 });
    const nativeStream = native.messages.stream({
      model: "claude-sonnet-4-5",
      max_tokens: 64,
      messages: [{ role: "user", content: "Hi there" }],
    });
    const final = await nativeStream.finalMessage();
    assert.ok(final.usage.output_tokens > 0);
    assert.equal(claude.requests.at(-1)!.headers["x-api-key"], CLAUDE_KEY);
  });

  test("usage is counted in the access log, and estimated with a tokenizer (marked so) when the provider sends none", async () => {
    const asAgent = (agent: string) => ({ headers: { "user-agent": agent } });
    await openai.chat.completions.create(
      { model: "m", messages: [{ role: "user", content: "count me" }] },
      asAgent("usage-reported"),
    );
    simA.behave({ usage: "omit" });
    const res = await openai.chat.completions.create(
      { model: "m", messages: [{ role: "user", content: "count me" }] },
      asAgent("usage-omitted"),
    );
    assert.equal(res.usage, undefined);
    const answer = res.choices[0]!.message.content!;
    const lines = [await accessLogLineOf("usage-reported"), await accessLogLineOf("usage-omitted")];
    assert.match(lines[0]!, /ai_instance=ai-proxy-openai-compatible llm_model=gpt-4o-mini llm_prompt_tokens=\d+ /);
    assert.match(lines[0]!, /llm_usage_estimated=false llm_stream_cut=-$/);
    assert.match(lines[1]!, new RegExp(`llm_completion_tokens=${countTokens(answer)} `));
    assert.match(lines[1]!, /llm_usage_estimated=true llm_stream_cut=-$/);
  });

  test("max_stream_duration_ms cuts a runaway stream", async () => {
    simA.behave({ interTokenMs: 40, tokens: 100, times: 1 });
    const started = performance.now();
    await assert.rejects(async () => {
      const stream = await client("/capped").chat.completions.create({
        model: "m",
        stream: true,
        messages: [{ role: "user", content: "forever" }],
      });
      for await (const _ of stream) {
        // drain
      }
    });
    assert.ok(performance.now() - started < 2000, "cut long before the 4 s answer ended");
  });

  test("raw curl: streaming SSE passes through; malformed bodies get a 400 and the gateway keeps serving", async () => {
    const { stdout } = await run("curl", [
      "-sN",
      `${gw.proxyUrl}/single/v1/chat/completions`,
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "curl" }] }),
    ]);
    assert.match(stdout, /^data: \{/);
    assert.match(stdout, /data: \[DONE\]\n\n$/);
    const bad = await run("curl", [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `${gw.proxyUrl}/single/v1/chat/completions`,
      "-H",
      "content-type: application/json",
      "-d",
      "{not json",
    ]);
    assert.equal(bad.stdout, "400");
    const ok = await openai.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "still here" }],
    });
    assert.ok(ok.choices.length === 1);
  });
});
