import { createHash } from "node:crypto";
import type { ServiceConfig } from "../config/schemas/others.js";
import type { RouteConfig } from "../config/schemas/route.js";
import type { UpstreamConfig } from "../config/schemas/upstream.js";
import { type PluginSecrets, resolveEnvRefs } from "../config/secrets.js";
import { validatePluginConfig } from "../config/validate.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { compileRouter } from "../router/router.js";
import type { Router, RouteSpec } from "../router/types.js";
import type { ResourceType } from "../store/keys.js";
import type { StoreEntry } from "../store/types.js";
import type { HealthCheckManager } from "../upstream/health.js";
import type { PoolManager } from "../upstream/pool.js";
import { type CompiledUpstream, compileUpstream } from "../upstream/upstream.js";
import { buildCredentialIndex, type CredentialIndex, type CredentialSource } from "./credentials.js";
import {
  buildChain,
  combineConsumerPhases,
  combinePhases,
  EMPTY_CHAIN,
  mergeChains,
  type PluginChain,
  PluginInstanceCache,
  type RequestPhases,
  withoutNames,
} from "./plugin-chain.js";

export interface CompiledRoute {
  readonly id: string;
  readonly name: string | undefined;
  readonly serviceId: string | undefined;
  readonly serviceName: string | undefined;
  readonly plugins: PluginChain;
  /** The route's plugins combined with the global rules', in execution order. */
  readonly phases: RequestPhases;
  /** undefined when neither the route nor its service names an upstream. */
  readonly upstream: CompiledUpstream | undefined;
  /** Why there is no upstream, for the 503 message. */
  readonly upstreamError: string | undefined;
  /** The merged plugin configs (route > plugin_config > service) and their revisions, for consumer merges. */
  readonly pluginConfs: Readonly<Record<string, unknown>>;
  readonly pluginsKey: string;
  /** `enable_websocket` of the route, else of its service. */
  readonly enableWebsocket: boolean;
  /** The route's uri and host patterns, as the `matched_uri` / `matched_host` metric labels name them. */
  readonly matchedUri: string;
  readonly matchedHost: string;
  /** Revisions of the route and everything it merges; equal keys mean an identical compiled route. */
  readonly revisionKey: string;
}

/**
 * An immutable, fully compiled view of the config at one store revision. The proxy reads the current
 * snapshot once per request, so a request sees either the old or the new config, never a mix.
 */
export interface Snapshot {
  readonly revision: number;
  readonly router: Router<CompiledRoute>;
  readonly globalPlugins: PluginChain;
  /** What runs when no route matches: the global rules only (APISIX runs them before its 404). */
  readonly noRoutePhases: RequestPhases;
  readonly routes: ReadonlyMap<string, CompiledRoute>;
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly upstreamRevisions: ReadonlyMap<string, number>;
  readonly pluginMetadata: ReadonlyMap<string, unknown>;
  /** Consumers by username, with their group resolved. */
  readonly consumers: ReadonlyMap<string, CompiledConsumer>;
  /** Auth plugin configs of consumers and credentials by identifying value (ctx.findCredential). */
  readonly credentials: CredentialIndex;
  /**
   * The phases left to run once an auth plugin identified `consumer` on `route` (null route: no route
   * matched). Built on first use per (route, consumer) and kept for the snapshot's lifetime.
   */
  consumerPhases(route: CompiledRoute, consumer: CompiledConsumer): RequestPhases;
  /** Upper bound for bodies a plugin buffers (readBody). */
  readonly maxBufferedBody: number;
  /** Plugin instances of this snapshot (to destroy what the next one drops). */
  readonly instances: PluginInstanceCache;
  /** Pool keys this snapshot uses (to close pools nothing uses any more). */
  readonly poolKeys: ReadonlySet<string>;
  /** Health checker keys this snapshot uses (checkers nothing uses any more are stopped). */
  readonly healthKeys: ReadonlySet<string>;
}

export interface CompiledConsumer {
  readonly username: string;
  readonly groupId: string | undefined;
  readonly revision: number;
  /** Consumer group plugins overlaid by the consumer's own (consumer > group). */
  readonly plugins: Readonly<Record<string, unknown>>;
  readonly groupRevision: number;
  /** The raw consumer config (auth plugins read their credentials here). */
  readonly config: Readonly<Record<string, unknown>>;
  /** `labels.custom_id`, sent upstream as X-Consumer-Custom-ID (APISIX 3.x). */
  readonly customId: string | undefined;
}

export type ResourceTables = ReadonlyMap<ResourceType, ReadonlyMap<string, StoreEntry>>;

