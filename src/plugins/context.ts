import type { IncomingMessage } from "node:http";
import type { UpstreamHandle } from "./types.js";

/**
 * What a plugin may see and change about one request. The proxy's RequestContext implements it; plugins
 * depend only on this interface so they never import the proxy layer.
 */
export interface PluginContext {
  readonly req: IncomingMessage;
  /** Monotonic ms (performance.now()) when the request arrived. */
  readonly startTime: number;
  /** Client method (as received). */
  readonly method: string;
  /** Request path without query string, normalized like nginx's `$uri` (decoded, dot segments resolved). */
  readonly path: string;
  /** Query string without the leading '?', or ''. */
  readonly query: string;
  readonly remoteAddr: string;

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
   * Returns false when no such consumer exists.
   */
  attachConsumer(username: string): boolean;

  /** APISIX/nginx variable lookup: uri, host, remote_addr, http_x_foo, arg_foo, cookie_foo, route_id … */
  var(name: string): string | undefined;
  /** Sets a request-scoped variable that later plugins and the access log can read with var(). */
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
