import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { AiRequest } from "../../src/ai/plan.js";
import type { CredentialMatch, PluginContext } from "../../src/plugin-api/context.js";
import { hostWithoutPort, normalizeAddress, normalizePath } from "../../src/vars/normalize.js";
import { queryWithoutArg, uriWithoutArg } from "../../src/vars/query-args.js";
import { type ParsedRequest, type RequestState, requestVar } from "../../src/vars/request-vars.js";

/**
 * A complete PluginContext for unit tests of plugins: a real IncomingMessage, every variable the gateway
 * has (var() is the gateway's own variable table over this context's state, so `host`, `remote_port`,
 * `arg_*` … mean exactly what they mean in the proxy), and request/response header lists that header
 * operations really change. Every operation is also recorded in order (`set x: v`, `add x: v`,
 * `remove x`) so tests can assert how a plugin changed headers.
 * It is not the proxy's RequestContext: plugins must not import the proxy layer, nor do their unit tests.
 */
export interface TestRequest {
  method?: string;
  /** Path and query as on the request line. */
  url?: string;
  headers?: Record<string, string | string[]>;
  remoteAddr?: string;
  body?: string;
}

type HeaderLine = [name: string, value: string];

export class TestContext implements PluginContext, RequestState {
  readonly req: IncomingMessage;
  readonly startTime = performance.now();
  readonly method: string;
  readonly path: string;
  query: string;
  remoteAddr: string;
  readonly realRemoteAddr: string;
  readonly host: string;
  /** Set by setRemoteAddr, as the proxy's context does: the port given, or 0 for none. */
  remotePortOverride: number | undefined = undefined;
  /** The route, service and consumer a test pretends matched (route "1" unless told otherwise). */
  routeId: string | undefined = "1";
  routeName: string | undefined = undefined;
  serviceId: string | undefined = undefined;
  serviceName: string | undefined = undefined;
  matchedUri: string | undefined = undefined;
  matchedHost: string | undefined = undefined;
  consumerName: string | undefined = undefined;
  consumerGroupId: string | undefined = undefined;
  /** Usernames attachConsumer accepts, as the snapshot's consumer table would. */
  knownConsumers = new Set<string>();
  /** The credential id passed to attachConsumer, if any. */
  credentialId: string | undefined = undefined;
  /** findCredential's table: plugin name → identifying value → match. Fill with addCredential(). */
  readonly credentials = new Map<string, Map<string, CredentialMatch>>();

  /** Registers a credential findCredential returns and makes its consumer known to attachConsumer. */
  addCredential(plugin: string, key: string, match: CredentialMatch): this {
    let byKey = this.credentials.get(plugin);
    if (byKey === undefined) this.credentials.set(plugin, (byKey = new Map()));
    byKey.set(key, match);
    this.knownConsumers.add(match.username);
    return this;
  }

  findCredential(plugin: string, key: string): CredentialMatch | undefined {
    return this.credentials.get(plugin)?.get(key);
  }

  /** The upstream a plugin chose with setUpstream(), if any. */
  upstream: unknown = undefined;

  setUpstream(upstream: unknown): void {
    this.upstream = upstream;
  }

  aiRequest: AiRequest | undefined = undefined;

  setRemoteAddr(addr: string, port?: number): void {
    this.remoteAddr = normalizeAddress(addr);
    this.remotePortOverride = port ?? 0;
  }

  attachConsumer(username: string, credentialId?: string): boolean {
    if (!this.knownConsumers.has(username)) return false;
    this.consumerName = username;
    this.credentialId = credentialId;
    return true;
  }
  uriParams: Record<string, string> | undefined = undefined;

  upstreamUri: string;
  upstreamMethod: string;
  upstreamHost: string | undefined = undefined;
  /** What the proxy records of the upstream exchange; tests of log-phase plugins set them. */
  upstreamAddr: string | undefined = undefined;
  upstreamStatuses: number[] | undefined = undefined;
  upstreamHeaderTime = 0;
  upstreamEndTime = 0;
  attempts = 0;
  status = 0;
  bytesSent = 0;
  parsed: ParsedRequest | undefined = undefined;
  readonly pluginData = new Map<string, unknown>();

