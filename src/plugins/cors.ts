import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { compileRegex } from "../router/vars.js";

/**
 * cors: answers every OPTIONS request itself (200, no upstream call) and adds CORS headers to responses
 * whose Origin is allowed. An origin that is not allowed gets no Access-Control-Allow-Origin at all; the
 * request's Origin is echoed only when it is on a list, matches a regex, or `**` asks for it. Origin lists
 * and regexes are compiled once per config; metadata lists once per metadata revision.
 */
export const name = "cors";
export const priority = 4000;

/** APISIX's origins_pattern: `*`, `**`, `null`, or a comma list of scheme://host[:port]. */
const ORIGINS_PATTERN = "^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$";
const RegexList = Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, uniqueItems: true });

export const schema = Type.Object({
  allow_origins: Type.Optional(Type.String({ pattern: ORIGINS_PATTERN, default: "*" })),
  allow_methods: Type.Optional(Type.String({ default: "*" })),
  allow_headers: Type.Optional(Type.String({ default: "*" })),
  expose_headers: Type.Optional(Type.String()),
  max_age: Type.Optional(Type.Integer({ default: 5 })),
  allow_credential: Type.Optional(Type.Boolean({ default: false })),
  allow_origins_by_regex: Type.Optional(RegexList),
  allow_origins_by_metadata: Type.Optional(RegexList),
  timing_allow_origins: Type.Optional(Type.String({ pattern: ORIGINS_PATTERN })),
  timing_allow_origins_by_regex: Type.Optional(RegexList),
});
export type CorsConfig = Static<typeof schema>;

export const metadataSchema = Type.Object({
  allow_origins: Type.Optional(Type.Record(Type.String(), Type.String({ pattern: ORIGINS_PATTERN }))),
});

const ALL_METHODS = "GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE";

/** The Access-Control-Allow-Origin value for a request's Origin, or undefined when it is not allowed. */
type OriginMatcher = (origin: string | undefined) => string | undefined;

interface State {
  origins: OriginMatcher;
  byMetadata: readonly string[] | undefined;
  /** allow_origins is not the default "*": metadata falls back to it (APISIX's allow_origins_local). */
  originsExplicit: boolean;
  /** The answer can differ per Origin, so caches must key on it. */
  vary: boolean;
  timing: OriginMatcher | undefined;
  methods: string;
  /** undefined: echo Access-Control-Request-Headers (`**`). */
  headers: string | undefined;
  expose: string | undefined;
  maxAge: string;
  credentials: boolean;
}

const PREFLIGHT: Reply = { status: 200, body: "" };

function check(conf: CorsConfig): string | undefined {
  if (conf.allow_credential === true) {
    const star = [conf.allow_origins, conf.allow_methods, conf.allow_headers, conf.expose_headers];
    if (star.includes("*") || conf.timing_allow_origins === "*") {
      return "you can not set '*' for other option when 'allow_credential' is true";
    }
  }
  for (const field of ["allow_origins_by_regex", "timing_allow_origins_by_regex"] as const) {
    const list = conf[field];
    if (list === undefined) continue;
    for (let i = 0; i < list.length; i++) {
      try {
        compileRegex(list[i]!, false, `${field}[${i}]`);
      } catch (err) {
        return (err as Error).message;
      }
    }
  }
  return undefined;
}

function compile(conf: CorsConfig): State {
  const allowOrigins = conf.allow_origins ?? "*";
  const regex = conf.allow_origins_by_regex;
  const timingRegex = conf.timing_allow_origins_by_regex;
  const allowHeaders = conf.allow_headers ?? "*";
  const allowMethods = conf.allow_methods ?? "*";
  return {
    // With a regex list, allow_origins is ignored (APISIX's rule).
    origins: regex !== undefined ? regexMatcher(regex) : originsMatcher(allowOrigins),
    byMetadata: conf.allow_origins_by_metadata,
    originsExplicit: allowOrigins !== "*",
    vary: allowOrigins !== "*" || regex !== undefined || conf.allow_origins_by_metadata !== undefined,
    timing:
      timingRegex !== undefined
        ? regexMatcher(timingRegex)
        : conf.timing_allow_origins !== undefined
          ? originsMatcher(conf.timing_allow_origins)
          : undefined,
    methods: allowMethods === "**" ? ALL_METHODS : allowMethods,
    headers: allowHeaders === "**" ? undefined : allowHeaders,
    expose: conf.expose_headers === "" ? undefined : conf.expose_headers,
    maxAge: String(conf.max_age ?? 5),
    credentials: conf.allow_credential === true,
  };
}

