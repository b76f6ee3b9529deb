import { applyHeaderOps, type RequestContext } from "../proxy/context.js";
import { isManagedRequestHeader } from "../proxy/headers.js";
import type { CompiledNode } from "../upstream/upstream.js";
import type { AiInstance, AiRequest } from "./plan.js";
import { type AiProtocol, isJsonObject, type JsonObject } from "./protocols.js";
import type { Capability } from "./providers.js";
import type { Translation } from "./translation.js";

/**
 * Client headers that never reach a provider: the client's own credentials for Weir (the provider's
 * come from the instance config), cookies, and everything Weir sets itself. Compression is refused so
 * the gateway can read the stream it has to count.
 */
const NOT_FORWARDED = new Set([
  "host",
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "api-key",
  "cookie",
  "content-length",
  "content-type",
  "accept-encoding",
  "expect",
]);

/** The request path on the provider: override.endpoint's, else the provider's, plus `auth.query`. */
export function buildUpstreamPath(ctx: RequestContext, inst: AiInstance, capability: Capability | undefined): string {
  const path = inst.endpointPath ?? capability?.path ?? ctx.upstreamUri;
  if (inst.authQuery === "") return path;
  return `${path}${path.includes("?") ? "&" : "?"}${inst.authQuery}`;
}

export function buildUpstreamHeaders(
  ctx: RequestContext,
  inst: AiInstance,
  node: CompiledNode,
  contentLength: number,
): string[] {
  const raw = ctx.req.rawHeaders;
  let out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (isManagedRequestHeader(name)) continue; // hop-by-hop and X-Forwarded-*
    if (NOT_FORWARDED.has(name.toLowerCase())) continue;
    out.push(name, raw[i + 1]!);
  }
  if (ctx.requestHeaderOps !== undefined) out = applyHeaderOps(out, ctx.requestHeaderOps);
  for (const [name, value] of inst.provider.defaultHeaders) {
    if (!hasHeader(out, name)) out.push(name, value);
  }
  const auth = inst.authHeaders;
  for (let i = 0; i < auth.length; i += 2) {
    removeHeader(out, auth[i]!.toLowerCase());
    out.push(auth[i]!, auth[i + 1]!);
  }
  out.push(
    "host",
    node.hostHeader,
    "content-type",
    "application/json",
    "content-length",
    String(contentLength),
    "accept-encoding",
    "identity",
  );
  return out;
}

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

function hasHeader(headers: string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return true;
  return false;
}

function removeHeader(headers: string[], lower: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]!.toLowerCase() === lower) headers.splice(i, 2);
  }
}
