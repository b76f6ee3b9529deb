import type { PluginMeta } from "../config/schemas/others.js";
import { validatePluginConfig } from "../config/validate.js";
import {
  PHASES,
  type Phase,
  type Plugin,
  type PluginScope,
  type Reply,
  type RequestMetrics,
  type UpstreamResolver,
} from "../plugin-api/plugin.js";
import { compileVars } from "../router/vars.js";
import type { VarSource } from "../vars/var-source.js";
import type { HeldUpstream } from "./in-use.js";
import { pluginInstanceKey, pluginStateKey } from "./keys.js";

/** One configured plugin, compiled: what a phase runner needs and nothing else. */
export interface PluginEntry {
  readonly name: string;
  readonly plugin: Plugin;
  readonly state: unknown;
  readonly priority: number;
  /** `_meta.filter`: the plugin runs only for requests the expression accepts. */
  readonly filter: ((vars: VarSource) => boolean) | undefined;
  /** `_meta.error_response`: replaces the body of any Reply this plugin returns. */
  readonly errorResponse: Reply["body"] | undefined;
}

/**
 * The plugins of one route (or of the global rules): for each lifecycle phase the entries that implement
 * it, ordered by priority, and the names of every plugin configured.
 */
export type PluginChain = { readonly [P in Phase]: readonly PluginEntry[] } & { readonly names: readonly string[] };

/** A chain with `entriesOf(phase)` for each phase of PHASES, so no chain code spells the phase names. */
function chainOf(names: readonly string[], entriesOf: (phase: Phase) => readonly PluginEntry[]): PluginChain {
  // Filled for every phase by the loop below before anything reads it.
  const phases = {} as Record<Phase, readonly PluginEntry[]>;
  for (const phase of PHASES) phases[phase] = entriesOf(phase);
  return { ...phases, names };
}

export const EMPTY_CHAIN: PluginChain = Object.freeze(chainOf([], () => []));

/**
 * Turns a stored plugin config into the one the plugin compiles (secrets decrypted, `$env://` resolved);
 * throwing marks the config invalid, so the plugin is skipped with the message logged.
 */
export type PrepareConf = (plugin: Plugin, conf: Record<string, unknown>) => Record<string, unknown>;

/** A compiled plugin instance that may be carried from one snapshot to the next. */
export interface PluginInstance {
  plugin: Plugin;
  state: unknown;
  /** The instance's inline upstreams: their pools stay open and checkers running while the instance lives. */
  upstreams: readonly HeldUpstream[];
  /** What it asked `scope.keep` for, by key: kept alive for other compiles while the instance lives. */
  kept: ReadonlyMap<string, unknown> | undefined;
}

/** Compiles an upstream inside a plugin config, with the key its health checker was acquired under. */
export type InlineCompiler = (config: Record<string, unknown>) => HeldUpstream;

/** What the gateway lends the plugins it compiles, through their scope or their config. */
export interface InstanceServices {
  compileInline?: InlineCompiler;
  prepare?: PrepareConf;
  metrics?: RequestMetrics;
}

/**
 * Compiles plugin instances, reusing those whose owning resources did not change since the previous
 * snapshot so their state (rate-limit counters, caches) survives unrelated config changes.
 */
export class PluginInstanceCache {
  private previous: Map<string, PluginInstance>;
  private current = new Map<string, PluginInstance>();
  /** `scope.keep` state by key: the previous snapshot's, and this one's (every instance's, reused or not). */
  private previousKept: Map<string, unknown>;
  private currentKept = new Map<string, unknown>();

  private readonly compileInline: InlineCompiler | undefined;
  private readonly prepare: PrepareConf | undefined;
  private readonly metrics: RequestMetrics | undefined;

  constructor(previous?: PluginInstanceCache, services: InstanceServices = {}) {
    this.previous = previous?.current ?? new Map();
    this.previousKept = previous?.currentKept ?? new Map();
    this.compileInline = services.compileInline;
    this.prepare = services.prepare;
    this.metrics = services.metrics;
  }

