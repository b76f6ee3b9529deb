import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { compileRegex } from "../router/vars.js";
import { type Captures, compileVarTemplate, type VarTemplate } from "../vars/template.js";

/**
 * proxy-rewrite: changes what goes upstream (uri with `$var` templates, regex_uri, method, Host, request
 * headers) without touching what the router matched. Templates, regexes and replacement templates are
 * compiled once per config; a request only matches and concatenates.
 */
export const name = "proxy-rewrite";
export const priority = 1008;

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "HEAD",
  "DELETE",
  "OPTIONS",
  "MKCOL",
  "COPY",
  "MOVE",
  "PROPFIND",
  "LOCK",
  "UNLOCK",
  "PATCH",
  "TRACE",
];

const HEADER_NAME = "^[^:]+$";
const HeaderValue = Type.Union([Type.String(), Type.Number()]);
// add/set may give several values for one name (several header lines), as APISIX 3.x accepts.
const HeaderValues = Type.Union([Type.String(), Type.Number(), Type.Array(HeaderValue, { minItems: 1 })]);

export const schema = Type.Object(
  {
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^\\/.*" })),
    method: Type.Optional(Type.Unsafe<string>({ type: "string", enum: METHODS })),
    regex_uri: Type.Optional(Type.Array(Type.String(), { minItems: 2 })),
    host: Type.Optional(Type.String({ pattern: "^[0-9a-zA-Z-.]+(:\\d{1,5})?$" })),
    headers: Type.Optional(
      Type.Union([
        Type.Object(
          {
            add: Type.Optional(Type.Record(Type.String({ pattern: HEADER_NAME }), HeaderValues, { minProperties: 1 })),
            set: Type.Optional(Type.Record(Type.String({ pattern: HEADER_NAME }), HeaderValues, { minProperties: 1 })),
            remove: Type.Optional(Type.Array(Type.String({ pattern: HEADER_NAME }), { minItems: 1 })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        // The pre-3.0 flat form, {"X-Api-Version": "v2"}, means set. Its names and values are checked in
        // check() with APISIX's messages rather than by the schema.
        Type.Record(Type.String({ pattern: HEADER_NAME }), HeaderValue, { minProperties: 1 }),
      ]),
    ),
    use_real_request_uri_unsafe: Type.Optional(Type.Boolean({ default: false })),
  },
  // APISIX 2.x's `scheme` was removed in 3.0 (the upstream's scheme decides); like APISIX, unknown fields
  // are not an error, so old configs still load and `scheme` is ignored.
  { minProperties: 1 },
);
export type ProxyRewriteConfig = Static<typeof schema>;

type HeaderMap = Record<string, string | number | (string | number)[]>;

/** An ngx.re.sub replacement: literal text and capture numbers, in order. */
type Replacement = readonly (string | number)[];

interface RegexRule {
  regex: RegExp;
  replacement: Replacement;
}

interface HeaderOp {
  name: string;
  values: VarTemplate[];
}

interface State {
  uri: VarTemplate | undefined;
  regexUri: RegexRule[] | undefined;
  method: string | undefined;
  host: string | undefined;
  add: HeaderOp[];
  set: HeaderOp[];
  remove: string[];
  unsafe: boolean;
}

function check(conf: ProxyRewriteConfig): string | undefined {
  const rules = conf.regex_uri;
  if (rules !== undefined && rules.length > 0) {
    if (rules.length % 2 !== 0) return "The length of regex_uri should be an even number";
    for (let i = 0; i < rules.length; i += 2) {
      const err = compileRule(rules[i]!, rules[i + 1]!);
      if (typeof err === "string") return `invalid regex_uri(${rules[i]}, ${rules[i + 1]}): ${err}`;
    }
  }
  const headers = conf.headers as Record<string, unknown> | undefined;
  if (headers === undefined) return undefined;
  if (!isStructured(headers)) return checkHeaders(headers as HeaderMap, true);
  return (
    checkHeaders(headers.add as HeaderMap | undefined, false) ??
    checkHeaders(headers.set as HeaderMap | undefined, false) ??
    checkNames(headers.remove as string[] | undefined)
  );
}

function compile(conf: ProxyRewriteConfig): State {
  let regexUri: RegexRule[] | undefined;
  const rules = conf.regex_uri;
  if (rules !== undefined && rules.length >= 2) {
    regexUri = [];
    for (let i = 0; i + 1 < rules.length; i += 2) {
      const rule = compileRule(rules[i]!, rules[i + 1]!);
      if (typeof rule === "string") throw new Error(`invalid regex_uri(${rules[i]}, ${rules[i + 1]}): ${rule}`);
      regexUri.push(rule);
    }
  }
  const headers = conf.headers as Record<string, unknown> | undefined;
  const structured = headers !== undefined && isStructured(headers);
  return {
    uri: conf.uri === undefined ? undefined : compileVarTemplate(conf.uri),
    regexUri,
    method: conf.method,
    host: conf.host,
    add: structured ? headerOps(headers.add as HeaderMap | undefined) : [],
    set: structured ? headerOps(headers.set as HeaderMap | undefined) : headerOps(headers as HeaderMap | undefined),
    remove: structured ? ((headers.remove as string[] | undefined) ?? []) : [],
    unsafe: conf.use_real_request_uri_unsafe === true,
  };
}

/**
 * APISIX's order: Host first, then the upstream uri, then header add → set → remove, then the method.
 * Without use_real_request_uri_unsafe the uri sent upstream is always rebuilt from the normalized `$uri`
 * (even when only headers are configured, as APISIX does), escaped like nginx's ngx_escape_uri, with the
 * client's query string appended: after `&` when the new uri has its own `?`, after `?` otherwise.
 */
function rewrite(state: State, ctx: PluginContext): undefined {
  if (state.host !== undefined) ctx.upstreamHost = state.host;

  let captures: RegExpExecArray | undefined;
  if (state.unsafe) {
    // The request line as the client sent it; the query string is part of it.
    let uri = ctx.req.url ?? ctx.upstreamUri;
    if (state.uri !== undefined) {
      const q = uri.indexOf("?");
      const rendered = state.uri.render(ctx, undefined, escapeSeparator);
      uri = q === -1 ? rendered : rendered.includes("?") ? `${rendered}&${uri.slice(q + 1)}` : rendered + uri.slice(q);
    } else if (state.regexUri !== undefined) {
      const m = applyRegexUri(state.regexUri, uri);
      if (m !== undefined) ({ uri, captures } = m);
    }
    // Unsafe means "not normalized or re-escaped", but bytes that cannot appear on a request line at all
    // (controls, spaces, non-ASCII from a variable) are still escaped so the upstream request can be sent.
    ctx.upstreamUri = escapeRequestLine(uri);
  } else {
    const original = ctx.var("uri") ?? ctx.path;
    let uri = original;
    let separatorEscaped = false;
    if (state.uri !== undefined) {
      separatorEscaped = true;
      uri = state.uri.render(ctx, undefined, escapeSeparator);
    } else if (state.regexUri !== undefined) {
      // A decoded `?` in $uri (the client sent %3F) is path, so the whole result is escaped then.
      separatorEscaped = !uri.includes("?");
      const m = applyRegexUri(state.regexUri, uri);
      if (m !== undefined) ({ uri, captures } = m);
    }
    const q = separatorEscaped ? uri.indexOf("?") : -1;
    uri = q === -1 ? escapeUri(uri) : escapeUri(uri.slice(0, q)) + escapeRequestLine(uri.slice(q));
    // APISIX's ngx.req.set_uri: later plugins and the access log see the rewritten `$uri`.
    if (uri !== original) ctx.setVar("uri", uri);
    const args = ctx.query;
    ctx.upstreamUri = args === "" ? uri : `${uri}${q === -1 ? "?" : "&"}${args}`;
  }

  for (const op of state.add) {
    for (const value of op.values) ctx.addRequestHeader(op.name, value.render(ctx, captures));
  }
  for (const op of state.set) {
    for (let i = 0; i < op.values.length; i++) {
      const value = op.values[i]!.render(ctx, captures);
      // nginx's set_header with an empty value removes the header (an unset `$var` clears it).
      if (i > 0) ctx.addRequestHeader(op.name, value);
      else if (value === "") ctx.removeRequestHeader(op.name);
      else ctx.setRequestHeader(op.name, value);
    }
  }
  for (const header of state.remove) ctx.removeRequestHeader(header);

  if (state.method !== undefined) {
    ctx.upstreamMethod = state.method;
    // ngx.req.set_method changes $request_method for everything after this plugin too.
    ctx.setVar("request_method", state.method);
  }
  return undefined;
}

// ---- regex_uri --------------------------------------------------------------------------------------------

/** The first rule whose regex matches replaces its first match (ngx.re.sub, not gsub), as APISIX does. */
function applyRegexUri(
  rules: readonly RegexRule[],
  uri: string,
): { uri: string; captures: RegExpExecArray } | undefined {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const m = rule.regex.exec(uri);
    if (m === null) continue;
    const replaced = uri.slice(0, m.index) + expand(rule.replacement, m) + uri.slice(m.index + m[0].length);
    return { uri: replaced, captures: m };
  }
  return undefined;
}

function expand(replacement: Replacement, m: Captures): string {
  let out = "";
  for (let i = 0; i < replacement.length; i++) {
    const part = replacement[i]!;
    out += typeof part === "string" ? part : (m[part] ?? "");
  }
  return out;
}

function compileRule(pattern: string, template: string): RegexRule | string {
  let regex: RegExp;
  try {
    regex = compileRegex(pattern, false, "regex_uri");
  } catch (err) {
    return (err as Error).message;
  }
  const replacement = compileReplacement(template);
  return typeof replacement === "string" ? replacement : { regex, replacement };
}

/**
 * ngx.re.sub's replacement syntax (lua-nginx-module's script compiler): `$N` and `${N}` are captures
 * (missing or unmatched ones are empty), `$$` is a dollar; any other `$` is an error.
 */
export function compileReplacement(template: string): Replacement | string {
  const parts: (string | number)[] = [];
  let text = "";
  let i = 0;
  const invalid = `invalid capturing variable name found in "${template}"`;
  while (i < template.length) {
    const c = template[i]!;
    if (c !== "$") {
      text += c;
      i++;
      continue;
    }
    i++;
    if (i === template.length) return invalid;
    if (template[i] === "$") {
      text += "$";
      i++;
      continue;
    }
    const bracket = template[i] === "{";
    if (bracket && ++i === template.length) return invalid;
    const start = i;
    while (i < template.length && template.charCodeAt(i) >= 48 && template.charCodeAt(i) <= 57) i++;
    if (i === start) {
      return /[A-Za-z0-9_]/.test(template[i] ?? "")
        ? `attempt to use named capturing variable "${template.slice(start).match(/^\w+/)![0]}" (named captures not supported yet)`
        : invalid;
    }
    if (bracket) {
      if (template[i] !== "}") return `the closing bracket in "${template.slice(start, i)}" variable is missing`;
      i++;
    }
    if (text !== "") parts.push(text);
    text = "";
    parts.push(Number(template.slice(start, i - (bracket ? 1 : 0))));
  }
  if (text !== "") parts.push(text);
  return parts;
}

// ---- uri escaping -----------------------------------------------------------------------------------------

const HEX: string[] = Array.from({ length: 256 }, (_, b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`);

/** nginx's NGX_ESCAPE_URI table (ngx_escape_uri type 0), which APISIX's uri_safe_encode calls. */
const URI_UNSAFE = asciiTable((c) => c <= 0x20 || c === 0x7f || '"#%<>?\\^`{|}'.includes(String.fromCharCode(c)));
/** Only what can never be on a request line: APISIX's escape_uri_control_chars plus the space. */
const LINE_UNSAFE = asciiTable((c) => c <= 0x20 || c === 0x7f);

function asciiTable(unsafe: (c: number) => boolean): Uint8Array {
  const table = new Uint8Array(128);
  for (let c = 0; c < 128; c++) table[c] = unsafe(c) ? 1 : 0;
  return table;
}

export function escapeUri(s: string): string {
  return escapeWith(URI_UNSAFE, s);
}

function escapeRequestLine(s: string): string {
  return escapeWith(LINE_UNSAFE, s);
}

/** Percent-encodes unsafe ASCII and every non-ASCII character (as UTF-8); returns `s` itself when clean. */
function escapeWith(table: Uint8Array, s: string): string {
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || table[c] === 1) break;
    i++;
  }
  if (i === s.length) return s;
  let out = s.slice(0, i);
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      out += table[c] === 1 ? HEX[c] : s[i];
      i++;
      continue;
    }
    let j = i + 1;
    while (j < s.length && s.charCodeAt(j) >= 0x80) j++;
    for (const b of Buffer.from(s.slice(i, j), "utf8")) out += HEX[b];
    i = j;
  }
  return out;
}

