import { isIPv4, isIPv6 } from "node:net";
import type { TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { isSchemaResourceType, RESOURCE_SCHEMAS, type SchemaResourceType } from "./schemas/index.js";
import { PLUGIN_INJECTED_COMMENT, PluginMetaSchema } from "./schemas/others.js";
import { checkUpstreamConf, precheckRoute, precheckService, precheckUpstream, refuseLua } from "./schemas/rules.js";

/**
 * JSON Schema validation for every resource and plugin config. Validators are compiled once per schema object
 * and cached; Ajv fills schema `default`s into the value, as APISIX (up to 3.13) stores them. Messages follow
 * the wording of APISIX's validator (api7/jsonschema) and always name the property: where APISIX nests
 * (`property "a" validation failed: property "b" validation failed: ...`) Weir names the whole path once
 * (`property "a.b" validation failed: ...`), the form the plugins' own checks use too.
 */
const ajv = new Ajv({
  allErrors: false,
  useDefaults: true,
  strict: false,
  coerceTypes: false,
  // `data` and `schema` on each error let messages quote the offending value and pick an anyOf branch.
  verbose: true,
  logger: false,
});
ajv.addFormat("ipv4", (s: string) => isIPv4(s));
ajv.addFormat("ipv6", (s: string) => isIPv6(s));

const cache = new WeakMap<object, ValidateFunction>();

export type Validation<T = unknown> = { ok: true; value: T } | { ok: false; message: string };

export function compiled(schema: TSchema | object): ValidateFunction {
  let fn = cache.get(schema);
  if (fn === undefined) {
    fn = ajv.compile(schema);
    cache.set(schema, fn);
  }
  return fn;
}

const COMPOSITES = ["allOf", "anyOf", "oneOf", "not"] as const;
const split = new WeakMap<object, { fields: object; composites: object | undefined }>();

/**
 * APISIX's validator checks an object's own properties before its allOf/anyOf/oneOf/not; Ajv checks those
 * first. The top-level composites are therefore validated in a second pass, so a wrong property is reported
 * as such and not as "object matches none of the required".
 */
function passes(schema: TSchema | object): { fields: object; composites: object | undefined } {
  let out = split.get(schema);
  if (out === undefined) {
    const s = schema as Record<string, unknown>;
    const present = COMPOSITES.filter((k) => s[k] !== undefined);
    if (present.length === 0 || s.properties === undefined) {
      out = { fields: schema, composites: undefined };
    } else {
      const fields = { ...s };
      const composites: Record<string, unknown> = {};
      for (const k of present) {
        composites[k] = s[k];
        delete fields[k];
      }
      out = { fields, composites };
    }
    split.set(schema, out);
  }
  return out;
}

/** Validates (and fills defaults into) `value`; the message is `property "a.b" validation failed: ...`. */
export function validateSchema(schema: TSchema | object, value: unknown): string | undefined {
  const { fields, composites } = passes(schema);
  for (const part of composites === undefined ? [fields] : [fields, composites]) {
    const fn = compiled(part);
    if (fn(value)) continue;
    const errors = fn.errors ?? [];
    return errors.length === 0 ? "invalid value" : explain(errors[errors.length - 1]!, errors);
  }
  return undefined;
}

/** validateSchema as a result value. */
export function checkSchema<T = unknown>(schema: TSchema | object, value: unknown): Validation<T> {
  const message = validateSchema(schema, value);
  return message === undefined ? { ok: true, value: value as T } : { ok: false, message };
}

// ---- error messages ---------------------------------------------------------------------------------------

export function explain(e: ErrorObject, all: readonly ErrorObject[]): string {
  const path = pathOf(e.instancePath);
  const data = e.data;
  let detail: string;
  switch (e.keyword) {
    case "anyOf":
    case "oneOf": {
      const inner = innerOfBranch(e, all);
      if (inner !== undefined) return explain(inner.error, inner.errors);
      detail = composite(e);
      break;
    }
    case "if": {
      const clause = String(e.params.failingKeyword);
      const prefix = `${e.schemaPath.slice(0, -"if".length)}${clause}/`;
      const inner = all.filter((x) => x.schemaPath.startsWith(prefix));
      if (inner.length > 0) return explain(inner[inner.length - 1]!, inner);
      detail = `${clause} clause did not match`;
      break;
    }
    case "required":
      return `${allOfPrefix(e)}property "${join(path, String(e.params.missingProperty))}" is required`;
    case "dependencies":
      return `property "${join(path, String(e.params.missingProperty))}" is required when "${join(path, String(e.params.property))}" is set`;
    case "type":
      detail = `wrong type: expected ${typeList(String(e.params.type))}, got ${jsonType(data)}`;
      break;
    case "additionalProperties":
      detail = `additional properties forbidden, found ${String(e.params.additionalProperty)}`;
      break;
    case "enum":
      detail = "matches none of the enum values";
      break;
    case "const":
      detail = "failed to check const value";
      break;
    case "minimum":
      detail = `expected ${String(data)} to be at least ${String(e.params.limit)}`;
      break;
    case "exclusiveMinimum":
      detail = `expected ${String(data)} to be greater than ${String(e.params.limit)}`;
      break;
    case "maximum":
      detail = `expected ${String(data)} to be at most ${String(e.params.limit)}`;
      break;
    case "exclusiveMaximum":
      detail = `expected ${String(data)} to be smaller than ${String(e.params.limit)}`;
      break;
    case "multipleOf":
      detail = `expected ${String(data)} to be a multiple of ${String(e.params.multipleOf)}`;
      break;
    case "minLength":
      detail = `string too short, expected at least ${String(e.params.limit)}, got ${[...String(data)].length}`;
      break;
    case "maxLength":
      detail = `string too long, expected at most ${String(e.params.limit)}, got ${[...String(data)].length}`;
      break;
    case "pattern":
      detail = `failed to match pattern "${String(e.params.pattern)}" with ${JSON.stringify(data)}`;
      break;
    case "format":
      detail = `expect valid ${String(e.params.format)} format but got: ${String(data)}`;
      break;
    case "minItems":
      detail = `expect array to have at least ${String(e.params.limit)} items`;
      break;
    case "maxItems":
      detail = `expect array to have at most ${String(e.params.limit)} items`;
      break;
    case "uniqueItems":
      detail = `expected unique items but items ${Number(e.params.j) + 1} and ${Number(e.params.i) + 1} are equal`;
      break;
    case "minProperties":
      detail = `expect object to have at least ${String(e.params.limit)} properties`;
      break;
    case "maxProperties":
      detail = `expect object to have at most ${String(e.params.limit)} properties`;
      break;
    case "not":
      detail = "value wasn't supposed to match schema";
      break;
    default:
      detail = e.message ?? e.keyword;
  }
  detail = allOfPrefix(e) + detail;
  return path === "" ? detail : `property "${path}" validation failed: ${detail}`;
}

type Branch = { required?: unknown; type?: unknown; enum?: unknown[]; const?: unknown };

/**
 * For an anyOf/oneOf of differently typed alternatives (an id is a string or an integer; error_response a
 * string or an object) the branch whose type fits the value is the one the user meant, so its error is the
 * useful one. APISIX reports only "object matches none of the required" there.
 */
function innerOfBranch(
  e: ErrorObject,
  all: readonly ErrorObject[],
): { error: ErrorObject; errors: ErrorObject[] } | undefined {
  if (e.params.passingSchemas != null) return undefined;
  const branches = (Array.isArray(e.schema) ? e.schema : []) as Branch[];
  const fitting = branches.flatMap((b, i) => (typeFits(b, e.data) ? [i] : []));
  if (fitting.length !== 1) return undefined;
  const prefix = `${e.schemaPath}/${fitting[0]}/`;
  const errors = all.filter((x) => x.schemaPath.startsWith(prefix));
  if (errors.length === 0) return undefined;
  return { error: errors[errors.length - 1]!, errors };
}

function composite(e: ErrorObject): string {
  const passing = e.params.passingSchemas as number[] | null | undefined;
  if (e.keyword === "oneOf" && Array.isArray(passing)) {
    return `value should match only one schema, but matches both schemas ${passing[0]! + 1} and ${passing[1]! + 1}`;
  }
  if (e.keyword === "oneOf") return "value should match only one schema, but matches none";
  const branches = (Array.isArray(e.schema) ? e.schema : []) as Branch[];
  const requires = branches.filter((b) => Array.isArray(b.required)).map((b) => JSON.stringify(b.required));
  return requires.length > 0
    ? `object matches none of the required: ${requires.join(" or ")}`
    : "object matches none of the required";
}

function typeFits(branch: Branch, data: unknown): boolean {
  let types: unknown[];
  if (branch.type !== undefined) types = Array.isArray(branch.type) ? branch.type : [branch.type];
  else if (branch.const !== undefined) types = [jsonType(branch.const)];
  else if (Array.isArray(branch.enum)) types = branch.enum.map(jsonType);
  else return false;
  const actual = jsonType(data);
  return types.some(
    (t) => t === actual || ((t === "integer" || t === "number") && (actual === "integer" || actual === "number")),
  );
}

/** APISIX prefixes `allOf N failed: ` for failures inside the Nth allOf of the object being checked. */
function allOfPrefix(e: ErrorObject): string {
  const segments = e.schemaPath.split("/");
  let out = "";
  for (let i = segments.length - 2; i >= 1; i--) {
    const s = segments[i]!;
    if (s === "properties" || s === "items" || s === "patternProperties" || s === "additionalProperties") break;
    if (s === "allOf") out = `allOf ${Number(segments[i + 1]) + 1} failed: ${out}`;
  }
  return out;
}

/** `/upstream/nodes/0/port` → `upstream.nodes[0].port`. */
function pathOf(instancePath: string): string {
  if (instancePath === "") return "";
  return instancePath
    .slice(1)
    .split("/")
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join("");
}

const join = (path: string, field: string) => (path === "" ? field : `${path}.${field}`);

function typeList(type: string): string {
  const types = type.split(",");
  return types.length === 1 ? type : `one of ${types.join(", ")}`;
}

/** JSON's names for types; APISIX says "number" for every number, as Lua does. */
function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

// ---- resources ----------------------------------------------------------------------------------------------

export type { SchemaResourceType } from "./schemas/index.js";

const PRECHECKS: Partial<Record<SchemaResourceType, (conf: Record<string, unknown>) => string | undefined>> = {
  routes: precheckRoute,
  services: precheckService,
  upstreams: (conf) => precheckUpstream(conf, ""),
};

/**
 * Everything about one resource's body that needs neither the store nor the plugins: APISIX's pre-schema
 * checks, the schema (filling defaults into `body`, which is returned), and the upstream rules. References,
 * plugin configs and `vars` are the Admin API's part.
 */
export function validateResource(
  type: SchemaResourceType | string,
  body: unknown,
): Validation<Record<string, unknown>> {
  if (!isSchemaResourceType(type)) return { ok: false, message: `unknown resource type: ${type}` };
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { ok: false, message: `invalid configuration: wrong type: expected object, got ${jsonType(body)}` };
  }
  const conf = body as Record<string, unknown>;
  const fail = (message: string): Validation<Record<string, unknown>> => ({ ok: false, message });

  const pre = PRECHECKS[type]?.(conf);
  if (pre !== undefined) return fail(pre);
  const schemaErr = validateSchema(RESOURCE_SCHEMAS[type], conf);
  if (schemaErr !== undefined) return fail(`invalid configuration: ${schemaErr}`);

  if (type === "upstreams") {
    const err = checkUpstreamConf(conf, "");
    if (err !== undefined) return fail(err);
  } else if (type === "routes" || type === "services") {
    const up = conf.upstream as Record<string, unknown> | undefined;
    const err = (up === undefined ? undefined : checkUpstreamConf(up, "upstream")) ?? refuseLua(conf);
    if (err !== undefined) return fail(err);
  }
  return { ok: true, value: conf };
}

