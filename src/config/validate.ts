import type { TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { Plugin } from "../plugins/types.js";

/**
 * JSON Schema validation for every resource and plugin config. Validators are compiled once per schema
 * object and cached; Ajv fills schema `default`s into the value, as APISIX stores them. Messages follow
 * APISIX's wording and always name the property.
 */
const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: false, coerceTypes: false });
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

/** Validates (and fills defaults into) `value`; the message is `property "a.b" validation failed: ...`. */
export function validateSchema(schema: TSchema | object, value: unknown): string | undefined {
  const fn = compiled(schema);
  if (fn(value)) return undefined;
  return describeErrors(fn.errors ?? [], value);
}

function describeErrors(errors: ErrorObject[], root: unknown): string {
  // For anyOf/oneOf Ajv reports every branch; the deepest path is the one a user can act on.
  let best = errors[0]!;
  for (const e of errors) {
    if (e.keyword === "anyOf" || e.keyword === "oneOf") continue;
    if (best.keyword === "anyOf" || best.keyword === "oneOf" || e.instancePath.length > best.instancePath.length) {
      best = e;
    }
  }
  const path = pathOf(best.instancePath);
  const data = valueAt(root, best.instancePath);
  let detail: string;
  switch (best.keyword) {
    case "type":
      detail = `wrong type: expected ${String(best.params.type)}, got ${jsonType(data)}`;
      break;
    case "required": {
      const missing = String(best.params.missingProperty);
      return path === "" ? `property "${missing}" is required` : `property "${path}.${missing}" is required`;
    }
    case "additionalProperties":
      detail = `additional properties forbidden, found ${String(best.params.additionalProperty)}`;
      break;
    case "enum":
    case "const":
      detail = "matches none of the enum values";
      break;
    case "minimum":
    case "exclusiveMinimum":
    case "maximum":
    case "exclusiveMaximum":
      detail = `expected ${JSON.stringify(data)} to be ${best.message ?? "in range"}`;
      break;
    case "minLength":
      detail = `string too short, expected at least ${String(best.params.limit)}, got ${String((data as string).length)}`;
      break;
    case "maxLength":
      detail = `string too long, expected at most ${String(best.params.limit)}, got ${String((data as string).length)}`;
      break;
    case "pattern":
      detail = `failed to match pattern "${String(best.params.pattern)}" with ${JSON.stringify(data)}`;
      break;
    case "minItems":
      detail = `expect array to have at least ${String(best.params.limit)} items`;
      break;
    case "uniqueItems":
      detail = "expected unique items but items are duplicated";
      break;
    default:
      detail = best.message ?? best.keyword;
  }
  return path === "" ? detail : `property "${path}" validation failed: ${detail}`;
}

function pathOf(instancePath: string): string {
  if (instancePath === "") return "";
  return instancePath
    .slice(1)
    .split("/")
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join("");
}

function valueAt(root: unknown, instancePath: string): unknown {
  if (instancePath === "") return root;
  let cur: unknown = root;
  for (const raw of instancePath.slice(1).split("/")) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

/** APISIX's plugin_injected_schema: `_meta` is allowed in every plugin config. */
const META_SCHEMA = {
  type: "object",
  properties: {
    disable: { type: "boolean" },
    priority: { type: "integer" },
    filter: { type: "array" },
    error_response: { anyOf: [{ type: "string" }, { type: "object" }] },
  },
  additionalProperties: false,
};

export type PluginSchemaKind = "route" | "consumer" | "metadata";

/**
 * Validates one plugin's config. `_meta` is checked separately so plugin schemas with
 * `additionalProperties: false` still accept it.
 */
export function validatePluginConfig(plugin: Plugin, conf: unknown, kind: PluginSchemaKind): string | undefined {
  const schema =
    kind === "consumer"
      ? (plugin.consumerSchema ?? plugin.schema)
      : kind === "metadata"
        ? plugin.metadataSchema
        : plugin.schema;
  if (schema === undefined) return `plugin ${plugin.name} has no ${kind} schema`;
  if (conf === null || typeof conf !== "object" || Array.isArray(conf)) {
    return `failed to check the configuration of plugin ${plugin.name} err: wrong type: expected object, got ${jsonType(conf)}`;
  }
  const record = conf as Record<string, unknown>;
  const meta = record._meta;
  if (meta !== undefined) {
    const metaErr = validateSchema(META_SCHEMA, meta);
    if (metaErr !== undefined)
      return `failed to check the configuration of plugin ${plugin.name} err: _meta: ${metaErr}`;
    delete record._meta;
  }
  try {
    const err = validateSchema(schema, record) ?? (kind === "route" ? plugin.check?.(record) : undefined);
    if (err !== undefined) return `failed to check the configuration of plugin ${plugin.name} err: ${err}`;
  } finally {
    if (meta !== undefined) record._meta = meta;
  }
  return undefined;
}

/** Validates a `plugins` map: every name must be an enabled plugin and every config valid. */
export function validatePlugins(
  plugins: unknown,
  registry: ReadonlyMap<string, Plugin>,
  kind: PluginSchemaKind = "route",
): string | undefined {
  if (plugins === undefined) return undefined;
  if (plugins === null || typeof plugins !== "object" || Array.isArray(plugins)) {
    return 'property "plugins" validation failed: wrong type: expected object';
  }
  for (const [name, conf] of Object.entries(plugins as Record<string, unknown>)) {
    const plugin = registry.get(name);
    if (plugin === undefined) return `unknown plugin [${name}]`;
    const err = validatePluginConfig(plugin, conf, kind);
    if (err !== undefined) return err;
  }
  return undefined;
}
