import { type Static, Type } from "@sinclair/typebox";
import { HostSchema } from "../config/schemas/common.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * referer-restriction: allows only requests whose Referer host is on a whitelist, or refuses those on a
 * blacklist. An entry is an exact host (`example.org` matches only itself) or a `*`-prefixed suffix
 * (`*.example.org` matches any subdomain, not example.org itself); a lone `*` matches every host.
 * Hosts are compared lower-cased, without port, userinfo or a trailing dot, so `EVIL.com.`,
 * `evil.com:443` and `http://example.org@evil.com/` all read as evil.com.
 */
export const name = "referer-restriction";
export const priority = 2990;

const HostList = Type.Array(HostSchema, { minItems: 1 });

export const schema = Type.Object(
  {
    bypass_missing: Type.Optional(Type.Boolean({ default: false })),
    whitelist: Type.Optional(HostList),
    blacklist: Type.Optional(HostList),
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, default: "Your referer host is not allowed" })),
  },
  { oneOf: [{ required: ["whitelist"] }, { required: ["blacklist"] }] },
);
export type RefererRestrictionConfig = Static<typeof schema>;

interface HostMatcher {
  exact: Set<string>;
  /** What a matching host ends with: `.example.org` for `*.example.org`, `` for `*`. */
  suffixes: string[];
}

interface State {
  hosts: HostMatcher;
  /** true: a match lets the request through (whitelist); false: a match refuses it (blacklist). */
  allowOnMatch: boolean;
  bypassMissing: boolean;
  rejection: Reply;
}

function compile(conf: RefererRestrictionConfig): State {
  const allowOnMatch = conf.whitelist !== undefined;
  return {
    hosts: compileHosts((allowOnMatch ? conf.whitelist : conf.blacklist) ?? []),
    allowOnMatch,
    bypassMissing: conf.bypass_missing === true,
    rejection: { status: 403, body: { message: conf.message ?? "Your referer host is not allowed" } },
  };
}

/** A missing or malformed Referer is refused unless bypass_missing, whichever list is configured. */
function access(state: State, ctx: PluginContext): Reply | undefined {
  const referer = ctx.req.headers.referer;
  const host = referer === undefined ? undefined : refererHost(referer);
  if (host === undefined) return state.bypassMissing ? undefined : state.rejection;
  return matchHost(state.hosts, host) === state.allowOnMatch ? undefined : state.rejection;
}

export function compileHosts(entries: readonly string[]): HostMatcher {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const entry of entries) {
    const host = entry.toLowerCase();
    if (host.startsWith("*")) suffixes.push(host.slice(1));
    else exact.add(stripTrailingDot(host));
  }
  return { exact, suffixes };
}

export function matchHost(hosts: HostMatcher, host: string): boolean {
  if (hosts.exact.has(host)) return true;
  for (const suffix of hosts.suffixes) if (host.endsWith(suffix)) return true;
  return false;
}

// http(s) or scheme-relative, as lua-resty-http's parse_uri accepts; the authority runs to the first / ? #.
const REFERER = /^(?:https?:)?\/\/([^/?#]*)/i;
// Hosts that need no IDNA or percent-decoding: the common case skips the URL parser.
const PLAIN_HOST = /^[a-z0-9._-]+$/;

/** The host of a Referer URL, normalized for comparison; undefined when it is not an http(s) URL. */
export function refererHost(referer: string): string | undefined {
  const m = REFERER.exec(referer);
  if (m === null) return undefined;
  let authority = m[1]!;
  const at = authority.lastIndexOf("@");
  if (at !== -1) authority = authority.slice(at + 1);
  let host: string;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end === -1) return undefined;
    host = authority.slice(0, end + 1);
  } else {
    const colon = authority.indexOf(":");
    host = colon === -1 ? authority : authority.slice(0, colon);
  }
  host = host.toLowerCase();
  if (!PLAIN_HOST.test(host)) {
    // Percent-escapes and non-ASCII names (`ev%69l.com`, `exämple.org`) compare in their canonical form.
    try {
      host = new URL(`http://${host}/`).hostname;
    } catch {
      return undefined;
    }
  }
  host = stripTrailingDot(host);
  return host === "" ? undefined : host;
}

function stripTrailingDot(host: string): string {
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

export const refererRestriction: Plugin<RefererRestrictionConfig, State> = {
  name,
  priority,
  schema,
  compile,
  access,
};