  instance(ownerKey: string, plugin: Plugin, conf: unknown, scope: PluginScope): PluginInstance {
    const key = pluginInstanceKey(ownerKey, plugin.name);
    let inst = this.current.get(key) ?? this.previous.get(key);
    if (inst === undefined || inst.plugin !== plugin) {
      // Config written straight into the store (etcd, by another tool) never met the Admin API: validate
      // it here, on a copy, so defaults are filled and a bad config is skipped instead of crashing phases.
      const checked = structuredClone(
        this.prepare === undefined ? conf : this.prepare(plugin, conf as Record<string, unknown>),
      );
      const err = validatePluginConfig(plugin, checked, "route");
      if (err !== undefined) throw new Error(err);
      const held: HeldUpstream[] = [];
      let kept: Map<string, unknown> | undefined;
      const keep = <T>(kind: string, identity: unknown, create: () => T): T => {
        const stateKey = pluginStateKey(kind, identity);
        let state = (this.currentKept.get(stateKey) ?? this.previousKept.get(stateKey)) as T | undefined;
        if (state === undefined) state = create();
        this.currentKept.set(stateKey, state);
        (kept ??= new Map()).set(stateKey, state);
        return state;
      };
      const compileInline = this.compileInline;
      const upstreams: UpstreamResolver = {
        byId: (id) => ({ kind: "id", id }),
        inline: (config) => {
          if (compileInline === undefined) throw new Error("inline upstreams are not available here");
          const inline = compileInline(config);
          held.push(inline);
          return { kind: "compiled", upstream: inline.upstream };
        },
      };
      const state = plugin.compile
        ? plugin.compile(checked, { ...scope, upstreams, metrics: this.metrics, keep })
        : checked;
      inst = { plugin, state, upstreams: held, kept };
    } else if (inst.kept !== undefined) {
      // A reused instance compiled nothing, but its kept state must stay findable by the next compile.
      for (const [stateKey, state] of inst.kept) this.currentKept.set(stateKey, state);
    }
    this.current.set(key, inst);
    return inst;
  }

  /** Instances of the previous snapshot that the new one does not use; destroy them after the swap. */
  retired(): PluginInstance[] {
    const out: PluginInstance[] = [];
    for (const [key, inst] of this.previous) {
      if (this.current.get(key) !== inst) out.push(inst);
    }
    return out;
  }

  all(): IterableIterator<PluginInstance> {
    return this.current.values();
  }
}

/**
 * Builds a chain from a merged `{name: conf}` map. Unknown or disabled plugins are skipped with a log line:
 * the Admin API rejects them, but config written straight into the store must not take the gateway down.
 */
export function buildChain(
  plugins: Record<string, unknown> | undefined,
  registry: ReadonlyMap<string, Plugin>,
  cache: PluginInstanceCache,
  ownerKey: string,
  scope: PluginScope,
  log: (msg: string) => void,
): PluginChain {
  if (plugins === undefined) return EMPTY_CHAIN;
  const entries: PluginEntry[] = [];
  for (const name of Object.keys(plugins)) {
    const conf = plugins[name] as Record<string, unknown>;
    const plugin = registry.get(name);
    if (plugin === undefined) {
      log(`${scope.kind} ${scope.id}: plugin "${name}" is not enabled; skipped`);
      continue;
    }
    // Typed as PluginMetaSchema says; the instance's validation below rejects a malformed `_meta` (the
    // plugin then answers 503), so only the two reads before it see it unchecked, and both are guarded.
    const meta = (conf?._meta ?? undefined) as PluginMeta | undefined;
    if (meta?.disable === true) continue;
    let filter: PluginEntry["filter"];
    if (meta?.filter !== undefined) {
      try {
        filter = compileVars(meta.filter);
      } catch (err) {
        log(`${scope.kind} ${scope.id}: plugin "${name}" _meta.filter is invalid (${(err as Error).message}); skipped`);
        continue;
      }
    }
    let inst: PluginInstance;
    try {
      inst = cache.instance(ownerKey, plugin, conf, scope);
    } catch (err) {
      // Skipping it would fail open: a route whose key-auth or ip-restriction cannot run must not serve
      // everyone. The route answers 503 until its config is fixed.
      const why = (err as Error).message;
      log(`${scope.kind} ${scope.id}: plugin "${name}" cannot run (${why}); its requests get 503`);
      entries.push(unusable(name, why));
      continue;
    }
    entries.push({
      name,
      plugin,
      state: inst.state,
      priority: meta?.priority ?? plugin.priority,
      filter,
      errorResponse: meta?.error_response,
    });
  }
  if (entries.length === 0) return EMPTY_CHAIN;
  entries.sort((a, b) => b.priority - a.priority);
  return chainOf(
    entries.map((e) => e.name),
    (phase) => entries.filter((e) => typeof e.plugin[phase] === "function"),
  );
}

