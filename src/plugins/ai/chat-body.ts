import type { PluginContext } from "../../plugin-api/context.js";

/**
 * The JSON body of an AI request, shared by the ai-prompt-* plugins (and later AI plugins): read with
 * ctx.readBody() and parsed once per request, whichever plugin asks first. A plugin that changes it calls
 * replaceJsonBody(), which serializes once and keeps the new value as the shared parse, so the next plugin
 * neither re-reads nor re-parses. The cache is keyed by the body buffer itself: if anything else replaces
 * the body with ctx.setBody(), the buffer differs and the new body is parsed afresh.
 */
export const CHAT_BODY_KEY = "ai.chat-body";

/** APISIX's default max_req_body_size for the AI plugins (64 MiB). */
export const DEFAULT_MAX_BODY = 67_108_864;

interface Cached {
  raw: Buffer;
  value: unknown;
  error: string | undefined;
}

export type JsonBody =
  | { ok: true; value: unknown }
  | { ok: false; reason: "empty" | "too-large" | "invalid"; message: string };

function tooLarge(size: number, max: number): JsonBody {
  return {
    ok: false,
    reason: "too-large",
    message: `request size ${size} is greater than the maximum size ${max} allowed`,
  };
}

export async function readJsonBody(ctx: PluginContext, maxSize: number): Promise<JsonBody> {
  let cached = ctx.pluginData.get(CHAT_BODY_KEY) as Cached | undefined;
  if (cached === undefined) {
    // As APISIX: a declared length over the limit is refused before anything is buffered.
    const declared = Number(ctx.req.headers["content-length"]);
    if (declared > maxSize) return tooLarge(declared, maxSize);
  }
  const raw = await ctx.readBody();
  if (raw.length > maxSize) return tooLarge(raw.length, maxSize);
  if (raw.length === 0) return { ok: false, reason: "empty", message: "request body is empty" };
  if (cached === undefined || cached.raw !== raw) {
    cached = parse(raw);
    ctx.pluginData.set(CHAT_BODY_KEY, cached);
  }
  if (cached.error !== undefined) return { ok: false, reason: "invalid", message: cached.error };
  return { ok: true, value: cached.value };
}

function parse(raw: Buffer): Cached {
  try {
    return { raw, value: JSON.parse(raw.toString("utf8")), error: undefined };
  } catch (err) {
    return { raw, value: undefined, error: (err as Error).message };
  }
}

/** Sends `value` upstream as the new body and makes it the shared parse for the plugins after this one. */
/** The 400 APISIX's decorator and template plugins answer when the body cannot be read as JSON. */
export function unreadableBody(read: Exclude<JsonBody, { ok: true }>): { status: number; body: { message: string } } {
  const message =
    read.reason === "invalid"
      ? `could not parse JSON request body: ${read.message}`
      : `could not get body: ${read.message}`;
  return { status: 400, body: { message } };
}

export function replaceJsonBody(ctx: PluginContext, value: unknown): void {
  const raw = Buffer.from(JSON.stringify(value));
  ctx.setBody(raw);
  ctx.pluginData.set(CHAT_BODY_KEY, { raw, value, error: undefined } satisfies Cached);
}

// ---- protocols --------------------------------------------------------------------------------------------

/**
 * The request shapes the prompt plugins understand, detected as APISIX's ai-protocols does: an Anthropic
 * Messages request by a path ending in /v1/messages, an OpenAI chat request by its `messages` array.
 */
export type ChatProtocol = "openai-chat" | "anthropic-messages";

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function detectProtocol(body: unknown, uri: string): ChatProtocol | undefined {
  if (!isObject(body)) return undefined;
  if (uri.endsWith("/v1/messages")) return "anthropic-messages";
  return Array.isArray(body.messages) ? "openai-chat" : undefined;
}

/** A message reduced to its role and its text, as APISIX's get_messages returns them. */
export interface PromptMessage {
  role: unknown;
  content: string;
}

/**
 * The text of every message, in order, with its role. Parts of array content are joined with a space;
 * messages without text are left out (so a trailing empty or tool-call-only message does not hide the
 * last real prompt). Anthropic's `system` comes first with role "system", as a string or text blocks.
 */
export function promptMessages(body: JsonObject, protocol: ChatProtocol): PromptMessage[] {
  const out: PromptMessage[] = [];
  if (protocol === "anthropic-messages") {
    const system: string[] = [];
    collectText(body.system, system);
    if (system.length > 0) out.push({ role: "system", content: system.join(" ") });
  }
  const messages = body.messages;
  if (!Array.isArray(messages)) return out;
  for (const message of messages) {
    if (!isObject(message)) continue;
    const texts: string[] = [];
    collectText(message.content, texts);
    if (texts.length > 0) out.push({ role: message.role, content: texts.join(" ") });
  }
  return out;
}

/** String content, or the `text` of `type: "text"` parts; Anthropic tool_result blocks nest their own. */
function collectText(content: unknown, into: string[]): void {
  if (typeof content === "string") {
    into.push(content);
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (!isObject(part)) continue;
    if (part.type === "text" && typeof part.text === "string") into.push(part.text);
    else if (part.type === "tool_result") collectText(part.content, into);
  }
}
