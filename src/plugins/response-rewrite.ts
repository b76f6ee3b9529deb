import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { compileRegex, compileVars, type VarsPredicate } from "../router/vars.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";
import type { VarSource } from "../vars/var-source.js";
import { compileReplacement } from "./proxy-rewrite.js";

/**
 * response-rewrite: changes the status, headers and body of responses (upstream answers and plugin
 * replies alike), optionally only those matching `vars` (evaluated on the response: `status`,
 * `upstream_http_*`). `body` replaces the body; `filters` run regex substitutions over it, which means
 * holding the whole body, so only matching responses are buffered (up to max_resp_body_size) and every
 * other one streams through untouched. A rewritten body is sent without Content-Length (chunked), as
 * APISIX clears it; ETag, Last-Modified and Content-Encoding go too.
 */
export const name = "response-rewrite";
export const priority = 899;

const HEADER_VALUE = { oneOf: [{ type: "string" }, { type: "number" }] };
const FLAT_HEADERS = { type: "object", minProperties: 1, patternProperties: { "^[^:]+$": HEADER_VALUE } };

export interface ResponseRewriteConfig {
  max_resp_body_size?: number;
  headers?: Record<string, unknown>;
  body?: string;
  body_base64?: boolean;
  status_code?: number;
  vars?: unknown[];
  filters?: { regex: string; scope?: "once" | "global"; replace: string; options?: string }[];
}

/** APISIX's schema, keyword for keyword (the two header forms; filters' defaults). */
export const schema = Type.Unsafe<ResponseRewriteConfig>({
  type: "object",
  properties: {
    max_resp_body_size: { type: "integer", minimum: 1, default: 67108864 },
    headers: {
      anyOf: [
        FLAT_HEADERS,
        {
          properties: {
            add: { type: "array", minItems: 1, items: { type: "string", pattern: "^[^:]+:[^:]*[^/]$" } },
            set: FLAT_HEADERS,
            remove: { type: "array", minItems: 1, items: { type: "string", pattern: "^[^:]+$" } },
          },
        },
      ],
    },
    body: { type: "string" },
    body_base64: { type: "boolean", default: false },
    status_code: { type: "integer", minimum: 200, maximum: 598 },
    vars: { type: "array" },
    filters: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["regex", "replace"],
        properties: {
          regex: { type: "string", minLength: 1 },
          scope: { type: "string", enum: ["once", "global"], default: "once" },
          replace: { type: "string" },
          options: { type: "string", default: "jo" },
        },
      },
    },
  },
  // APISIX's `dependencies` (body and filters exclude each other) is checked in check(), where the message
  // can name the fields; a schema-level `not` failure would name neither.
});

interface Filter {
  regex: RegExp;
  replacement: readonly (string | number)[];
  global: boolean;
}

interface HeaderOp {
  name: string;
  value: VarTemplate;
}

interface State {
  /** pluginData key of this instance (a global rule and a route may both rewrite one response). */
  key: string;
  vars: VarsPredicate | undefined;
  status: number | undefined;
  body: Buffer | undefined;
  filters: Filter[] | undefined;
  maxBody: number;
  add: HeaderOp[];
  set: HeaderOp[];
  remove: string[];
}

/** What body_filter does for one response, decided in header_filter. */
interface BodyJob {
  /** Chunks held for filters, and their total size. */
  chunks: Buffer[];
  size: number;
  /** Content-Encoding to undo before filtering. */
  encoding: string | undefined;
  /** The replacement body went out, or the held body hit max_resp_body_size: drop the rest. */
  done: boolean;
}

const EMPTY = Buffer.alloc(0);
const DECODERS: Record<string, (b: Buffer, limit: number) => Buffer> = {
  gzip: (b, limit) => gunzipSync(b, { maxOutputLength: limit }),
  br: (b, limit) => brotliDecompressSync(b, { maxOutputLength: limit }),
  deflate: (b, limit) => inflateSync(b, { maxOutputLength: limit }),
};