/** The chain without the named plugins (those a consumer's own config replaces). */
export function withoutNames(chain: PluginChain, names: ReadonlySet<string>): PluginChain {
  if (names.size === 0) return chain;
  return chainOf(
    chain.names.filter((n) => !names.has(n)),
    (phase) => chain[phase].filter((e) => !names.has(e.name)),
  );
}

/** Both chains' entries in one, each phase ordered by priority again. */
export function mergeChains(a: PluginChain, b: PluginChain): PluginChain {
  if (b.names.length === 0) return a;
  if (a.names.length === 0) return b;
  return chainOf([...a.names, ...b.names], (phase) =>
    [...a[phase], ...b[phase]].sort((p, q) => q.priority - p.priority),
  );
}

/** Stands in for a configured plugin that could not be compiled (bad store data, a missing `$env://`). */
function unusable(name: string, why: string): PluginEntry {
  const reply = { status: 503, body: { error_msg: `plugin ${name} is misconfigured: ${why}` } };
  const plugin: Plugin = { name, priority: Number.MAX_SAFE_INTEGER, schema: {} as never, rewrite: () => reply };
  return { name, plugin, state: undefined, priority: plugin.priority, filter: undefined, errorResponse: undefined };
}

export type PreProxyPhase = Extract<Phase, "rewrite" | "access" | "before_proxy">;

export interface PhaseStep {
  readonly entry: PluginEntry;
  readonly phase: PreProxyPhase;
}

/** Everything a request runs, global rules included, flattened once per config change. */
export interface RequestPhases {
  /** rewrite → access → before_proxy, global rules before the route's plugins in each. */
  readonly preProxy: readonly PhaseStep[];
  /**
   * Index in preProxy right after the route's rewrite steps: where APISIX merges an identified consumer's
   * plugins into the route's (auth plugins run in rewrite). -1 when no merge can happen any more.
   */
  readonly consumerMergeAt: number;
  readonly headerFilter: readonly PluginEntry[];
  readonly bodyFilter: readonly PluginEntry[];
  readonly log: readonly PluginEntry[];
}

/** The global rules' chain without the prefer_route plugins that `route` configures itself. */
function globalFor(global: PluginChain, route: PluginChain): PluginChain {
  const shadowed = (e: PluginEntry) => e.plugin.runPolicy === "prefer_route" && route.names.includes(e.name);
  if (!PHASES.some((phase) => global[phase].some(shadowed))) return global;
  return chainOf(global.names, (phase) => global[phase].filter((e) => !shadowed(e)));
}

export function combinePhases(allGlobal: PluginChain, route: PluginChain): RequestPhases {
  const global = globalFor(allGlobal, route);
  const steps = (chain: PluginChain, phase: PreProxyPhase): PhaseStep[] =>
    chain[phase].map((entry) => ({ entry, phase }));
  const rewrites = [...steps(global, "rewrite"), ...steps(global, "access"), ...steps(route, "rewrite")];
  return {
    preProxy: [
      ...rewrites,
      ...steps(route, "access"),
      ...steps(global, "before_proxy"),
      ...steps(route, "before_proxy"),
    ],
    consumerMergeAt: rewrites.length,
    headerFilter: [...global.header_filter, ...route.header_filter],
    bodyFilter: [...global.body_filter, ...route.body_filter],
    log: [...global.log, ...route.log],
  };
}

/**
 * The rest of a request once a consumer is known (APISIX's rewrite_in_consumer): the rewrite phase of
 * plugins that came from the consumer or its group (auth plugins excluded: they already ran), then access
 * and before_proxy of the merged set. `merged` already has consumer > group > route precedence applied.
 */
export function combineConsumerPhases(
  allGlobal: PluginChain,
  merged: PluginChain,
  fromConsumer: ReadonlySet<string>,
): RequestPhases {
  const global = globalFor(allGlobal, merged);
  const steps = (chain: PluginChain, phase: PreProxyPhase): PhaseStep[] =>
    chain[phase].map((entry) => ({ entry, phase }));
  const consumerRewrites = merged.rewrite
    .filter((e) => fromConsumer.has(e.name) && e.plugin.type !== "auth")
    .map((entry) => ({ entry, phase: "rewrite" as const }));
  return {
    preProxy: [
      ...consumerRewrites,
      ...steps(merged, "access"),
      ...steps(global, "before_proxy"),
      ...steps(merged, "before_proxy"),
    ],
    consumerMergeAt: -1,
    headerFilter: [...global.header_filter, ...merged.header_filter],
    bodyFilter: [...global.body_filter, ...merged.body_filter],
    log: [...global.log, ...merged.log],
  };
}
