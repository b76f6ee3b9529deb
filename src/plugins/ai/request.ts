import type { AiPlan, AiRequest } from "../../ai/plan.js";
import { promptPrefixKey } from "../../ai/prefix-key.js";
import { detectProtocol, isJsonObject, isStreamingRequest, type JsonObject } from "../../ai/protocols.js";
import type { PluginContext } from "../../plugin-api/context.js";
import type { Reply } from "../../plugin-api/plugin.js";

const badRequest = (message: string): Reply => ({ status: 400, body: { error_msg: message } });

/**
 * The access phase both AI proxy plugins share (APISIX's detect_request_type): read and parse the JSON
 * body once, detect the client's protocol and stream mode, publish the request variables, and hand the
 * request to the AI call. Returns a Reply for requests that cannot be served.
 */
export function prepareAiRequest(plan: AiPlan, ctx: PluginContext): Reply | Promise<Reply | undefined> {
  const type = ctx.getRequestHeader("content-type") ?? "application/json";
  if (!type.startsWith("application/json")) {
    return badRequest(`unsupported content-type: ${type}, only application/json is supported`);
  }
  const declared = Number(ctx.getRequestHeader("content-length") ?? Number.NaN);
  if (declared > plan.maxRequestBodyBytes) return tooLarge(plan.maxRequestBodyBytes);
  return ctx.readBody().then((raw) => {
    if (raw.length > plan.maxRequestBodyBytes) return tooLarge(plan.maxRequestBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      return badRequest(`invalid request body: ${(err as Error).message}`);
    }
    if (!isJsonObject(body)) return badRequest("invalid request body: expected a JSON object");
    const protocol = detectProtocol(ctx.path, body);
    if (protocol === undefined) return badRequest("no matching AI protocol for the request");
    const stream = isStreamingRequest(protocol, body);
    ctx.setVar("request_type", stream ? "ai_stream" : "ai_chat");
    ctx.setVar("llm_stream", stream ? "true" : "false");
    if (typeof body.model === "string") ctx.setVar("request_llm_model", body.model);
    if (plan.usesPromptPrefix) {
      const key = promptPrefixKey(protocol, body);
      if (key !== undefined) ctx.setVar("llm_prompt_prefix", key);
    }
    const request: AiRequest = {
      plan,
      protocol,
      body,
      raw,
      stream,
      clientWantsUsage: wantsUsage(body),
      skip: undefined,
      result: undefined,
    };
    ctx.aiRequest = request;
    return undefined;
  });
}

function wantsUsage(body: JsonObject): boolean {
  const o = body.stream_options;
  return isJsonObject(o) && o.include_usage === true;
}

function tooLarge(limit: number): Reply {
  return { status: 413, body: { error_msg: `request body is larger than max_req_body_size (${limit} bytes)` } };
}
