import type { TSchema } from "@sinclair/typebox";
import { isSchemaResourceType, NAMED_SCHEMAS, RESOURCE_SCHEMAS } from "../config/schemas/index.js";
import { checkSchema, injectedPluginSchema } from "../config/validate.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { type Answer, fail } from "./reply.js";

/**
 * `/apisix/admin/plugins...` and `/apisix/admin/schema...` (APISIX's admin/plugins.lua and admin/schema.lua):
 * read-only views of the enabled plugins and of the resource schemas.
 */
export class PluginsApi {
  private readonly enabled: Plugin[];

  constructor(plugins: ReadonlyMap<string, Plugin>, enabledPlugins: readonly string[]) {
    this.enabled = enabledPlugins.flatMap((name) => {
      const p = plugins.get(name);
      return p === undefined ? [] : [p];
    });
  }

  /** GET /apisix/admin/plugins/list: enabled plugin names, highest priority first. */
  list(query: URLSearchParams): Answer {
    const subsystem = query.get("subsystem") ?? "http";
    if (subsystem === "stream") return { status: 200, body: [] };
    if (subsystem !== "http") fail(400, "invalid subsystem passed");
    const sorted = [...this.enabled].sort((a, b) => b.priority - a.priority);
    return { status: 200, body: sorted.map((p) => p.name) };
  }

  /** GET /apisix/admin/plugins/<name> (its schema) and GET /apisix/admin/plugins?all=true. */
  get(name: string | undefined, query: URLSearchParams): Answer {
    const subsystem = query.get("subsystem") ?? "http";
    if (subsystem !== "http" && subsystem !== "stream") fail(400, `unsupported subsystem: ${subsystem}`);
    // Weir has no stream (L4) plugins.
    const available = subsystem === "http" ? this.enabled : [];
    if (query.get("all") === "true") {
      return { status: 200, body: Object.fromEntries(available.map((p) => [p.name, describe(p)])) };
    }
    const plugin = available.find((p) => p.name === name);
    if (plugin === undefined) return fail(404, `plugin not found in subsystem ${subsystem}`);
    const kind = query.get("schema_type");
    // APISIX knows schema_type=consumer; metadata is a Weir addition (APISIX serves it only through ?all=true).
    const schema: TSchema | object | undefined =
      kind === "consumer"
        ? plugin.consumerSchema
        : kind === "metadata"
          ? plugin.metadataSchema
          : injectedPluginSchema(plugin.schema);
    if (schema === undefined) fail(400, "not found schema");
    return { status: 200, body: schema };
  }

  /** GET /apisix/admin/schema/<name>: schema_def.lua's entries (route, upstream, plugin_injected_schema...). */
  schema(name: string | undefined): Answer {
    const schema = name === undefined ? undefined : NAMED_SCHEMAS.get(name);
    if (schema === undefined) fail(400, `not found schema: ${name ?? ""}`);
    return { status: 200, body: schema };
  }

  /** POST /apisix/admin/schema/validate/<resource>: the schema alone, as APISIX checks it; 200 with no body. */
  validate(resource: string | undefined, body: unknown): Answer {
    if (resource === undefined || !isSchemaResourceType(resource)) {
      return fail(404, `Unsupported resource type: ${resource ?? ""}`);
    }
    const result = checkSchema(RESOURCE_SCHEMAS[resource], body);
    if (!result.ok) fail(400, result.message);
    return { status: 200 };
  }
}

function describe(p: Plugin): Record<string, unknown> {
  const out: Record<string, unknown> = { priority: p.priority, schema: injectedPluginSchema(p.schema) };
  if (p.version !== undefined) out.version = p.version;
  if (p.consumerSchema !== undefined) out.consumer_schema = p.consumerSchema;
  if (p.metadataSchema !== undefined) out.metadata_schema = p.metadataSchema;
  if (p.type !== undefined) out.type = p.type;
  return out;
}
