import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { type AnswerEnd, composeAnswer, promptText } from "./answer.js";
import { FILL, jsonReply, type Reply, served, sseEvent, template } from "./delivery.js";
import { cachedTokens, toolCallFor } from "./openai-chat.js";
import { chatPromptBlocks, type PromptBlocks } from "./prefix-cache.js";
import { type Exchange, type IdSource, type Provider, stopList } from "./provider.js";
import { UNCACHED_TOKENS } from "./serving-usage.js";
import { type ChatTurn, chatPromptTokens, countTokens } from "./tokens.js";
import { chooseTool, type OfferedTool, type ToolDemand } from "./tools.js";

const ERROR_TYPES: Record<number, { type: string; message: string }> = {
  400: { type: "invalid_request_error", message: "Invalid request." },
  401: { type: "authentication_error", message: "invalid x-api-key" },
  403: { type: "permission_error", message: "Your API key does not have permission to use the specified resource." },
  404: { type: "not_found_error", message: "Not found." },
  413: { type: "request_too_large", message: "Request exceeds the maximum allowed number of bytes." },
  429: { type: "rate_limit_error", message: "Number of requests has exceeded your per-minute rate limit." },
  500: { type: "api_error", message: "Internal server error" },
  504: { type: "timeout_error", message: "Request timed out." },
  529: { type: "overloaded_error", message: "Overloaded" },
};

/** Anthropic's error body: {"type": "error", "error": {"type", "message"}, "request_id"}. */
export function anthropicError(status: number, message?: string, retryAfterS = 1): Reply {
  const known = ERROR_TYPES[status] ?? {
    type: status >= 500 ? "api_error" : "invalid_request_error",
    message: `Simulated error ${status}.`,
  };
  const reply = jsonReply(status, { type: "error", error: { type: known.type, message: message ?? known.message } });
  if (status === 429 || status === 503 || status === 529) reply.headers = { "retry-after": String(retryAfterS) };
  return reply;
}

const invalid = (message: string): Reply => anthropicError(400, message);

const RATE_LIMIT_HEADERS: OutgoingHttpHeaders = {
  "anthropic-ratelimit-requests-limit": "4000",
  "anthropic-ratelimit-requests-remaining": "3999",
  "anthropic-ratelimit-tokens-limit": "2000000",
  "anthropic-ratelimit-tokens-remaining": "1999000",
};

export const anthropic: Provider = {
  /** x-api-key, or Authorization: Bearer, which is how @anthropic-ai/sdk 1.x sends an API key. */
  authenticate(headers: IncomingHttpHeaders, apiKey: string): Reply | undefined {
    const auth = headers.authorization;
    const given =
      headers["x-api-key"] ?? (auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length).trim() : undefined);
    if (given === undefined) return anthropicError(401, "x-api-key header is required");
    return given === apiKey ? undefined : anthropicError(401, "invalid x-api-key");
  },
  error: (status, message, retryAfterS) => anthropicError(status, message, retryAfterS),
  headers: (ids: IdSource) => ({ ...RATE_LIMIT_HEADERS, "request-id": ids.next("req_") }),
};

/** The text of Anthropic content: a string, or its text, tool_use and tool_result blocks. */
function blocksText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const raw of content) {
    if (typeof raw !== "object" || raw === null) continue;
    const block = raw as { type?: unknown; text?: unknown; name?: unknown; input?: unknown; content?: unknown };
    if (block.type === "text" && typeof block.text === "string") text += block.text;
    else if (block.type === "tool_use") text += `${String(block.name ?? "")}${JSON.stringify(block.input ?? {})}`;
    else if (block.type === "tool_result") text += blocksText(block.content);
  }
  return text;
}

const isToolResult = (content: unknown): boolean =>
  Array.isArray(content) && content.some((b) => (b as { type?: unknown } | null)?.type === "tool_result");

interface Prompt {
  turns: ChatTurn[];
  /** The last user message's text, unless it carries tool results (then the model answers in words). */
  lastUser: string | undefined;
  inputTokens: number;
  /** Only with the serving model on. */
  blocks: PromptBlocks | undefined;
}

function readPrompt(b: Record<string, unknown>, messages: unknown[], blockTokens?: number): Prompt {
  const turns: ChatTurn[] = [];
  if (b.system !== undefined) turns.push({ role: "system", text: blocksText(b.system) });
  let lastUser: string | undefined;
  for (const raw of messages) {
    const m = (typeof raw === "object" && raw !== null ? raw : {}) as { role?: unknown; content?: unknown };
    const role = typeof m.role === "string" ? m.role : "user";
    turns.push({ role, text: blocksText(m.content) });
    lastUser = role === "user" && !isToolResult(m.content) ? turns[turns.length - 1]!.text : undefined;
  }
  const tools = Array.isArray(b.tools) && b.tools.length > 0 ? JSON.stringify(b.tools) : "";
  const blocks = blockTokens === undefined ? undefined : chatPromptBlocks(turns, tools, blockTokens);
  return { turns, lastUser, inputTokens: chatPromptTokens(turns) + countTokens(tools), blocks };
}

function offeredTools(tools: unknown): OfferedTool[] {
  if (!Array.isArray(tools)) return [];
  return tools
    .filter((t): t is { name: string; input_schema?: unknown } => typeof (t as { name?: unknown })?.name === "string")
    .map((t) => ({ name: t.name, schema: t.input_schema ?? { type: "object", properties: {} } }));
}

/** tool_choice: {type: "auto" | "any" | "none"} or {type: "tool", name}. */
function toolDemand(choice: unknown): ToolDemand {
  const c = (choice ?? {}) as { type?: unknown; name?: unknown };
  if (c.type === "none") return { kind: "none" };
  if (c.type === "any") return { kind: "any" };
  if (c.type === "tool" && typeof c.name === "string") return { kind: "named", name: c.name };
  return { kind: "auto" };
}

