import { validateSchema } from "../config/validate.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { resourceKey } from "../store/keys.js";
import type { ConfigStore } from "../store/types.js";
import type { AdminContext } from "./context.js";
import { listAnswer } from "./list.js";
import { listResources } from "./references.js";
import { type Answer, envelope, fail, KEY_NOT_FOUND } from "./reply.js";

/** APISIX injects this for plugins that declare no metadata schema: any object is accepted. */
const ANY_METADATA = { type: "object", properties: {} };

/**
 * `/apisix/admin/plugin_metadata/<plugin>` (APISIX's admin/plugin_metadata.lua): one object per plugin,
 * checked against the plugin's metadataSchema, keyed by the plugin name, without timestamps.
 */
export class PluginMetadataApi {
  constructor(
    private readonly store: ConfigStore,
    private readonly plugins: ReadonlyMap<string, Plugin>,
  ) {}

  async handle(ctx: AdminContext): Promise<Answer> {
    const name = ctx.id;
    switch (ctx.method) {
      case "GET": {
        if (name === undefined) {
          return { status: 200, body: listAnswer(await listResources(this.store, "plugin_metadata"), ctx.query, []) };
        }
        const entry = await this.store.get(resourceKey("plugin_metadata", name));
        return entry === undefined ? KEY_NOT_FOUND : { status: 200, body: envelope(entry) };
      }
      case "PUT":
        return this.put(name, ctx.body);
      case "DELETE": {
        if (name === undefined) fail(400, "missing plugin_metadata id");
        const key = resourceKey("plugin_metadata", name!);
        return (await this.store.delete(key)) === undefined
          ? KEY_NOT_FOUND
          : { status: 200, body: { deleted: "1", key } };
      }
      default:
        return fail(405, `not supported \`${ctx.method}\` method for plugin_metadata`);
    }
  }

  private async put(name: string | undefined, body: unknown): Promise<Answer> {
    if (body === undefined) fail(400, "missing configurations");
    const conf = body as Record<string, unknown>;
    for (const field of ["create_time", "update_time"]) {
      if (conf !== null && typeof conf === "object" && conf[field] !== undefined && conf[field] !== null) {
        fail(400, `the property is forbidden:  ${field}`);
      }
    }
    if (name === undefined) fail(400, "missing plugin name");
    const plugin = this.plugins.get(name!);
    if (plugin === undefined) fail(400, "invalid plugin name");
    const err = validateSchema(plugin!.metadataSchema ?? ANY_METADATA, conf);
    if (err !== undefined) fail(400, `invalid configuration: ${err}`);
    conf.id = name;
    const key = resourceKey("plugin_metadata", name!);
    const existing = await this.store.get(key);
    const entry = await this.store.put(key, conf);
    return { status: existing === undefined ? 201 : 200, body: envelope(entry) };
  }
}