// ---- plugins ------------------------------------------------------------------------------------------------

export type PluginSchemaKind = "route" | "consumer" | "metadata";

/**
 * What validating a plugin's config reads from the plugin: its name and schemas. plugin-api's Plugin has
 * these fields, so every plugin is one; spelling them here keeps config/ a leaf that knows no plugin type.
 */
export interface PluginSchemas {
  name: string;
  schema: TSchema;
  consumerSchema?: TSchema;
  metadataSchema?: TSchema;
  /** Runs after the schema passed, so each plugin takes its own config type (hence `any`, as in Plugin). */
  check?(conf: any): string | undefined;
}

export interface PluginCheckOptions {
  /** Checks `_meta.filter` (a vars expression); the router provides it. */
  validateVars?: (expr: unknown) => string | undefined;
}

/** APISIX injects an empty object schema for plugins that declare no metadata schema. */
const ANY_METADATA = { type: "object", properties: {} };

function schemaFor(plugin: PluginSchemas, kind: PluginSchemaKind): TSchema | object {
  if (kind === "consumer") return plugin.consumerSchema ?? plugin.schema;
  if (kind === "metadata") return plugin.metadataSchema ?? ANY_METADATA;
  return plugin.schema;
}

/**
 * Validates one plugin's config in place (filling defaults) and runs the plugin's own check(). `_meta` (APISIX's
 * plugin_injected_schema) is checked on its own, so plugin schemas with `additionalProperties: false` accept
 * it. The message is APISIX's: `failed to check the configuration of plugin <name> err: ...`.
 */
