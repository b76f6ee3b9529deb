import type { TSchema } from "@sinclair/typebox";
import type { MaybeAsync, PhaseResult } from "../http/reply.js";
import type { UpstreamResolver } from "../upstream/handle.js";
import type { PluginContext } from "./context.js";

export type { MaybeAsync, PhaseResult, Reply } from "../http/reply.js";
export type { UpstreamHandle, UpstreamResolver } from "../upstream/handle.js";

/** The request lifecycle, in order. Global rules run each request phase before the route's plugins do. */
export const PHASES = ["rewrite", "access", "before_proxy", "header_filter", "body_filter", "log"] as const;
export type Phase = (typeof PHASES)[number];

/** Where a plugin config came from; used to key per-instance state (counters, caches). */
export interface PluginScope {
  /** e.g. "route", "service", "global_rule", "plugin_config", "consumer", "consumer_group". */
  kind: string;
  /** id of the resource (username for consumers). */
  id: string;
  /** modifiedIndex of the resource; changes on every write to it. */
  revision: number;
  /** For plugins that route to other upstreams (traffic-split, later ai-proxy-multi). */
  upstreams?: UpstreamResolver;
  /** The metrics of the gateway compiling the plugin (prometheus); each gateway instance owns its own. */
  metrics?: RequestMetrics;
  /**
   * State that outlives this compile: the same `kind` and `identity` (compared by JSON value) get the same
   * object while some snapshot of this gateway uses it, so what it learned (an AI instance's sit-out)
   * survives edits of the route around it. `create` makes it the first time.
   */
  keep?<T>(kind: string, identity: unknown, create: () => T): T;
}

/** What the prometheus plugin feeds: the gateway's registry, as its log phase sees it. */
export interface RequestMetrics {
  /** Counts one finished request (APISIX's http_log); `preferName` labels routes and services by name. */
  record(ctx: PluginContext, preferName: boolean): void;
}

/**
 * A plugin is one module: name, priority, schemas, and the phase functions it implements, in lifecycle
 * order. `compile` runs once per config change (never per request) and turns the validated config into
 * the state the phases use: compiled regexes, counters, lookup tables.
 */
export interface Plugin<Conf = any, State = Conf> {
  name: string;
  /** Higher runs first within a phase (APISIX's ordering). */
  priority: number;
  version?: string;
  /**
   * APISIX's run_policy "prefer_route": when a global rule and the route both configure the plugin, only
   * the route's runs (the plugin would otherwise count the request twice).
   */
  runPolicy?: "prefer_route";
  /** "auth" plugins identify consumers; others are ordinary. */
  type?: "auth";
  /**
   * Auth plugins: the consumer-config field that identifies a credential (key-auth "key", basic-auth
   * "username", jwt-auth "key", hmac-auth "key_id"). The snapshot indexes consumers and credentials by it
   * for `ctx.findCredential`, and the Admin API rejects two consumers/credentials sharing a value.
   */
  credentialKey?: string;
  /**
   * Dotted paths of secret fields in this plugin's configs (route, consumer, credential alike), encrypted
   * at rest and masked for viewer keys. `*` matches any key at its level, e.g. "auth.header.*".
   */
  encryptFields?: string[];
  /** JSON Schema of the route/service/global-rule config. Ajv fills `default`s into the stored config. */
  schema: TSchema;
  /** JSON Schema of the config a consumer carries for this plugin (auth plugins). */
  consumerSchema?: TSchema;
  /** JSON Schema of `/apisix/admin/plugin_metadata/<name>`. */
  metadataSchema?: TSchema;
  /** Cross-field checks the schema cannot express; return a message naming the field, or undefined. */
  check?(conf: Conf): string | undefined;
  compile?(conf: Conf, scope: PluginScope): State;
  /** Called when a compiled instance leaves the active config, to stop timers and free state. */
  destroy?(state: State): void;

  rewrite?(state: State, ctx: PluginContext): MaybeAsync<PhaseResult>;
  access?(state: State, ctx: PluginContext): MaybeAsync<PhaseResult>;
  before_proxy?(state: State, ctx: PluginContext): MaybeAsync<PhaseResult>;
  /** Runs once the upstream (or a Reply) status and headers are known, before they are sent. Synchronous. */
  header_filter?(state: State, ctx: PluginContext): void;
  /** Sees each response chunk; returns the chunk to send (possibly replaced). `eof` marks the last call. */
  body_filter?(state: State, ctx: PluginContext, chunk: Buffer, eof: boolean): Buffer;
  /** After the response is complete (or aborted). Must not throw; must not delay the response. */
  log?(state: State, ctx: PluginContext): void;
}
