import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { encode, encodeChat } from "gpt-tokenizer";
import OpenAI from "openai";
import { parseLlmSimArgs } from "./cli.js";
import { type LlmSimulator, startLlmSimulator } from "./index.js";
import { tokenPieces } from "./tokens.js";

const KEY = "sim-test-key";
const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city"],
    },
  },
};

let sim: LlmSimulator;
let oai: OpenAI;
let claude: Anthropic;

before(async () => {
  sim = await startLlmSimulator({ apiKey: KEY, name: "sim-a" });
  oai = new OpenAI({ apiKey: KEY, baseURL: `${sim.url}/v1`, maxRetries: 0 });
  claude = new Anthropic({ apiKey: KEY, baseURL: sim.url, maxRetries: 0 });
});
after(() => sim.close());

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const auth: Record<string, string> =
    path === "/v1/messages" ? { "x-api-key": KEY, "anthropic-version": "2023-06-01" } : {};
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...auth, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

/** SSE events of a whole response body: [event name or null, parsed data or the raw "[DONE]"]. */
async function sseEvents(res: Response): Promise<[string | null, any][]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? null;
      const data = lines.find((l) => l.startsWith("data: "))!.slice(6);
      return [event, data === "[DONE]" ? data : JSON.parse(data)];
    });
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), `timed out waiting for ${what}`);
}

const question = [
  { role: "system" as const, content: "You are terse." },
  { role: "user" as const, content: "What is Flash-MoE?" },
];

