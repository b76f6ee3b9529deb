/**
 * OpenAI chat completions → Anthropic messages: the request of an OpenAI client bound for Claude, and the
 * answer of an OpenAI-compatible model bound for an Anthropic client.
 */
import { isRecord, TranslationError } from "./errors.js";
import {
  finishReasonToStopReason,
  matchedStopSequence,
  openaiUsageToTokens,
  parseToolArguments,
  toAnthropicToolId,
  tokensToAnthropicUsage,
} from "./mapping.js";
import type {
  AnthropicMessage,
  AnthropicMessageParam,
  AnthropicMessagesRequest,
  AnthropicRequestBlock,
  AnthropicResponseBlock,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
  OpenAIChatCompletion,
  OpenAIChatRequest,
  TokenUsage,
} from "./types.js";

export const DEFAULT_MAX_TOKENS = 4096;

export interface ChatRequestOptions {
  /** max_tokens when the client sent none; Anthropic requires one. */
  defaultMaxTokens?: number;
}

/** Anthropic decodes these image types only; anything else would be a 400 from upstream with a vaguer message. */
const anthropicImageTypes = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);

/** Sampling and output controls Claude has no counterpart for: sending the request without them changes the answer. */
const unsupportedWhenSet: readonly string[] = [
  "functions",
  "function_call",
  "audio",
  "web_search_options",
  "verbosity",
];

export function chatRequestToMessages(
  body: OpenAIChatRequest,
  opts: ChatRequestOptions = {},
): AnthropicMessagesRequest | TranslationError {
  if (!isRecord(body)) return new TranslationError("body", "must be a JSON object");
  if (typeof body.model !== "string") return new TranslationError("model", "must be a string");
  const unsupported = unsupportedField(body);
  if (unsupported) return unsupported;

  const converted = convertMessages(body.messages);
  if (converted instanceof TranslationError) return converted;

  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? opts.defaultMaxTokens ?? DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    const field = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    return new TranslationError(field, "must be a positive integer");
  }

  const out: AnthropicMessagesRequest = { model: body.model, max_tokens: maxTokens, messages: converted.messages };
  if (converted.system !== undefined) out.system = converted.system;

  const stop = body.stop;
  if (typeof stop === "string") out.stop_sequences = [stop];
  else if (Array.isArray(stop)) {
    if (!stop.every((s) => typeof s === "string")) return new TranslationError("stop", "must be strings");
    if (stop.length > 0) out.stop_sequences = stop;
  } else if (stop != null) return new TranslationError("stop", "must be a string or an array of strings");

  // OpenAI samples over 0..2, Anthropic over 0..1; a hotter request gets Claude's hottest setting.
  if (typeof body.temperature === "number") out.temperature = Math.min(1, Math.max(0, body.temperature));
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  if (typeof body.top_k === "number") out.top_k = body.top_k;
  if (body.stream === true) out.stream = true;

  const user = typeof body.user === "string" ? body.user : body.safety_identifier;
  if (typeof user === "string" && user.length > 0) out.metadata = { user_id: user };

  const tools = convertTools(body);
  if (tools instanceof TranslationError) return tools;
  if (tools) {
    out.tools = tools.tools;
    if (tools.choice) out.tool_choice = tools.choice;
  }
  return out;
}

function unsupportedField(body: OpenAIChatRequest): TranslationError | undefined {
  if (body.n != null && body.n !== 1) return new TranslationError("n", "only n=1 is supported by Anthropic models");
  if (body.logprobs === true) return new TranslationError("logprobs", "is not supported by Anthropic models");
  if (typeof body.top_logprobs === "number" && body.top_logprobs > 0)
    return new TranslationError("top_logprobs", "is not supported by Anthropic models");
  const format = body.response_format;
  if (format != null && !(isRecord(format) && format.type === "text")) {
    const type = isRecord(format) ? format.type : format;
    return new TranslationError("response_format", `type ${JSON.stringify(type)} is not supported`);
  }
  if (isRecord(body.logit_bias) && Object.keys(body.logit_bias).length > 0)
    return new TranslationError("logit_bias", "is not supported by Anthropic models");
  for (const field of ["frequency_penalty", "presence_penalty"]) {
    const value = body[field];
    if (value != null && value !== 0) return new TranslationError(field, "is not supported by Anthropic models");
  }
  const effort = body.reasoning_effort;
  if (effort != null && effort !== "none")
    return new TranslationError("reasoning_effort", "is not supported; Claude's extended thinking is not mapped");
  const modalities = body.modalities;
  if (Array.isArray(modalities) && modalities.some((m) => m !== "text"))
    return new TranslationError("modalities", "only text output is supported");
  for (const field of unsupportedWhenSet) {
    if (body[field] != null) return new TranslationError(field, "is not supported by Anthropic models");
  }
  return undefined;
}

