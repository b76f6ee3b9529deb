import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageStream } from "@anthropic-ai/sdk/lib/MessageStream";
import { ChatStreamToMessages } from "./stream-openai-to-anthropic.js";
import type { AnthropicStreamEvent, OpenAIChatChunk } from "./types.js";
import { ndjsonStream, openaiTextStream, openaiToolStream, timeArguments, weatherArguments } from "./wire.fixture.js";

function translate(chunks: OpenAIChatChunk[], opts = {}) {
  const translator = new ChatStreamToMessages(opts);
  const events: AnthropicStreamEvent[] = [];
  for (const c of chunks) events.push(...translator.push(c));
  events.push(...translator.end()); // the caller saw [DONE]
  return { translator, events };
}

const types = (events: AnthropicStreamEvent[]) =>
  events.map((e) =>
    e.type === "content_block_start"
      ? `start:${e.index}:${e.content_block.type}`
      : e.type === "content_block_stop"
        ? `stop:${e.index}`
        : e.type === "content_block_delta"
          ? `delta:${e.index}:${e.delta.type}`
          : e.type,
  );

test("text stream: message_start, one text block, message_delta with usage, message_stop", () => {
  const { events } = translate(openaiTextStream(), { model: "claude-via-gpt", inputTokens: 17 });
  assert.deepEqual(types(events), [
    "message_start",
    "start:0:text",
    "delta:0:text_delta",
    "delta:0:text_delta",
    "delta:0:text_delta",
    "stop:0",
    "message_delta",
    "message_stop",
  ]);
  const start = events[0] as Extract<AnthropicStreamEvent, { type: "message_start" }>;
  assert.equal(start.message.model, "claude-via-gpt");
  assert.equal(start.message.usage.input_tokens, 17, "the caller's estimate, before any usage arrives");
  assert.deepEqual(start.message.content, []);
  assert.equal(start.message.stop_reason, null);
  const text = events
    .map((e) => (e.type === "content_block_delta" && e.delta.type === "text_delta" ? e.delta.text : ""))
    .join("");
  assert.equal(text, "Hello! How can I help you today?");
  assert.deepEqual(events[6], {
    type: "message_delta",
    delta: { stop_reason: "end_turn", stop_sequence: null },
    usage: { output_tokens: 10 },
  });
});

test("tool stream: a tool_use block per call, new index per call, arguments as input_json_delta", () => {
  const { events, translator } = translate(openaiToolStream());
  assert.deepEqual(types(events), [
    "message_start",
    "start:0:tool_use",
    "delta:0:input_json_delta",
    "delta:0:input_json_delta",
    "delta:0:input_json_delta",
    "stop:0",
    "start:1:tool_use",
    "delta:1:input_json_delta",
    "delta:1:input_json_delta",
    "stop:1",
    "message_delta",
    "message_stop",
  ]);
  const start = events[1] as Extract<AnthropicStreamEvent, { type: "content_block_start" }>;
  assert.deepEqual(start.content_block, {
    type: "tool_use",
    id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
    name: "get_weather",
    input: {},
  });
  const argsOf = (index: number) =>
    events
      .map((e) =>
        e.type === "content_block_delta" && e.index === index && e.delta.type === "input_json_delta"
          ? e.delta.partial_json
          : "",
      )
      .join("");
  assert.deepEqual(JSON.parse(argsOf(0)), weatherArguments);
  assert.deepEqual(JSON.parse(argsOf(1)), timeArguments);
  const delta = events[10] as Extract<AnthropicStreamEvent, { type: "message_delta" }>;
  assert.deepEqual(delta.delta, { stop_reason: "tool_use", stop_sequence: null });
  // input was not known at message_start, so the usage chunk's prompt size arrives here, cache reads apart.
  assert.deepEqual(delta.usage, { output_tokens: 55, input_tokens: 180, cache_read_input_tokens: 1920 });
  assert.deepEqual(translator.usage, { inputTokens: 2100, outputTokens: 55, cachedInputTokens: 1920 });
});

test("the Anthropic SDK's own stream accumulator rebuilds the message from the translated events", async () => {
  const chunks = [...openaiTextStream().slice(0, 4), ...openaiToolStream()];
  const { events } = translate(chunks, { model: "claude-sonnet-4-5" });
  const message = await MessageStream.fromReadableStream(ndjsonStream(events)).finalMessage();
  assert.equal(message.model, "claude-sonnet-4-5");
  assert.equal(message.stop_reason, "tool_use");
  assert.deepEqual(
    message.content.map((b) => (b.type === "text" ? ["text", b.text] : b.type === "tool_use" ? [b.name, b.input] : [])),
    [
      ["text", "Hello! How can I help you today?"],
      ["get_weather", weatherArguments],
      ["get_time", timeArguments],
    ],
  );
  assert.equal(message.usage.output_tokens, 55);
});

