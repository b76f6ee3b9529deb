import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { compileRegex } from "../router/vars.js";
import { compileReplacement, escapeUri } from "./proxy-rewrite.js";

/**
 * redirect: answers with a Location instead of proxying: to https (301 for GET/HEAD, 308 otherwise), to a
 * `$var` template, or to a regex_uri substitution of `$uri` (no match: the request is proxied as usual).
 * Templates and regexes are parsed once per config; a request renders and concatenates.
 */
export const name = "redirect";
export const priority = 900;

/** APISIX's segment grammar: `\$name` (kept literally), `${name}`, `$name`, or other text. */
const URI_PATTERN = "(\\\\\\$[0-9a-zA-Z_]+)|\\$\\{([0-9a-zA-Z_]+)\\}|\\$([0-9a-zA-Z_]+)|(\\$|[^$\\\\]+)";

export const schema = Type.Object(
  {
    // Node cannot send a status above 999; APISIX sets only the minimum.
    ret_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 999, default: 302 })),
    uri: Type.Optional(Type.String({ minLength: 2, pattern: URI_PATTERN })),
    regex_uri: Type.Optional(Type.Array(Type.String(), { minItems: 2, maxItems: 2 })),
    http_to_https: Type.Optional(Type.Boolean()),
    encode_uri: Type.Optional(Type.Boolean({ default: false })),
    append_query_string: Type.Optional(Type.Boolean({ default: false })),
  },
  { oneOf: [{ required: ["uri"] }, { required: ["regex_uri"] }, { required: ["http_to_https"] }] },
);
export type RedirectConfig = Static<typeof schema>;

/** Literal text, or the name of a variable. */
type Segment = string | { readonly variable: string };

interface State {
  retCode: number;
  uri: readonly Segment[] | undefined;
  regex: RegExp | undefined;
  replacement: readonly (string | number)[] | undefined;
  httpToHttps: boolean;
  encodeUri: boolean;
  appendQuery: boolean;
}

const TO_HTTPS: readonly Segment[] = ["https://", { variable: "host" }, { variable: "request_uri" }];

function check(conf: RedirectConfig): string | undefined {
  if (conf.regex_uri !== undefined) {
    const [pattern, template] = conf.regex_uri as [string, string];
    const err = regexError(pattern, template);
    if (err !== undefined) return `invalid regex_uri (${pattern}, ${template}), err:${err}`;
  }
  if (conf.http_to_https === true && conf.append_query_string === true) {
    return "only one of `http_to_https` and `append_query_string` can be configured.";
  }
  return undefined;
}

function regexError(pattern: string, template: string): string | undefined {
  try {
    compileRegex(pattern, false, "regex_uri");
  } catch (err) {
    return (err as Error).message;
  }
  const replacement = compileReplacement(template);
  return typeof replacement === "string" ? replacement : undefined;
}

function compile(conf: RedirectConfig): State {
  let regex: RegExp | undefined;
  let replacement: readonly (string | number)[] | undefined;
  if (conf.regex_uri !== undefined) {
    regex = compileRegex(conf.regex_uri[0]!, false, "regex_uri");
    const r = compileReplacement(conf.regex_uri[1]!);
    if (typeof r === "string") throw new Error(r);
    replacement = r;
  }
  return {
    retCode: conf.ret_code ?? 302,
    uri: conf.uri === undefined ? undefined : parseTemplate(conf.uri),
    regex,
    replacement,
    httpToHttps: conf.http_to_https === true,
    encodeUri: conf.encode_uri === true,
    appendQuery: conf.append_query_string === true,
  };
}

function rewrite(state: State, ctx: PluginContext): Reply | undefined {
  let template = state.uri;
  let status = state.retCode;
  if (state.httpToHttps && (forwardedProto(ctx) ?? ctx.var("scheme")) !== "https") {
    // No TLS listener of Weir's own to name a port, so the default https port (APISIX without ssl.listen).
    template = TO_HTTPS;
    status = ctx.method === "GET" || ctx.method === "HEAD" ? 301 : 308;
  }

  let location: string;
  if (template !== undefined) {
    location = render(template, ctx);
  } else if (state.regex !== undefined) {
    const uri = ctx.var("uri") ?? ctx.path;
    const m = state.regex.exec(uri);
    if (m === null) return undefined;
    location = uri.slice(0, m.index) + expand(state.replacement!, m) + uri.slice(m.index + m[0].length);
  } else {
    return undefined; // http_to_https on a request that already is https
  }

  const q = location.indexOf("?");
  if (state.encodeUri) location = q === -1 ? escapeUri(location) : escapeUri(location.slice(0, q)) + location.slice(q);
  if (state.appendQuery && ctx.query !== "") location += `${q === -1 ? "?" : "&"}${ctx.query}`;
  return { status, headers: { Location: headerSafe(location) } };
}

/** The client's X-Forwarded-Proto, trusted as APISIX does (put real-ip or a trusted proxy in front). */
function forwardedProto(ctx: PluginContext): string | undefined {
  const v = ctx.req.headers["x-forwarded-proto"];
  return Array.isArray(v) ? v[0] : v;
}

// ---- templates --------------------------------------------------------------------------------------------

const SEGMENT = /(\\\$[0-9a-zA-Z_]+)|\$\{([0-9a-zA-Z_]+)\}|\$([0-9a-zA-Z_]+)|(\$|[^$\\]+)/g;

/**
 * APISIX's concat_new_uri grammar. Unlike resolve_var templates, names are `[0-9a-zA-Z_]` only (so
 * `$uri.html` is `$uri` then `.html`) and `\$name` stays as written, backslash included.
 */
export function parseTemplate(uri: string): Segment[] {
  const out: Segment[] = [];
  for (const m of uri.matchAll(SEGMENT)) {
    const variable = m[2] ?? m[3];
    if (variable !== undefined) out.push({ variable });
    else {
      const text = m[1] ?? m[4]!;
      const last = out.length - 1;
      if (last >= 0 && typeof out[last] === "string") out[last] += text;
      else out.push(text);
    }
  }
  return out;
}

function render(template: readonly Segment[], ctx: PluginContext): string {
  let out = "";
  for (let i = 0; i < template.length; i++) {
    const s = template[i]!;
    out += typeof s === "string" ? s : (ctx.var(s.variable) ?? "");
  }
  return out;
}

function expand(replacement: readonly (string | number)[], m: RegExpExecArray): string {
  let out = "";
  for (const part of replacement) out += typeof part === "string" ? part : (m[part] ?? "");
  return out;
}

/**
 * Variables carry client input into the Location header: control characters (CR/LF would split the
 * header) and non-ASCII are percent-encoded as UTF-8. Clean strings are returned as they are.
 */
function headerSafe(s: string): string {
  let clean = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f) {
      clean = false;
      break;
    }
  }
  if (clean) return s;
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x20 && c < 0x7f) out += ch;
    else for (const b of Buffer.from(ch, "utf8")) out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export const redirect: Plugin<RedirectConfig, State> = { name, priority, schema, check, compile, rewrite };
