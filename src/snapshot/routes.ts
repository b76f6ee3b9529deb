import type { ServiceConfig } from "../config/schemas/others.js";
import type { RouteConfig } from "../config/schemas/route.js";
import type { UpstreamConfig } from "../config/schemas/upstream.js";
import type { Plugin } from "../plugin-api/plugin.js";
import type { RouteSpec } from "../router/types.js";
import type { StoreEntry } from "../store/types.js";
import { type CompiledUpstream, compileUpstream } from "../upstream/upstream.js";
import { routePluginsKey, routeRevisionKey, routeUpstreamHealthKey, storedUpstreamHealthKey } from "./keys.js";
import { buildChain, combinePhases, type PluginChain, type PluginInstanceCache } from "./plugin-chain.js";
import type { CompiledRoute } from "./snapshot.js";
import { type ResourceTables, tableOf } from "./tables.js";
import type { StoredUpstreams, UpstreamEnv } from "./upstreams.js";

/** What compiling the routes needs besides the tables. */
export interface RouteEnv extends UpstreamEnv {
  readonly registry: ReadonlyMap<string, Plugin>;
  readonly instances: PluginInstanceCache;
  readonly globalPlugins: PluginChain;
  /** This snapshot's stored upstreams, which routes share by id. */
  readonly stored: StoredUpstreams;
  /** The previous snapshot's routes, whose upstreams are kept when nothing they depend on changed. */
  readonly previousRoutes: ReadonlyMap<string, CompiledRoute> | undefined;
}

/**
 * Compiles every enabled route with its service and plugin_config merged in, and the router specs that
 * match requests to them. Routes are compiled in creation order, the order the router breaks ties in; a
 * route that fails to compile is skipped with a log line and the others still serve.
 */
export function compileRoutes(
  tables: ResourceTables,
  env: RouteEnv,
): { routes: Map<string, CompiledRoute>; specs: RouteSpec<CompiledRoute>[] } {
  const routes = new Map<string, CompiledRoute>();
  const specs: RouteSpec<CompiledRoute>[] = [];
  const ordered = [...tableOf(tables, "routes").values()].sort((a, b) => a.createRevision - b.createRevision);
  for (const entry of ordered) {
    const id = idOf(entry.key);
    const route = entry.value;
    if (route.status === 0) continue;
    try {
      const spec = compileRoute(id, entry, tables, env);
      routes.set(id, spec.payload);
      specs.push(spec);
    } catch (err) {
      env.log(`route ${id}: ${(err as Error).message}; skipped`);
    }
  }
  return { routes, specs };
}

/** The compiled route, as the router spec that matches requests to it. */
function compileRoute(
  id: string,
  entry: StoreEntry<RouteConfig>,
  tables: ResourceTables,
  env: RouteEnv,
): RouteSpec<CompiledRoute> {
  const route = entry.value;
  const serviceId = route.service_id === undefined ? undefined : String(route.service_id);
  const serviceEntry = serviceId === undefined ? undefined : tableOf(tables, "services").get(serviceId);
  const service = serviceEntry?.value;
  const pcId = route.plugin_config_id === undefined ? undefined : String(route.plugin_config_id);
  const pcEntry = pcId === undefined ? undefined : tableOf(tables, "plugin_configs").get(pcId);

  // APISIX precedence: route > plugin_config > service for a plugin configured in several places.
  const merged: Record<string, unknown> = {
    ...(service?.plugins ?? {}),
    ...(pcEntry?.value.plugins ?? {}),
    ...(route.plugins ?? {}),
  };
  const pluginsKey = routePluginsKey(id, entry.modRevision, serviceEntry?.modRevision ?? 0, pcEntry?.modRevision ?? 0);
  const plugins = buildChain(
    merged,
    env.registry,
    env.instances,
    pluginsKey,
    { kind: "route", id, revision: entry.modRevision },
    env.log,
  );

  const choice = chooseUpstream(id, entry, serviceEntry, tables);
  const revisionKey = routeRevisionKey(pluginsKey, namedUpstreamRevision(route, service, env.stored));
  const previous = env.previousRoutes?.get(id);
  const { upstream, error } =
    previous !== undefined && previous.revisionKey === revisionKey
      ? { upstream: previous.upstream, error: previous.upstreamError }
      : resolveUpstream(choice, route, env);
  if (upstream !== undefined) env.inUse.hold(upstream, choice?.healthKey);

  const uris = route.uris ?? (route.uri !== undefined ? [route.uri] : []);
  // A route without hosts of its own matches its service's.
  const hosts = route.hosts ?? (route.host !== undefined ? [route.host] : service?.hosts);
  const compiled: CompiledRoute = {
    id,
    name: route.name,
    serviceId,
    serviceName: service?.name,
    plugins,
    phases: combinePhases(env.globalPlugins, plugins),
    upstream,
    upstreamError: error,
    pluginConfs: merged,
    pluginsKey,
    enableWebsocket: route.enable_websocket ?? service?.enable_websocket ?? false,
    matchedUri: uris.join(","),
    matchedHost: hosts?.join(",") ?? "",
    revisionKey,
  };
  return {
    id,
    payload: compiled,
    uris,
    hosts: hosts?.map((h) => h.toLowerCase()),
    methods: route.methods,
    remoteAddrs: route.remote_addrs ?? (route.remote_addr !== undefined ? [route.remote_addr] : undefined),
    vars: route.vars,
    priority: route.priority ?? 0,
  };
}