let instances = 0;

function check(conf: ResponseRewriteConfig): string | undefined {
  if (conf.body !== undefined && conf.filters !== undefined) {
    return 'property "filters" validation failed: cannot be configured together with "body"';
  }
  const headers = conf.headers;
  if (headers !== undefined && !isStructured(headers)) {
    for (const [field, value] of Object.entries(headers)) {
      if (field.length === 0) return "invalid field length in header";
      if (typeof value !== "string" && typeof value !== "number") return "invalid type as header value";
    }
  }
  if (conf.body_base64 === true && (conf.body === undefined || !isBase64(conf.body))) return "invalid base64 content";
  if (conf.vars !== undefined) {
    try {
      compileVars(conf.vars);
    } catch (err) {
      return `failed to validate the 'vars' expression: ${(err as Error).message}`;
    }
  }
  for (const [i, f] of (conf.filters ?? []).entries()) {
    try {
      compileFilter(f, i);
    } catch (err) {
      return `regex "${f.regex}" validation failed: ${(err as Error).message}`;
    }
  }
  return undefined;
}

function compile(conf: ResponseRewriteConfig): State {
  const headers = conf.headers;
  const structured = headers !== undefined && isStructured(headers);
  const add: HeaderOp[] = [];
  if (structured) {
    for (const line of (headers.add as string[] | undefined) ?? []) {
      const m = /^([^:\s]+)\s*:\s*([^:]+)$/.exec(line);
      if (m !== null) add.push({ name: m[1]!, value: compileVarTemplate(m[2]!) });
    }
  }
  const setMap = (structured ? headers.set : headers) as Record<string, string | number> | undefined;
  return {
    key: `${name}#${++instances}`,
    vars: conf.vars === undefined ? undefined : compileVars(conf.vars),
    status: conf.status_code,
    body: conf.body === undefined ? undefined : Buffer.from(conf.body, conf.body_base64 === true ? "base64" : "utf8"),
    filters: conf.filters?.map((f, i) => compileFilter(f, i)),
    maxBody: conf.max_resp_body_size ?? 67108864,
    add,
    set: Object.entries(setMap ?? {}).map(([n, v]) => ({ name: n, value: compileVarTemplate(String(v)) })),
    remove: structured ? ((headers.remove as string[] | undefined) ?? []) : [],
  };
}

function header_filter(state: State, ctx: PluginContext): void {
  if (state.vars !== undefined && !state.vars(responseVars.of(ctx))) return;
  if (state.status !== undefined) ctx.status = state.status;

  if (state.body !== undefined || state.filters !== undefined) {
    const encoding = ctx.getResponseHeader("content-encoding")?.trim().toLowerCase();
    const decodable = encoding === undefined || encoding === "" || encoding === "identity" || encoding in DECODERS;
    // Filters cannot see into a body they cannot decode: such a response is left alone entirely.
    if (state.body !== undefined || decodable) {
      const job: BodyJob = { chunks: [], size: 0, encoding: decodable ? decoderOf(encoding) : undefined, done: false };
      ctx.pluginData.set(state.key, job);
      ctx.removeResponseHeader("Content-Length");
      ctx.removeResponseHeader("Content-Encoding");
      ctx.removeResponseHeader("Last-Modified");
      ctx.removeResponseHeader("ETag");
    }
  }

  for (const op of state.add) ctx.addResponseHeader(op.name, op.value.render(ctx));
  for (const op of state.set) ctx.setResponseHeader(op.name, op.value.render(ctx));
  for (const header of state.remove) ctx.removeResponseHeader(header);
}

