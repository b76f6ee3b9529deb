import { type AiProtocol, isJsonObject, type JsonObject } from "./protocols.js";
import { countTokens } from "./tokenizer.js";

/**
 * Token usage in one vocabulary whatever the provider: `prompt` counts every input token, cached ones
 * included (OpenAI's meaning; Anthropic reports cache reads and writes apart, so they are added back).
 */
export interface LlmUsage {
  prompt: number;
  completion: number;
  total: number;
  /** Input tokens served from the provider's prompt cache. */
  cacheRead: number;
  /** Input tokens written to the provider's prompt cache (Anthropic). */
  cacheCreation: number;
  reasoning: number;
  /** True when the provider sent no usage and the figures come from a tokenizer. */
  estimated: boolean;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** OpenAI chat / embeddings usage (DeepSeek's prompt_cache_hit_tokens too). */
function fromOpenAIChat(u: JsonObject): LlmUsage {
  const pd = isJsonObject(u.prompt_tokens_details) ? u.prompt_tokens_details : undefined;
  const cd = isJsonObject(u.completion_tokens_details) ? u.completion_tokens_details : undefined;
  const prompt = num(u.prompt_tokens);
  const completion = num(u.completion_tokens);
  return {
    prompt,
    completion,
    total: u.total_tokens === undefined ? prompt + completion : num(u.total_tokens),
    cacheRead: num(pd?.cached_tokens ?? u.prompt_cache_hit_tokens),
    cacheCreation: 0,
    reasoning: num(cd?.reasoning_tokens),
    estimated: false,
  };
}

/** Responses API usage. */
function fromResponses(u: JsonObject): LlmUsage {
  const id = isJsonObject(u.input_tokens_details) ? u.input_tokens_details : undefined;
  const od = isJsonObject(u.output_tokens_details) ? u.output_tokens_details : undefined;
  const prompt = num(u.input_tokens);
  const completion = num(u.output_tokens);
  return {
    prompt,
    completion,
    total: u.total_tokens === undefined ? prompt + completion : num(u.total_tokens),
    cacheRead: num(id?.cached_tokens),
    cacheCreation: 0,
    reasoning: num(od?.reasoning_tokens),
    estimated: false,
  };
}

/** Anthropic usage: input_tokens excludes cache reads and writes. */
function fromAnthropic(u: JsonObject): LlmUsage {
  const cacheRead = num(u.cache_read_input_tokens);
  const cacheCreation = num(u.cache_creation_input_tokens);
  const prompt = num(u.input_tokens) + cacheRead + cacheCreation;
  const completion = num(u.output_tokens);
  return { prompt, completion, total: prompt + completion, cacheRead, cacheCreation, reasoning: 0, estimated: false };
}

/**
 * Watches one upstream answer in the upstream's own protocol and keeps what accounting needs: usage,
 * the model that answered, whether content began (time to first token), tool calls, and the answer
 * text for a tokenizer estimate when the provider sends no usage.
 */
export class UsageMeter {
  usage: LlmUsage | undefined = undefined;
  model: string | undefined = undefined;
  toolCalls = false;
  /** Answer text seen in stream deltas; kept only while no usage has arrived. */
  private text: string[] = [];

  constructor(readonly protocol: AiProtocol) {}

  /**
   * One parsed stream event (`data` already JSON-decoded, or undefined for `[DONE]` and non-JSON data).
   * Returns true when the event carries answer content (the first such event is the first token).
   */
  onStreamEvent(type: string | undefined, data: JsonObject | undefined): boolean {
    if (data === undefined) return false;
    switch (this.protocol) {
      case "openai-chat":
      case "passthrough":
        return this.chatChunk(data);
      case "anthropic-messages":
        return this.anthropicEvent(type ?? (data.type as string | undefined), data);
      case "openai-responses":
        return this.responsesEvent(type ?? (data.type as string | undefined), data);
      default:
        return false;
    }
  }

  /** A whole (non-streamed) answer body. */
  onBody(body: JsonObject): void {
    if (typeof body.model === "string") this.model = body.model;
    const u = isJsonObject(body.usage) ? body.usage : undefined;
    if (u === undefined) return;
    this.usage =
      this.protocol === "anthropic-messages"
        ? fromAnthropic(u)
        : this.protocol === "openai-responses"
          ? fromResponses(u)
          : fromOpenAIChat(u);
    if (this.protocol === "anthropic-messages" && Array.isArray(body.content)) {
      this.toolCalls = body.content.some((b) => isJsonObject(b) && b.type === "tool_use");
    } else if (Array.isArray(body.choices)) {
      this.toolCalls = body.choices.some(
        (c) => isJsonObject(c) && isJsonObject(c.message) && Array.isArray(c.message.tool_calls),
      );
    }
  }

  /** The answer text a tokenizer can count (non-streamed answers), when usage is missing. */
  static bodyText(protocol: AiProtocol, body: JsonObject): string {
    const out: string[] = [];
    if (protocol === "anthropic-messages" && Array.isArray(body.content)) {
      for (const b of body.content) if (isJsonObject(b) && typeof b.text === "string") out.push(b.text);
    } else if (Array.isArray(body.choices)) {
      for (const c of body.choices) {
        if (!isJsonObject(c)) continue;
        const m = isJsonObject(c.message) ? c.message : undefined;
        if (typeof m?.content === "string") out.push(m.content);
        if (typeof c.text === "string") out.push(c.text);
      }
    }
    return out.join("");
  }

  /** Usage from the provider, or else a tokenizer estimate over the prompt and the answer text. */
  finalUsage(requestBody: JsonObject, answerText?: string): LlmUsage {
    if (this.usage !== undefined) return this.usage;
    const prompt = countTokens(promptText(requestBody));
    const completion = countTokens(answerText ?? this.text.join(""));
    return {
      prompt,
      completion,
      total: prompt + completion,
      cacheRead: 0,
      cacheCreation: 0,
      reasoning: 0,
      estimated: true,
    };
  }

  private chatChunk(data: JsonObject): boolean {
    if (this.model === undefined && typeof data.model === "string") this.model = data.model;
    if (isJsonObject(data.usage)) {
      this.usage = fromOpenAIChat(data.usage);
      this.text.length = 0;
    }
    let content = false;
    const choices = data.choices;
    if (Array.isArray(choices)) {
      for (const c of choices) {
        const delta = isJsonObject(c) && isJsonObject(c.delta) ? c.delta : undefined;
        if (delta === undefined) continue;
        if (typeof delta.content === "string" && delta.content !== "") {
          content = true;
          if (this.usage === undefined) this.text.push(delta.content);
        }
        if (typeof delta.reasoning_content === "string" && delta.reasoning_content !== "") content = true;
        if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) {
          content = true;
          this.toolCalls = true;
        }
      }
    }
    return content;
  }

  private anthropicEvent(type: string | undefined, data: JsonObject): boolean {
    switch (type) {
      case "message_start": {
        const m = isJsonObject(data.message) ? data.message : undefined;
        if (typeof m?.model === "string") this.model = m.model;
        if (isJsonObject(m?.usage)) this.usage = fromAnthropic(m.usage);
        return false;
      }
      case "content_block_start": {
        const b = isJsonObject(data.content_block) ? data.content_block : undefined;
        if (b?.type === "tool_use") {
          this.toolCalls = true;
          return true;
        }
        return false;
      }
      case "content_block_delta": {
        const d = isJsonObject(data.delta) ? data.delta : undefined;
        if (d?.type === "text_delta" && typeof d.text === "string") this.text.push(d.text);
        return true;
      }
      case "message_delta": {
        // output_tokens here is cumulative; input counts may be restated (they were in message_start).
        const u = isJsonObject(data.usage) ? data.usage : undefined;
        if (u !== undefined) {
          const prev = this.usage;
          const merged = fromAnthropic({
            input_tokens: u.input_tokens ?? (prev ? prev.prompt - prev.cacheRead - prev.cacheCreation : 0),
            cache_read_input_tokens: u.cache_read_input_tokens ?? prev?.cacheRead,
            cache_creation_input_tokens: u.cache_creation_input_tokens ?? prev?.cacheCreation,
            output_tokens: u.output_tokens,
          });
          this.usage = merged;
        }
        return false;
      }
      default:
        return false;
    }
  }

  private responsesEvent(type: string | undefined, data: JsonObject): boolean {
    if (type === "response.output_text.delta" || type === "response.function_call_arguments.delta") {
      if (typeof data.delta === "string") this.text.push(data.delta);
      if (type === "response.function_call_arguments.delta") this.toolCalls = true;
      return true;
    }
    if (type === "response.completed" || type === "response.incomplete") {
      const r = isJsonObject(data.response) ? data.response : undefined;
      if (typeof r?.model === "string") this.model = r.model;
      if (isJsonObject(r?.usage)) this.usage = fromResponses(r.usage);
    }
    return false;
  }
}

/** The text a tokenizer sees of a request: every message's text, the system prompt, or the input. */
export function promptText(body: JsonObject): string {
  const out: string[] = [];
  const add = (content: unknown): void => {
    if (typeof content === "string") out.push(content);
    else if (Array.isArray(content)) {
      for (const part of content) {
        if (typeof part === "string") out.push(part);
        else if (isJsonObject(part)) {
          if (typeof part.text === "string") out.push(part.text);
          else if (part.content !== undefined) add(part.content);
        }
      }
    }
  };
  add(body.system);
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) if (isJsonObject(m)) add(m.content);
  }
  add(body.input);
  add(body.prompt);
  add(body.instructions);
  return out.join("\n");
}