interface ConvertedMessages {
  system?: string | AnthropicTextBlock[];
  messages: AnthropicMessageParam[];
}

function convertMessages(messages: unknown): ConvertedMessages | TranslationError {
  if (!Array.isArray(messages) || messages.length === 0)
    return new TranslationError("messages", "must be a non-empty array");
  const system: AnthropicTextBlock[] = [];
  const turns: AnthropicMessageParam[] = [];
  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i];
    const path = `messages[${i}]`;
    if (!isRecord(message)) return new TranslationError(path, "must be an object");
    let blocks: AnthropicRequestBlock[] | TranslationError;
    switch (message.role) {
      case "system":
      case "developer": {
        const text = textBlocks(message.content, `${path}.content`, false);
        if (text instanceof TranslationError) return text;
        system.push(...text);
        continue;
      }
      case "user":
        blocks = userBlocks(message.content, `${path}.content`);
        break;
      case "assistant":
        blocks = assistantBlocks(message, path);
        break;
      case "tool":
        blocks = toolResultBlocks(message, path);
        break;
      default:
        return new TranslationError(`${path}.role`, `unsupported role ${JSON.stringify(message.role)}`);
    }
    if (blocks instanceof TranslationError) return blocks;
    if (blocks.length > 0) appendTurn(turns, message.role === "assistant" ? "assistant" : "user", blocks);
  }
  if (turns.length === 0) return new TranslationError("messages", "needs at least one user or assistant message");
  return { system: systemPrompt(system), messages: turns };
}

/** Joined into one string unless a block carries cache_control, which only the block form can express. */
function systemPrompt(blocks: AnthropicTextBlock[]): string | AnthropicTextBlock[] | undefined {
  if (blocks.length === 0) return undefined;
  if (blocks.some((b) => b.cache_control)) return blocks;
  return blocks.map((b) => b.text).join("\n\n");
}

/**
 * Anthropic requires user and assistant turns to alternate, so consecutive same-role messages (several tool
 * results, a tool result then the user's words) become one turn; tool_result blocks must lead a user turn.
 */
function appendTurn(turns: AnthropicMessageParam[], role: "user" | "assistant", blocks: AnthropicRequestBlock[]) {
  const last = turns[turns.length - 1];
  if (!last || last.role !== role) {
    turns.push({ role, content: blocks });
    return;
  }
  const content = last.content as AnthropicRequestBlock[];
  if (blocks[0]?.type === "tool_result") {
    const firstOther = content.findIndex((b) => b.type !== "tool_result");
    if (firstOther !== -1) {
      content.splice(firstOther, 0, ...blocks);
      return;
    }
  }
  content.push(...blocks);
}

function textBlocks(content: unknown, path: string, allowRefusal: boolean): AnthropicTextBlock[] | TranslationError {
  if (content == null) return [];
  if (typeof content === "string") return content.length > 0 ? [{ type: "text", text: content }] : [];
  if (!Array.isArray(content)) return new TranslationError(path, "must be a string or an array of parts");
  const out: AnthropicTextBlock[] = [];
  for (let j = 0; j < content.length; j++) {
    const part: unknown = content[j];
    const text = isRecord(part)
      ? part.type === "text"
        ? part.text
        : allowRefusal && part.type === "refusal"
          ? part.refusal
          : undefined
      : undefined;
    if (typeof text !== "string") return new TranslationError(`${path}[${j}]`, "must be a text part");
    if (text.length > 0) out.push(withCacheControl({ type: "text", text }, part));
  }
  return out;
}

function userBlocks(content: unknown, path: string): AnthropicRequestBlock[] | TranslationError {
  if (!Array.isArray(content)) return textBlocks(content, path, false);
  const out: AnthropicRequestBlock[] = [];
  for (let j = 0; j < content.length; j++) {
    const part: unknown = content[j];
    const partPath = `${path}[${j}]`;
    if (!isRecord(part)) return new TranslationError(partPath, "must be an object");
    let block: AnthropicRequestBlock | TranslationError | undefined;
    switch (part.type) {
      case "text":
        if (typeof part.text !== "string") return new TranslationError(`${partPath}.text`, "must be a string");
        if (part.text.length > 0) block = { type: "text", text: part.text };
        break;
      case "image_url":
        block = imageBlock(part.image_url, `${partPath}.image_url`);
        break;
      case "file":
        block = fileBlock(part.file, `${partPath}.file`);
        break;
      default:
        return new TranslationError(`${partPath}.type`, `${JSON.stringify(part.type)} is not supported`);
    }
    if (block instanceof TranslationError) return block;
    if (block) out.push(withCacheControl(block, part));
  }
  return out;
}

