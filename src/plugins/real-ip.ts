import { isIP } from "node:net";
import { type Static, Type } from "@sinclair/typebox";
import { IP_DEF } from "../config/schemas/common.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { compileIpMatcher, validateIp } from "../router/ip.js";

/**
 * real-ip: when the request comes through a trusted proxy, takes the client's address from a header or
 * argument that proxy sets (nginx's realip module). From then on `remote_addr` is that address for every
 * later plugin, the balancer, the access log and the X-Real-IP / X-Forwarded-For sent upstream;
 * `realip_remote_addr` keeps the socket peer. Routing (`remote_addrs`) has already used the socket peer.
 *
 * Weir trusts only peers in `trusted_addresses`: without it the plugin changes nothing, where APISIX would
 * believe any client. `["0.0.0.0/0", "::/0"]` restores APISIX's behaviour for those who want it.
 */
export const name = "real-ip";
export const priority = 23000;

export const schema = Type.Object({
  trusted_addresses: Type.Optional(Type.Array(Type.Unsafe<string>({ anyOf: IP_DEF }), { minItems: 1 })),
  source: Type.String({ minLength: 1 }),
  recursive: Type.Optional(Type.Boolean({ default: false })),
});
export type RealIpConfig = Static<typeof schema>;

interface State {
  trusted: ((ip: string) => boolean) | undefined;
  source: string;
  fromForwardedFor: boolean;
  recursive: boolean;
}

function check(conf: RealIpConfig): string | undefined {
  for (const entry of conf.trusted_addresses ?? []) {
    if (validateIp(entry) !== undefined) return `invalid ip address: ${entry}`;
  }
  return undefined;
}

function compile(conf: RealIpConfig): State {
  return {
    trusted: conf.trusted_addresses === undefined ? undefined : compileIpMatcher(conf.trusted_addresses),
    source: conf.source,
    fromForwardedFor: conf.source === "http_x_forwarded_for",
    recursive: conf.recursive === true,
  };
}

/** A missing or invalid address leaves the client address as it was, as in APISIX. */
function rewrite(state: State, ctx: PluginContext): undefined {
  // The socket peer decides trust, even if an earlier real-ip (a global rule) already replaced remote_addr.
  if (state.trusted === undefined || !state.trusted(ctx.realRemoteAddr)) return undefined;
  const value = state.fromForwardedFor ? forwardedClient(state, ctx) : ctx.var(state.source);
  if (value === undefined) return undefined;
  const addr = parseAddress(value.trim());
  if (addr !== undefined) ctx.setRemoteAddr(addr.ip, addr.port);
  return undefined;
}

/**
 * X-Forwarded-For's last hop; with `recursive`, the rightmost hop that is not itself a trusted proxy (the
 * leftmost when all are), like nginx's real_ip_recursive. Several header lines read as one list.
 */
function forwardedClient(state: State, ctx: PluginContext): string | undefined {
  const raw = ctx.req.headers["x-forwarded-for"];
  if (raw === undefined) return undefined;
  const header = typeof raw === "string" ? raw : raw.join(", ");
  if (!state.recursive) return header.slice(header.lastIndexOf(",") + 1);
  const hops = header.split(",");
  for (let i = hops.length - 1; i > 0; i--) {
    const hop = hops[i]!.trim();
    const ip = parseAddress(hop)?.ip;
    // An unreadable hop stops the walk: nothing to its left can be vouched for.
    if (ip === undefined || !state.trusted!(ip)) return hop;
  }
  return hops[0];
}

/** APISIX's core.utils.parse_addr plus its checks: `ip`, `ip:port`, `[v6]`, `[v6]:port` or a bare IPv6. */
export function parseAddress(text: string): { ip: string; port: number | undefined } | undefined {
  let ip = text;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end === -1) return undefined;
    ip = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return undefined;
      portText = rest.slice(1);
    }
    if (isIP(ip) !== 6) return undefined;
  } else {
    const colon = text.indexOf(":");
    if (colon !== -1 && colon === text.lastIndexOf(":")) {
      ip = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
    if (isIP(ip) === 0) return undefined;
  }
  if (portText === undefined) return { ip, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { ip, port } : undefined;
}

export const realIp: Plugin<RealIpConfig, State> = { name, priority, schema, check, compile, rewrite };
