import type { AiInstance, AiRequest } from "./plan.js";
import { type AiProtocol, isJsonObject, type JsonObject } from "./protocols.js";
import type { Capability } from "./providers.js";
import type { Translation } from "./translation.js";

/**
 * The body for one instance: the client's bytes untouched when nothing applies, otherwise a copy with
 * the translation, the instance's model and options, the forced max-tokens, Weir's usage request for
 * OpenAI streams and `override.request_body` merged in. The client's parsed body is never mutated, so a
 * fallback to another instance starts from the original.
 */
export function buildUpstreamBody(
  ai: AiRequest,
  inst: AiInstance,
  target: AiProtocol,
  capability: Capability | undefined,
  translation: Translation | undefined,
): Buffer {
  let body: JsonObject | undefined = translation === undefined ? undefined : translation.request(ai.body);
  const edit = (): JsonObject => {
    body ??= { ...ai.body };
    return body;
  };
  if (inst.model !== undefined && (body ?? ai.body).model !== inst.model) edit().model = inst.model;
  if (inst.provider.removeModel && (body ?? ai.body).model !== undefined) delete edit().model;
  if (inst.options !== undefined) Object.assign(edit(), inst.options);
  if (inst.maxTokens !== undefined && capability?.maxTokensField !== undefined) {
    const b = edit();
    delete b.max_tokens;
    delete b.max_completion_tokens;
    delete b.max_output_tokens;
    b[capability.maxTokensField] = inst.maxTokens;
  }
  if (target === "openai-chat" && ai.stream) {
    const current = (body ?? ai.body).stream_options;
    if (!isJsonObject(current) || current.include_usage !== true) {
      edit().stream_options = { ...(isJsonObject(current) ? current : {}), include_usage: true };
    }
  }
  const override = inst.bodyOverride?.[target];
  if (override !== undefined) body = mergeBody(edit(), override, inst.forceBodyOverride);
  return body === undefined ? ai.raw : Buffer.from(JSON.stringify(body));
}

/** Objects merge recursively; arrays and scalars replace. Without `force`, the client's values win. */
function mergeBody(base: JsonObject, override: JsonObject, force: boolean): JsonObject {
  const out: JsonObject = { ...base };
  for (const key of Object.keys(override)) {
    const o = override[key];
    const b = out[key];
    if (isJsonObject(o) && isJsonObject(b)) out[key] = mergeBody(b, o, force);
    else if (force || b === undefined) out[key] = o;
  }
  return out;
}