export function checkPluginConfig(
  plugin: PluginSchemas,
  conf: unknown,
  kind: PluginSchemaKind,
  options: PluginCheckOptions = {},
): Validation<Record<string, unknown>> {
  const failed = (err: string) => ({
    ok: false as const,
    message: `failed to check the configuration of plugin ${plugin.name} err: ${err}`,
  });
  if (conf === null || typeof conf !== "object" || Array.isArray(conf)) {
    return failed(`wrong type: expected object, got ${jsonType(conf)}`);
  }
  const record = conf as Record<string, unknown>;
  const meta = record._meta;
  if (meta !== undefined && kind !== "metadata") {
    const metaErr = validateSchema(PluginMetaSchema, meta);
    if (metaErr !== undefined) return failed(prefixPath(metaErr, "_meta"));
    const m = meta as { filter?: unknown; pre_function?: unknown };
    if (m.pre_function !== undefined) {
      return failed('property "_meta.pre_function" is not supported: Weir does not run Lua');
    }
    if (m.filter !== undefined && options.validateVars !== undefined) {
      const err = options.validateVars(m.filter);
      if (err !== undefined) return { ok: false, message: `failed to validate the 'vars' expression: ${err}` };
    }
    delete record._meta;
  }
  try {
    const schema = schemaFor(plugin, kind);
    const err =
      validateSchema(schema, record) ?? (schema === plugin.schema && plugin.check ? plugin.check(record) : undefined);
    if (err !== undefined) return failed(err);
  } finally {
    if (meta !== undefined && kind !== "metadata") record._meta = meta;
  }
  return { ok: true, value: record };
}

