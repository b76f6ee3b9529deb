import type { AiInstance } from "../ai/plan.js";
import type { Capability } from "../ai/providers.js";
import { connectionTokens, isManagedRequestHeader } from "../http/headers.js";
import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import { applyHeaderOps, type RequestContext } from "./context.js";

/**
 * The header list sent upstream: the client's headers minus hop-by-hop ones, Host per pass_host (or
 * proxy-rewrite), the X-Forwarded-* and X-Real-IP family as APISIX sets them, then plugin header changes.
 * `upgrade` keeps Connection/Upgrade for a WebSocket handshake, the one case they must cross.
 */
export function upstreamRequestHeaders(
  ctx: RequestContext,
  upstream: CompiledUpstream,
  node: CompiledNode,
  upgrade: boolean,
): string[] {
  const raw = ctx.req.rawHeaders;
  const out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  let fwdPort: string | undefined;
  let hop: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (isManagedRequestHeader(name)) {
      const lower = name.toLowerCase();
      if (lower === "x-forwarded-for") xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
      else if (lower === "x-forwarded-proto") proto = raw[i + 1];
      else if (lower === "x-forwarded-host") fwdHost = raw[i + 1];
      else if (lower === "x-forwarded-port") fwdPort = raw[i + 1];
      else if (upgrade && (lower === "upgrade" || lower === "connection")) out.push(name, raw[i + 1]!);
      else if (lower === "connection") hop = connectionTokens(raw[i + 1]);
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (hop !== undefined && !upgrade) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (hop.has(out[i]!.toLowerCase())) out.splice(i, 2);
    }
  }
  const clientHost = ctx.req.headers.host ?? "";
  const host =
    ctx.upstreamHost ??
    (upstream.passHost === "node"
      ? node.hostHeader
      : upstream.passHost === "rewrite"
        ? (upstream.upstreamHost ?? clientHost)
        : clientHost);
  // After real-ip this is the address it set: nginx's set_real_ip changes $remote_addr, so X-Real-IP and the
  // hop $proxy_add_x_forwarded_for appends both carry the real client, not the trusted proxy.
  const remote = ctx.remoteAddr;
  const scheme = "encrypted" in ctx.req.socket ? "https" : "http";
  out.push(
    "host",
    host,
    "x-real-ip",
    remote,
    "x-forwarded-for",
    xff === undefined ? remote : `${xff}, ${remote}`,
    "x-forwarded-proto",
    proto ?? scheme,
    "x-forwarded-host",
    fwdHost ?? ctx.host,
    "x-forwarded-port",
    fwdPort ?? String(ctx.req.socket.localPort ?? ""),
  );
  const consumer = ctx.consumer;
  if (consumer !== undefined) {
    // APISIX 3.x attach_consumer: who authenticated, with which credential, and the consumer's custom_id label.
    out.push("x-consumer-username", consumer.username);
    if (ctx.credentialId !== undefined) out.push("x-credential-identifier", ctx.credentialId);
    if (consumer.customId !== undefined) out.push("x-consumer-custom-id", consumer.customId);
  }
  if (ctx.body !== undefined) {
    setHeader(out, "content-length", String(ctx.body.length));
  }
  return ctx.requestHeaderOps === undefined ? out : applyHeaderOps(out, ctx.requestHeaderOps);
}

function setHeader(headers: string[], lower: string, value: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === lower) {
      headers[i + 1] = value;
      return;
    }
  }
  headers.push(lower, value);
}

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
export function aiUpstreamPath(ctx: RequestContext, inst: AiInstance, capability: Capability | undefined): string {
  const path = inst.endpointPath ?? capability?.path ?? ctx.upstreamUri;
  if (inst.authQuery === "") return path;
  return `${path}${path.includes("?") ? "&" : "?"}${inst.authQuery}`;
}

export function aiUpstreamHeaders(
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

function hasHeader(headers: string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return true;
  return false;
}

function removeHeader(headers: string[], lower: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]!.toLowerCase() === lower) headers.splice(i, 2);
  }
}
