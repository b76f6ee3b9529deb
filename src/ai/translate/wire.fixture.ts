/**
 * Real-shaped traffic of both APIs (ids, fragment boundaries and usage as the providers send them), shared by
 * the translation tests.
 */
import type { AnthropicMessage, AnthropicStreamEvent, OpenAIChatChunk, OpenAIChatCompletion } from "./types.js";

export const weatherArguments = { location: "San Francisco, CA", unit: "fahrenheit" };
export const timeArguments = { timezone: "America/Los_Angeles" };

/** Claude answering with a sentence and a tool call, prompt partly served from the cache. */
export function anthropicToolStream(): AnthropicStreamEvent[] {
  const fragments = ['{"location":', ' "San', " Francisc", "o,", ' CA"', ", ", '"unit": "fah', 'renheit"}'];
  return [
    {
      type: "message_start",
      message: {
        id: "msg_014p7gG3wDgGV9EUtLvnow3U",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5-20250929",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 472, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000, output_tokens: 2 },
      },
    },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    { type: "ping" },
    { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Okay" } },
    {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: ", let's check the weather for San Francisco, CA:" },
    },
    { type: "content_block_stop", index: 0 },
    {
      type: "content_block_start",
      index: 1,
      content_block: { type: "tool_use", id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "get_weather", input: {} },
    },
    { type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: "" } },
    ...fragments.map(
      (partial_json): AnthropicStreamEvent => ({
        type: "content_block_delta",
        index: 1,
        delta: { type: "input_json_delta", partial_json },
      }),
    ),
    { type: "content_block_stop", index: 1 },
    {
      type: "content_block_start",
      index: 2,
      content_block: { type: "tool_use", id: "toolu_01XYZtime", name: "get_time", input: {} },
    },
    { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: '{"timezone": "Ame' } },
    { type: "content_block_delta", index: 2, delta: { type: "input_json_delta", partial_json: 'rica/Los_Angeles"}' } },
    { type: "content_block_stop", index: 2 },
    {
      type: "message_delta",
      delta: { stop_reason: "tool_use", stop_sequence: null },
      usage: { output_tokens: 89 },
    },
    { type: "message_stop" },
  ];
}

/** Claude thinking first, then answering in text that ends its turn. */
export function anthropicThinkingStream(): AnthropicStreamEvent[] {
  return [
    {
      type: "message_start",
      message: {
        id: "msg_01ThinkThink",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5-20250929",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 25, output_tokens: 1 },
      },
    },
    { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
    { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "27 * 453 = " } },
    { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "12231" } },
    {
      type: "content_block_delta",
      index: 0,
      delta: { type: "signature_delta", signature: "EqQBCgIYAhIM1gbcDa9GJwZA" },
    },
    { type: "content_block_stop", index: 0 },
    { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
    { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "27 * 453 " } },
    { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "is **12,231**." } },
    { type: "content_block_stop", index: 1 },
    { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 40 } },
    { type: "message_stop" },
  ];
}

const chunkBase = { id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", object: "chat.completion.chunk" as const };

function chunk(delta: OpenAIChatChunk["choices"][0]["delta"], finish: string | null = null): OpenAIChatChunk {
  return {
    ...chunkBase,
    created: 1741570283,
    model: "gpt-4o-2024-08-06",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish as never }],
  };
}

/** gpt-4o calling two tools in parallel, arguments split mid-token, then the include_usage chunk. */
export function openaiToolStream(): OpenAIChatChunk[] {
  return [
    chunk({
      role: "assistant",
      content: null,
      tool_calls: [
        {
          index: 0,
          id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
          type: "function",
          function: { name: "get_weather", arguments: "" },
        },
      ],
    }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"lo' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: 'cation": "San Francisco, CA", ' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"unit": "fahrenheit"}' } }] }),
    chunk({
      tool_calls: [
        {
          index: 1,
          id: "call_ABCd9pD3xa9XTPNJ32zg2xyz",
          type: "function",
          function: { name: "get_time", arguments: "" },
        },
      ],
    }),
    chunk({ tool_calls: [{ index: 1, function: { arguments: '{"timezone": "America/' } }] }),
    chunk({ tool_calls: [{ index: 1, function: { arguments: 'Los_Angeles"}' } }] }),
    chunk({}, "tool_calls"),
    {
      ...chunkBase,
      created: 1741570283,
      model: "gpt-4o-2024-08-06",
      choices: [],
      usage: {
        prompt_tokens: 2100,
        completion_tokens: 55,
        total_tokens: 2155,
        prompt_tokens_details: { cached_tokens: 1920 },
      },
    },
  ];
}

/** A plain text answer, the way OpenAI opens it (role and an empty content first). */
export function openaiTextStream(): OpenAIChatChunk[] {
  return [
    chunk({ role: "assistant", content: "", refusal: null }),
    chunk({ content: "Hello" }),
    chunk({ content: "! How can I" }),
    chunk({ content: " help you today?" }),
    chunk({}, "stop"),
    {
      ...chunkBase,
      created: 1741570283,
      model: "gpt-4o-2024-08-06",
      choices: [],
      usage: {
        prompt_tokens: 19,
        completion_tokens: 10,
        total_tokens: 29,
        prompt_tokens_details: { cached_tokens: 0 },
      },
    },
  ];
}

export function anthropicToolMessage(): AnthropicMessage {
  return {
    id: "msg_01Aq9w938a90dw8q",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content: [
      { type: "thinking", thinking: "The user wants the weather.", signature: "EqQBCgIYAhIM" },
      { type: "text", text: "I'll check the current weather in San Francisco for you." },
      { type: "tool_use", id: "toolu_01A09q90qw90lq917835lq9", name: "get_weather", input: weatherArguments },
    ],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: { input_tokens: 384, cache_creation_input_tokens: 0, cache_read_input_tokens: 1024, output_tokens: 91 },
  };
}

export function openaiToolCompletion(): OpenAIChatCompletion {
  return {
    id: "chatcmpl-abc123",
    object: "chat.completion",
    created: 1699896916,
    model: "gpt-4o-mini-2024-07-18",
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: null,
          refusal: null,
          tool_calls: [
            {
              id: "call_abc123",
              type: "function",
              function: { name: "get_weather", arguments: JSON.stringify(weatherArguments) },
            },
          ],
        },
        logprobs: null,
        finish_reason: "tool_calls",
      },
    ],
    usage: { prompt_tokens: 82, completion_tokens: 17, total_tokens: 99, prompt_tokens_details: { cached_tokens: 64 } },
  };
}

/** What the SDKs' fromReadableStream() reads: one JSON document per line. */
export function ndjsonStream(items: readonly unknown[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const item of items) controller.enqueue(encoder.encode(JSON.stringify(item) + "\n"));
      controller.close();
    },
  });
}
