import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import { applyHeaderOps, type RequestContext } from "./context.js";
import { connectionTokens, isManagedRequestHeader } from "./headers.js";

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
