/**
 * The API dialects a client can speak to Weir's AI routes, detected from the request path and body the
 * way APISIX's ai-protocols do (first match wins, most specific first).
 */
export type AiProtocol =
  | "openai-chat"
  | "openai-responses"
  | "openai-embeddings"
  | "anthropic-messages"
  | "passthrough";

export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function detectProtocol(path: string, body: JsonObject): AiProtocol | undefined {
  if (path.endsWith("/v1/messages")) return "anthropic-messages";
  if (path.endsWith("/v1/responses") && body.input !== undefined) return "openai-responses";
  if (Array.isArray(body.messages)) return "openai-chat";
  if (body.input !== undefined) return "openai-embeddings";
  for (const _ in body) return "passthrough";
  return undefined;
}

export function isStreamingRequest(protocol: AiProtocol, body: JsonObject): boolean {
  return protocol !== "openai-embeddings" && body.stream === true;
}
