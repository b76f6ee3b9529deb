import type { Plugin } from "../plugin-api/plugin.js";
import { buildCredentialIndex, type CredentialIndex, type CredentialSource } from "./credentials.js";
import { consumerPluginsKey } from "./keys.js";
import {
  buildChain,
  combineConsumerPhases,
  mergeChains,
  type PluginChain,
  type PluginInstanceCache,
  type RequestPhases,
  withoutNames,
} from "./plugin-chain.js";
import type { CompiledConsumer, CompiledRoute } from "./snapshot.js";
import { consumerTable, type ResourceTables, tableOf } from "./tables.js";

/** Turns a stored credential config into the one auth plugins match against, or undefined to drop it. */
export type PrepareCredential = (
  plugin: Plugin,
  conf: Record<string, unknown>,
  where: string,
) => Record<string, unknown> | undefined;

/**
 * The consumers with their group's plugins resolved, and the index auth plugins find credentials in: the
 * auth plugin configs of consumers themselves and of their credentials (APISIX 3.x). A credential whose
 * consumer does not exist is ignored.
 */
export function compileConsumers(
  tables: ResourceTables,
  registry: ReadonlyMap<string, Plugin>,
  prepareCredential: PrepareCredential,
  log: (msg: string) => void,
): { consumers: Map<string, CompiledConsumer>; credentials: CredentialIndex } {
  const groups = tableOf(tables, "consumer_groups");
  const table = consumerTable(tables);
  const consumers = new Map<string, CompiledConsumer>();
  const credentialSources: CredentialSource[] = [];
  for (const [username, entry] of table.consumers) {
    const value = entry.value;
    const groupId = value.group_id === undefined ? undefined : String(value.group_id);
    const group = groupId === undefined ? undefined : groups.get(groupId);
    consumers.set(username, {
      username,
      groupId,
      revision: entry.modRevision,
      groupRevision: group?.modRevision ?? 0,
      // APISIX precedence: consumer > consumer group.
      plugins: { ...(group?.value.plugins ?? {}), ...(value.plugins ?? {}) },
      config: value,
      customId: value.labels?.custom_id,
    });
    if (value.plugins !== undefined) {
      credentialSources.push({ username, credentialId: undefined, plugins: value.plugins });
    }
    for (const [credentialId, credential] of table.credentials.get(username) ?? []) {
      const plugins = credential.value.plugins;
      if (plugins !== undefined) credentialSources.push({ username, credentialId, plugins });
    }
  }
  return { consumers, credentials: buildCredentialIndex(credentialSources, registry, prepareCredential, log) };
}

/**
 * Snapshot.consumerPhases: the phases left to run once an auth plugin identified a consumer on a route.
 * Built on first use per (route, consumer) and kept for the snapshot's lifetime, keyed by object, not by a
 * string built per request: both are fixed for the life of the snapshot.
 */
export function consumerPhasesOf(
  globalPlugins: PluginChain,
  registry: ReadonlyMap<string, Plugin>,
  instances: PluginInstanceCache,
  log: (msg: string) => void,
): (route: CompiledRoute, consumer: CompiledConsumer) => RequestPhases {
  const cache = new Map<CompiledRoute, Map<CompiledConsumer, RequestPhases>>();
  return (route, consumer) => {
    let byConsumer = cache.get(route);
    if (byConsumer === undefined) cache.set(route, (byConsumer = new Map()));
    let phases = byConsumer.get(consumer);
    if (phases === undefined) {
      phases = compileConsumerPhases(route, consumer, globalPlugins, registry, instances, log);
      byConsumer.set(consumer, phases);
    }
    return phases;
  };
}

function compileConsumerPhases(
  route: CompiledRoute,
  consumer: CompiledConsumer,
  globalPlugins: PluginChain,
  registry: ReadonlyMap<string, Plugin>,
  instances: PluginInstanceCache,
  log: (msg: string) => void,
): RequestPhases {
  // APISIX precedence: consumer > consumer group > route. Auth plugins' consumer configs are credentials,
  // not plugin instances, so they do not replace the route's.
  const own: Record<string, unknown> = {};
  const fromConsumer = new Set<string>();
  for (const [name, conf] of Object.entries(consumer.plugins)) {
    if (registry.get(name)?.type === "auth") continue;
    own[name] = conf;
    fromConsumer.add(name);
  }
  const consumerChain = buildChain(
    own,
    registry,
    instances,
    consumerPluginsKey(route.pluginsKey, consumer.username, consumer.revision, consumer.groupRevision),
    { kind: "consumer", id: consumer.username, revision: consumer.revision },
    log,
  );
  // The route's own plugins keep their compiled instances, so a route-wide limit-req or limit-count is one
  // budget whoever authenticates, not one per consumer.
  const chain = mergeChains(withoutNames(route.plugins, fromConsumer), consumerChain);
  return combineConsumerPhases(globalPlugins, chain, fromConsumer);
}
