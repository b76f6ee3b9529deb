import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { AiRequest } from "../ai/plan.js";
import type { CredentialMatch, PluginContext } from "../plugin-api/context.js";
import type { UpstreamHandle } from "../plugin-api/plugin.js";
import type { RequestPhases } from "../snapshot/plugin-chain.js";
import type { CompiledConsumer, CompiledRoute, Snapshot } from "../snapshot/snapshot.js";
import { hostWithoutPort, normalizeAddress, normalizePath } from "../vars/normalize.js";
import { queryWithoutArg, uriWithoutArg } from "../vars/query-args.js";
import { type ParsedRequest, type RequestState, requestVar } from "../vars/request-vars.js";

type HeaderOp = { name: string; lower: string; value: string | undefined; add: boolean };

/**
 * One request's state, created once when the request arrives and passed to every phase. It is the
 * PluginContext plugins see and the VarSource the router, expressions and balancers read; its variables
 * come from the variable table (vars/request-vars.ts) over this state. Everything optional is created
 * lazily so the plain proxy path allocates little.
 */
export class RequestContext implements PluginContext, RequestState {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly snapshot: Snapshot;
  readonly startTime: number;
  readonly method: string;
  readonly path: string;
  /** Mutable only through removeQueryArg, as nginx's `$args`. */
  query: string;
  /** The client address; real-ip may replace it (setRemoteAddr) for every later phase, the log and upstream. */
  remoteAddr: string;
  /** The socket peer, whatever real-ip decided (nginx's `$realip_remote_addr`). */
  readonly realRemoteAddr: string;
  /** Host header without port, lower-cased (nginx `$host`). */
  readonly host: string;

  route: CompiledRoute | undefined = undefined;
  /** What this request runs: the route's phases, the global rules' when nothing matched, or a consumer merge. */
  phases: RequestPhases;
  consumer: CompiledConsumer | undefined = undefined;
  /** The credential that identified `consumer`, when it came from a credential (X-Credential-Identifier). */
  credentialId: string | undefined = undefined;
  /** Set by setUpstream(): where this request goes instead of the route's upstream. */
  upstreamOverride: UpstreamHandle | undefined = undefined;
  uriParams: Record<string, string> | undefined = undefined;
  aiRequest: AiRequest | undefined = undefined;

  upstreamUri: string;
  upstreamMethod: string;
  upstreamHost: string | undefined = undefined;

  status = 0;
  /** Upstream statuses of every attempt, for `X-APISIX-Upstream-Status` and the log. */
  upstreamStatuses: number[] | undefined = undefined;
  upstreamAddr: string | undefined = undefined;
  attempts = 0;
  /** ms since startTime when the upstream answered with headers (first attempt that did). */
  upstreamHeaderTime = 0;
  /** ms since startTime when the upstream's answer was complete (nginx's `$upstream_response_time`). */
  upstreamEndTime = 0;
  bytesSent = 0;

  /** Request header changes plugins asked for; applied when the upstream request is built. */
  requestHeaderOps: HeaderOp[] | undefined = undefined;
  /** Response header changes plugins asked for; applied before the response head is written. */
  responseHeaderOps: HeaderOp[] | undefined = undefined;
  /** Upstream response headers as raw name/value pairs, once known. */
  responseHeaders: string[] | undefined = undefined;

  /** Set for HTTP Upgrade requests: bytes the client sent after the handshake head. */
  upgradeHead: Buffer | undefined = undefined;

  /** The buffered request body when a plugin read or replaced it; the proxy then sends this copy. */
  body: Buffer | undefined = undefined;
  private bodyPromise: Promise<Buffer> | undefined = undefined;