export interface CompileOptions {
  registry: ReadonlyMap<string, Plugin>;
  pools: PoolManager;
  health?: HealthCheckManager;
  previous: Snapshot | undefined;
  log: (msg: string) => void;
  maxBufferedBody?: number;
  /** Decrypts secret fields and resolves `$env://` references of every plugin config. */
  secrets?: PluginSecrets;
}

const DEFAULT_MAX_BUFFERED_BODY = 16 * 1024 * 1024;

export function compileSnapshot(tables: ResourceTables, revision: number, options: CompileOptions): Snapshot {
  const { registry, pools, log } = options;
  const secrets = options.secrets;
  const prepare = (plugin: Plugin, conf: Record<string, unknown>) =>
    secrets === undefined ? resolveEnvRefs(conf) : secrets.prepare(plugin, conf);
  const poolKeys = new Set<string>();
  const healthKeys = new Set<string>();
  const healthFor = (key: string, name: string) => {
    if (options.health === undefined) return undefined;
    healthKeys.add(key);
    return { manager: options.health, key, name };
  };
  // Plugins' inline upstreams (traffic-split, ai-proxy instances) get health checkers keyed by their
  // config, so the same config keeps its checker across snapshots and a changed one gets a fresh one.
  const compileInline = (config: Record<string, unknown>) => {
    const checks = (config as { checks?: unknown }).checks;
    const key =
      checks === undefined
        ? undefined
        : `inline/${createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 24)}`;
    const upstream = compileUpstream(
      config as UpstreamConfig,
      undefined,
      pools,
      undefined,
      log,
      key === undefined ? undefined : healthFor(key, key),
    );
    return { upstream, healthKey: key };
  };
  const instances = new PluginInstanceCache(options.previous?.instances, compileInline, prepare);
  const table = (type: ResourceType) => tables.get(type) ?? new Map<string, StoreEntry>();
  // Credentials are checked here like plugin instances are: config written straight into the store never
  // met the Admin API, and an unresolvable secret must make the credential unusable, never match literally.
  const prepareCredential = (plugin: Plugin, conf: Record<string, unknown>, where: string) => {
    try {
      const ready = structuredClone(prepare(plugin, conf));
      const err = validatePluginConfig(plugin, ready, "consumer");
      if (err !== undefined) throw new Error(err);
      return ready;
    } catch (err) {
      log(`${where}: ${plugin.name} credential skipped: ${(err as Error).message}`);
      return undefined;
    }
  };

  const upstreams = new Map<string, CompiledUpstream>();
  const upstreamRevisions = new Map<string, number>();
  for (const [id, entry] of table("upstreams")) {
    try {
      // Reusing the compiled upstream keeps its balancer position when other resources change.
      const reused =
        options.previous?.upstreamRevisions.get(id) === entry.modRevision
          ? options.previous.upstreams.get(id)
          : undefined;
      const healthKey = `upstreams/${id}@${entry.modRevision}`;
      const compiled =
        reused ??
        compileUpstream(entry.value as UpstreamConfig, id, pools, undefined, log, healthFor(healthKey, entry.key));
      if (compiled.health !== undefined) healthKeys.add(healthKey);
      upstreams.set(id, compiled);
      upstreamRevisions.set(id, entry.modRevision);
      for (const n of compiled.nodes) poolKeys.add(n.poolKey);
    } catch (err) {
      log(`upstream ${id}: ${(err as Error).message}; skipped`);
    }
  }

  let globalMerged: Record<string, unknown> | undefined;
  let globalKey = "global";
  for (const [id, entry] of [...table("global_rules")].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const plugins = (entry.value as { plugins?: Record<string, unknown> }).plugins;
    if (plugins === undefined) continue;
    globalMerged = { ...(globalMerged ?? {}), ...plugins };
    globalKey += `|${id}@${entry.modRevision}`;
  }
  const globalPlugins =
    globalMerged === undefined
      ? EMPTY_CHAIN
      : buildChain(globalMerged, registry, instances, globalKey, { kind: "global_rule", id: "*", revision }, log);

  const services = table("services");
  const pluginConfigs = table("plugin_configs");
  const routes = new Map<string, CompiledRoute>();
  const specs: RouteSpec<CompiledRoute>[] = [];
  const ordered = [...table("routes").values()].sort((a, b) => a.createRevision - b.createRevision);

  for (const entry of ordered) {
    const id = idOf(entry.key);
    const route = entry.value as RouteConfig;
    if (route.status === 0) continue;
    try {
      const serviceId = route.service_id === undefined ? undefined : String(route.service_id);
      const serviceEntry = serviceId === undefined ? undefined : services.get(serviceId);
      const service = serviceEntry?.value as ServiceConfig | undefined;
      const pcId = route.plugin_config_id === undefined ? undefined : String(route.plugin_config_id);
      const pcEntry = pcId === undefined ? undefined : pluginConfigs.get(pcId);

      // APISIX precedence: route > plugin_config > service for a plugin configured in several places.
      const merged: Record<string, unknown> = {
        ...(service?.plugins ?? {}),
        ...((pcEntry?.value as { plugins?: Record<string, unknown> } | undefined)?.plugins ?? {}),
        ...(route.plugins ?? {}),
      };
      const cacheKey = `route/${id}@${entry.modRevision}|service@${serviceEntry?.modRevision ?? 0}|pc@${pcEntry?.modRevision ?? 0}`;
      const plugins = buildChain(
        merged,
        registry,
        instances,
        cacheKey,
        { kind: "route", id, revision: entry.modRevision },
        log,
      );

      const previousRoute = options.previous?.routes.get(id);
      const upstreamKey = `${cacheKey}|up@${upstreamRevisionOf(route, service, upstreamRevisions)}`;
      const { upstream, error } =
        previousRoute !== undefined && previousRoute.revisionKey === upstreamKey
          ? { upstream: previousRoute.upstream, error: previousRoute.upstreamError }
          : resolveUpstream(route, service, upstreams, table("upstreams"), pools, log, (upId) =>
              upId === undefined
                ? healthFor(`routes/${id}@${entry.modRevision}|svc@${serviceEntry?.modRevision ?? 0}`, entry.key)
                : healthFor(
                    `upstreams/${upId}@${table("upstreams").get(upId)?.modRevision ?? 0}`,
                    `/apisix/upstreams/${upId}`,
                  ),
            );
      if (upstream !== undefined) for (const n of upstream.nodes) poolKeys.add(n.poolKey);
      if (upstream?.health !== undefined) {
        healthKeys.add(
          upstream.id === undefined
            ? `routes/${id}@${entry.modRevision}|svc@${serviceEntry?.modRevision ?? 0}`
            : `upstreams/${upstream.id}@${table("upstreams").get(upstream.id)?.modRevision ?? 0}`,
        );
      }
      const uris = route.uris ?? (route.uri !== undefined ? [route.uri] : []);
      const hosts = route.hosts ?? (route.host !== undefined ? [route.host] : service?.hosts);
      const compiled: CompiledRoute = {
        id,
        name: route.name,
        serviceId,
        serviceName: service?.name,
        plugins,
        phases: combinePhases(globalPlugins, plugins),
        upstream,
        upstreamError: error,
        pluginConfs: merged,
        pluginsKey: cacheKey,
        enableWebsocket: route.enable_websocket ?? service?.enable_websocket ?? false,
        matchedUri: uris.join(","),
        matchedHost: hosts?.join(",") ?? "",
        revisionKey: upstreamKey,
      };
      routes.set(id, compiled);

      const remoteAddrs = route.remote_addrs ?? (route.remote_addr !== undefined ? [route.remote_addr] : undefined);
      specs.push({
        id,
        payload: compiled,
        uris,
        hosts: hosts?.map((h) => h.toLowerCase()),
        methods: route.methods,
        remoteAddrs,
        vars: route.vars,
        priority: route.priority ?? 0,
      });
    } catch (err) {
      log(`route ${id}: ${(err as Error).message}; skipped`);
    }
  }

  const consumers = new Map<string, CompiledConsumer>();
  const groups = table("consumer_groups");
  const credentialSources: CredentialSource[] = [];
  for (const [id, entry] of table("consumers")) {
    // Credentials live under their consumer's key: consumers/<username>/credentials/<id>.
    const credential = parseCredentialId(id);
    if (credential !== undefined) {
      const plugins = (entry.value as { plugins?: Record<string, unknown> }).plugins;
      if (plugins !== undefined && table("consumers").has(credential.username)) {
        credentialSources.push({ ...credential, plugins });
      }
      continue;
    }
    const username = id;
    const value = entry.value as {
      group_id?: string | number;
      plugins?: Record<string, unknown>;
      labels?: Record<string, string>;
    };
    const groupId = value.group_id === undefined ? undefined : String(value.group_id);
    const group = groupId === undefined ? undefined : groups.get(groupId);
    consumers.set(username, {
      username,
      groupId,
      revision: entry.modRevision,
      groupRevision: group?.modRevision ?? 0,
      plugins: {
        ...((group?.value as { plugins?: Record<string, unknown> } | undefined)?.plugins ?? {}),
        ...(value.plugins ?? {}),
      },
      config: entry.value as Record<string, unknown>,
      customId: value.labels?.custom_id,
    });
    if (value.plugins !== undefined) {
      credentialSources.push({ username, credentialId: undefined, plugins: value.plugins });
    }
  }
  const credentials = buildCredentialIndex(credentialSources, registry, prepareCredential, log);
  // Keyed by object, not by a string built per request: both are fixed for the life of this snapshot.
  const consumerPhaseCache = new Map<CompiledRoute, Map<CompiledConsumer, RequestPhases>>();
  const consumerPhases = (route: CompiledRoute, consumer: CompiledConsumer): RequestPhases => {
    let byConsumer = consumerPhaseCache.get(route);
    if (byConsumer === undefined) consumerPhaseCache.set(route, (byConsumer = new Map()));
    let phases = byConsumer.get(consumer);
    if (phases === undefined) {
      // APISIX precedence: consumer > consumer group > route. Auth plugins' consumer configs are
      // credentials, not plugin instances, so they do not replace the route's.
      const own: Record<string, unknown> = {};
      const fromConsumer = new Set<string>();
      for (const [name, conf] of Object.entries(consumer.plugins)) {
        if (registry.get(name)?.type === "auth") continue;
        own[name] = conf;
        fromConsumer.add(name);
      }
      const key = `${route.pluginsKey}|consumer/${consumer.username}@${consumer.revision}|group@${consumer.groupRevision}`;
      const consumerChain = buildChain(
        own,
        registry,
        instances,
        key,
        { kind: "consumer", id: consumer.username, revision: consumer.revision },
        log,
      );
      // The route's own plugins keep their compiled instances, so a route-wide limit-req or limit-count is
      // one budget whoever authenticates, not one per consumer.
      const chain = mergeChains(withoutNames(route.plugins, fromConsumer), consumerChain);
      phases = combineConsumerPhases(globalPlugins, chain, fromConsumer);
      byConsumer.set(consumer, phases);
    }
    return phases;
  };

  const pluginMetadata = new Map<string, unknown>();
  for (const [name, entry] of table("plugin_metadata")) pluginMetadata.set(name, entry.value);

  for (const inst of instances.all()) {
    for (const key of inst.poolKeys) poolKeys.add(key);
    for (const key of inst.healthKeys) healthKeys.add(key);
  }
  return {
    revision,
    router: compileRouter(specs),
    globalPlugins,
    noRoutePhases: combinePhases(globalPlugins, EMPTY_CHAIN),
    routes,
    upstreams,
    upstreamRevisions,
    pluginMetadata,
    consumers,
    credentials,
    consumerPhases,
    maxBufferedBody: options.maxBufferedBody ?? DEFAULT_MAX_BUFFERED_BODY,
    instances,
    poolKeys,
    healthKeys,
  };
}