test("switching text → tool → text opens a new block each time", () => {
  const base = openaiTextStream()[1]!;
  const withDelta = (delta: OpenAIChatChunk["choices"][0]["delta"]): OpenAIChatChunk => ({
    ...base,
    choices: [{ index: 0, delta, finish_reason: null }],
  });
  const { events } = translate([
    withDelta({ content: "Let me look." }),
    withDelta({ tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }] }),
    withDelta({ content: "Done." }),
  ]);
  assert.deepEqual(types(events), [
    "message_start",
    "start:0:text",
    "delta:0:text_delta",
    "stop:0",
    "start:1:tool_use",
    "delta:1:input_json_delta",
    "stop:1",
    "start:2:text",
    "delta:2:text_delta",
    "stop:2",
    "message_delta",
    "message_stop",
  ]);
});

test("servers that number every parallel call 0 still get one block per call id", () => {
  const base = openaiTextStream()[1]!;
  const call = (id: string, args: string): OpenAIChatChunk => ({
    ...base,
    choices: [
      {
        index: 0,
        delta: { tool_calls: [{ index: 0, id, type: "function", function: { name: "f", arguments: args } }] },
        finish_reason: null,
      },
    ],
  });
  const { events } = translate([call("call_a", '{"n":1}'), call("call_b", '{"n":2}')]);
  const starts = events.filter((e) => e.type === "content_block_start");
  assert.deepEqual(
    starts.map((e) => (e.content_block as { id: string }).id),
    ["call_a", "call_b"],
  );
});

test("end() without finish_reason or [DONE] still closes the block and the message, once", () => {
  const translator = new ChatStreamToMessages();
  const chunks = openaiTextStream().slice(0, 3);
  for (const c of chunks) translator.push(c);
  const closing = translator.end({ outputTokens: 4 });
  assert.deepEqual(types([...closing]), ["stop:0", "message_delta", "message_stop"]);
  const delta = closing[1] as Extract<AnthropicStreamEvent, { type: "message_delta" }>;
  assert.equal(delta.delta.stop_reason, "end_turn");
  assert.equal(delta.usage.output_tokens, 4, "the caller's estimate when no usage came");
  assert.deepEqual(translator.end(), []);
  assert.deepEqual(translator.push(chunks[1]!), []);
});

test("an empty upstream stream still yields a well-formed empty message", () => {
  const translator = new ChatStreamToMessages({ model: "m" });
  assert.deepEqual(types([...translator.end()]), ["message_start", "message_delta", "message_stop"]);
});

test("finish reasons: length → max_tokens, content_filter → refusal, vLLM's matched stop string → stop_sequence", () => {
  const cases: [string, string | undefined, string, string | null][] = [
    ["length", undefined, "max_tokens", null],
    ["content_filter", undefined, "refusal", null],
    ["stop", "###", "stop_sequence", "###"],
    ["stop", undefined, "end_turn", null],
  ];
  for (const [finish, vllmStop, stopReason, stopSequence] of cases) {
    const chunks = openaiTextStream().slice(0, 5);
    const last = chunks[4]!.choices[0]!;
    last.finish_reason = finish as never;
    if (vllmStop) last.stop_reason = vllmStop;
    const { events } = translate(chunks);
    const delta = events.find((e) => e.type === "message_delta") as Extract<
      AnthropicStreamEvent,
      { type: "message_delta" }
    >;
    assert.deepEqual(delta.delta, { stop_reason: stopReason, stop_sequence: stopSequence }, finish);
  }
});

test("an error object in the stream becomes an Anthropic error event", () => {
  const translator = new ChatStreamToMessages();
  translator.push(openaiTextStream()[1]!);
  const out = translator.push({
    error: { message: "Rate limit reached for gpt-4o", type: "requests", param: null, code: "rate_limit_exceeded" },
  } as never);
  assert.deepEqual(out, [
    { type: "error", error: { type: "rate_limit_error", message: "Rate limit reached for gpt-4o" } },
  ]);
  assert.equal(translator.error?.status, 429);
  assert.deepEqual(translator.end(), []);
});

test("tool call ids Anthropic would reject are made safe, deterministically", () => {
  const base = openaiTextStream()[1]!;
  const { events } = translate([
    {
      ...base,
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, id: "functions.get:0", type: "function", function: { name: "get" } }] },
          finish_reason: null,
        },
      ],
    },
  ]);
  const start = events.find((e) => e.type === "content_block_start")!;
  assert.equal((start as { content_block: { id: string } }).content_block.id, "functions_get_0");
});