function body_filter(state: State, ctx: PluginContext, chunk: Buffer, eof: boolean): Buffer {
  const job = ctx.pluginData.get(state.key) as BodyJob | undefined;
  if (job === undefined) return chunk;
  if (job.done) return EMPTY;
  if (state.body !== undefined) {
    job.done = true;
    return state.body;
  }
  if (chunk.length > 0) {
    job.chunks.push(chunk);
    job.size += chunk.length;
  }
  // APISIX truncates a body that outgrows the buffer and filters what it kept.
  const full = job.size >= state.maxBody;
  if (!eof && !full) return EMPTY;
  job.done = true;
  let body: Buffer = Buffer.concat(job.chunks, job.size);
  job.chunks = [];
  if (full) body = body.subarray(0, state.maxBody);
  if (job.encoding !== undefined) {
    try {
      body = DECODERS[job.encoding]!(body, state.maxBody);
    } catch {
      return body; // undecodable: passed on as it came
    }
  }
  return Buffer.from(applyFilters(state.filters!, body.toString("utf8")));
}

// ---- filters ----------------------------------------------------------------------------------------------

/** ngx.re options that have a JS counterpart; j, o, J, D (and the rest of the PCRE-only ones) change nothing here. */
const OPTION_FLAGS: Record<string, string> = { i: "i", m: "m", s: "s", u: "u", U: "u" };

function compileFilter(f: { regex: string; scope?: string; replace: string; options?: string }, i: number): Filter {
  let flags = "";
  for (const o of f.options ?? "jo") {
    if (o === "x") throw new Error(`filters[${i}].options: "x" (extended) is not supported`);
    const flag = OPTION_FLAGS[o];
    if (flag !== undefined && !flags.includes(flag)) flags += flag;
  }
  const base = compileRegex(f.regex, false, `filters[${i}].regex`);
  const replacement = compileReplacement(f.replace);
  if (typeof replacement === "string") throw new Error(`filters[${i}].replace: ${replacement}`);
  const global = f.scope === "global";
  const regex = new RegExp(base.source, base.flags + flags + (global ? "g" : ""));
  return { regex, replacement, global };
}

export function applyFilters(filters: readonly Filter[], body: string): string {
  for (const f of filters) body = substitute(f, body);
  return body;
}

/** ngx.re.sub / gsub: `$N` captures in the replacement; an empty match advances one character. */
function substitute(f: Filter, text: string): string {
  const re = f.regex;
  re.lastIndex = 0;
  let out = "";
  let last = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    out += text.slice(last, m.index);
    for (const part of f.replacement) out += typeof part === "string" ? part : (m[part] ?? "");
    last = m.index + m[0].length;
    if (!f.global) break;
    if (m[0].length === 0) {
      if (re.lastIndex >= text.length) break;
      re.lastIndex++;
    }
  }
  return last === 0 && out === "" ? text : out + text.slice(last);
}

// ---- helpers ----------------------------------------------------------------------------------------------

/**
 * The variables a response condition reads: `status` as the client will get it, `upstream_http_*` and
 * `sent_http_*` from the response headers, the request's variables otherwise. One shared view is safe
 * because header_filter is synchronous.
 */
const responseVars = new (class implements VarSource {
  private ctx: PluginContext | undefined;

  of(ctx: PluginContext): VarSource {
    this.ctx = ctx;
    return this;
  }

  var(v: string): string | undefined {
    const ctx = this.ctx!;
    if (v === "status") return ctx.status === 0 ? undefined : String(ctx.status);
    if (v.startsWith("upstream_http_")) return ctx.getResponseHeader(v.slice(14).replaceAll("_", "-"));
    if (v.startsWith("sent_http_")) return ctx.getResponseHeader(v.slice(10).replaceAll("_", "-"));
    return ctx.var(v);
  }
})();

function decoderOf(encoding: string | undefined): string | undefined {
  return encoding === undefined || encoding === "" || encoding === "identity" ? undefined : encoding;
}

function isStructured(headers: Record<string, unknown>): boolean {
  return typeof headers.add === "object" || typeof headers.set === "object" || typeof headers.remove === "object";
}

function isBase64(s: string): boolean {
  return s.length > 0 && /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/.test(s);
}

export const responseRewrite: Plugin<ResponseRewriteConfig, State> = {
  name,
  priority,
  schema,
  check,
  compile,
  header_filter,
  body_filter,
};