function upstreamRevisionOf(
  route: RouteConfig,
  service: ServiceConfig | undefined,
  revisions: ReadonlyMap<string, number>,
): number {
  const id = route.upstream !== undefined ? undefined : (route.upstream_id ?? service?.upstream_id);
  return id === undefined ? 0 : (revisions.get(String(id)) ?? -1);
}

function resolveUpstream(
  route: RouteConfig,
  service: ServiceConfig | undefined,
  upstreams: Map<string, CompiledUpstream>,
  upstreamEntries: ReadonlyMap<string, StoreEntry>,
  pools: PoolManager,
  log: (msg: string) => void,
  healthFor: (upstreamId: string | undefined) => Parameters<typeof compileUpstream>[5],
): { upstream: CompiledUpstream | undefined; error: string | undefined } {
  const inline = route.upstream ?? (route.upstream_id === undefined ? service?.upstream : undefined);
  if (inline !== undefined) {
    return {
      upstream: compileUpstream(inline, undefined, pools, route.timeout, log, healthFor(undefined)),
      error: undefined,
    };
  }
  const upstreamId = route.upstream_id ?? service?.upstream_id;
  if (upstreamId === undefined) {
    return { upstream: undefined, error: "missing upstream configuration in Route or Service" };
  }
  const shared = upstreams.get(String(upstreamId));
  if (shared === undefined) return { upstream: undefined, error: `failed to find upstream by id: ${upstreamId}` };
  if (route.timeout === undefined) return { upstream: shared, error: undefined };
  // A route timeout overrides the upstream's, and connect timeouts live in the pool settings, so this
  // route gets its own compiled upstream.
  const config = upstreamEntries.get(String(upstreamId))!.value as UpstreamConfig;
  return {
    upstream: compileUpstream(config, String(upstreamId), pools, route.timeout, log, healthFor(String(upstreamId))),
    error: undefined,
  };
}

/** `alice/credentials/c1` → { username: "alice", credentialId: "c1" }; undefined for a plain username. */
function parseCredentialId(id: string): { username: string; credentialId: string } | undefined {
  const at = id.indexOf("/credentials/");
  if (at <= 0) return undefined;
  const credentialId = id.slice(at + "/credentials/".length);
  if (credentialId === "" || credentialId.includes("/")) return undefined;
  return { username: id.slice(0, at), credentialId };
}

function idOf(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}
