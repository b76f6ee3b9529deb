import assert from "node:assert/strict";
import { test } from "node:test";
import { TranslationError } from "./errors.js";
import { RAW_ARGUMENTS_KEY } from "./mapping.js";
import { chatRequestToMessages, chatResponseToMessages } from "./openai-to-anthropic.js";
import type { AnthropicMessagesRequest, OpenAIChatCompletion, OpenAIChatRequest } from "./types.js";
import { openaiToolCompletion, weatherArguments } from "./wire.fixture.js";

function ok(body: Record<string, unknown>, opts = {}): AnthropicMessagesRequest {
  const out = chatRequestToMessages(body as OpenAIChatRequest, opts);
  if (out instanceof TranslationError) assert.fail(`unexpected error on ${out.field}: ${out.message}`);
  return out;
}

function fails(body: Record<string, unknown>): TranslationError {
  const out = chatRequestToMessages(body as OpenAIChatRequest);
  assert.ok(out instanceof TranslationError, `expected an error, got ${JSON.stringify(out)}`);
  return out;
}

const user = (content: unknown) => ({ role: "user", content });

test("system and developer messages become one system prompt, in order; defaults fill max_tokens", () => {
  const out = ok({
    model: "claude-sonnet-4-5",
    messages: [
      { role: "system", content: "You are terse." },
      { role: "developer", content: [{ type: "text", text: "Answer in French." }] },
      user("Hi"),
      { role: "system", content: "Never use emoji." },
    ],
  });
  assert.deepEqual(out, {
    model: "claude-sonnet-4-5",
    max_tokens: 4096,
    system: "You are terse.\n\nAnswer in French.\n\nNever use emoji.",
    messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
  });
  assert.equal(ok({ model: "m", messages: [user("x")] }, { defaultMaxTokens: 1000 }).max_tokens, 1000);
  assert.equal(ok({ model: "m", messages: [user("x")], max_tokens: 50 }).max_tokens, 50);
  assert.equal(ok({ model: "m", messages: [user("x")], max_tokens: 50, max_completion_tokens: 70 }).max_tokens, 70);
});

test("a system block marked for Claude's cache keeps the block form", () => {
  const out = ok({
    model: "m",
    messages: [
      { role: "system", content: [{ type: "text", text: "big doc", cache_control: { type: "ephemeral" } }] },
      user("q"),
    ],
  });
  assert.deepEqual(out.system, [{ type: "text", text: "big doc", cache_control: { type: "ephemeral" } }]);
});

test("multi-turn tool use: tool_calls → tool_use, tool results merged into one user turn before the user's text", () => {
  const out = ok({
    model: "m",
    messages: [
      user("Weather in SF and the time there?"),
      {
        role: "assistant",
        content: "Checking both.",
        tool_calls: [
          {
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify(weatherArguments) },
          },
          { id: "call_2", type: "function", function: { name: "get_time", arguments: "" } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: '{"temp": 64}' },
      { role: "tool", tool_call_id: "call_2", content: [{ type: "text", text: "10:42" }] },
      user("Thanks! And tomorrow?"),
      user([{ type: "text", text: "Also in Celsius." }]),
    ],
  });
  assert.deepEqual(out.messages, [
    { role: "user", content: [{ type: "text", text: "Weather in SF and the time there?" }] },
    {
      role: "assistant",
      content: [
        { type: "text", text: "Checking both." },
        { type: "tool_use", id: "call_1", name: "get_weather", input: weatherArguments },
        { type: "tool_use", id: "call_2", name: "get_time", input: {} },
      ],
    },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "call_1", content: '{"temp": 64}' },
        { type: "tool_result", tool_use_id: "call_2", content: [{ type: "text", text: "10:42" }] },
        { type: "text", text: "Thanks! And tomorrow?" },
        { type: "text", text: "Also in Celsius." },
      ],
    },
  ]);
});

test("tool results that follow the user's text are still put first in the merged turn", () => {
  const out = ok({
    model: "m",
    messages: [
      user("go"),
      { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] },
      user("(interrupting)"),
      { role: "tool", tool_call_id: "c", content: "done" },
    ],
  });
  assert.deepEqual(
    (out.messages[2]!.content as { type: string }[]).map((b) => b.type),
    ["tool_result", "text"],
  );
});