/** Where a route's upstream comes from, with the key its health checker runs under. */
type UpstreamChoice =
  | { readonly kind: "inline"; readonly config: UpstreamConfig; readonly healthKey: string; readonly name: string }
  | {
      readonly kind: "stored";
      readonly id: string;
      readonly entry: StoreEntry<UpstreamConfig> | undefined;
      readonly healthKey: string;
    }
  | undefined;

/**
 * The route's own inline upstream; else, unless the route names an upstream_id, its service's inline one;
 * else the stored upstream the route, or failing that its service, names by id.
 */
function chooseUpstream(
  routeId: string,
  entry: StoreEntry<RouteConfig>,
  serviceEntry: StoreEntry<ServiceConfig> | undefined,
  tables: ResourceTables,
): UpstreamChoice {
  const route = entry.value;
  const service = serviceEntry?.value;
  const inline = route.upstream ?? (route.upstream_id === undefined ? service?.upstream : undefined);
  if (inline !== undefined) {
    const healthKey = routeUpstreamHealthKey(routeId, entry.modRevision, serviceEntry?.modRevision ?? 0);
    return { kind: "inline", config: inline, healthKey, name: entry.key };
  }
  const upstreamId = route.upstream_id ?? service?.upstream_id;
  if (upstreamId === undefined) return undefined;
  const id = String(upstreamId);
  const stored = tableOf(tables, "upstreams").get(id);
  return { kind: "stored", id, entry: stored, healthKey: storedUpstreamHealthKey(id, stored?.modRevision ?? 0) };
}

function resolveUpstream(
  choice: UpstreamChoice,
  route: RouteConfig,
  env: RouteEnv,
): { upstream: CompiledUpstream | undefined; error: string | undefined } {
  if (choice === undefined) return { upstream: undefined, error: "missing upstream configuration in Route or Service" };
  if (choice.kind === "inline") {
    const checker = env.inUse.checker(choice.healthKey, choice.name);
    return {
      upstream: compileUpstream(choice.config, undefined, env.pools, route.timeout, env.log, checker),
      error: undefined,
    };
  }
  const shared = env.stored.upstreams.get(choice.id);
  if (shared === undefined || choice.entry === undefined) {
    return { upstream: undefined, error: `failed to find upstream by id: ${choice.id}` };
  }
  if (route.timeout === undefined) return { upstream: shared, error: undefined };
  // A route timeout overrides the upstream's, and connect timeouts live in the pool settings, so this
  // route gets its own compiled upstream. It shares the stored upstream's health checker (same key).
  const checker = env.inUse.checker(choice.healthKey, choice.entry.key);
  return {
    upstream: compileUpstream(choice.entry.value, choice.id, env.pools, route.timeout, env.log, checker),
    error: undefined,
  };
}

/**
 * The revision of the stored upstream the route or its service names by id (0: none or the route's own
 * inline one; -1: named but missing), for the route's revision key. Not derived from chooseUpstream: a
 * service with both an inline upstream and an upstream_id counts the stored one's revision although its
 * inline one is used, which costs only a needless recompile when that stored upstream changes.
 */
function namedUpstreamRevision(
  route: RouteConfig,
  service: ServiceConfig | undefined,
  stored: StoredUpstreams,
): number {
  const id = route.upstream !== undefined ? undefined : (route.upstream_id ?? service?.upstream_id);
  return id === undefined ? 0 : (stored.upstreamRevisions.get(String(id)) ?? -1);
}

/** The id is the last segment of the store key (`/apisix/routes/<id>`). */
function idOf(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}
