import { isRecord } from "./errors.js";
import type { AnthropicStopReason, AnthropicUsage, OpenAIFinishReason, OpenAIUsage, TokenUsage } from "./types.js";

/**
 * Tool arguments that are not a JSON object (a model's broken JSON, or a bare value) travel under this key:
 * Anthropic only accepts an object as `input`, and the reverse direction unwraps it back to the exact string.
 */
export const RAW_ARGUMENTS_KEY = "_raw_arguments";

export function parseToolArguments(raw: unknown): Record<string, unknown> {
  if (typeof raw !== "string" || raw.trim() === "") return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (isRecord(parsed)) return parsed;
  } catch {
    // fall through: kept verbatim below
  }
  return { [RAW_ARGUMENTS_KEY]: raw };
}

export function stringifyToolInput(input: unknown): string {
  if (isRecord(input)) {
    const raw = input[RAW_ARGUMENTS_KEY];
    if (typeof raw === "string" && Object.keys(input).length === 1) return raw;
  }
  return JSON.stringify(input ?? {});
}

const invalidToolIdChars = /[^a-zA-Z0-9_-]/g;

/** Anthropic requires tool_use ids to match ^[a-zA-Z0-9_-]+$; other OpenAI-compatible servers are laxer. */
export function toAnthropicToolId(id: string): string {
  return id.length === 0 ? "toolu_empty" : id.replace(invalidToolIdChars, "_");
}

export function stopReasonToFinishReason(stop: AnthropicStopReason | string | null | undefined): OpenAIFinishReason {
  switch (stop) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "refusal":
      return "content_filter";
    default:
      // end_turn, stop_sequence, pause_turn (the server paused a long turn; the text so far is complete)
      return "stop";
  }
}

export function finishReasonToStopReason(
  finish: OpenAIFinishReason | string | null | undefined,
  stopSequence: string | null,
): AnthropicStopReason {
  switch (finish) {
    case "length":
      return "max_tokens";
    case "tool_calls":
    case "function_call":
      return "tool_use";
    case "content_filter":
      return "refusal";
    default:
      return stopSequence === null ? "end_turn" : "stop_sequence";
  }
}

/**
 * Which of the request's stop sequences ended the choice, when the server says so: vLLM reports the matched
 * string as `stop_reason`; OpenAI reports nothing, and then only a sequence left at the end of the text tells.
 */
export function matchedStopSequence(
  stopReason: unknown,
  text: string,
  stopSequences: readonly string[] | undefined,
): string | null {
  if (typeof stopReason === "string" && stopReason.length > 0) return stopReason;
  if (!stopSequences) return null;
  for (const sequence of stopSequences) if (sequence.length > 0 && text.endsWith(sequence)) return sequence;
  return null;
}

/** Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt_tokens includes them. */
export function anthropicUsageToTokens(usage: Partial<AnthropicUsage> | null | undefined, into: TokenUsage): void {
  if (!usage) return;
  const cacheRead = usage.cache_read_input_tokens ?? 0;
  if (typeof usage.input_tokens === "number") {
    into.inputTokens = usage.input_tokens + cacheRead + (usage.cache_creation_input_tokens ?? 0);
    into.cachedInputTokens = cacheRead;
  }
  if (typeof usage.output_tokens === "number") into.outputTokens = usage.output_tokens;
}

export function tokensToOpenAIUsage(tokens: TokenUsage): OpenAIUsage {
  return {
    prompt_tokens: tokens.inputTokens,
    completion_tokens: tokens.outputTokens,
    total_tokens: tokens.inputTokens + tokens.outputTokens,
    prompt_tokens_details: { cached_tokens: tokens.cachedInputTokens },
  };
}

export function anthropicUsageToOpenAI(usage: Partial<AnthropicUsage> | null | undefined): OpenAIUsage {
  const tokens: TokenUsage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 };
  anthropicUsageToTokens(usage, tokens);
  return tokensToOpenAIUsage(tokens);
}

export function openaiUsageToTokens(usage: OpenAIUsage | null | undefined, into: TokenUsage): void {
  if (!usage) return;
  if (typeof usage.prompt_tokens === "number") {
    into.inputTokens = usage.prompt_tokens;
    into.cachedInputTokens = usage.prompt_tokens_details?.cached_tokens ?? 0;
  }
  if (typeof usage.completion_tokens === "number") into.outputTokens = usage.completion_tokens;
}

/** The inverse of anthropicUsageToOpenAI: cached tokens move out of input_tokens into cache_read. */
export function tokensToAnthropicUsage(tokens: TokenUsage): AnthropicUsage {
  return {
    input_tokens: Math.max(0, tokens.inputTokens - tokens.cachedInputTokens),
    output_tokens: tokens.outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: tokens.cachedInputTokens,
  };
}

export function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