test("broken or non-object tool arguments are kept verbatim under a marked key", () => {
  const out = ok({
    model: "m",
    messages: [
      user("x"),
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "a", type: "function", function: { name: "f", arguments: '{"city": "Par' } },
          { id: "b", type: "function", function: { name: "f", arguments: "[1,2]" } },
        ],
      },
    ],
  });
  const blocks = out.messages[1]!.content as { input: unknown }[];
  assert.deepEqual(blocks[0]!.input, { [RAW_ARGUMENTS_KEY]: '{"city": "Par' });
  assert.deepEqual(blocks[1]!.input, { [RAW_ARGUMENTS_KEY]: "[1,2]" });
});

test("images: data URLs become base64 sources, http(s) URLs url sources; PDFs become documents", () => {
  const out = ok({
    model: "m",
    messages: [
      user([
        { type: "text", text: "What is in these?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=", detail: "high" } },
        { type: "image_url", image_url: { url: "https://upload.wikimedia.org/cat.jpg" } },
        { type: "file", file: { filename: "paper.pdf", file_data: "data:application/pdf;base64,JVBERi0=" } },
      ]),
    ],
  });
  assert.deepEqual(out.messages[0]!.content, [
    { type: "text", text: "What is in these?" },
    { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
    { type: "image", source: { type: "url", url: "https://upload.wikimedia.org/cat.jpg" } },
    {
      type: "document",
      source: { type: "base64", media_type: "application/pdf", data: "JVBERi0=" },
      title: "paper.pdf",
    },
  ]);
  const bad = (url: string) => fails({ model: "m", messages: [user([{ type: "image_url", image_url: { url } }])] });
  assert.equal(bad("ftp://x/y.png").field, "messages[0].content[0].image_url.url");
  assert.match(bad("data:image/tiff;base64,AAAA").message, /image\/tiff is not supported/);
  assert.match(bad("data:image/png,raw-not-base64").message, /base64/);
});

test("tools, tool_choice and parallel_tool_calls map to Anthropic's shapes", () => {
  const tools = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Current weather",
        parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
      },
    },
    { type: "function", function: { name: "ping" } },
  ];
  const base = { model: "m", messages: [user("x")], tools };
  assert.deepEqual(ok(base).tools, [
    {
      name: "get_weather",
      description: "Current weather",
      input_schema: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
    },
    { name: "ping", input_schema: { type: "object", properties: {} } },
  ]);
  assert.equal(ok(base).tool_choice, undefined);
  assert.deepEqual(ok({ ...base, tool_choice: "none" }).tool_choice, { type: "none" });
  assert.deepEqual(ok({ ...base, tool_choice: "auto" }).tool_choice, { type: "auto" });
  assert.deepEqual(ok({ ...base, tool_choice: "required" }).tool_choice, { type: "any" });
  assert.deepEqual(ok({ ...base, tool_choice: { type: "function", function: { name: "ping" } } }).tool_choice, {
    type: "tool",
    name: "ping",
  });
  assert.deepEqual(ok({ ...base, parallel_tool_calls: false }).tool_choice, {
    type: "auto",
    disable_parallel_tool_use: true,
  });
  assert.deepEqual(ok({ ...base, tool_choice: "required", parallel_tool_calls: false }).tool_choice, {
    type: "any",
    disable_parallel_tool_use: true,
  });
  assert.equal(fails({ ...base, tools: [{ type: "custom", custom: { name: "x" } }] }).field, "tools[0].type");
  assert.equal(fails({ ...base, tool_choice: { type: "allowed_tools" } }).field, "tool_choice");
});

test("sampling: temperature clamped to 0..1, top_p kept, stop → stop_sequences, user → metadata.user_id", () => {
  const base = { model: "m", messages: [user("x")] };
  assert.equal(ok({ ...base, temperature: 1.7 }).temperature, 1);
  assert.equal(ok({ ...base, temperature: 0.3 }).temperature, 0.3);
  assert.equal(ok({ ...base, top_p: 0.9 }).top_p, 0.9);
  assert.deepEqual(ok({ ...base, stop: "END" }).stop_sequences, ["END"]);
  assert.deepEqual(ok({ ...base, stop: ["a", "b"] }).stop_sequences, ["a", "b"]);
  assert.equal(ok({ ...base, stop: null }).stop_sequences, undefined);
  assert.deepEqual(ok({ ...base, user: "user-123" }).metadata, { user_id: "user-123" });
  assert.equal(ok({ ...base, stream: true, stream_options: { include_usage: true } }).stream, true);
  // Fields that do not change the answer are dropped quietly.
  const quiet = ok({ ...base, seed: 7, store: false, n: 1, frequency_penalty: 0, response_format: { type: "text" } });
  assert.deepEqual(Object.keys(quiet).sort(), ["max_tokens", "messages", "model"]);
});