/** checkPluginConfig's message, or undefined when the config is valid (the form the proxy layer uses). */
export function validatePluginConfig(
  plugin: PluginSchemas,
  conf: unknown,
  kind: PluginSchemaKind,
  options: PluginCheckOptions = {},
): string | undefined {
  const result = checkPluginConfig(plugin, conf, kind, options);
  return result.ok ? undefined : result.message;
}

function prefixPath(message: string, base: string): string {
  const m = /^property "([^"]*)"/.exec(message);
  if (m !== null) return `property "${base}.${m[1]}"${message.slice(m[0].length)}`;
  return `property "${base}" validation failed: ${message}`;
}

export interface PluginsCheckOptions extends PluginCheckOptions {
  /** Names of enabled plugins; others are "unknown" as in APISIX. Defaults to every plugin in the registry. */
  enabled?: readonly string[];
}

/** Validates a `plugins` map: every name must be an enabled plugin and every config valid. */
export function validatePlugins(
  plugins: unknown,
  registry: ReadonlyMap<string, PluginSchemas>,
  kind: PluginSchemaKind = "route",
  options: PluginsCheckOptions = {},
): string | undefined {
  if (plugins === undefined) return undefined;
  if (plugins === null || typeof plugins !== "object" || Array.isArray(plugins)) {
    return `property "plugins" validation failed: wrong type: expected object, got ${jsonType(plugins)}`;
  }
  for (const [name, conf] of Object.entries(plugins as Record<string, unknown>)) {
    if (conf === null || typeof conf !== "object" || Array.isArray(conf)) {
      return `invalid plugin conf ${JSON.stringify(conf)} for plugin [${name}]`;
    }
    const plugin = registry.get(name);
    if (plugin === undefined || (options.enabled !== undefined && !options.enabled.includes(name))) {
      return `unknown plugin [${name}]`;
    }
    const err = validatePluginConfig(plugin, conf, kind, options);
    if (err !== undefined) return err;
  }
  return undefined;
}

const injectedCache = new WeakMap<object, object>();

/** A plugin's schema as APISIX serves it: `_meta` injected into its properties, marked with `$comment`. */
export function injectedPluginSchema(schema: TSchema | object): object {
  let out = injectedCache.get(schema);
  if (out === undefined) {
    const s = schema as { properties?: Record<string, unknown> };
    out = { ...s, $comment: PLUGIN_INJECTED_COMMENT, properties: { ...(s.properties ?? {}), _meta: PluginMetaSchema } };
    injectedCache.set(schema, out);
  }
  return out;
}
