import { type PluginSecrets, resolveEnvRefs } from "../config/secrets.js";
import { validatePluginConfig } from "../config/validate.js";
import type { Plugin, RequestMetrics } from "../plugin-api/plugin.js";
import { compileRouter } from "../router/router.js";
import type { HealthCheckManager } from "../upstream/health.js";
import type { PoolManager } from "../upstream/pool.js";
import { compileConsumers, consumerPhasesOf, type PrepareCredential } from "./consumers.js";
import { compileGlobalRules } from "./global-rules.js";
import { InUse } from "./in-use.js";
import { combinePhases, EMPTY_CHAIN, PluginInstanceCache, type PrepareConf } from "./plugin-chain.js";
import { compileRoutes } from "./routes.js";
import type { Snapshot } from "./snapshot.js";
import { type ResourceTables, tableOf } from "./tables.js";
import { compileStoredUpstreams, pluginUpstreamCompiler, type UpstreamEnv } from "./upstreams.js";

export interface CompileOptions {
  registry: ReadonlyMap<string, Plugin>;
  pools: PoolManager;
  health?: HealthCheckManager;
  previous: Snapshot | undefined;
  log: (msg: string) => void;
  maxBufferedBody?: number;
  /** Decrypts secret fields and resolves `$env://` references of every plugin config. */
  secrets?: PluginSecrets;
  /** The gateway's metrics, lent to the plugins that feed them; without, prometheus cannot compile. */
  metrics?: RequestMetrics;
}

const DEFAULT_MAX_BUFFERED_BODY = 16 * 1024 * 1024;

/**
 * How a config change becomes a snapshot: the store's tables at `revision`, compiled resource by resource.
 * Upstreams come first (routes share them), then the global rules (every route's phases include them),
 * then routes and consumers. What the previous snapshot compiled is reused wherever its revisions match.
 */
export function compileSnapshot(tables: ResourceTables, revision: number, options: CompileOptions): Snapshot {
  const { registry, log, previous } = options;
  const inUse = new InUse(options.health);
  const env: UpstreamEnv = { pools: options.pools, inUse, log };
  const prepare = prepareOf(options.secrets);
  const instances = new PluginInstanceCache(previous?.instances, {
    compileInline: pluginUpstreamCompiler(env),
    prepare,
    metrics: options.metrics,
  });

  const stored = compileStoredUpstreams(tables, previous, env);
  const globalPlugins = compileGlobalRules(tables, registry, instances, revision, log);
  const { routes, specs } = compileRoutes(tables, {
    ...env,
    registry,
    instances,
    globalPlugins,
    stored,
    previousRoutes: previous?.routes,
  });
  const { consumers, credentials } = compileConsumers(tables, registry, credentialPreparer(prepare, log), log);

  const pluginMetadata = new Map<string, unknown>();
  for (const [name, entry] of tableOf(tables, "plugin_metadata")) pluginMetadata.set(name, entry.value);

  // Plugin instances carried over from the last snapshot compiled nothing this time, so what their
  // inline upstreams hold open is collected from all of them here.
  for (const inst of instances.all()) for (const held of inst.upstreams) inUse.hold(held.upstream, held.healthKey);
  return {
    revision,
    router: compileRouter(specs),
    globalPlugins,
    noRoutePhases: combinePhases(globalPlugins, EMPTY_CHAIN),
    routes,
    upstreams: stored.upstreams,
    upstreamRevisions: stored.upstreamRevisions,
    pluginMetadata,
    consumers,
    credentials,
    consumerPhases: consumerPhasesOf(globalPlugins, registry, instances, log),
    maxBufferedBody: options.maxBufferedBody ?? DEFAULT_MAX_BUFFERED_BODY,
    instances,
    poolKeys: inUse.poolKeys,
    healthKeys: inUse.healthKeys,
  };
}

/** Decrypts secret fields and resolves `$env://` references; without a keyring only the latter. */
function prepareOf(secrets: PluginSecrets | undefined): PrepareConf {
  return (plugin, conf) => (secrets === undefined ? resolveEnvRefs(conf) : secrets.prepare(plugin, conf));
}

/**
 * Credentials are checked here like plugin instances are: config written straight into the store never
 * met the Admin API, and an unresolvable secret must make the credential unusable, never match literally.
 */
function credentialPreparer(prepare: PrepareConf, log: (msg: string) => void): PrepareCredential {
  return (plugin, conf, where) => {
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
}