test("fields Claude cannot honour are an error naming the field, never dropped", () => {
  const base = { model: "m", messages: [user("x")] };
  const cases: [Record<string, unknown>, string][] = [
    [{ n: 2 }, "n"],
    [{ logprobs: true }, "logprobs"],
    [{ top_logprobs: 3 }, "top_logprobs"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } } }, "response_format"],
    [{ response_format: { type: "json_object" } }, "response_format"],
    [{ logit_bias: { "50256": -100 } }, "logit_bias"],
    [{ presence_penalty: 0.5 }, "presence_penalty"],
    [{ functions: [{ name: "f" }] }, "functions"],
    [{ modalities: ["text", "audio"] }, "modalities"],
    [{ reasoning_effort: "high" }, "reasoning_effort"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ max_completion_tokens: 1.5 }, "max_completion_tokens"],
  ];
  for (const [extra, field] of cases) {
    const err = fails({ ...base, ...extra });
    assert.equal(err.field, field);
    assert.equal(err.status, 400);
    assert.equal(err.toOpenAI().error.param, field);
    assert.equal(err.toOpenAI().error.type, "invalid_request_error");
  }
  assert.equal(fails({ model: "m", messages: [] }).field, "messages");
  assert.equal(fails({ model: "m", messages: [{ role: "system", content: "only" }] }).field, "messages");
  assert.equal(fails({ model: "m", messages: [{ role: "function", content: "x" }] }).field, "messages[0].role");
  assert.equal(fails({ model: "m", messages: [user(42)] }).field, "messages[0].content");
  assert.equal(fails({ model: "m", messages: [user([{ type: "input_audio" }])] }).field, "messages[0].content[0].type");
  assert.equal(fails({ messages: [user("x")] }).field, "model");
});

test("chatResponseToMessages: tool calls become tool_use with parsed input; usage moves cache reads out", () => {
  const msg = chatResponseToMessages(openaiToolCompletion(), { model: "claude-sonnet-4-5" });
  assert.deepEqual(msg, {
    id: "chatcmpl-abc123",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5",
    content: [{ type: "tool_use", id: "call_abc123", name: "get_weather", input: weatherArguments }],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: { input_tokens: 18, output_tokens: 17, cache_creation_input_tokens: 0, cache_read_input_tokens: 64 },
  });
});

test("chatResponseToMessages: finish reasons and stop sequences", () => {
  const completion = (finish: string, content: string, extra: Record<string, unknown> = {}): OpenAIChatCompletion => ({
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "gpt",
    choices: [
      {
        index: 0,
        message: { role: "assistant", content, refusal: null },
        finish_reason: finish as never,
        logprobs: null,
        ...extra,
      },
    ],
  });
  const of = (c: OpenAIChatCompletion, stopSequences?: string[]) => chatResponseToMessages(c, { stopSequences });
  assert.equal(of(completion("stop", "Hi")).stop_reason, "end_turn");
  assert.equal(of(completion("length", "Hi")).stop_reason, "max_tokens");
  assert.equal(of(completion("content_filter", "")).stop_reason, "refusal");
  const vllm = of(completion("stop", "1, 2, 3", { stop_reason: "4" }), ["4"]);
  assert.deepEqual([vllm.stop_reason, vllm.stop_sequence], ["stop_sequence", "4"]);
  const echoed = of(completion("stop", "Answer: 42\nEND"), ["END"]);
  assert.deepEqual([echoed.stop_reason, echoed.stop_sequence], ["stop_sequence", "END"]);
  assert.deepEqual(echoed.content, [{ type: "text", text: "Answer: 42\n" }], "the matched sequence is not content");
  assert.deepEqual(of(completion("stop", "")).content, []);
  assert.deepEqual(of(completion("stop", "x")).usage, {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  });
});
