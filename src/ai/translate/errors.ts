import type { AnthropicErrorBody, OpenAIErrorBody } from "./types.js";

/**
 * A request the target protocol cannot express faithfully. Returned (never thrown) so the caller answers
 * 400 in the client's own error format instead of sending an upstream something that means another thing.
 */
export class TranslationError {
  readonly status = 400;
  constructor(
    /** The offending field as a path into the client's body, e.g. `messages[2].content[0].image_url.url`. */
    readonly field: string,
    readonly message: string,
  ) {}

  toOpenAI(): OpenAIErrorBody {
    return { error: { message: this.message, type: "invalid_request_error", param: this.field, code: null } };
  }

  toAnthropic(): AnthropicErrorBody {
    return { type: "error", error: { type: "invalid_request_error", message: `${this.field}: ${this.message}` } };
  }
}

export interface TranslatedError<Body> {
  status: number;
  body: Body;
}

/** One row per Anthropic error type: the status Anthropic sends it with and OpenAI's nearest wording. */
interface ErrorKind {
  anthropicType: string;
  anthropicStatus: number;
  openaiType: string;
  openaiCode: string | null;
  /** What an OpenAI client sees; OpenAI never sends 529, its clients know 503 for "overloaded". */
  openaiStatus: number;
}

const kinds: ErrorKind[] = [
  k("invalid_request_error", 400, "invalid_request_error", null, 400),
  k("authentication_error", 401, "invalid_request_error", "invalid_api_key", 401),
  k("billing_error", 402, "insufficient_quota", "insufficient_quota", 402),
  k("permission_error", 403, "invalid_request_error", "permission_denied", 403),
  k("not_found_error", 404, "invalid_request_error", "not_found", 404),
  k("request_too_large", 413, "invalid_request_error", "request_too_large", 413),
  k("rate_limit_error", 429, "requests", "rate_limit_exceeded", 429),
  k("api_error", 500, "server_error", null, 500),
  k("timeout_error", 504, "server_error", "timeout", 504),
  k("overloaded_error", 529, "server_error", "overloaded", 503),
];

function k(
  anthropicType: string,
  anthropicStatus: number,
  openaiType: string,
  openaiCode: string | null,
  openaiStatus: number,
): ErrorKind {
  return { anthropicType, anthropicStatus, openaiType, openaiCode, openaiStatus };
}

const byAnthropicType = new Map(kinds.map((kind) => [kind.anthropicType, kind]));
const byAnthropicStatus = new Map(kinds.map((kind) => [kind.anthropicStatus, kind]));
const byOpenAICode = new Map(kinds.filter((kind) => kind.openaiCode).map((kind) => [kind.openaiCode!, kind]));
const apiError = byAnthropicType.get("api_error")!;
const invalidRequest = byAnthropicType.get("invalid_request_error")!;

function kindForStatus(status: number): ErrorKind {
  const exact = byAnthropicStatus.get(status);
  if (exact) return exact;
  if (status === 503) return byAnthropicType.get("overloaded_error")!;
  if (status === 422) return invalidRequest;
  // Below 400: an error met inside a 200 stream, whose type said nothing we know.
  return status >= 500 || status < 400 ? apiError : invalidRequest;
}

/** For an error object inside a 200 stream, where only its code and type tell what went wrong. */
function kindForOpenAIError(code: string | undefined, type: string | undefined): ErrorKind {
  const known = (code && byOpenAICode.get(code)) || (type && byOpenAICode.get(type));
  if (known) return known;
  if (type === "invalid_request_error") return invalidRequest;
  if (type === "requests" || type === "tokens") return byAnthropicType.get("rate_limit_error")!;
  return apiError;
}

/** An Anthropic error answer (or `error` stream event) as an OpenAI client expects it. */
export function anthropicErrorToOpenAI(status: number, body: unknown): TranslatedError<OpenAIErrorBody> {
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const type = typeof error?.type === "string" ? error.type : undefined;
  const kind = (type && byAnthropicType.get(type)) || kindForStatus(status);
  const message = messageOf(body) ?? `upstream answered ${status} (${kind.anthropicType})`;
  // A real upstream status is kept except 529, which OpenAI clients do not know.
  const outStatus = status === 529 || status < 400 ? kind.openaiStatus : status;
  return {
    status: outStatus,
    body: { error: { message, type: kind.openaiType, param: null, code: kind.openaiCode } },
  };
}

/** An OpenAI-compatible error answer (or in-stream error object) as an Anthropic client expects it. */
export function openaiErrorToAnthropic(status: number, body: unknown): TranslatedError<AnthropicErrorBody> {
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const code = typeof error?.code === "string" ? error.code : undefined;
  const type = typeof error?.type === "string" ? error.type : undefined;
  const kind = status >= 400 ? kindForStatus(status) : kindForOpenAIError(code, type);
  const message = messageOf(body) ?? `upstream answered ${status} (${kind.anthropicType})`;
  return {
    status: status === 503 ? 529 : status >= 400 ? status : kind.anthropicStatus,
    body: { type: "error", error: { type: kind.anthropicType, message } },
  };
}

/** The human-readable message in the shapes servers actually send (OpenAI, Anthropic, FastAPI, plain). */
function messageOf(body: unknown): string | undefined {
  if (typeof body === "string") return body.length > 0 ? body : undefined;
  if (!isRecord(body)) return undefined;
  const error = body.error;
  if (typeof error === "string") return error;
  if (isRecord(error) && typeof error.message === "string") return error.message;
  if (typeof body.message === "string") return body.message;
  const detail = body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return JSON.stringify(detail);
  return undefined;
}

export function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
