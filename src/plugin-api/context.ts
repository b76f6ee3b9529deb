import type { IncomingMessage } from "node:http";
import type { AiRequest } from "../ai/plan.js";
import type { UpstreamHandle } from "../upstream/handle.js";
import type { VarSource } from "../vars/var-source.js";

/** A consumer's config for one auth plugin, found by its identifying field. */
export interface CredentialMatch {
  username: string;
  /** The credential's id; undefined when the config sits in the consumer's own `plugins`. */
  credentialId: string | undefined;
  /** The auth plugin's config (e.g. key-auth `{ key }`, basic-auth `{ username, password }`). */
  conf: Record<string, unknown>;
}

/**
 * What a plugin may see and change about one request. The proxy's RequestContext implements it; plugins
 * depend only on this interface so they never import the proxy layer.
 */
export interface PluginContext extends VarSource {
  readonly req: IncomingMessage;
  /** Monotonic ms (performance.now()) when the request arrived. */
  readonly startTime: number;
  /** Client method (as received). */
  readonly method: string;
  /** Request path without query string, normalized like nginx's `$uri` (decoded, dot segments resolved). */
  readonly path: string;
  /** Query string without the leading '?', or '' (nginx's `$args`: what removeQueryArg left of it). */
  readonly query: string;
  /**
   * Drops every `name` argument from the request's query string (`query`, `$args`, `arg_*`) and from the
   * uri sent upstream, as APISIX's core.request.set_uri_args does: a later plugin that rebuilds the upstream
   * uri from the query (proxy-rewrite) must not bring a hidden credential back.
   */
  removeQueryArg(name: string): void;
  /** The client address (`remote_addr`): the socket peer, or what real-ip set with setRemoteAddr. */
  readonly remoteAddr: string;
  /** The socket peer, whatever real-ip decided (nginx's `$realip_remote_addr`). */
  readonly realRemoteAddr: string;
  /**
   * real-ip: makes `addr` (and `port`, if given) the client for every later plugin, the balancer, the access
   * log and the X-Real-IP / X-Forwarded-For sent upstream. Routing already happened on the socket address.
   */
  setRemoteAddr(addr: string, port?: number): void;

  /** The matched route's id, service id and compiled names (undefined before routing). */
  readonly routeId: string | undefined;
  readonly serviceId: string | undefined;
  /** Params captured by `:name` / `*name` segments of the matched uri. */
  readonly uriParams: Record<string, string> | undefined;

  /** The consumer an auth plugin identified (APISIX's ctx.consumer_name), if any. */
  readonly consumerName: string | undefined;
  /**
   * For auth plugins: makes `username` the request's consumer. After the rewrite phase its plugins (and
   * its group's) merge into the route's with precedence consumer > group > route, as in APISIX.
   * `credentialId` (from a CredentialMatch) is recorded for the upstream's `X-Credential-Identifier`.
   * Returns false when no such consumer exists.
   */
  attachConsumer(username: string, credentialId?: string): boolean;
  /**
   * Auth plugins: the consumer credential whose identifying field (the plugin's `credentialKey`) equals
   * `key`, from consumer-level plugin configs and from credentials alike. Secrets in `conf` are decrypted
   * and `$env://` references resolved. A map lookup built once per config change.
   */
  findCredential(plugin: string, key: string): CredentialMatch | undefined;

  // var(name) comes from VarSource: the nginx/APISIX variables, computed by the variable table in vars/.
  /**
   * Sets a request-scoped variable that later plugins and the access log read with var(). It shadows a
   * table variable of the same name (proxy-rewrite sets `request_method`, as ngx.req.set_method does).
   */
  setVar(name: string, value: string): void;

  // ---- what goes upstream -------------------------------------------------------------------------------
  /** Path+query sent upstream; defaults to the client's. */
  upstreamUri: string;
  /** Method sent upstream; defaults to the client's. */
  upstreamMethod: string;
  /** Host header sent upstream when set (proxy-rewrite host); otherwise pass_host rules apply. */
  upstreamHost: string | undefined;
  /** Sends this request to another upstream than the route's (traffic-split). */
  setUpstream(upstream: UpstreamHandle): void;
  /**
   * The request's AI call (ai-proxy, ai-proxy-multi): once set, the proxy sends the request to one of
   * its model instances instead of the route's upstream. Later plugins (ai-rate-limiting) read and
   * annotate it.
   */
  aiRequest: AiRequest | undefined;
  /** Case-insensitive view of a request header as it will be sent upstream. */
  getRequestHeader(name: string): string | undefined;
  setRequestHeader(name: string, value: string): void;
  /** Adds a header line even if one with that name exists. */
  addRequestHeader(name: string, value: string): void;
  removeRequestHeader(name: string): void;

  /**
   * Reads the whole request body (once; later calls get the same buffer) and makes the proxy send the
   * buffered copy upstream. Only plugins that need the body call this: the default path streams it.
   */
  readBody(): Promise<Buffer>;
  /** Replaces the body sent upstream (implies the body is buffered). */
  setBody(body: Buffer | string): void;
  /**
   * Cap in bytes on the client's request body (client-control's max_body_size); 0 or undefined: only the
   * gateway's buffering limit applies. readBody() and the streamed body alike end in 413 past it.
   */
  maxBodySize: number | undefined;
  /** The value of `/apisix/admin/plugin_metadata/<name>` in the config this request runs with. */
  pluginMetadata(name: string): unknown;

  // ---- what goes back to the client ---------------------------------------------------------------------
  /** Status the client will get (upstream's or a Reply's); meaningful from header_filter on. */
  status: number;
  getResponseHeader(name: string): string | undefined;
  setResponseHeader(name: string, value: string): void;
  addResponseHeader(name: string, value: string): void;
  removeResponseHeader(name: string): void;

  /** Per-request scratch space for plugins, keyed by plugin name. */
  readonly pluginData: Map<string, unknown>;
}
