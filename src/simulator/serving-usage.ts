import type { PromptBlocks } from "./prefix-cache.js";

/**
 * What a handler learns about the serving model from the Exchange: null when it is off. A handler then attaches
 * a ServingRequest to its reply and writes the markers below where usage needs numbers only the engine knows.
 */
export interface ServingView {
  blockTokens: number;
  /** Add llama.cpp's `timings` object (the llamacpp metrics dialect). */
  timings: boolean;
}

/** Attached to a successful reply when the serving model is on: what the engine schedules. */
export interface ServingRequest {
  prompt: PromptBlocks;
  /** vLLM's finished_reason for the request: "length" when max_tokens cut it. */
  finish: "stop" | "length";
}

// Cached tokens are known only when the engine admits the request, after the handler built the answer's text.
// The handler writes these strings where the numbers go; they survive JSON.stringify verbatim (a private-use
// character, not a control one), and fillUsage swaps each quoted marker for the number before the bytes leave.
const MARK = "\uE000";
/** Prompt tokens found in the prefix cache. */
export const CACHED_TOKENS = `${MARK}cached`;
/** Prompt tokens not found there: Anthropic's input_tokens, which excludes cache reads. */
export const UNCACHED_TOKENS = `${MARK}uncached`;
/** llama.cpp's timings object. */
export const TIMINGS = `${MARK}timings`;

const CACHED_JSON = JSON.stringify(CACHED_TOKENS);
const UNCACHED_JSON = JSON.stringify(UNCACHED_TOKENS);
const TIMINGS_JSON = JSON.stringify(TIMINGS);

export interface UsageFacts {
  promptTokens: number;
  cachedTokens: number;
  /** Milliseconds from admission to the first token, and from there to the last. */
  prefillMs: number;
  decodeMs: number;
  generated: number;
}

/** llama.cpp's per-response timings (tools/server: result_timings::to_json). */
export function llamaTimings(f: UsageFacts): object {
  const promptN = f.promptTokens - f.cachedTokens;
  return {
    cache_n: f.cachedTokens,
    prompt_n: promptN,
    prompt_ms: f.prefillMs,
    prompt_per_token_ms: promptN > 0 ? f.prefillMs / promptN : 0,
    prompt_per_second: f.prefillMs > 0 ? (1e3 * promptN) / f.prefillMs : 0,
    predicted_n: f.generated,
    predicted_ms: f.decodeMs,
    predicted_per_token_ms: f.generated > 0 ? f.decodeMs / f.generated : 0,
    predicted_per_second: f.decodeMs > 0 ? (1e3 * f.generated) / f.decodeMs : 0,
  };
}

/** `text` with its markers replaced; text without any comes back as it is. */
export function fillUsage(text: string, f: UsageFacts): string {
  if (!text.includes(MARK)) return text;
  return text
    .replaceAll(CACHED_JSON, String(f.cachedTokens))
    .replaceAll(UNCACHED_JSON, String(f.promptTokens - f.cachedTokens))
    .replaceAll(TIMINGS_JSON, () => JSON.stringify(llamaTimings(f)));
}
