import { anthropicErrorToOpenAI } from "./errors.js";
import { anthropicUsageToTokens, stopReasonToFinishReason, tokensToOpenAIUsage, unixSeconds } from "./mapping.js";
import type {
  AnthropicStreamEvent,
  OpenAIChatChunk,
  OpenAIChunkDelta,
  OpenAIErrorBody,
  OpenAIFinishReason,
  TokenUsage,
} from "./types.js";

export interface AnthropicStreamToChatOptions {
  /** The model name the OpenAI client asked for; Claude's own name otherwise. */
  model?: string;
  /** The client's `stream_options.include_usage`: a last chunk with `choices: []` and the usage. */
  includeUsage?: boolean;
}

/** Every element is sent to the client as one `data:` line; an error object is how OpenAI reports mid-stream failure. */
export type ChatStreamOutput = OpenAIChatChunk | OpenAIErrorBody;

const none: readonly ChatStreamOutput[] = Object.freeze([]);

/**
 * Claude's stream of events as an OpenAI chat.completion.chunk stream. Fed one parsed event at a time; the
 * caller writes `data: [DONE]` after `finished` turns true (or after an error).
 */
export class AnthropicStreamToChat {
  /** Input counts cache reads and writes, as OpenAI's prompt_tokens does. */
  readonly usage: TokenUsage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 };
  /** Set by an `error` event, with the status an OpenAI client would have seen before the stream began. */
  error: { status: number; body: OpenAIErrorBody } | undefined;
  finished = false;

  private id = "";
  private model: string;
  private readonly created = unixSeconds();
  private readonly includeUsage: boolean;
  private finishReason: OpenAIFinishReason | null = null;
  /** OpenAI numbers tool calls 0, 1, …; Claude numbers every content block. Indexed by block index. */
  private readonly toolIndexByBlock: number[] = [];
  private toolCount = 0;

  constructor(opts: AnthropicStreamToChatOptions = {}) {
    this.model = opts.model ?? "";
    this.includeUsage = opts.includeUsage === true;
  }

  push(event: AnthropicStreamEvent): readonly ChatStreamOutput[] {
    switch (event.type) {
      case "message_start": {
        const message = event.message;
        this.id = message.id;
        if (this.model === "") this.model = message.model;
        anthropicUsageToTokens(message.usage, this.usage);
        return [this.chunk({ role: "assistant", content: "" })];
      }
      case "content_block_start": {
        const block = event.content_block;
        if (block.type === "tool_use") {
          const index = this.toolCount++;
          this.toolIndexByBlock[event.index] = index;
          return [
            this.chunk({
              tool_calls: [
                {
                  index,
                  id: String(block.id),
                  type: "function",
                  function: { name: String(block.name), arguments: "" },
                },
              ],
            }),
          ];
        }
        if (block.type === "text" && typeof block.text === "string" && block.text.length > 0)
          return [this.chunk({ content: block.text })];
        return none;
      }
      case "content_block_delta": {
        const delta = event.delta;
        if (delta.type === "text_delta") return [this.chunk({ content: delta.text })];
        if (delta.type === "input_json_delta") {
          const index = this.toolIndexByBlock[event.index];
          if (index === undefined || delta.partial_json.length === 0) return none;
          return [this.chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] })];
        }
        if (delta.type === "thinking_delta") return [this.chunk({ reasoning_content: delta.thinking })];
        return none; // signature and citation deltas have no OpenAI counterpart
      }
      case "message_delta":
        anthropicUsageToTokens(event.usage, this.usage);
        if (event.delta?.stop_reason == null) return none;
        this.finishReason = stopReasonToFinishReason(event.delta.stop_reason);
        return [this.chunk({}, this.finishReason)];
      case "message_stop":
        return this.finish();
      case "error": {
        this.error = anthropicErrorToOpenAI(0, event);
        this.finished = true;
        return [this.error.body];
      }
      default:
        return none; // ping, and event types added after this was written
    }
  }

  /** For an upstream that closed without message_stop: the closing chunks, once. */
  end(): readonly ChatStreamOutput[] {
    return this.finished ? none : this.finish();
  }

  private finish(): readonly ChatStreamOutput[] {
    if (this.finished) return none;
    this.finished = true;
    const out: ChatStreamOutput[] = [];
    if (this.finishReason === null) {
      this.finishReason = this.toolCount > 0 ? "tool_calls" : "stop";
      out.push(this.chunk({}, this.finishReason));
    }
    if (this.includeUsage) {
      out.push({
        id: this.id,
        object: "chat.completion.chunk",
        created: this.created,
        model: this.model,
        choices: [],
        usage: tokensToOpenAIUsage(this.usage),
      });
    }
    return out;
  }

  private chunk(delta: OpenAIChunkDelta, finishReason: OpenAIFinishReason | null = null): OpenAIChatChunk {
    return {
      id: this.id,
      object: "chat.completion.chunk",
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    };
  }
}
