import { createHash } from "node:crypto";

/**
 * Every key a snapshot builds to recognise "the same thing as last time", one function per thing keyed.
 * Two kinds: plugin instance keys (an instance is reused, with its counters and caches, while its key is
 * unchanged) and health checker keys (a checker keeps running, with the node states it learned, while some
 * compiled upstream still uses its key). Each key names the revisions of exactly what its value depends on,
 * so a change to anything else keeps it, and a change to any of those gets a fresh one.
 */

/** Health checker of a stored upstream (`/apisix/upstreams/<id>`), shared by every route that uses it. */
export function storedUpstreamHealthKey(upstreamId: string, upstreamRevision: number): string {
  return `upstreams/${upstreamId}@${upstreamRevision}`;
}

/**
 * Health checker of the inline upstream a route carries, or takes from its service. Keyed by the route
 * as well when the upstream is the service's: each route compiles its own copy.
 */
export function routeUpstreamHealthKey(routeId: string, routeRevision: number, serviceRevision: number): string {
  return `routes/${routeId}@${routeRevision}|svc@${serviceRevision}`;
}

/**
 * Health checker of an upstream inside a plugin config (traffic-split, ai-proxy instances). Such an
 * upstream has no id or revision of its own, so its config is the key: the same config keeps its checker
 * across snapshots, a changed one gets a fresh one.
 */
export function pluginUpstreamHealthKey(config: Readonly<Record<string, unknown>>): string {
  return `inline/${createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 24)}`;
}

/**
 * State a plugin keeps across recompiles (an AI instance's sit-out): the same `identity` (the config of
 * what the state is about, e.g. an instance's provider, endpoint, credentials and model) gets the same
 * state while some snapshot uses it, whichever route or revision compiled it.
 */
export function pluginStateKey(kind: string, identity: unknown): string {
  return `${kind}/${createHash("sha256").update(JSON.stringify(identity)).digest("hex").slice(0, 24)}`;
}

/** Plugin instances of the merged global rules; `rules` are those that configure plugins, in merge order. */
export function globalRulesPluginsKey(rules: Iterable<{ readonly id: string; readonly revision: number }>): string {
  let key = "global";
  for (const rule of rules) key += `|${rule.id}@${rule.revision}`;
  return key;
}

/**
 * Plugin instances of a route: its plugins are merged from the route, its plugin_config and its service,
 * so all three revisions are in the key (0 for one it does not have).
 */
export function routePluginsKey(
  routeId: string,
  routeRevision: number,
  serviceRevision: number,
  pluginConfigRevision: number,
): string {
  return `route/${routeId}@${routeRevision}|service@${serviceRevision}|pc@${pluginConfigRevision}`;
}

/**
 * Plugin instances a consumer (or its group) brings to a route. Keyed under the route's key: a consumer's
 * limit-count on route A is not the same budget as on route B.
 */
export function consumerPluginsKey(
  routePluginsKey: string,
  username: string,
  consumerRevision: number,
  groupRevision: number,
): string {
  return `${routePluginsKey}|consumer/${username}@${consumerRevision}|group@${groupRevision}`;
}

/** One plugin's instance among those an owner key (route, global rules, consumer on a route) configures. */
export function pluginInstanceKey(ownerKey: string, pluginName: string): string {
  return `${ownerKey}:${pluginName}`;
}

/**
 * A whole compiled route: its plugins' key plus the revision of the stored upstream it names (0 for
 * none or an inline one, -1 for a missing one). Equal keys mean the previous compiled route, upstream and
 * balancer position included, can be kept.
 */
export function routeRevisionKey(routePluginsKey: string, storedUpstreamRevision: number): string {
  return `${routePluginsKey}|up@${storedUpstreamRevision}`;
}
