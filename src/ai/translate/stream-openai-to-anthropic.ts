import { isRecord, openaiErrorToAnthropic } from "./errors.js";
import { finishReasonToStopReason, openaiUsageToTokens, toAnthropicToolId, tokensToAnthropicUsage } from "./mapping.js";
import type {
  AnthropicErrorBody,
  AnthropicStopReason,
  AnthropicStreamEvent,
  OpenAIChatChunk,
  OpenAIToolCallDelta,
  TokenUsage,
} from "./types.js";

export interface ChatStreamToMessagesOptions {
  /** The model name the Anthropic client asked for; the upstream's own name otherwise. */
  model?: string;
  /** The prompt's size when the caller knows or estimated it: message_start carries it before any usage arrives. */
  inputTokens?: number;
}

const none: readonly AnthropicStreamEvent[] = Object.freeze([]);

type OpenBlock = "none" | "text" | "tool_use";

/**
 * An OpenAI-compatible chunk stream as Claude's event stream. Fed one parsed chunk at a time; on `[DONE]`
 * (or when the upstream closes early) the caller calls `end()`, which closes the message either way. Each
 * event is written as `event: <type>\ndata: <json>\n\n`.
 */
export class ChatStreamToMessages {
  /** Input counts cached tokens too, as OpenAI's prompt_tokens does. */
  readonly usage: TokenUsage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 };
  /** Set by an in-stream error object, with the status an Anthropic client would have seen. */
  error: { status: number; body: AnthropicErrorBody } | undefined;
  finished = false;

  private started = false;
  private readonly model: string | undefined;
  private readonly inputKnownAtStart: boolean;
  private open: OpenBlock = "none";
  private blockIndex = -1;
  /** Anthropic block index and call id per OpenAI tool-call index. */
  private readonly blockByTool: number[] = [];
  private readonly idByTool: (string | undefined)[] = [];
  private sawToolUse = false;
  private refused = false;
  private finishReason: string | null = null;
  private stopSequence: string | null = null;
  private messageId = "";

  constructor(opts: ChatStreamToMessagesOptions = {}) {
    this.model = opts.model;
    this.inputKnownAtStart = typeof opts.inputTokens === "number";
    if (this.inputKnownAtStart) this.usage.inputTokens = opts.inputTokens!;
  }

  push(chunk: OpenAIChatChunk): readonly AnthropicStreamEvent[] {
    if (this.finished) return none;
    if (isRecord((chunk as unknown as Record<string, unknown>).error)) {
      this.error = openaiErrorToAnthropic(0, chunk);
      this.finished = true;
      return [this.error.body];
    }
    const out: AnthropicStreamEvent[] = [];
    if (chunk.usage) openaiUsageToTokens(chunk.usage, this.usage);
    if (!this.started) this.start(out, chunk);
    const choice = chunk.choices?.[0];
    if (!choice) return out;
    const delta = choice.delta;
    if (delta) {
      if (typeof delta.content === "string" && delta.content.length > 0) this.text(out, delta.content);
      if (typeof delta.refusal === "string" && delta.refusal.length > 0) {
        this.refused = true;
        this.text(out, delta.refusal);
      }
      const calls = delta.tool_calls;
      if (Array.isArray(calls)) for (let i = 0; i < calls.length; i++) this.toolCall(out, calls[i]!, i);
    }
    if (choice.finish_reason) {
      this.finishReason = choice.finish_reason;
      // vLLM names the stop string that matched; OpenAI does not, and then end_turn is all one can say.
      if (typeof choice.stop_reason === "string" && choice.stop_reason.length > 0)
        this.stopSequence = choice.stop_reason;
    }
    return out;
  }

  /** The closing events, once; `outputTokens` stands in when the upstream sent no usage. */
  end(estimate: { outputTokens?: number } = {}): readonly AnthropicStreamEvent[] {
    if (this.finished) return none;
    this.finished = true;
    const out: AnthropicStreamEvent[] = [];
    if (!this.started) this.start(out, undefined);
    this.closeBlock(out);
    if (this.usage.outputTokens === 0 && typeof estimate.outputTokens === "number")
      this.usage.outputTokens = estimate.outputTokens;

    let stopReason: AnthropicStopReason = this.refused
      ? "refusal"
      : finishReasonToStopReason(this.finishReason, this.finishReason === "stop" ? this.stopSequence : null);
    // Some servers end tool calls with "stop" (or never say): the client must still be told to run them.
    if (this.sawToolUse && stopReason === "end_turn") stopReason = "tool_use";
    const usage: { output_tokens: number; input_tokens?: number; cache_read_input_tokens?: number } = {
      output_tokens: this.usage.outputTokens,
    };
    if (!this.inputKnownAtStart && this.usage.inputTokens > 0) {
      const anthropic = tokensToAnthropicUsage(this.usage);
      usage.input_tokens = anthropic.input_tokens;
      usage.cache_read_input_tokens = anthropic.cache_read_input_tokens ?? 0;
    }
    out.push(
      {
        type: "message_delta",
        delta: { stop_reason: stopReason, stop_sequence: stopReason === "stop_sequence" ? this.stopSequence : null },
        usage,
      },
      { type: "message_stop" },
    );
    return out;
  }

  private start(out: AnthropicStreamEvent[], chunk: OpenAIChatChunk | undefined): void {
    this.started = true;
    this.messageId = typeof chunk?.id === "string" && chunk.id.length > 0 ? chunk.id : "msg_weir";
    const usage = tokensToAnthropicUsage(this.usage);
    usage.output_tokens = 0;
    out.push({
      type: "message_start",
      message: {
        id: this.messageId,
        type: "message",
        role: "assistant",
        model: this.model ?? chunk?.model ?? "",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage,
      },
    });
  }

  private text(out: AnthropicStreamEvent[], text: string): void {
    if (this.open !== "text") {
      this.closeBlock(out);
      this.openBlock(out, "text", { type: "text", text: "" });
    }
    out.push({ type: "content_block_delta", index: this.blockIndex, delta: { type: "text_delta", text } });
  }

  private toolCall(out: AnthropicStreamEvent[], call: OpenAIToolCallDelta, position: number): void {
    const toolIndex = typeof call.index === "number" ? call.index : position;
    const id = typeof call.id === "string" && call.id.length > 0 ? call.id : undefined;
    let block = this.blockByTool[toolIndex];
    // A new id under a known index is a new call: some servers number every call 0.
    if (
      block === undefined ||
      (id !== undefined && this.idByTool[toolIndex] !== undefined && id !== this.idByTool[toolIndex])
    ) {
      this.closeBlock(out);
      const toolId = toAnthropicToolId(id ?? `${this.messageId}_tool_${toolIndex}`);
      this.openBlock(out, "tool_use", { type: "tool_use", id: toolId, name: call.function?.name ?? "", input: {} });
      block = this.blockIndex;
      this.blockByTool[toolIndex] = block;
      this.idByTool[toolIndex] = id;
      this.sawToolUse = true;
    }
    const fragment = call.function?.arguments;
    if (typeof fragment === "string" && fragment.length > 0)
      out.push({
        type: "content_block_delta",
        index: block,
        delta: { type: "input_json_delta", partial_json: fragment },
      });
  }

  private openBlock(
    out: AnthropicStreamEvent[],
    kind: OpenBlock,
    contentBlock: { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: object },
  ): void {
    this.blockIndex++;
    this.open = kind;
    out.push({ type: "content_block_start", index: this.blockIndex, content_block: contentBlock });
  }

  private closeBlock(out: AnthropicStreamEvent[]): void {
    if (this.open === "none") return;
    out.push({ type: "content_block_stop", index: this.blockIndex });
    this.open = "none";
  }
}