function imageBlock(image: unknown, path: string): AnthropicRequestBlock | TranslationError {
  const url = isRecord(image) ? image.url : image;
  if (typeof url !== "string") return new TranslationError(`${path}.url`, "must be a string");
  if (url.startsWith("https://") || url.startsWith("http://")) return { type: "image", source: { type: "url", url } };
  const data = parseDataUrl(url);
  if (!data) return new TranslationError(`${path}.url`, "must be an http(s) URL or a base64 data: URL");
  if (!anthropicImageTypes.has(data.mediaType))
    return new TranslationError(`${path}.url`, `image type ${data.mediaType} is not supported`);
  return { type: "image", source: { type: "base64", media_type: data.mediaType, data: data.data } };
}

/** OpenAI's inline file part; Claude reads PDFs (and images) given as base64. */
function fileBlock(file: unknown, path: string): AnthropicRequestBlock | TranslationError {
  if (!isRecord(file) || typeof file.file_data !== "string")
    return new TranslationError(`${path}.file_data`, "must be a base64 data: URL (file_id is not supported)");
  const data = parseDataUrl(file.file_data);
  if (!data) return new TranslationError(`${path}.file_data`, "must be a base64 data: URL");
  if (anthropicImageTypes.has(data.mediaType))
    return { type: "image", source: { type: "base64", media_type: data.mediaType, data: data.data } };
  if (data.mediaType !== "application/pdf")
    return new TranslationError(`${path}.file_data`, `file type ${data.mediaType} is not supported`);
  const block: AnthropicRequestBlock = {
    type: "document",
    source: { type: "base64", media_type: data.mediaType, data: data.data },
  };
  if (typeof file.filename === "string" && file.filename.length > 0) block.title = file.filename;
  return block;
}

function parseDataUrl(url: string): { mediaType: string; data: string } | undefined {
  if (!url.startsWith("data:")) return undefined;
  const comma = url.indexOf(",");
  if (comma === -1) return undefined;
  const header = url.slice(5, comma);
  if (!header.endsWith(";base64")) return undefined;
  const semicolon = header.indexOf(";");
  return { mediaType: header.slice(0, semicolon).toLowerCase(), data: url.slice(comma + 1) };
}

function assistantBlocks(message: Record<string, any>, path: string): AnthropicRequestBlock[] | TranslationError {
  const text = textBlocks(message.content, `${path}.content`, true);
  if (text instanceof TranslationError) return text;
  const out: AnthropicRequestBlock[] = text;
  if (typeof message.refusal === "string" && message.refusal.length > 0 && out.length === 0)
    out.push({ type: "text", text: message.refusal });
  const calls = message.tool_calls;
  if (calls == null) return out;
  if (!Array.isArray(calls)) return new TranslationError(`${path}.tool_calls`, "must be an array");
  for (let j = 0; j < calls.length; j++) {
    const call: unknown = calls[j];
    const callPath = `${path}.tool_calls[${j}]`;
    if (!isRecord(call) || !isRecord(call.function) || typeof call.function.name !== "string")
      return new TranslationError(`${callPath}.function.name`, "must be a string");
    if (call.type !== undefined && call.type !== "function")
      return new TranslationError(`${callPath}.type`, `${JSON.stringify(call.type)} is not supported`);
    if (typeof call.id !== "string") return new TranslationError(`${callPath}.id`, "must be a string");
    out.push({
      type: "tool_use",
      id: toAnthropicToolId(call.id),
      name: call.function.name,
      input: parseToolArguments(call.function.arguments),
    });
  }
  return out;
}

function toolResultBlocks(message: Record<string, any>, path: string): AnthropicRequestBlock[] | TranslationError {
  if (typeof message.tool_call_id !== "string") return new TranslationError(`${path}.tool_call_id`, "must be a string");
  const block: AnthropicRequestBlock = { type: "tool_result", tool_use_id: toAnthropicToolId(message.tool_call_id) };
  if (typeof message.content === "string") {
    if (message.content.length > 0) block.content = message.content;
  } else {
    const text = textBlocks(message.content, `${path}.content`, false);
    if (text instanceof TranslationError) return text;
    if (text.length > 0) block.content = text;
  }
  return [block];
}