/** Checks shared by /v1/messages and /v1/messages/count_tokens; answers the 400 or returns the messages. */
function validate(ex: Exchange, needMaxTokens: boolean): unknown[] | Reply {
  if (ex.headers["anthropic-version"] === undefined) return invalid("anthropic-version: header is required");
  const b = ex.body;
  if (typeof b.model !== "string" || b.model === "") return invalid("model: Field required");
  if (needMaxTokens) {
    if (b.max_tokens === undefined) return invalid("max_tokens: Field required");
    if (typeof b.max_tokens !== "number" || !Number.isInteger(b.max_tokens)) {
      return invalid("max_tokens: Input should be a valid integer");
    }
    if (b.max_tokens < 1) return invalid("max_tokens: Input should be greater than or equal to 1");
  }
  if (b.messages === undefined) return invalid("messages: Field required");
  if (!Array.isArray(b.messages)) return invalid("messages: Input should be a valid list");
  if (b.messages.length === 0) return invalid("messages: List should have at least 1 item after validation, not 0");
  return b.messages;
}

const STOP_REASON: Record<AnswerEnd, string> = {
  complete: "end_turn",
  max_tokens: "max_tokens",
  stop_sequence: "stop_sequence",
};

/**
 * Anthropic's input_tokens counts only what was not read from the cache: the prompt is input_tokens +
 * cache_creation_input_tokens + cache_read_input_tokens. A prefix cache that fills by itself, as vLLM's does,
 * has no creation step, so creation stays 0.
 */
const usageOf = (input: number | string, output: number, cacheRead: number | string = 0) => ({
  input_tokens: input,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: cacheRead,
  cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
  output_tokens: output,
  service_tier: "standard",
});

/** POST /v1/messages/count_tokens */
export function countMessageTokens(ex: Exchange): Reply {
  const messages = validate(ex, false);
  if (!Array.isArray(messages)) return messages;
  return jsonReply(200, { input_tokens: readPrompt(ex.body, messages).inputTokens });
}

/** POST /v1/messages */
export function messages(ex: Exchange): Reply {
  const messages = validate(ex, true);
  if (!Array.isArray(messages)) return messages;
  const b = ex.body;
  const model = b.model as string;
  const prompt = readPrompt(b, messages, ex.serving?.blockTokens);
  const tool = chooseTool(offeredTools(b.tools), toolDemand(b.tool_choice), prompt.lastUser);
  const id = ex.ids.next("msg_");
  const omit = ex.plan.omitUsage;
  const input = ex.serving === null ? prompt.inputTokens : UNCACHED_TOKENS;

  let block: Record<string, unknown>;
  let pieces: string[];
  let outputTokens: number;
  let stopReason: string;
  let stopSequence: string | null = null;
  if (tool !== undefined) {
    const call = toolCallFor(tool);
    block = { type: "tool_use", id: ex.ids.next("toolu_"), name: call.name, input: JSON.parse(call.arguments) };
    pieces = call.pieces;
    outputTokens = call.tokens;
    stopReason = "tool_use";
  } else {
    const answer = composeAnswer({
      prompt: promptText(prompt.turns),
      tokens: ex.plan.tokens,
      maxTokens: b.max_tokens as number,
      stop: stopList(b.stop_sequences),
    });
    block = { type: "text", text: answer.text };
    pieces = answer.pieces;
    outputTokens = answer.tokens;
    stopReason = STOP_REASON[answer.end];
    stopSequence = answer.stopSequence;
  }

  const message = (content: unknown[], reason: string | null, sequence: string | null, output: number) => ({
    id,
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: reason,
    stop_sequence: sequence,
    usage: omit ? undefined : usageOf(input, output, cachedTokens(ex)),
  });
  const end = stopReason === "max_tokens" ? "length" : "stop";
  if (b.stream !== true)
    return served(
      jsonReply(200, message([block], stopReason, stopSequence, outputTokens), outputTokens, id),
      prompt.blocks,
      end,
    );

  const isTool = block.type === "tool_use";
  const opening = isTool ? { ...block, input: {} } : { type: "text", text: "" };
  let head =
    sseEvent("message_start", JSON.stringify({ type: "message_start", message: message([], null, null, 1) })) +
    sseEvent("content_block_start", JSON.stringify({ type: "content_block_start", index: 0, content_block: opening })) +
    sseEvent("ping", '{"type": "ping"}');
  const delta = isTool ? { type: "input_json_delta", partial_json: FILL } : { type: "text_delta", text: FILL };
  const fill = template({ type: "content_block_delta", index: 0, delta });
  // Anthropic opens every tool input with an empty fragment before the JSON itself.
  if (isTool) head += sseEvent("content_block_delta", fill('""'));
  const frames = pieces.map((p) => sseEvent("content_block_delta", fill(JSON.stringify(p))));
  const tail =
    sseEvent("content_block_stop", JSON.stringify({ type: "content_block_stop", index: 0 })) +
    sseEvent(
      "message_delta",
      JSON.stringify({
        type: "message_delta",
        delta: { stop_reason: stopReason, stop_sequence: stopSequence },
        usage: omit ? undefined : { output_tokens: outputTokens },
      }),
    ) +
    sseEvent("message_stop", '{"type":"message_stop"}');
  return served({ kind: "stream", id, head, frames, tail }, prompt.blocks, end);
}

/** GET /v1/models asked in Anthropic's dialect (with anthropic-version). */
export function listModels(ex: Exchange): Reply {
  const data = ex.models.map((id) => ({ type: "model", id, display_name: id, created_at: "2025-01-01T00:00:00Z" }));
  return jsonReply(200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
}
