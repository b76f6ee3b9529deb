import type { AiProtocol, JsonObject } from "./protocols.js";

/**
 * What Weir itself says to an AI client, in the client's own dialect so its SDK raises the error it knows:
 * the answer when no instance may be asked, and the event that ends a stream cut after tokens went out.
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

/** Why Weir cut a stream after its head went out; the `llm_stream_cut` variable and the metric's label. */
export type CutReason = "upstream_broken" | "upstream_timeout" | "max_stream_duration" | "max_response_bytes";

/**
 * Follows a Responses stream for what its `response.failed` needs: the response object of the last
 * lifecycle event (its id, model, created_at) and the last sequence_number.
 */
export class ResponsesTrail {
  private response: JsonObject | undefined = undefined;
  private sequence = -1;

  see(data: JsonObject): void {
    const seq = data.sequence_number;
    if (typeof seq === "number" && seq > this.sequence) this.sequence = seq;
    const response = data.response;
    if (response !== null && typeof response === "object" && !Array.isArray(response)) {
      this.response = response as JsonObject;
    }
  }

  /** The `response.failed` event (openai-node's ResponseFailedEvent): the response, failed, with its error. */
  failed(message: string): string {
    const response: JsonObject = {
      ...(this.response ?? { id: "resp_weir_cut", object: "response", created_at: Math.floor(Date.now() / 1000) }),
      status: "failed",
      error: { code: "server_error", message },
      incomplete_details: null,
    };
    response.output ??= [];
    const event = { type: "response.failed", sequence_number: this.sequence + 1, response };
    return `event: response.failed\ndata: ${JSON.stringify(event)}\n\n`;
  }
}

/**
 * The event that ends a cut stream in the client's protocol, never a `[DONE]` or a closing event that
 * would make a truncated answer look whole: chat completions' in-stream error object (openai-node throws an
 * APIError on it), Responses' `response.failed`, Anthropic's `event: error` (@anthropic-ai/sdk throws).
 * Undefined for passthrough streams, whose dialect Weir does not know: those are cut at the socket.
 */
export function cutEvent(
  protocol: AiProtocol,
  reason: CutReason,
  message: string,
  trail: ResponsesTrail | undefined,
): string | undefined {
  switch (protocol) {
    case "openai-chat":
      return `data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: reason } })}\n\n`;
    case "openai-responses":
      return (trail ?? new ResponsesTrail()).failed(message);
    case "anthropic-messages": {
      const timedOut = reason === "upstream_timeout" || reason === "max_stream_duration";
      const error = { type: "error", error: { type: timedOut ? "timeout_error" : "api_error", message } };
      return `event: error\ndata: ${JSON.stringify(error)}\n\n`;
    }
    default:
      return undefined;
  }
}