/** Some OpenAI-speaking clients (LiteLLM-style) already mark parts for Claude's prompt cache; keep the mark. */
function withCacheControl<T extends AnthropicRequestBlock>(block: T, part: unknown): T {
  if (isRecord(part) && isRecord(part.cache_control))
    (block as { cache_control?: unknown }).cache_control = part.cache_control;
  return block;
}

function convertTools(
  body: OpenAIChatRequest,
): { tools: AnthropicTool[]; choice?: AnthropicToolChoice } | undefined | TranslationError {
  if (body.tools == null) return undefined;
  if (!Array.isArray(body.tools)) return new TranslationError("tools", "must be an array");
  const tools: AnthropicTool[] = [];
  for (let i = 0; i < body.tools.length; i++) {
    const tool: unknown = body.tools[i];
    if (!isRecord(tool) || tool.type !== "function")
      return new TranslationError(`tools[${i}].type`, "only function tools are supported");
    const fn = tool.function;
    if (!isRecord(fn) || typeof fn.name !== "string")
      return new TranslationError(`tools[${i}].function.name`, "must be a string");
    const converted: AnthropicTool = {
      name: fn.name,
      input_schema: isRecord(fn.parameters) ? fn.parameters : { type: "object", properties: {} },
    };
    if (typeof fn.description === "string") converted.description = fn.description;
    tools.push(converted);
  }
  if (tools.length === 0) return undefined;

  let choice: AnthropicToolChoice | undefined;
  const requested = body.tool_choice;
  if (requested === "none") choice = { type: "none" };
  else if (requested === "auto") choice = { type: "auto" };
  else if (requested === "required") choice = { type: "any" };
  else if (isRecord(requested) && requested.type === "function" && typeof requested.function?.name === "string")
    choice = { type: "tool", name: requested.function.name };
  else if (requested != null) return new TranslationError("tool_choice", "is not a supported tool choice");

  if (body.parallel_tool_calls === false && choice?.type !== "none") {
    choice ??= { type: "auto" };
    (choice as { disable_parallel_tool_use?: boolean }).disable_parallel_tool_use = true;
  }
  return { tools, choice };
}

export interface ChatResponseOptions {
  /** The model name the Anthropic client asked for; the upstream's own name otherwise. */
  model?: string;
  /** The request's stop sequences, to tell stop_sequence from end_turn when the server does not say which. */
  stopSequences?: readonly string[];
}

/** An OpenAI-compatible chat.completion as the Anthropic message an Anthropic client expects. */
export function chatResponseToMessages(
  completion: OpenAIChatCompletion,
  opts: ChatResponseOptions = {},
): AnthropicMessage {
  const choice = completion.choices?.[0];
  const message = choice?.message;
  const content: AnthropicResponseBlock[] = [];
  let text = typeof message?.content === "string" ? message.content : "";
  const finish = choice?.finish_reason ?? null;
  const stopSequence =
    finish === "stop" || finish === null ? matchedStopSequence(choice?.stop_reason, text, opts.stopSequences) : null;
  // Anthropic leaves the matched sequence out of the text; a server that echoes it gets it trimmed.
  if (stopSequence !== null && text.endsWith(stopSequence)) text = text.slice(0, text.length - stopSequence.length);
  if (text.length > 0) content.push({ type: "text", text });

  const refused = typeof message?.refusal === "string" && message.refusal.length > 0;
  if (refused) content.push({ type: "text", text: message!.refusal! });

  let hasToolUse = false;
  for (const call of message?.tool_calls ?? []) {
    if (!call?.function) continue;
    hasToolUse = true;
    content.push({
      type: "tool_use",
      id: toAnthropicToolId(call.id ?? ""),
      name: call.function.name,
      input: parseToolArguments(call.function.arguments),
    });
  }

  // Some servers answer tool calls with finish_reason "stop"; the client must still be told to run them.
  let stopReason = refused ? "refusal" : finishReasonToStopReason(finish, stopSequence);
  if (hasToolUse && stopReason === "end_turn") stopReason = "tool_use";

  const tokens: TokenUsage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 };
  openaiUsageToTokens(completion.usage, tokens);
  return {
    id: completion.id,
    type: "message",
    role: "assistant",
    model: opts.model ?? completion.model,
    content,
    stop_reason: stopReason,
    stop_sequence: stopReason === "stop_sequence" ? stopSequence : null,
    usage: tokensToAnthropicUsage(tokens),
  };
}