describe("OpenAI chat completions through the official SDK", () => {
  test("a non-stream answer is a chat.completion whose usage is gpt-tokenizer's count", async () => {
    const { data, response } = await oai.chat.completions
      .create({ model: "gpt-4o-mini", messages: question })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.match(data.id, /^chatcmpl-/);
    assert.equal(data.model, "gpt-4o-mini");
    const choice = data.choices[0]!;
    assert.equal(choice.finish_reason, "stop");
    assert.equal(choice.logprobs, null);
    assert.equal(choice.message.role, "assistant");
    assert.equal(choice.message.refusal, null);
    const text = choice.message.content!;
    assert.ok(text.length > 20);
    assert.equal(data.usage!.prompt_tokens, encodeChat(question, "gpt-4o").length);
    assert.equal(data.usage!.completion_tokens, encode(text).length);
    assert.equal(data.usage!.completion_tokens, 32);
    assert.equal(data.usage!.total_tokens, data.usage!.prompt_tokens + data.usage!.completion_tokens);
    assert.equal(data.usage!.prompt_tokens_details!.cached_tokens, 0);
    assert.equal(data.usage!.completion_tokens_details!.reasoning_tokens, 0);
    assert.equal(response.headers.get("x-sim-instance"), "sim-a");
    assert.match(response.headers.get("x-request-id")!, /^req_/);
  });

  test("answers are a function of the prompt: same prompt, same text; other prompt, other text", async () => {
    const ask = (content: string) =>
      oai.chat.completions
        .create({ model: "m", messages: [{ role: "user", content }] })
        .then((c) => c.choices[0]!.message.content);
    const [a, b, c] = await Promise.all([ask("one"), ask("one"), ask("two")]);
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test("a stream sends the role first, one chunk per token, finish_reason, then usage and [DONE]", async () => {
    const whole = await oai.chat.completions.create({ model: "gpt-4o-mini", messages: question });
    const stream = await oai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: question,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
    const tokenChunks = chunks.filter((c) => c.choices[0]?.delta.content);
    assert.equal(tokenChunks.length, whole.usage!.completion_tokens);
    assert.equal(tokenChunks.map((c) => c.choices[0]!.delta.content).join(""), whole.choices[0]!.message.content);
    const usageChunk = chunks.at(-1)!;
    assert.deepEqual(usageChunk.choices, []);
    assert.deepEqual(usageChunk.usage, whole.usage);
    assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, "stop");
    for (const c of chunks) assert.equal(c.object, "chat.completion.chunk");
  });

  test("without include_usage a stream carries no usage at all, like OpenAI", async () => {
    const events = await sseEvents(
      await post("/v1/chat/completions", { model: "m", messages: question, stream: true }),
    );
    assert.equal(events.at(-1)![1], "[DONE]");
    for (const [, data] of events.slice(0, -1)) assert.equal("usage" in data, false);
  });

  test("max_tokens and max_completion_tokens cap the answer with finish_reason length", async () => {
    const a = await oai.chat.completions.create({ model: "m", messages: question, max_tokens: 5 });
    assert.equal(a.choices[0]!.finish_reason, "length");
    assert.equal(a.usage!.completion_tokens, 5);
    const b = await oai.chat.completions.create({ model: "m", messages: question, max_completion_tokens: 7 });
    assert.equal(b.usage!.completion_tokens, 7);
    assert.equal(encode(b.choices[0]!.message.content!).length, 7);
  });

  test("a stop sequence ends the answer before it", async () => {
    const full = (await oai.chat.completions.create({ model: "m", messages: question })).choices[0]!.message.content!;
    const stop = full.split(" ")[3]!;
    const cut = await oai.chat.completions.create({ model: "m", messages: question, stop: [stop] });
    assert.equal(cut.choices[0]!.message.content, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0]!.finish_reason, "stop");
  });

  test("x-sim-tokens sets the answer length", async () => {
    const res = await post("/v1/chat/completions", { model: "m", messages: question }, { "x-sim-tokens": "3" });
    assert.equal((await res.json()).usage.completion_tokens, 3);
  });

  test("a request for a tool gets a tool call, streamed as argument fragments", async () => {
    const messages = [{ role: "user" as const, content: "Use get_weather for Paris" }];
    const call = await oai.chat.completions.create({ model: "m", messages, tools: [WEATHER_TOOL] });
    const choice = call.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const toolCall = choice.message.tool_calls![0]!;
    assert.equal(toolCall.type, "function");
    assert.match(toolCall.id, /^call_/);
    assert.ok(toolCall.type === "function");
    assert.equal(toolCall.function.name, "get_weather");
    assert.deepEqual(JSON.parse(toolCall.function.arguments), { city: "sample city", unit: "celsius" });
    assert.equal(call.usage!.completion_tokens, encode(toolCall.function.arguments).length);

    const stream = await oai.chat.completions.create({ model: "m", messages, tools: [WEATHER_TOOL], stream: true });
    let args = "";
    let fragments = 0;
    let finish: string | null = null;
    let name: string | undefined;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta;
      name ??= delta?.tool_calls?.[0]?.function?.name;
      const piece = delta?.tool_calls?.[0]?.function?.arguments;
      if (piece) {
        args += piece;
        fragments++;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(name, "get_weather");
    assert.equal(args, toolCall.function.arguments);
    assert.ok(fragments > 1);
    assert.equal(finish, "tool_calls");
  });

  test("tool_choice decides: a named function is called (finish stop), none never, results get words", async () => {
    const plain = [{ role: "user" as const, content: "hello" }];
    const forced = await oai.chat.completions.create({
      model: "m",
      messages: plain,
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    assert.equal(forced.choices[0]!.message.tool_calls![0]!.type, "function");
    assert.equal(forced.choices[0]!.finish_reason, "stop");
    const required = await oai.chat.completions.create({
      model: "m",
      messages: plain,
      tools: [WEATHER_TOOL],
      tool_choice: "required",
    });
    assert.equal(required.choices[0]!.finish_reason, "tool_calls");
    const none = await oai.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "use get_weather" }],
      tools: [WEATHER_TOOL],
      tool_choice: "none",
    });
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
    const afterResult = await oai.chat.completions.create({
      model: "m",
      tools: [WEATHER_TOOL],
      messages: [
        { role: "user", content: "use get_weather" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
    });
    assert.equal(afterResult.choices[0]!.finish_reason, "stop");
    assert.ok(afterResult.choices[0]!.message.content!.length > 0);
  });

  test("x-sim-usage: omit leaves usage out, even when a stream asks for it", async () => {
    const whole = await (
      await post("/v1/chat/completions", { model: "m", messages: question }, { "x-sim-usage": "omit" })
    ).json();
    assert.equal(whole.usage, undefined);
    const events = await sseEvents(
      await post(
        "/v1/chat/completions",
        { model: "m", messages: question, stream: true, stream_options: { include_usage: true } },
        { "x-sim-usage": "omit" },
      ),
    );
    assert.equal(
      events.some(([, d]) => d !== "[DONE]" && d.usage),
      false,
    );
  });

  test("bad requests get OpenAI's 400s naming the parameter", async () => {
    const noMessages = await post("/v1/chat/completions", { model: "m" });
    assert.equal(noMessages.status, 400);
    assert.deepEqual((await noMessages.json()).error, {
      message: "Missing required parameter: 'messages'.",
      type: "invalid_request_error",
      param: "messages",
      code: "missing_required_parameter",
    });
    const badJson = await post("/v1/chat/completions", "{not json");
    assert.equal(badJson.status, 400);
    assert.equal((await badJson.json()).error.type, "invalid_request_error");
    const badCap = await post("/v1/chat/completions", { model: "m", messages: question, max_tokens: 0 });
    assert.equal((await badCap.json()).error.param, "max_tokens");
    const badHeader = await post(
      "/v1/chat/completions",
      { model: "m", messages: question },
      { "x-sim-fail": "banana" },
    );
    assert.equal(badHeader.status, 400);
    assert.match((await badHeader.json()).error.message, /x-sim-fail/);
  });
});

describe("other OpenAI endpoints", () => {
  test("embeddings are deterministic unit vectors; the SDK's base64 default decodes to the float answer", async () => {
    const viaSdk = await oai.embeddings.create({ model: "text-embedding-3-small", input: ["hello world", "other"] });
    assert.equal(viaSdk.object, "list");
    assert.equal(viaSdk.data.length, 2);
    const v = viaSdk.data[0]!.embedding;
    assert.equal(v.length, 1536);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-3);
    assert.notDeepEqual(v, viaSdk.data[1]!.embedding);
    assert.equal(viaSdk.usage.prompt_tokens, encode("hello world").length + encode("other").length);
    const floats = await (
      await post("/v1/embeddings", { model: "text-embedding-3-small", input: "hello world", encoding_format: "float" })
    ).json();
    assert.deepEqual(floats.data[0].embedding, v);
    const small = await oai.embeddings.create({ model: "text-embedding-3-large", input: "x", dimensions: 256 });
    assert.equal(small.data[0]!.embedding.length, 256);
  });

  test("legacy completions default to 16 tokens", async () => {
    const c = await oai.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "Say something" });
    assert.equal(c.object, "text_completion");
    assert.match(c.id, /^cmpl-/);
    assert.equal(c.choices[0]!.finish_reason, "length");
    assert.equal(c.usage!.completion_tokens, 16);
    assert.equal(c.usage!.prompt_tokens, encode("Say something").length);
    const stream = await oai.completions.create({ model: "m", prompt: "Say something", stream: true, max_tokens: 4 });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    assert.equal(encode(text).length, 4);
  });

  test("GET /v1/models lists models", async () => {
    const ids = [];
    for await (const m of oai.models.list()) ids.push(m.id);
    assert.ok(ids.includes("gpt-4o-mini"));
  });

  test("the Responses API answers non-stream and with its real event sequence", async () => {
    const r = await oai.responses.create({ model: "gpt-4o", input: "Tell me a story", instructions: "Be brief" });
    assert.equal(r.object, "response");
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, "completed");
    const message = r.output[0]!;
    assert.equal(message.type, "message");
    assert.ok(message.type === "message" && message.content[0]!.type === "output_text");
    assert.equal(r.usage!.output_tokens, encode(r.output_text).length);
    assert.equal(r.usage!.total_tokens, r.usage!.input_tokens + r.usage!.output_tokens);
    assert.equal(r.usage!.input_tokens_details.cached_tokens, 0);

    const streamed = await oai.responses
      .stream({ model: "gpt-4o", input: "Tell me a story", instructions: "Be brief" })
      .finalResponse();
    assert.equal(streamed.output_text, r.output_text);
    assert.deepEqual(streamed.usage, r.usage);

    const events = await sseEvents(
      await post("/v1/responses", { model: "gpt-4o", input: "Tell me a story", stream: true }),
    );
    const names = [...new Set(events.map(([e]) => e))];
    assert.deepEqual(names, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    events.forEach(([event, data], i) => {
      assert.equal(data.type, event);
      assert.equal(data.sequence_number, i);
    });
  });

  test("the Responses API caps with max_output_tokens (incomplete) and calls function tools", async () => {
    const capped = await oai.responses.create({ model: "m", input: "story", max_output_tokens: 16, ...{} });
    assert.equal(capped.status, "incomplete");
    assert.equal(capped.incomplete_details?.reason, "max_output_tokens");
    assert.equal(capped.usage!.output_tokens, 16);
    const tool = {
      type: "function" as const,
      name: "get_weather",
      parameters: WEATHER_TOOL.function.parameters,
      strict: false,
    };
    const called = await oai.responses.stream({ model: "m", input: "call get_weather", tools: [tool] }).finalResponse();
    const item = called.output[0]!;
    assert.equal(item.type, "function_call");
    assert.ok(item.type === "function_call");
    assert.equal(item.name, "get_weather");
    assert.deepEqual(JSON.parse(item.arguments), { city: "sample city", unit: "celsius" });
  });
});

