import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { AiRequest } from "../ai/plan.js";
import type { CredentialMatch, PluginContext } from "../plugin-api/context.js";
import type { UpstreamHandle } from "../plugin-api/plugin.js";
import { queryWithoutArg, uriWithoutArg } from "../plugins/query-args.js";
import type { RequestPhases } from "../snapshot/plugin-chain.js";
import type { CompiledConsumer, CompiledRoute, Snapshot } from "../snapshot/snapshot.js";

type HeaderOp = { name: string; lower: string; value: string | undefined; add: boolean };

/**
 * One request's state, created once when the request arrives and passed to every phase. It is the
 * PluginContext plugins see, the VarSource the router and expressions read, and the BalancerRequest
 * balancers hash on. Everything optional is created lazily so the plain proxy path allocates little.
 */
export class RequestContext implements PluginContext {
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
  private remotePortOverride: number | undefined = undefined;
  private customVars: Map<string, string> | undefined = undefined;
  private queryArgs: URLSearchParams | undefined = undefined;
  private cookies: Map<string, string> | undefined = undefined;
  private jsonBody: unknown = undefined;
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
    switch (name) {
      case "uri":
        return this.path;
      case "request_uri":
        return this.req.url;
      case "args":
      case "query_string":
        return this.query === "" ? undefined : this.query;
      case "is_args":
        return this.query === "" ? "" : "?";
      case "host":
        return this.host;
      case "remote_addr":
        return this.remoteAddr;
      case "remote_port":
        if (this.remotePortOverride === undefined) return String(this.req.socket.remotePort ?? "");
        return this.remotePortOverride === 0 ? "" : String(this.remotePortOverride);
      case "realip_remote_addr":
        return this.realRemoteAddr;
      case "realip_remote_port":
        return String(this.req.socket.remotePort ?? "");
      case "server_addr":
        return normalizeAddress(this.req.socket.localAddress);
      case "server_port":
        return String(this.req.socket.localPort ?? "");
      case "request_method":
        return this.method;
      case "scheme":
        return "encrypted" in this.req.socket ? "https" : "http";
      case "server_protocol":
        return `HTTP/${this.req.httpVersion}`;
      case "route_id":
        return this.route?.id;
      case "route_name":
        return this.route?.name;
      case "service_id":
        return this.route?.serviceId;
      case "service_name":
        return this.route?.serviceName;
      case "consumer_name":
        return this.consumer?.username;
      case "consumer_group_id":
        return this.consumer?.groupId;
      case "upstream_uri":
        return this.upstreamUri;
      case "upstream_addr":
        return this.upstreamAddr;
      case "upstream_status":
        return this.upstreamStatuses?.join(", ");
      case "bytes_sent":
        return String(this.bytesSent);
      case "request_length":
        return String(this.requestLength());
      case "upstream_response_time":
        return this.upstreamEndTime > 0 ? (this.upstreamEndTime / 1000).toFixed(3) : undefined;
      case "response_source":
        // APISIX's: the upstream answered, or the proxy gave up on it (nginx), or Weir answered itself.
        return this.upstreamHeaderTime > 0 ? "upstream" : this.attempts > 0 ? "nginx" : "apisix";
      case "matched_uri":
        return this.route?.matchedUri;
      case "matched_host":
        return this.route?.matchedHost;
      case "status":
        return this.status === 0 ? undefined : String(this.status);
      case "request_time":
        return ((performance.now() - this.startTime) / 1000).toFixed(3);
      case "content_type":
        return this.req.headers["content-type"];
      case "content_length":
        return this.req.headers["content-length"];
      case "http_user_agent":
        return this.req.headers["user-agent"];
      case "http_host":
        return this.req.headers.host;
    }
    if (name.startsWith("http_")) return this.headerVar(name);
    if (name.startsWith("arg_")) {
      this.queryArgs ??= new URLSearchParams(this.query);
      return this.queryArgs.get(name.slice(4)) ?? undefined;
    }
    if (name.startsWith("cookie_")) return this.cookie(name.slice(7));
    if (name.startsWith("post_arg.")) return this.postArg(name.slice(9));
    return undefined;
  }

  /**
   * nginx's `$request_length`: request line, header lines and body, counted from what node:http parsed
   * (the exact bytes on the wire are not kept; whitespace around header values is not counted).
   */
  requestLength(): number {
    const req = this.req;
    let n = req.method!.length + (req.url?.length ?? 0) + 12; // "GET /x HTTP/1.1\r\n"
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 4;
    n += 2;
    if (this.body !== undefined) return n + this.body.length;
    const length = Number(req.headers["content-length"]);
    return Number.isFinite(length) && length > 0 ? n + length : n;
  }

  removeQueryArg(name: string): void {
    const kept = queryWithoutArg(this.query, name);
    if (kept === this.query) return;
    this.query = kept;
    this.queryArgs = undefined;
    this.upstreamUri = uriWithoutArg(this.upstreamUri, name);
  }

  setVar(name: string, value: string): void {
    this.customVars ??= new Map();
    this.customVars.set(name, value);
  }

  private headerVar(name: string): string | undefined {
    const value = this.req.headers[name.slice(5).replaceAll("_", "-")];
    if (value === undefined) return undefined;
    return typeof value === "string" ? value : value.join(", ");
  }

  private cookie(name: string): string | undefined {
    if (this.cookies === undefined) {
      this.cookies = new Map();
      const header = this.req.headers.cookie;
      if (header !== undefined) {
        for (const part of header.split(";")) {
          const eq = part.indexOf("=");
          if (eq === -1) continue;
          const key = part.slice(0, eq).trim();
          if (!this.cookies.has(key)) this.cookies.set(key, part.slice(eq + 1).trim());
        }
      }
    }
    return this.cookies.get(name);
  }

  /** `post_arg.a.b` reads a dotted path from a JSON body that was buffered before routing. */
  private postArg(path: string): string | undefined {
    if (this.jsonBody === undefined) {
      if (this.body === undefined) return undefined;
      try {
        this.jsonBody = JSON.parse(this.body.toString("utf8"));
      } catch {
        this.jsonBody = null;
      }
    }
    let cur: unknown = this.jsonBody;
    for (const part of path.split(".")) {
      if (cur === null || typeof cur !== "object") return undefined;
      cur = (cur as Record<string, unknown>)[part];
    }
    if (cur === undefined || cur === null) return undefined;
    return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
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
    this.jsonBody = undefined;
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

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:127.0.0.1` reads as APISIX's `127.0.0.1`. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

function hostWithoutPort(host: string | undefined): string {
  if (host === undefined || host === "") return "";
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf("]");
    return (end === -1 ? host : host.slice(0, end + 1)).toLowerCase();
  }
  const colon = host.indexOf(":");
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
}

/**
 * nginx's `$uri`: percent-decoded, `.`/`..` segments resolved, repeated slashes merged. Routing on the
 * normalized path is what stops `/public/../admin` or `/adm%69n` from slipping past a route's rules; the
 * upstream still receives the request URI as the client sent it. Plain paths skip all work.
 */
export function normalizePath(raw: string): string {
  let needs = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || (c === 47 /* / */ && (raw.charCodeAt(i + 1) === 47 || raw.charCodeAt(i + 1) === 46))) {
      needs = true;
      break;
    }
  }
  if (!needs) return raw;
  let decoded = raw;
  if (raw.includes("%")) {
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      decoded = raw; // invalid escapes are matched as sent
    }
  }
  const out: string[] = [];
  for (const seg of decoded.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const trailing = decoded.endsWith("/") || decoded.endsWith("/.") || decoded.endsWith("/..");
  const joined = `/${out.join("/")}`;
  return trailing && joined !== "/" ? `${joined}/` : joined;
}