/** APISIX answers every OPTIONS request here, before auth plugins run, so preflights need no credentials. */
function rewrite(_state: State, ctx: PluginContext): Reply | undefined {
  return ctx.method === "OPTIONS" ? PREFLIGHT : undefined;
}

function header_filter(state: State, ctx: PluginContext): void {
  const origin = originOf(ctx);
  let allowed: string | undefined;
  let local = true;
  if (state.byMetadata !== undefined) {
    allowed = metadataMatch(state.byMetadata, ctx, origin);
    local = allowed === undefined && state.originsExplicit;
  }
  if (local) allowed = state.origins(origin);

  if (state.vary || (allowed !== undefined && allowed !== "*")) ctx.addResponseHeader("Vary", "Origin");
  if (allowed !== undefined) {
    ctx.setResponseHeader("Access-Control-Allow-Origin", allowed);
    ctx.setResponseHeader("Access-Control-Allow-Methods", state.methods);
    ctx.setResponseHeader("Access-Control-Max-Age", state.maxAge);
    if (state.expose !== undefined) ctx.setResponseHeader("Access-Control-Expose-Headers", state.expose);
    const headers = state.headers ?? requestHeader(ctx, "access-control-request-headers");
    if (headers !== undefined) ctx.setResponseHeader("Access-Control-Allow-Headers", headers);
    else ctx.removeResponseHeader("Access-Control-Allow-Headers");
    if (state.credentials) ctx.setResponseHeader("Access-Control-Allow-Credentials", "true");
  } else {
    // The gateway's policy is the only one: an upstream that reflects any Origin must not bypass it.
    ctx.removeResponseHeader("Access-Control-Allow-Origin");
    ctx.removeResponseHeader("Access-Control-Allow-Credentials");
  }

  if (state.timing !== undefined) {
    const timing = state.timing(origin);
    if (timing !== undefined) ctx.setResponseHeader("Timing-Allow-Origin", timing);
  }
}

// ---- origin matching --------------------------------------------------------------------------------------

/** The Origin the client sent (not a value another plugin set for the upstream). */
function originOf(ctx: PluginContext): string | undefined {
  return requestHeader(ctx, "origin");
}

function requestHeader(ctx: PluginContext, lower: string): string | undefined {
  const v = ctx.req.headers[lower];
  return Array.isArray(v) ? v.join(", ") : v;
}

const ANY: OriginMatcher = () => "*";
/**
 * `**` echoes whatever Origin came, except the opaque `null` (sandboxed iframes, file: pages, redirects),
 * which would otherwise get credentialed access; list `null` explicitly to allow it.
 */
const ECHO: OriginMatcher = (origin) => (origin === undefined ? "*" : origin === "null" ? undefined : origin);

export function originsMatcher(allowOrigins: string): OriginMatcher {
  if (allowOrigins === "*") return ANY;
  if (allowOrigins === "**") return ECHO;
  if (!allowOrigins.includes(",")) return (origin) => (origin === allowOrigins ? origin : undefined);
  const allowed = new Set(allowOrigins.split(","));
  return (origin) => (origin !== undefined && allowed.has(origin) ? origin : undefined);
}

/** Unanchored, like APISIX's ngx.re.find: write `^…$` to match whole origins. */
function regexMatcher(sources: readonly string[]): OriginMatcher {
  const regexes = sources.map((s, i) => compileRegex(s, false, `allow_origins_by_regex[${i}]`));
  return (origin) => (origin !== undefined && regexes.some((re) => re.test(origin)) ? origin : undefined);
}

/** Compiled metadata lists, per stored metadata object: a new revision is a new object. */
const metadataCache = new WeakMap<object, Map<string, OriginMatcher | undefined>>();

function metadataMatch(keys: readonly string[], ctx: PluginContext, origin: string | undefined): string | undefined {
  const metadata = ctx.pluginMetadata(name) as { allow_origins?: Record<string, string> } | undefined;
  const map = metadata?.allow_origins;
  if (metadata === undefined || map === undefined) return undefined;
  let compiled = metadataCache.get(metadata);
  if (compiled === undefined) metadataCache.set(metadata, (compiled = new Map()));
  for (const key of keys) {
    let matcher = compiled.get(key);
    if (matcher === undefined && !compiled.has(key)) {
      const source = map[key];
      matcher = typeof source === "string" ? originsMatcher(source) : undefined;
      compiled.set(key, matcher);
    }
    const allowed = matcher?.(origin);
    // A key whose list is "*" allows every origin; metadata answers with the origin itself then.
    if (allowed !== undefined && origin !== undefined) return origin;
  }
  return undefined;
}

export const cors: Plugin<CorsConfig, State> = {
  name,
  priority,
  schema,
  metadataSchema,
  check,
  compile,
  rewrite,
  header_filter,
};
