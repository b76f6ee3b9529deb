import type { Router } from "../router/types.js";
import type { CompiledUpstream } from "../upstream/upstream.js";
import type { CredentialIndex } from "./credentials.js";
import type { PluginChain, PluginInstanceCache, RequestPhases } from "./plugin-chain.js";

/*
 * What a config change becomes: the compiled snapshot the proxy reads. compile.ts builds it from the store's
 * tables with one module per resource; the types live here, below all of them, so those modules and the
 * proxy import them without an import cycle.
 */

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
