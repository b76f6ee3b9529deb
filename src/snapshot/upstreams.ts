import type { UpstreamConfig } from "../config/schemas/upstream.js";
import type { PoolManager } from "../upstream/pool.js";
import { type CompiledUpstream, compileUpstream } from "../upstream/upstream.js";
import type { HeldUpstream, InUse } from "./in-use.js";
import { pluginUpstreamHealthKey, storedUpstreamHealthKey } from "./keys.js";
import { type ResourceTables, tableOf } from "./tables.js";

/** What compiling an upstream needs, whoever owns it. */
export interface UpstreamEnv {
  readonly pools: PoolManager;
  readonly inUse: InUse;
  readonly log: (msg: string) => void;
}

/** The stored upstreams (`/apisix/upstreams/<id>`) of one snapshot, compiled, and the revision of each. */
export interface StoredUpstreams {
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly upstreamRevisions: ReadonlyMap<string, number>;
}

/**
 * Compiles the stored upstreams. One whose revision did not change is carried over from `previous` as it
 * is, so its balancer position survives changes to other resources. A malformed one is skipped with a log
 * line; routes naming it then answer 503.
 */
export function compileStoredUpstreams(
  tables: ResourceTables,
  previous: StoredUpstreams | undefined,
  env: UpstreamEnv,
): StoredUpstreams {
  const upstreams = new Map<string, CompiledUpstream>();
  const upstreamRevisions = new Map<string, number>();
  for (const [id, entry] of tableOf(tables, "upstreams")) {
    try {
      const healthKey = storedUpstreamHealthKey(id, entry.modRevision);
      const reused = previous?.upstreamRevisions.get(id) === entry.modRevision ? previous.upstreams.get(id) : undefined;
      const compiled =
        reused ??
        compileUpstream(entry.value, id, env.pools, undefined, env.log, env.inUse.checker(healthKey, entry.key));
      env.inUse.hold(compiled, healthKey);
      upstreams.set(id, compiled);
      upstreamRevisions.set(id, entry.modRevision);
    } catch (err) {
      env.log(`upstream ${id}: ${(err as Error).message}; skipped`);
    }
  }
  return { upstreams, upstreamRevisions };
}

/**
 * Compiles the upstreams plugins carry in their config (traffic-split's weighted upstreams, ai-proxy
 * instances' origins) for PluginInstanceCache. What they hold open is recorded with the plugin instance,
 * so a reused instance keeps its pools and checkers without compiling again.
 */
export function pluginUpstreamCompiler(env: UpstreamEnv): (config: Record<string, unknown>) => HeldUpstream {
  return (config) => {
    const healthKey = pluginUpstreamHealthKey(config);
    // UpstreamResolver.inline takes configs the calling plugin has validated: traffic-split checks its
    // upstreams against UpstreamSchema, ai/plan builds them from its own validated instance config.
    const upstream = compileUpstream(
      config as UpstreamConfig,
      undefined,
      env.pools,
      undefined,
      env.log,
      env.inUse.checker(healthKey, healthKey),
    );
    return { upstream, healthKey };
  };
}
