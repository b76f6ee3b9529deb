import type { Plugin } from "../plugin-api/plugin.js";
import { globalRulesPluginsKey } from "./keys.js";
import { buildChain, EMPTY_CHAIN, type PluginChain, type PluginInstanceCache } from "./plugin-chain.js";
import { type ResourceTables, tableOf } from "./tables.js";

/**
 * The global rules' plugins as one chain. Rules are merged in id order, a later rule's config of a plugin
 * replacing an earlier one's, so which config wins never depends on the order the store lists them in.
 */
export function compileGlobalRules(
  tables: ResourceTables,
  registry: ReadonlyMap<string, Plugin>,
  instances: PluginInstanceCache,
  revision: number,
  log: (msg: string) => void,
): PluginChain {
  let merged: Record<string, unknown> | undefined;
  const merging: { id: string; revision: number }[] = [];
  for (const [id, entry] of [...tableOf(tables, "global_rules")].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const plugins = entry.value.plugins;
    // Required by the schema, but a rule written straight into etcd may lack it.
    if (plugins === undefined) continue;
    merged = { ...(merged ?? {}), ...plugins };
    merging.push({ id, revision: entry.modRevision });
  }
  if (merged === undefined) return EMPTY_CHAIN;
  return buildChain(
    merged,
    registry,
    instances,
    globalRulesPluginsKey(merging),
    { kind: "global_rule", id: "*", revision },
    log,
  );
}