describe("Anthropic messages through the official SDK", () => {
  const hello = [{ role: "user" as const, content: "Hello, Claude" }];

  test("a non-stream answer is a message with usage", async () => {
    const m = await claude.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      system: "Be kind",
      messages: hello,
    });
    assert.equal(m.type, "message");
    assert.equal(m.role, "assistant");
    assert.match(m.id, /^msg_/);
    assert.equal(m.model, "claude-sonnet-4-5");
    assert.equal(m.stop_reason, "end_turn");
    assert.equal(m.stop_sequence, null);
    const block = m.content[0]!;
    assert.ok(block.type === "text");
    assert.equal(m.usage.output_tokens, encode(block.text).length);
    assert.ok(m.usage.input_tokens > 0);
    assert.equal(m.usage.cache_read_input_tokens, 0);
    assert.equal(m.usage.cache_creation_input_tokens, 0);
  });

  test("messages.stream() rebuilds the same message from the real event sequence", async () => {
    const whole = await claude.messages.create({ model: "c", max_tokens: 100, messages: hello });
    const streamed = await claude.messages.stream({ model: "c", max_tokens: 100, messages: hello }).finalMessage();
    assert.deepEqual(streamed.content, whole.content);
    assert.equal(streamed.usage.output_tokens, whole.usage.output_tokens);
    assert.equal(streamed.stop_reason, "end_turn");

    const events = await sseEvents(
      await post("/v1/messages", { model: "c", max_tokens: 100, messages: hello, stream: true }),
    );
    const names = events.map(([e]) => e);
    assert.deepEqual(names.slice(0, 3), ["message_start", "content_block_start", "ping"]);
    assert.deepEqual(names.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
    const deltas = events.filter(([e]) => e === "content_block_delta");
    assert.equal(deltas.length, whole.usage.output_tokens);
    assert.equal(deltas[0]![1].delta.type, "text_delta");
  });

  test("max_tokens and stop_sequences end the answer with their stop reasons", async () => {
    const capped = await claude.messages.create({ model: "c", max_tokens: 4, messages: hello });
    assert.equal(capped.stop_reason, "max_tokens");
    assert.equal(capped.usage.output_tokens, 4);
    const full = await claude.messages.create({ model: "c", max_tokens: 100, messages: hello });
    const text = (full.content[0] as { text: string }).text;
    const stop = text.split(" ")[2]!;
    const cut = await claude.messages.create({ model: "c", max_tokens: 100, messages: hello, stop_sequences: [stop] });
    assert.equal(cut.stop_reason, "stop_sequence");
    assert.equal(cut.stop_sequence, stop);
    assert.equal((cut.content[0] as { text: string }).text, text.slice(0, text.indexOf(stop)));
  });

  test("a request for a tool gets tool_use, streamed as input_json_delta", async () => {
    const tools = [
      { name: "get_weather", input_schema: WEATHER_TOOL.function.parameters as Anthropic.Tool.InputSchema },
    ];
    const messages = [{ role: "user" as const, content: "What's the weather? Call get_weather." }];
    const m = await claude.messages.create({ model: "c", max_tokens: 100, tools, messages });
    assert.equal(m.stop_reason, "tool_use");
    const block = m.content[0]!;
    assert.ok(block.type === "tool_use");
    assert.match(block.id, /^toolu_/);
    assert.deepEqual(block.input, { city: "sample city", unit: "celsius" });
    const streamed = await claude.messages.stream({ model: "c", max_tokens: 100, tools, messages }).finalMessage();
    assert.equal(streamed.stop_reason, "tool_use");
    assert.deepEqual((streamed.content[0] as { input: unknown }).input, block.input);
    const events = await sseEvents(
      await post("/v1/messages", { model: "c", max_tokens: 100, tools, messages, stream: true }),
    );
    assert.ok(events.filter(([, d]) => d.delta?.type === "input_json_delta").length > 1);
    const afterResult = await claude.messages.create({
      model: "c",
      max_tokens: 100,
      tools,
      messages: [
        ...messages,
        { role: "assistant", content: [{ type: "tool_use", id: block.id, name: "get_weather", input: block.input }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: block.id, content: "sunny" }] },
      ],
    });
    assert.equal(afterResult.stop_reason, "end_turn");
  });

  test("Anthropic's own 400s: anthropic-version and max_tokens are required", async () => {
    const noVersion = await fetch(`${sim.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": KEY },
      body: JSON.stringify({ model: "c", max_tokens: 5, messages: hello }),
    });
    assert.equal(noVersion.status, 400);
    assert.deepEqual(await noVersion.json(), {
      type: "error",
      error: { type: "invalid_request_error", message: "anthropic-version: header is required" },
    });
    const noMax = await post("/v1/messages", { model: "c", messages: hello });
    assert.equal(noMax.status, 400);
    assert.equal((await noMax.json()).error.message, "max_tokens: Field required");
  });

  test("injected errors come back in Anthropic's format and the SDK's error classes", async () => {
    const cases: [string, unknown, string][] = [
      ["429", Anthropic.RateLimitError, "rate_limit_error"],
      ["500", Anthropic.InternalServerError, "api_error"],
      ["529", Anthropic.OverloadedError, "overloaded_error"],
    ];
    for (const [status, errorClass, type] of cases) {
      await assert.rejects(
        claude.messages.create({ model: "c", max_tokens: 5, messages: hello }, { headers: { "x-sim-fail": status } }),
        (err: any) => {
          assert.ok(err instanceof (errorClass as typeof Error));
          const e = err as unknown as { status: number; error: { error: { type: string } } };
          return e.status === Number(status) && e.error.error.type === type;
        },
      );
    }
  });
});

describe("errors, auth and behaviour", () => {
  test("429 raises the OpenAI SDK's RateLimitError with retry-after and x-ratelimit headers", async () => {
    sim.behave({ fail: 429, times: 1 });
    await assert.rejects(oai.chat.completions.create({ model: "m", messages: question }), (err: any) => {
      assert.ok(err instanceof OpenAI.RateLimitError);
      assert.equal(err.status, 429);
      assert.equal(err.code, "rate_limit_exceeded");
      assert.equal(err.headers.get("retry-after"), "1");
      assert.equal(err.headers.get("x-ratelimit-remaining-requests"), "0");
      return true;
    });
    // `times: 1` spent: the next request succeeds.
    const ok = await oai.chat.completions.create({ model: "m", messages: question });
    assert.equal(ok.choices.length, 1);
    const failing = oai.chat.completions.create(
      { model: "m", messages: question },
      { headers: { "x-sim-fail": "503" } },
    );
    await assert.rejects(failing, (err: any) => err instanceof OpenAI.InternalServerError && err.status === 503);
  });

  test("a wrong or missing key gets 401 in each provider's format", async () => {
    const wrongOpenai = new OpenAI({ apiKey: "nope", baseURL: `${sim.url}/v1`, maxRetries: 0 });
    await assert.rejects(
      wrongOpenai.chat.completions.create({ model: "m", messages: question }),
      (err: any) => err instanceof OpenAI.AuthenticationError && err.code === "invalid_api_key",
    );
    const wrongClaude = new Anthropic({ apiKey: "nope", baseURL: sim.url, maxRetries: 0 });
    await assert.rejects(
      wrongClaude.messages.create({ model: "c", max_tokens: 5, messages: [{ role: "user", content: "x" }] }),
      (err: any) => {
        assert.ok(err instanceof Anthropic.AuthenticationError);
        return (err.error as { error: { type: string } }).error.type === "authentication_error";
      },
    );
    const bare = await fetch(`${sim.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "nope" },
      body: "{}",
    });
    assert.equal(bare.status, 401);
    assert.deepEqual(await bare.json(), {
      type: "error",
      error: { type: "authentication_error", message: "invalid x-api-key" },
    });
  });

  test("requests are recorded, and reset() forgets them and the behaviour", async () => {
    sim.reset();
    sim.behave({ fail: 500 });
    assert.equal((await post("/v1/chat/completions", { model: "m", messages: question })).status, 500);
    assert.equal((await post("/v1/chat/completions", { model: "m", messages: question })).status, 500);
    assert.equal(sim.requests.length, 2);
    assert.deepEqual((sim.requests[0]!.body as { messages: unknown }).messages, question);
    sim.reset();
    assert.equal(sim.requests.length, 0);
    assert.equal((await post("/v1/chat/completions", { model: "m", messages: question })).status, 200);
  });
});

