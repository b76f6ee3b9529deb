import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { jsonReply, type Reply } from "./delivery.js";
import type { IdSource, Provider } from "./provider.js";
import type { ChatTurn } from "./tokens.js";
import type { OfferedTool, ToolDemand } from "./tools.js";

const ERROR_TYPES: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: "invalid_request_error", code: null, message: "Invalid request." },
  401: { type: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided." },
  403: { type: "invalid_request_error", code: null, message: "You are not allowed to access this resource." },
  404: { type: "invalid_request_error", code: null, message: "Not found." },
  429: {
    type: "requests",
    code: "rate_limit_exceeded",
    message: "Rate limit reached for requests per min (RPM). Please try again in 1s.",
  },
  500: {
    type: "server_error",
    code: null,
    message: "The server had an error while processing your request. Sorry about that!",
  },
  502: { type: "server_error", code: null, message: "Bad gateway." },
  503: { type: "server_error", code: null, message: "The engine is currently overloaded, please try again later." },
};

/** OpenAI's error body: {"error": {"message", "type", "param", "code"}}. */
export function openaiError(
  status: number,
  message?: string,
  param: string | null = null,
  code?: string | null,
  retryAfterS = 1,
): Reply {
  const known = ERROR_TYPES[status] ?? {
    type: status >= 500 ? "server_error" : "invalid_request_error",
    code: null,
    message: `Simulated error ${status}.`,
  };
  const reply = jsonReply(status, {
    error: { message: message ?? known.message, type: known.type, param, code: code === undefined ? known.code : code },
  });
  if (status === 429 || status === 503) {
    reply.headers = { "retry-after": String(retryAfterS) };
    if (status === 429) reply.headers["x-ratelimit-remaining-requests"] = "0";
  }
  return reply;
}

export const invalid = (message: string, param: string | null = null, code: string | null = null): Reply =>
  openaiError(400, message, param, code);

const RATE_LIMIT_HEADERS: OutgoingHttpHeaders = {
  "openai-version": "2020-10-01",
  "openai-processing-ms": "1",
  "x-ratelimit-limit-requests": "10000",
  "x-ratelimit-limit-tokens": "30000000",
  "x-ratelimit-remaining-requests": "9999",
  "x-ratelimit-remaining-tokens": "29999000",
  "x-ratelimit-reset-requests": "6ms",
  "x-ratelimit-reset-tokens": "0s",
};

export const openai: Provider = {
  authenticate(headers: IncomingHttpHeaders, apiKey: string): Reply | undefined {
    const auth = headers.authorization;
    if (auth === undefined || !auth.startsWith("Bearer ")) {
      return openaiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using " +
          "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        null,
        null,
      );
    }
    const given = auth.slice("Bearer ".length).trim();
    if (given === apiKey) return undefined;
    const masked = given.length > 8 ? `${given.slice(0, 3)}*****${given.slice(-4)}` : "*****";
    return openaiError(401, `Incorrect API key provided: ${masked}.`);
  },
  error: (status, message, retryAfterS) => openaiError(status, message, null, undefined, retryAfterS),
  headers: (ids: IdSource) => ({ ...RATE_LIMIT_HEADERS, "x-request-id": ids.next("req_") }),
};

/** The text of a message's content: a string, or the text of its text parts. */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const part of content) {
    if (typeof part === "object" && part !== null && typeof (part as { text?: unknown }).text === "string") {
      text += (part as { text: string }).text;
    }
  }
  return text;
}

/** Chat messages as turns for token counting; an assistant's tool calls count as their name and arguments. */
export function chatTurns(messages: readonly unknown[]): ChatTurn[] {
  const turns: ChatTurn[] = [];
  for (const m of messages) {
    if (typeof m !== "object" || m === null) continue;
    const msg = m as { role?: unknown; content?: unknown; name?: unknown; tool_calls?: unknown };
    let text = contentText(msg.content);
    if (Array.isArray(msg.tool_calls)) {
      for (const call of msg.tool_calls as { function?: { name?: unknown; arguments?: unknown } }[]) {
        text += `${String(call.function?.name ?? "")}${String(call.function?.arguments ?? "")}`;
      }
    }
    const turn: ChatTurn = { role: typeof msg.role === "string" ? msg.role : "user", text };
    if (typeof msg.name === "string") turn.name = msg.name;
    turns.push(turn);
  }
  return turns;
}

/** The last turn's text when it is the user's (a tool result last means the model should now answer). */
export function lastUserText(turns: readonly ChatTurn[]): string | undefined {
  const last = turns[turns.length - 1];
  return last?.role === "user" ? last.text : undefined;
}

/**
 * Tools of a Chat Completions request ({type:"function", function:{name, parameters}}) or of a Responses
 * request ({type:"function", name, parameters}).
 */
export function offeredTools(tools: unknown): OfferedTool[] {
  if (!Array.isArray(tools)) return [];
  const out: OfferedTool[] = [];
  for (const t of tools) {
    if (typeof t !== "object" || t === null) continue;
    const def = (t as { function?: unknown }).function ?? t;
    const { name, parameters } = def as { name?: unknown; parameters?: unknown };
    if (typeof name === "string") out.push({ name, schema: parameters ?? { type: "object", properties: {} } });
  }
  return out;
}

/** tool_choice: "auto" | "none" | "required" | {type:"function", function:{name}} | {type:"function", name}. */
export function toolDemand(choice: unknown): ToolDemand {
  if (choice === "none") return { kind: "none" };
  if (choice === "required") return { kind: "any" };
  if (typeof choice === "object" && choice !== null) {
    const c = choice as { function?: { name?: unknown }; name?: unknown };
    const name = c.function?.name ?? c.name;
    if (typeof name === "string") return { kind: "named", name };
  }
  return { kind: "auto" };
}

/** Prompt tokens of the tool definitions: OpenAI bills them as part of the prompt. */
export const toolsText = (tools: unknown): string =>
  Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : "";
