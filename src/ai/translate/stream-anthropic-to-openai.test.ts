import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatCompletionStream } from "openai/lib/ChatCompletionStream";
import { AnthropicStreamToChat, type ChatStreamOutput } from "./stream-anthropic-to-openai.js";
import type { AnthropicStreamEvent, OpenAIChatChunk } from "./types.js";
import {
  anthropicThinkingStream,
  anthropicToolStream,
  ndjsonStream,
  timeArguments,
  weatherArguments,
} from "./wire.fixture.js";

function translate(events: AnthropicStreamEvent[], opts = {}) {
  const translator = new AnthropicStreamToChat(opts);
  const out: ChatStreamOutput[] = [];
  for (const event of events) out.push(...translator.push(event));
  out.push(...translator.end());
  return { translator, out, chunks: out as OpenAIChatChunk[] };
}

test("tool stream: text, then each tool_use as an OpenAI tool call whose arguments parse as the original JSON", () => {
  const { chunks } = translate(anthropicToolStream(), { model: "my-gpt" });
  assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: "assistant", content: "" });
  for (const c of chunks) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.equal(c.id, "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert.equal(c.model, "my-gpt", "the client's model name, not Claude's");
  }
  let text = "";
  const calls: { id?: string; name?: string; args: string }[] = [];
  const finishes: (string | null)[] = [];
  for (const c of chunks) {
    const choice = c.choices[0]!;
    text += choice.delta.content ?? "";
    for (const call of choice.delta.tool_calls ?? []) {
      calls[call.index] ??= { args: "" };
      const acc = calls[call.index]!;
      if (call.id) acc.id = call.id;
      if (call.function?.name) acc.name = call.function.name;
      acc.args += call.function?.arguments ?? "";
    }
    if (choice.finish_reason) finishes.push(choice.finish_reason);
  }
  assert.equal(text, "Okay, let's check the weather for San Francisco, CA:");
  assert.equal(calls.length, 2, "OpenAI numbers tool calls 0 and 1, not by Claude's block index 1 and 2");
  assert.deepEqual(
    { ...calls[0], args: JSON.parse(calls[0]!.args) },
    {
      id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
      name: "get_weather",
      args: weatherArguments,
    },
  );
  assert.deepEqual(JSON.parse(calls[1]!.args), timeArguments);
  assert.deepEqual(finishes, ["tool_calls"]);
  assert.ok(!chunks.some((c) => c.choices.length === 0), "no usage chunk unless the client asked for it");
  const firstToolChunk = chunks.find((c) => c.choices[0]?.delta.tool_calls)!;
  assert.deepEqual(firstToolChunk.choices[0]!.delta.tool_calls, [
    {
      index: 0,
      id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
      type: "function",
      function: { name: "get_weather", arguments: "" },
    },
  ]);
});

test("include_usage: a last chunk with choices: [] and prompt tokens counting cache reads and writes", () => {
  const { translator, chunks } = translate(anthropicToolStream(), { includeUsage: true });
  const last = chunks[chunks.length - 1]!;
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, {
    prompt_tokens: 472 + 2000 + 100,
    completion_tokens: 89,
    total_tokens: 2572 + 89,
    prompt_tokens_details: { cached_tokens: 2000 },
  });
  assert.deepEqual(translator.usage, { inputTokens: 2572, outputTokens: 89, cachedInputTokens: 2000 });
  assert.equal(translator.finished, true);
  assert.equal(chunks[0]!.model, "claude-sonnet-4-5-20250929", "Claude's name when the caller gave none");
});

test("the OpenAI SDK's own stream accumulator rebuilds the full answer from the translated chunks", async () => {
  const { chunks } = translate(anthropicToolStream(), { model: "gpt-4o", includeUsage: true });
  const completion = await ChatCompletionStream.fromReadableStream(ndjsonStream(chunks)).finalChatCompletion();
  const message = completion.choices[0]!.message;
  assert.equal(message.content, "Okay, let's check the weather for San Francisco, CA:");
  assert.equal(completion.choices[0]!.finish_reason, "tool_calls");
  const calls = message.tool_calls!.map((c) => (c.type === "function" ? c.function : undefined));
  assert.deepEqual(
    calls.map((f) => [f!.name, JSON.parse(f!.arguments)]),
    [
      ["get_weather", weatherArguments],
      ["get_time", timeArguments],
    ],
  );
  assert.equal(completion.usage?.completion_tokens, 89);
});

test("thinking deltas travel as reasoning_content; signatures are dropped; end_turn finishes with stop", () => {
  const { chunks } = translate(anthropicThinkingStream());
  const reasoning = chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? "").join("");
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  assert.equal(reasoning, "27 * 453 = 12231");
  assert.equal(text, "27 * 453 is **12,231**.");
  assert.ok(!JSON.stringify(chunks).includes("EqQBCgIYAhIM1gbcDa9GJwZA"));
  assert.deepEqual(
    chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0]!.finish_reason),
    ["stop"],
  );
});

test("stop reasons map to OpenAI finish reasons", () => {
  const table: [string, string][] = [
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["pause_turn", "stop"],
    ["model_context_window_exceeded", "length"],
  ];
  for (const [stopReason, finish] of table) {
    const events = anthropicThinkingStream();
    const delta = events.find((e) => e.type === "message_delta")!;
    (delta as { delta: { stop_reason: string } }).delta.stop_reason = stopReason;
    const { chunks } = translate(events);
    assert.deepEqual(
      chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0]!.finish_reason),
      [finish],
      stopReason,
    );
  }
});

test("error event: an OpenAI error object the caller can surface, and the stream is over", () => {
  const translator = new AnthropicStreamToChat();
  const events = anthropicToolStream().slice(0, 4);
  for (const e of events) translator.push(e);
  const out = translator.push({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } });
  assert.deepEqual(out, [{ error: { message: "Overloaded", type: "server_error", param: null, code: "overloaded" } }]);
  assert.equal(translator.error?.status, 503);
  assert.equal(translator.finished, true);
  assert.deepEqual(translator.end(), []);
});

test("an upstream that closes without message_stop still gets a finish chunk and usage, once", () => {
  const events = anthropicToolStream().slice(0, 6); // message_start … first text block
  const translator = new AnthropicStreamToChat({ includeUsage: true });
  for (const e of events) translator.push(e);
  const closing = translator.end() as OpenAIChatChunk[];
  assert.equal(closing.length, 2);
  assert.equal(closing[0]!.choices[0]!.finish_reason, "stop");
  assert.equal(closing[1]!.usage!.prompt_tokens, 2572);
  assert.deepEqual(translator.end(), []);
  assert.deepEqual(translator.push({ type: "message_stop" }), []);
});

test("ping and unknown events produce nothing; an orphan input_json_delta is ignored", () => {
  const translator = new AnthropicStreamToChat();
  assert.deepEqual(translator.push({ type: "ping" }), []);
  assert.deepEqual(translator.push({ type: "some_future_event" } as never), []);
  assert.deepEqual(
    translator.push({ type: "content_block_delta", index: 5, delta: { type: "input_json_delta", partial_json: "{}" } }),
    [],
  );
});
