import assert from "node:assert/strict";
import { test } from "node:test";
import { messagesRequestToChat, messagesResponseToChat } from "./anthropic-to-openai.js";
import { TranslationError } from "./errors.js";
import { RAW_ARGUMENTS_KEY } from "./mapping.js";
import { chatRequestToMessages, chatResponseToMessages } from "./openai-to-anthropic.js";
import type { AnthropicMessage, AnthropicMessagesRequest, OpenAIChatRequest } from "./types.js";
import { anthropicToolMessage, openaiToolCompletion, weatherArguments } from "./wire.fixture.js";

const minimal = { model: "gpt", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
const toolsA = [{ name: "get_weather", input_schema: { type: "object" } }];

function ok(body: Record<string, unknown>, opts = {}): OpenAIChatRequest {
  const out = messagesRequestToChat(body as AnthropicMessagesRequest, opts);
  if (out instanceof TranslationError) assert.fail(`unexpected error on ${out.field}: ${out.message}`);
  return out;
}

function fails(body: Record<string, unknown>): TranslationError {
  const out = messagesRequestToChat(body as AnthropicMessagesRequest);
  assert.ok(out instanceof TranslationError, `expected an error, got ${JSON.stringify(out)}`);
  return out;
}

test("messagesResponseToChat: text → content, tool_use → tool_calls, thinking → reasoning_content, usage with cache", () => {
  const completion = messagesResponseToChat(anthropicToolMessage(), "gpt-4o");
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.id, "msg_01Aq9w938a90dw8q");
  assert.equal(completion.model, "gpt-4o");
  assert.equal(typeof completion.created, "number");
  assert.deepEqual(completion.choices, [
    {
      index: 0,
      message: {
        role: "assistant",
        content: "I'll check the current weather in San Francisco for you.",
        refusal: null,
        tool_calls: [
          {
            id: "toolu_01A09q90qw90lq917835lq9",
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify(weatherArguments) },
          },
        ],
        reasoning_content: "The user wants the weather.",
      },
      finish_reason: "tool_calls",
      logprobs: null,
    },
  ]);
  assert.deepEqual(completion.usage, {
    prompt_tokens: 384 + 1024,
    completion_tokens: 91,
    total_tokens: 384 + 1024 + 91,
    prompt_tokens_details: { cached_tokens: 1024 },
  });
});

test("messagesResponseToChat: stop reasons, tool-only content is null, cache writes count as prompt", () => {
  const message = (stop_reason: string, content: AnthropicMessage["content"]): AnthropicMessage => ({
    ...anthropicToolMessage(),
    content,
    stop_reason: stop_reason as never,
    usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 300, cache_read_input_tokens: null },
  });
  const text = [{ type: "text" as const, text: "Hi" }];
  const finish = (stop: string) => messagesResponseToChat(message(stop, text)).choices[0]!.finish_reason;
  assert.equal(finish("end_turn"), "stop");
  assert.equal(finish("stop_sequence"), "stop");
  assert.equal(finish("max_tokens"), "length");
  assert.equal(finish("tool_use"), "tool_calls");
  assert.equal(finish("refusal"), "content_filter");
  const toolOnly = messagesResponseToChat(message("tool_use", [{ type: "tool_use", id: "t", name: "f", input: {} }]));
  assert.equal(toolOnly.choices[0]!.message.content, null);
  assert.equal(toolOnly.choices[0]!.message.tool_calls![0]!.function.arguments, "{}");
  assert.equal(toolOnly.model, "claude-sonnet-4-5-20250929");
  assert.equal(messagesResponseToChat(message("end_turn", [])).choices[0]!.message.content, "");
  assert.deepEqual(toolOnly.usage, {
    prompt_tokens: 310,
    completion_tokens: 5,
    total_tokens: 315,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("messagesRequestToChat: system blocks, tool results split into tool messages before the user's text", () => {
  const out = ok({
    model: "gpt-4o",
    max_tokens: 1024,
    system: [
      { type: "text", text: "You are a weather bot.", cache_control: { type: "ephemeral" } },
      { type: "text", text: "Be brief." },
    ],
    messages: [
      { role: "user", content: "Weather in SF?" },
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "call the tool", signature: "sig" },
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "toolu_1", name: "get_weather", input: weatherArguments },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "64F, fog" }] },
          { type: "text", text: "Is that normal?" },
        ],
      },
    ],
  });
  assert.deepEqual(out, {
    model: "gpt-4o",
    max_tokens: 1024,
    messages: [
      { role: "system", content: "You are a weather bot.\n\nBe brief." },
      { role: "user", content: "Weather in SF?" },
      {
        role: "assistant",
        content: "Let me check.",
        tool_calls: [
          {
            id: "toolu_1",
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify(weatherArguments) },
          },
        ],
      },
      { role: "tool", tool_call_id: "toolu_1", content: "64F, fog" },
      { role: "user", content: "Is that normal?" },
    ],
  });
});