describe("timing and broken connections", () => {
  test("a raw SSE reader sees the first token after TTFT and the rest after the inter-token delays", async () => {
    const started = performance.now();
    const res = await post(
      "/v1/chat/completions",
      { model: "m", messages: question, stream: true },
      { "x-sim-ttft-ms": "120", "x-sim-itl-ms": "10", "x-sim-tokens": "5" },
    );
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = res.body!.getReader();
    const first = await reader.read();
    const firstAt = performance.now() - started;
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const total = performance.now() - started;
    assert.ok(firstAt >= 110, `first token after ${firstAt} ms`);
    assert.ok(total >= 110 + 4 * 9, `whole stream after ${total} ms`);
    assert.equal(text.match(/"content":"[^"]+"/g)!.length, 5);
    assert.ok(text.endsWith("data: [DONE]\n\n"));
  });

  test("a client that leaves mid-stream is noticed at once and recorded with the tokens it got", async () => {
    sim.reset();
    const controller = new AbortController();
    const res = await post(
      "/v1/chat/completions",
      { model: "m", messages: question, stream: true },
      { "x-sim-itl-ms": "30", "x-sim-tokens": "200" },
      controller.signal,
    );
    const reader = res.body!.getReader();
    let got = "";
    while ((got.match(/"content":"[^"]/g) ?? []).length < 3)
      got += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    await until(() => sim.aborted.length === 1, "the abort to be recorded");
    const aborted = sim.aborted[0]!;
    assert.equal(aborted.stream, true);
    assert.equal(aborted.path, "/v1/chat/completions");
    assert.match(aborted.id!, /^chatcmpl-/);
    assert.ok(aborted.tokensSent >= 3 && aborted.tokensSent < 200, `tokens sent: ${aborted.tokensSent}`);
    assert.equal(aborted.tokensPlanned, 200);
    assert.equal(sim.inFlight, 0);
  });

  test("broken-stream:N sends N tokens and then cuts the connection", async () => {
    const res = await post(
      "/v1/chat/completions",
      { model: "m", messages: question, stream: true },
      { "x-sim-fail": "broken-stream:4" },
    );
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = "";
    const failure = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          text += new TextDecoder().decode(value);
        }
      } catch (err) {
        return err;
      }
    })();
    assert.ok(failure instanceof Error, "the body must end in an error, not a clean end");
    assert.equal(text.match(/"content":"[^"]+"/g)!.length, 4);
    assert.equal(text.includes("[DONE]"), false);
    sim.behave({ fail: "broken-stream:2", times: 1 });
    const sdkStream = await oai.chat.completions.create({ model: "m", messages: question, stream: true });
    await assert.rejects(async () => {
      for await (const _ of sdkStream) {
        // drain until the cut
      }
    });
  });

  test("the timeout fault holds the request until the client gives up", async () => {
    sim.reset();
    await assert.rejects(
      post(
        "/v1/chat/completions",
        { model: "m", messages: question },
        { "x-sim-fail": "timeout" },
        AbortSignal.timeout(150),
      ),
    );
    await until(() => sim.aborted.length === 1, "the held request to be recorded");
    assert.equal(sim.aborted[0]!.fault, "timeout");
    assert.equal(sim.inFlight, 0);
  });

  test("a slow reader holds back the stream (back-pressure) and still gets every token", async () => {
    const tokens = 60_000;
    const socket = connect(sim.port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const body = JSON.stringify({ model: "m", messages: question, stream: true });
    socket.pause();
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\nx-sim-tokens: ${tokens}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    await until(() => sim.inFlight === 1, "the stream to start");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sim.inFlight, 1, "with nobody reading, the stream must wait for drain instead of finishing");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.resume();
    await new Promise((r) => socket.once("end", r));
    assert.equal(received.match(/"content":"[^"]/g)!.length, tokens);
    assert.ok(received.includes("data: [DONE]"));
    socket.destroy();
  });

  test("close() ends streams in progress and leaves no timer behind", async () => {
    const other = await startLlmSimulator({ ttftMs: 10, interTokenMs: 50 });
    const res = await fetch(`${other.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", messages: question, stream: true }),
    });
    const held = fetch(`${other.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "x-sim-fail": "timeout" },
      body: JSON.stringify({ model: "m", messages: question }),
    }).then(
      () => "answered",
      () => "cut",
    );
    await until(() => other.inFlight === 2, "both requests to be in flight");
    await other.close();
    assert.equal(other.inFlight, 0);
    assert.deepEqual(other.aborted, [], "the simulator closing is not a client abort");
    await assert.rejects(res.text());
    assert.equal(await held, "cut");
  });
});

describe("pieces and options", () => {
  test("token pieces never split a character and join back to the text", () => {
    const text = "héllo 你好 🙂 naïve façade 日本語のテキスト";
    const pieces = tokenPieces(text);
    assert.equal(pieces.join(""), text);
    for (const p of pieces) assert.equal(p.includes("\uFFFD"), false);
  });

  test("weir llm-sim parses its flags and names the wrong one", () => {
    assert.deepEqual(parseLlmSimArgs([]), { host: "127.0.0.1", port: 8001, ttftMs: 200, interTokenMs: 20 });
    assert.deepEqual(
      parseLlmSimArgs(["--port", "9001", "--ttft-ms=0", "--itl-ms", "5", "--api-key", "k", "--name", "a"]),
      {
        host: "127.0.0.1",
        port: 9001,
        ttftMs: 0,
        interTokenMs: 5,
        apiKey: "k",
        name: "a",
      },
    );
    assert.throws(() => parseLlmSimArgs(["--port", "x"]), /--port/);
    assert.throws(() => parseLlmSimArgs(["--what"]), /--what/);
    assert.throws(() => parseLlmSimArgs(["--api-key"]), /--api-key needs a value/);
  });
});