  /** The port real-ip set with the address (0: none given, as nginx's realip leaves it); undefined: the socket's. */
  remotePortOverride: number | undefined = undefined;
  /** The variable table's parse results for this request (arguments, cookies, JSON body). */
  parsed: ParsedRequest | undefined = undefined;
  private customVars: Map<string, string> | undefined = undefined;
  private _pluginData: Map<string, unknown> | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, snapshot: Snapshot) {
    this.req = req;
    this.res = res;
    this.snapshot = snapshot;
    this.startTime = performance.now();
    this.method = req.method ?? "GET";
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    this.path = normalizePath(q === -1 ? url : url.slice(0, q));
    this.query = q === -1 ? "" : url.slice(q + 1);
    this.realRemoteAddr = normalizeAddress(req.socket.remoteAddress);
    this.remoteAddr = this.realRemoteAddr;
    this.host = hostWithoutPort(req.headers.host);
    this.phases = snapshot.noRoutePhases;
    this.upstreamUri = url;
    this.upstreamMethod = this.method;
  }

  get routeId(): string | undefined {
    return this.route?.id;
  }

  get serviceId(): string | undefined {
    return this.route?.serviceId;
  }

  get consumerName(): string | undefined {
    return this.consumer?.username;
  }

  get routeName(): string | undefined {
    return this.route?.name;
  }

  get serviceName(): string | undefined {
    return this.route?.serviceName;
  }

  get matchedUri(): string | undefined {
    return this.route?.matchedUri;
  }

  get matchedHost(): string | undefined {
    return this.route?.matchedHost;
  }

  get consumerGroupId(): string | undefined {
    return this.consumer?.groupId;
  }

  attachConsumer(username: string, credentialId?: string): boolean {
    const consumer = this.snapshot.consumers.get(username);
    if (consumer === undefined) return false;
    this.consumer = consumer;
    this.credentialId = credentialId;
    return true;
  }

  findCredential(plugin: string, key: string): CredentialMatch | undefined {
    return this.snapshot.credentials.get(plugin)?.get(key);
  }

  setRemoteAddr(addr: string, port?: number): void {
    this.remoteAddr = normalizeAddress(addr);
    this.remotePortOverride = port ?? 0;
  }

  setUpstream(upstream: UpstreamHandle): void {
    this.upstreamOverride = upstream;
  }

  get pluginData(): Map<string, unknown> {
    this._pluginData ??= new Map();
    return this._pluginData;
  }

  // ---- variables ------------------------------------------------------------------------------------------

  var(name: string): string | undefined {
    if (this.customVars !== undefined) {
      const v = this.customVars.get(name);
      if (v !== undefined) return v;
    }
    return requestVar(this, name);
  }

  removeQueryArg(name: string): void {
    const kept = queryWithoutArg(this.query, name);
    if (kept === this.query) return;
    this.query = kept;
    this.upstreamUri = uriWithoutArg(this.upstreamUri, name);
  }

  setVar(name: string, value: string): void {
    this.customVars ??= new Map();
    this.customVars.set(name, value);
  }

  // ---- request headers ------------------------------------------------------------------------------------

  getRequestHeader(name: string): string | undefined {
    const lower = name.toLowerCase();
    const ops = this.requestHeaderOps;
    if (ops !== undefined) {
      for (let i = ops.length - 1; i >= 0; i--) {
        const op = ops[i]!;
        if (op.lower === lower) return op.value;
      }
    }
    const value = this.req.headers[lower];
    return typeof value === "string" || value === undefined ? value : value.join(", ");
  }

  setRequestHeader(name: string, value: string): void {
    (this.requestHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value, add: false });
  }

  addRequestHeader(name: string, value: string): void {
    (this.requestHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value, add: true });
  }

  removeRequestHeader(name: string): void {
    (this.requestHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value: undefined, add: false });
  }

  // ---- request body ---------------------------------------------------------------------------------------

  maxBodySize: number | undefined = undefined;

  pluginMetadata(name: string): unknown {
    return this.snapshot.pluginMetadata.get(name);
  }

  readBody(): Promise<Buffer> {
    if (this.body !== undefined) return Promise.resolve(this.body);
    const cap = this.maxBodySize;
    const limit =
      cap !== undefined && cap > 0 ? Math.min(cap, this.snapshot.maxBufferedBody) : this.snapshot.maxBufferedBody;
    this.bodyPromise ??= readWhole(this.req, limit).then((buf) => {
      this.body = buf;
      return buf;
    });
    return this.bodyPromise;
  }

  setBody(body: Buffer | string): void {
    this.body = typeof body === "string" ? Buffer.from(body) : body;
  }

  // ---- response headers -----------------------------------------------------------------------------------

  getResponseHeader(name: string): string | undefined {
    const lower = name.toLowerCase();
    const ops = this.responseHeaderOps;
    if (ops !== undefined) {
      for (let i = ops.length - 1; i >= 0; i--) {
        const op = ops[i]!;
        if (op.lower === lower) return op.value;
      }
    }
    const raw = this.responseHeaders;
    if (raw === undefined) return undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === lower.length && raw[i]!.toLowerCase() === lower) return raw[i + 1];
    }
    return undefined;
  }

  setResponseHeader(name: string, value: string): void {
    (this.responseHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value, add: false });
  }

  addResponseHeader(name: string, value: string): void {
    (this.responseHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value, add: true });
  }

  removeResponseHeader(name: string): void {
    (this.responseHeaderOps ??= []).push({ name, lower: name.toLowerCase(), value: undefined, add: false });
  }
}

/** Applies set/add/remove operations to a flat [name, value, ...] header list, in order. */
export function applyHeaderOps(headers: string[], ops: HeaderOp[]): string[] {
  let out = headers;
  for (const op of ops) {
    if (!op.add) {
      const kept: string[] = [];
      for (let i = 0; i < out.length; i += 2) {
        if (out[i]!.toLowerCase() !== op.lower) kept.push(out[i]!, out[i + 1]!);
      }
      out = kept;
    }
    if (op.value !== undefined) out.push(op.name, op.value);
  }
  return out;
}

export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

function readWhole(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once("error", reject);
  });
}
