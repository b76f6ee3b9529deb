import type { AiProtocol, JsonObject } from "./protocols.js";

/**
 * What Weir itself says to an AI client, in the client's own dialect so its SDK raises the error it knows.
 */

/**
 * Weir's own error answer: OpenAI's error object, Anthropic's error shape, or APISIX's `error_msg` for a
 * passthrough request, whose dialect Weir does not know. 429 reads as the provider's rate limit, anything
 * else as an overloaded service.
 */
export function errorBody(protocol: AiProtocol, status: number, message: string): JsonObject {
  const limited = status === 429;
  if (protocol === "anthropic-messages") {
    return { type: "error", error: { type: limited ? "rate_limit_error" : "overloaded_error", message } };
  }
  if (protocol === "passthrough") return { error_msg: message };
  return {
    error: {
      message,
      type: limited ? "requests" : "server_error",
      param: null,
      code: limited ? "rate_limit_exceeded" : "overloaded",
    },
  };
}