  /** Request header lines as they would be sent upstream. */
  readonly requestHeaders: HeaderLine[] = [];
  /** Response header lines as they would be sent to the client. */
  readonly responseHeaders: HeaderLine[] = [];
  readonly requestHeaderLog: string[] = [];
  readonly responseHeaderLog: string[] = [];
  /** Variables set with setVar. */
  readonly vars = new Map<string, string>();
  body: Buffer | undefined;

  constructor(request: TestRequest = {}) {
    const url = request.url ?? "/";
    this.req = new IncomingMessage(new Socket());
    this.req.method = request.method ?? "GET";
    this.req.url = url;
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      headers[name.toLowerCase()] = value;
      for (const v of Array.isArray(value) ? value : [value]) this.requestHeaders.push([name, v]);
    }
    this.req.headers = headers;
    this.req.rawHeaders = this.requestHeaders.flat();
    this.method = this.req.method;
    const q = url.indexOf("?");
    this.path = normalizePath(q === -1 ? url : url.slice(0, q));
    this.query = q === -1 ? "" : url.slice(q + 1);
    this.host = hostWithoutPort(this.req.headers.host);
    this.remoteAddr = normalizeAddress(request.remoteAddr ?? "127.0.0.1");
    this.realRemoteAddr = this.remoteAddr;
    this.upstreamUri = url;
    this.upstreamMethod = this.method;
    this.body = request.body === undefined ? undefined : Buffer.from(request.body);
  }

  var(name: string): string | undefined {
    return this.vars.get(name) ?? requestVar(this, name);
  }

  setVar(name: string, value: string): void {
    this.vars.set(name, value);
  }

  removeQueryArg(name: string): void {
    this.query = queryWithoutArg(this.query, name);
    this.upstreamUri = uriWithoutArg(this.upstreamUri, name);
  }

  getRequestHeader(name: string): string | undefined {
    return get(this.requestHeaders, name);
  }

  setRequestHeader(name: string, value: string): void {
    this.requestHeaderLog.push(`set ${name}: ${value}`);
    set(this.requestHeaders, name, value);
  }

  addRequestHeader(name: string, value: string): void {
    this.requestHeaderLog.push(`add ${name}: ${value}`);
    this.requestHeaders.push([name, value]);
  }

  removeRequestHeader(name: string): void {
    this.requestHeaderLog.push(`remove ${name}`);
    remove(this.requestHeaders, name);
  }

  readBody(): Promise<Buffer> {
    this.body ??= Buffer.alloc(0);
    return Promise.resolve(this.body);
  }

  setBody(body: Buffer | string): void {
    this.body = typeof body === "string" ? Buffer.from(body) : body;
  }

  maxBodySize: number | undefined = undefined;
  /** plugin_metadata by plugin name, as the snapshot would hold it. */
  readonly metadata = new Map<string, unknown>();

  pluginMetadata(name: string): unknown {
    return this.metadata.get(name);
  }

  getResponseHeader(name: string): string | undefined {
    return get(this.responseHeaders, name);
  }

  setResponseHeader(name: string, value: string): void {
    this.responseHeaderLog.push(`set ${name}: ${value}`);
    set(this.responseHeaders, name, value);
  }

  addResponseHeader(name: string, value: string): void {
    this.responseHeaderLog.push(`add ${name}: ${value}`);
    this.responseHeaders.push([name, value]);
  }

  removeResponseHeader(name: string): void {
    this.responseHeaderLog.push(`remove ${name}`);
    remove(this.responseHeaders, name);
  }

  /** Every value of a request header as it would go upstream. */
  requestHeaderValues(name: string): string[] {
    const lower = name.toLowerCase();
    return this.requestHeaders.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }
}

function get(lines: HeaderLine[], name: string): string | undefined {
  const lower = name.toLowerCase();
  const values = lines.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(", ");
}

function set(lines: HeaderLine[], name: string, value: string): void {
  remove(lines, name);
  lines.push([name, value]);
}

function remove(lines: HeaderLine[], name: string): void {
  const lower = name.toLowerCase();
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]![0].toLowerCase() === lower) lines.splice(i, 1);
}