/** APISIX's escape_separator: a `?` inside a variable's value is not the start of a query string. */
function escapeSeparator(value: string): string {
  return value.includes("?") ? value.replaceAll("?", "%3F") : value;
}

// ---- headers ----------------------------------------------------------------------------------------------

/** APISIX tells the forms apart by whether add, set or remove holds an object/array. */
function isStructured(headers: Record<string, unknown>): boolean {
  return typeof headers.add === "object" || typeof headers.set === "object" || typeof headers.remove === "object";
}

function headerOps(map: HeaderMap | undefined): HeaderOp[] {
  if (map === undefined) return [];
  return Object.keys(map).map((header) => {
    const v = map[header]!;
    const values = Array.isArray(v) ? v : [v];
    return { name: header, values: values.map((x) => compileVarTemplate(String(x), { captures: true })) };
  });
}

function checkHeaders(map: HeaderMap | undefined, legacy: boolean): string | undefined {
  if (map === undefined) return undefined;
  for (const header of Object.keys(map)) {
    if (!validHeaderName(header)) return "invalid field character in header";
    const v = map[header]!;
    for (const value of Array.isArray(v) ? v : [v]) {
      if (typeof value !== "string" && typeof value !== "number") return "invalid type as header value";
      if (typeof value === "string" && !validHeaderValue(value, legacy)) return "invalid value character in header";
    }
  }
  return undefined;
}

function checkNames(names: string[] | undefined): string | undefined {
  if (names === undefined) return undefined;
  for (const header of names) if (!validHeaderName(header)) return "invalid field character in header";
  return undefined;
}

/** core.utils.validate_header_field: visible ASCII except ':'. */
function validHeaderName(header: string): boolean {
  if (header.length === 0) return false;
  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 58) return false;
  }
  return true;
}

/**
 * The flat form gets core.utils.validate_header_value (no controls, no non-ASCII). APISIX checks nothing
 * for add/set; Weir still refuses control characters there, which could never be sent upstream anyway.
 */
function validHeaderValue(value: string, legacy: boolean): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (legacy ? c < 32 || c >= 127 : (c < 32 && c !== 9) || c === 127) return false;
  }
  return true;
}

export const proxyRewrite: Plugin<ProxyRewriteConfig, State> = { name, priority, schema, check, compile, rewrite };
