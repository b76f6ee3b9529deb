import { type Static, Type } from "@sinclair/typebox";
import { compileRegex } from "../router/vars.js";
import type { PluginContext } from "./context.js";
import { compileTemplate, type Template } from "./template.js";
import type { Plugin } from "./types.js";

/**
 * proxy-rewrite: changes what goes upstream — uri (with `$var` templates), regex_uri, method, Host and
 * request headers — without touching what the router matched. Templates and regexes compile once.
 */
export const name = "proxy-rewrite";
export const priority = 1008;

const HeaderMap = Type.Record(Type.String({ minLength: 1, pattern: "^[^:]+$" }), Type.Union([Type.String(), Type.Number()]));

export const schema = Type.Object(
  {
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^\\/.*" })),
    method: Type.Optional(
      Type.Union(
        ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "MKCOL", "COPY", "MOVE", "PROPFIND", "LOCK", "UNLOCK", "PATCH", "TRACE"].map(
          (m) => Type.Literal(m),
        ),
      ),
    ),
    regex_uri: Type.Optional(Type.Array(Type.String(), { minItems: 2 })),
    host: Type.Optional(Type.String({ pattern: "^[0-9a-zA-Z-.]+(:\\d{1,5})?$" })),
    headers: Type.Optional(
      Type.Union([
        Type.Object(
          {
            add: Type.Optional(HeaderMap),
            set: Type.Optional(HeaderMap),
            remove: Type.Optional(Type.Array(Type.String({ minLength: 1, pattern: "^[^:]+$" }), { minItems: 1 })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        // APISIX's older flat form: {"X-Api-Version": "v2"} means set.
        HeaderMap,
      ]),
    ),
    use_real_request_uri_unsafe: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type ProxyRewriteConfig = Static<typeof schema>;

interface HeaderOp {
  name: string;
  value: Template;
}

interface State {
  uri: Template | undefined;
  regexUri: { regex: RegExp; replacement: string }[] | undefined;
  method: string | undefined;
  host: string | undefined;
  add: HeaderOp[];
  set: HeaderOp[];
  remove: string[];
  rawUri: boolean;
}

function check(conf: ProxyRewriteConfig): string | undefined {
  if (conf.regex_uri !== undefined) {
    if (conf.regex_uri.length % 2 !== 0) return 'property "regex_uri" must hold pairs of [regex, replacement]';
    for (let i = 0; i < conf.regex_uri.length; i += 2) {
      try {
        compileRegex(conf.regex_uri[i]!, false, `regex_uri[${i}]`);
      } catch (err) {
        return `property "regex_uri" validation failed: ${(err as Error).message}`;
      }
    }
  }
  return undefined;
}

function compile(conf: ProxyRewriteConfig): State {
  const ops = (map: Record<string, string | number> | undefined): HeaderOp[] =>
    Object.entries(map ?? {}).map(([n, v]) => ({ name: n, value: compileTemplate(String(v)) }));
  const headers = conf.headers as Record<string, unknown> | undefined;
  const structured =
    headers !== undefined && (headers.add !== undefined || headers.set !== undefined || headers.remove !== undefined);
  const regexUri: State["regexUri"] = [];
  for (let i = 0; conf.regex_uri !== undefined && i < conf.regex_uri.length; i += 2) {
    regexUri.push({ regex: compileRegex(conf.regex_uri[i]!, false, "regex_uri"), replacement: conf.regex_uri[i + 1]! });
  }
  return {
    uri: conf.uri === undefined ? undefined : compileTemplate(conf.uri),
    regexUri: regexUri.length > 0 ? regexUri : undefined,
    method: conf.method,
    host: conf.host,
    add: structured ? ops(headers!.add as Record<string, string>) : [],
    set: structured ? ops(headers!.set as Record<string, string>) : ops(headers as Record<string, string> | undefined),
    remove: structured ? ((headers!.remove as string[] | undefined) ?? []) : [],
    rawUri: conf.use_real_request_uri_unsafe === true,
  };
}

/** Keeps characters nginx passes as they are; escapes the rest (spaces, quotes, non-ASCII). */
function uriSafeEncode(path: string): string {
  return path.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/g, (c) => encodeURIComponent(c));
}

function rewrite(state: State, ctx: PluginContext): undefined {
  if (state.rawUri) {
    ctx.upstreamUri = ctx.req.url ?? ctx.upstreamUri;
  } else if (state.uri !== undefined || state.regexUri !== undefined) {
    let path = ctx.path;
    let hasOwnQuery = false;
    if (state.uri !== undefined) {
      path = state.uri(ctx);
      const q = path.indexOf("?");
      hasOwnQuery = q !== -1;
      path = hasOwnQuery ? uriSafeEncode(path.slice(0, q)) + path.slice(q) : uriSafeEncode(path);
    } else {
      for (const { regex, replacement } of state.regexUri!) {
        if (regex.test(path)) {
          path = uriSafeEncode(path.replace(regex, replacement));
          break;
        }
      }
    }
    // The client's query string follows the rewritten path, joined with & if the new uri has its own.
    ctx.upstreamUri = ctx.query === "" ? path : `${path}${hasOwnQuery ? "&" : "?"}${ctx.query}`;
  }
  if (state.method !== undefined) ctx.upstreamMethod = state.method;
  if (state.host !== undefined) ctx.upstreamHost = state.host;
  for (const op of state.add) ctx.addRequestHeader(op.name, op.value(ctx));
  for (const op of state.set) ctx.setRequestHeader(op.name, op.value(ctx));
  for (const h of state.remove) ctx.removeRequestHeader(h);
  return undefined;
}

export const proxyRewrite: Plugin<ProxyRewriteConfig, State> = { name, priority, schema, check, compile, rewrite };
