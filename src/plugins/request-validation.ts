import { type Static, Type } from "@sinclair/typebox";
import { Ajv, type ValidateFunction } from "ajv";
import { explain } from "../config/validate.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * request-validation: checks request headers and/or the body against JSON Schemas, compiled once per
 * config. The body is read only when body_schema is set; JSON and application/x-www-form-urlencoded
 * bodies are understood. A JSON body that passes is re-serialized and that exact text goes upstream,
 * so the upstream parses what was validated (duplicate keys, comments and other parser quirks gone).
 */
export const name = "request-validation";
export const priority = 2800;

export const schema = Type.Object(
  {
    header_schema: Type.Optional(Type.Object({})),
    body_schema: Type.Optional(Type.Object({})),
    max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: 67108864 })),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 400 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { anyOf: [{ required: ["header_schema"] }, { required: ["body_schema"] }] },
);
export type RequestValidationConfig = Static<typeof schema>;

/**
 * User schemas get an Ajv of their own: Ajv keeps every compiled schema until it is removed, so each
 * instance's schemas are removed again in destroy() instead of piling up across config changes. Options
 * match the config validator's (defaults filled in, as APISIX's jsonschema does).
 */
const ajv = new Ajv({
  allErrors: false,
  useDefaults: true,
  strict: false,
  coerceTypes: false,
  verbose: true,
  logger: false,
});

interface Validator {
  schema: object;
  validate: ValidateFunction;
}

interface State {
  headers: Validator | undefined;
  /** Mixed-case property names of header_schema, looked up case-insensitively as ngx.req.get_headers() allows. */
  headerAliases: readonly [alias: string, lower: string][];
  body: Validator | undefined;
  maxBodySize: number;
  rejectedCode: number;
  rejectedMsg: string | undefined;
}

function check(conf: RequestValidationConfig): string | undefined {
  for (const field of ["body_schema", "header_schema"] as const) {
    const s = conf[field];
    if (s === undefined) continue;
    try {
      ajv.removeSchema(ajv.compile(s).schema as object);
    } catch (err) {
      return `${field}: ${(err as Error).message}`;
    }
  }
  return undefined;
}

function compile(conf: RequestValidationConfig): State {
  const headers = conf.header_schema === undefined ? undefined : validator(conf.header_schema);
  return {
    headers,
    headerAliases: headers === undefined ? [] : aliasesOf(conf.header_schema as Record<string, unknown>),
    body: conf.body_schema === undefined ? undefined : validator(conf.body_schema),
    maxBodySize: conf.max_req_body_size ?? 67108864,
    rejectedCode: conf.rejected_code ?? 400,
    rejectedMsg: conf.rejected_msg,
  };
}

function destroy(state: State): void {
  if (state.headers !== undefined) ajv.removeSchema(state.headers.schema);
  if (state.body !== undefined) ajv.removeSchema(state.body.schema);
}

function validator(schema: object): Validator {
  return { schema, validate: ajv.compile(schema) };
}

function aliasesOf(headerSchema: Record<string, unknown>): [string, string][] {
  const names = new Set<string>();
  const props = headerSchema.properties;
  if (props !== null && typeof props === "object") for (const k of Object.keys(props)) names.add(k);
  if (Array.isArray(headerSchema.required)) for (const k of headerSchema.required) names.add(String(k));
  const out: [string, string][] = [];
  for (const n of names) if (n !== n.toLowerCase()) out.push([n, n.toLowerCase()]);
  return out;
}

function rewrite(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  if (state.headers !== undefined) {
    const headers: Record<string, unknown> = { ...ctx.req.headers };
    for (const [alias, lower] of state.headerAliases) {
      if (headers[lower] !== undefined) headers[alias] = headers[lower];
    }
    const err = failure(state.headers.validate, headers);
    if (err !== undefined) return reject(state, err);
  }
  if (state.body === undefined) return undefined;
  return checkBody(state, state.body.validate, ctx);
}

async function checkBody(state: State, validate: ValidateFunction, ctx: PluginContext): Promise<Reply | undefined> {
  const declared = Number(ctx.req.headers["content-length"] ?? 0);
  if (declared > state.maxBodySize) return reject(state, undefined);
  // Node keeps only the first of repeated Content-Type headers; the upstream might pick another one and
  // parse the body differently from what was validated.
  if (contentTypeCount(ctx) > 1) return reject(state, undefined);
  const raw = await ctx.readBody();
  if (raw.length === 0 || raw.length > state.maxBodySize) return reject(state, undefined);

  const type = ctx.req.headers["content-type"];
  const form = type?.toLowerCase().startsWith("application/x-www-form-urlencoded") === true;
  let body: unknown;
  if (form) {
    body = decodeForm(raw.toString("utf8"));
  } else {
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      return reject(state, `failed to decode the req body: ${(err as Error).message}`);
    }
  }
  const err = failure(validate, body);
  if (err !== undefined) return reject(state, err);
  if (!form) ctx.setBody(JSON.stringify(body));
  return undefined;
}

function failure(validate: ValidateFunction, value: unknown): string | undefined {
  if (validate(value)) return undefined;
  const errors = validate.errors ?? [];
  return errors.length === 0 ? "invalid value" : explain(errors[errors.length - 1]!, errors);
}

/** rejected_msg wins; otherwise the validation error; otherwise the bare status. */
function reject(state: State, err: string | undefined): Reply {
  const body = state.rejectedMsg ?? err;
  return body === undefined ? { status: state.rejectedCode } : { status: state.rejectedCode, body };
}

function contentTypeCount(ctx: PluginContext): number {
  const raw = ctx.req.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 12 && raw[i]!.toLowerCase() === "content-type") n++;
  return n;
}

/**
 * ngx.decode_args: `+` is a space, %XX decoded, a key without `=` is `true`, a repeated key becomes an
 * array of its values. Values stay strings, so a schema asks for `"type": "string"` as in APISIX.
 */
export function decodeForm(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (text === "") return out;
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeFormPart(eq === -1 ? pair : pair.slice(0, eq));
    if (key === "") continue;
    const value: string | boolean = eq === -1 ? true : decodeFormPart(pair.slice(eq + 1));
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

function decodeFormPart(s: string): string {
  const spaced = s.includes("+") ? s.replaceAll("+", " ") : s;
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced; // nginx leaves invalid escapes as they are
  }
}

export const requestValidation: Plugin<RequestValidationConfig, State> = {
  name,
  priority,
  schema,
  check,
  compile,
  destroy,
  rewrite,
};