test("messagesRequestToChat: images, documents, failed tool results, tools, choices, sampling, stream", () => {
  const out = ok(
    {
      model: "gpt-4o",
      max_tokens: 200,
      stop_sequences: ["\n\nHuman:"],
      temperature: 0.2,
      top_p: 0.8,
      top_k: 40,
      stream: true,
      metadata: { user_id: "u-1" },
      tools: [{ name: "get_weather", description: "Weather", input_schema: { type: "object", properties: {} } }],
      tool_choice: { type: "any", disable_parallel_tool_use: true },
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/jpeg", data: "/9j/4AAQ" } },
            { type: "image", source: { type: "url", url: "https://example.com/a.png" } },
            { type: "document", source: { type: "base64", media_type: "application/pdf", data: "JVBERi0=" } },
            { type: "document", source: { type: "text", media_type: "text/plain", data: "plain notes" } },
            { type: "text", text: "Compare." },
          ],
        },
        { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "get_weather", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "timeout", is_error: true }] },
      ],
    },
    { maxTokensField: "max_completion_tokens" },
  );
  assert.equal(out.max_completion_tokens, 200);
  assert.equal(out.max_tokens, undefined);
  assert.deepEqual(out.stop, ["\n\nHuman:"]);
  assert.deepEqual([out.temperature, out.top_p, out.top_k, out.user], [0.2, 0.8, 40, "u-1"]);
  assert.deepEqual([out.stream, out.stream_options], [true, { include_usage: true }]);
  assert.deepEqual(out.tools, [
    {
      type: "function",
      function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: {} } },
    },
  ]);
  assert.equal(out.tool_choice, "required");
  assert.equal(out.parallel_tool_calls, false);
  assert.deepEqual(out.messages[0], {
    role: "user",
    content: [
      { type: "image_url", image_url: { url: "data:image/jpeg;base64,/9j/4AAQ" } },
      { type: "image_url", image_url: { url: "https://example.com/a.png" } },
      { type: "file", file: { filename: "document.pdf", file_data: "data:application/pdf;base64,JVBERi0=" } },
      { type: "text", text: "plain notes" },
      { type: "text", text: "Compare." },
    ],
  });
  assert.deepEqual(out.messages[1], {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "t1", type: "function", function: { name: "get_weather", arguments: "{}" } }],
  });
  assert.deepEqual(out.messages[2], { role: "tool", tool_call_id: "t1", content: "Error: timeout" });
  const choice = (tool_choice: unknown) => ok({ ...minimal, tools: toolsA, tool_choice }).tool_choice;
  assert.equal(choice({ type: "auto" }), "auto");
  assert.equal(choice({ type: "none" }), "none");
  assert.deepEqual(choice({ type: "tool", name: "get_weather" }), {
    type: "function",
    function: { name: "get_weather" },
  });
});

test("messagesRequestToChat: what Chat Completions cannot carry is an error naming the field", () => {
  assert.equal(fails({ ...minimal, max_tokens: undefined }).field, "max_tokens");
  assert.equal(
    fails({ ...minimal, tools: [{ type: "web_search_20250305", name: "web_search" }] }).field,
    "tools[0].type",
  );
  assert.equal(fails({ ...minimal, mcp_servers: [{ url: "https://mcp" }] }).field, "mcp_servers");
  const imageResult = fails({
    ...minimal,
    messages: [
      {
        role: "user",
        content: [
          {
            type: "tool_result",
            tool_use_id: "t",
            content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "x" } }],
          },
        ],
      },
    ],
  });
  assert.equal(imageResult.field, "messages[0].content[0].content[0]");
  assert.match(imageResult.toAnthropic().error.message, /^messages\[0\]\.content\[0\]\.content\[0\]: only text/);
  assert.equal(fails({ ...minimal, messages: [{ role: "system", content: "x" }] }).field, "messages[0].role");
  assert.equal(fails({ ...minimal, system: 5 }).field, "system");
});

test("round trip: an OpenAI tool conversation through Anthropic and back keeps its meaning", () => {
  const original = {
    model: "m",
    max_tokens: 300,
    messages: [
      { role: "system", content: "Be helpful." },
      { role: "user", content: "Weather?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify(weatherArguments) },
          },
          { id: "call_2", type: "function", function: { name: "broken", arguments: "{not json" } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "64F" },
      { role: "tool", tool_call_id: "call_2", content: "err" },
    ],
  } as OpenAIChatRequest;
  const anthropic = chatRequestToMessages(original);
  assert.ok(!(anthropic instanceof TranslationError));
  const back = messagesRequestToChat(anthropic);
  assert.ok(!(back instanceof TranslationError));
  assert.deepEqual(back.messages, original.messages);
  const broken = (anthropic.messages[1]!.content as { input: unknown }[])[1]!.input;
  assert.deepEqual(broken, { [RAW_ARGUMENTS_KEY]: "{not json" });

  // And an OpenAI model's answer, through an Anthropic client's shape, back to OpenAI's.
  const answer = messagesResponseToChat(chatResponseToMessages(openaiToolCompletion()));
  assert.deepEqual(answer.choices[0]!.message.tool_calls, openaiToolCompletion().choices[0]!.message.tool_calls);
  assert.equal(answer.choices[0]!.finish_reason, "tool_calls");
  assert.deepEqual(answer.usage, openaiToolCompletion().usage);
});
