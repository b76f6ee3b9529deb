import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import { normalizeAddress } from "./normalize.js";

/**
 * What the variable table reads of one request: the request as it arrived and the facts the lifecycle
 * records about it as it runs. The proxy's RequestContext is one; the plugin unit tests' double is
 * another, so a variable means the same in both.
 */
export interface RequestState {
  readonly req: IncomingMessage;
  /** Monotonic ms (performance.now()) when the request arrived. */
  readonly startTime: number;
  /** The client's method. */
  readonly method: string;
  /** The request line's path, normalized (normalizePath). */
  readonly path: string;
  /** Query string without its '?', or '' (what removeQueryArg left of it). */
  readonly query: string;
  /** Host header without port, lower-cased (hostWithoutPort). */
  readonly host: string;
  /** The client address: the socket peer's, or what real-ip set. */
  readonly remoteAddr: string;
  /** The socket peer, whatever real-ip decided. */
  readonly realRemoteAddr: string;
  /** The port real-ip set along with the address (0: it gave none); undefined: real-ip did not run. */
  readonly remotePortOverride: number | undefined;

  /** The matched route and its service (undefined before routing or when none matched). */
  readonly routeId: string | undefined;
  readonly routeName: string | undefined;
  readonly serviceId: string | undefined;
  readonly serviceName: string | undefined;
  /** The matched route's uri and host patterns (the metrics' matched_uri / matched_host labels). */
  readonly matchedUri: string | undefined;
  readonly matchedHost: string | undefined;
  /** The consumer an auth plugin attached, and its consumer group. */
  readonly consumerName: string | undefined;
  readonly consumerGroupId: string | undefined;

  /** Path and query sent upstream. */
  readonly upstreamUri: string;
  /** `ip:port` of the upstream node(s) tried. */
  readonly upstreamAddr: string | undefined;
  /** The upstream's status for each attempt. */
  readonly upstreamStatuses: readonly number[] | undefined;
  /** ms since startTime when an upstream answered with headers; 0: none did. */
  readonly upstreamHeaderTime: number;
  /** ms since startTime when the upstream's answer was complete; 0: not (yet). */
  readonly upstreamEndTime: number;
  /** Upstream attempts made. */
  readonly attempts: number;
  /** The status the client gets; 0 until known. */
  readonly status: number;
  /** Bytes sent to the client so far. */
  readonly bytesSent: number;
  /** The buffered request body, when a plugin (or the router, for post_arg) read or replaced it. */
  readonly body: Buffer | undefined;

  /** The table's own per-request parse results (created on first use; owners only carry it). */
  parsed: ParsedRequest | undefined;
}

/**
 * Request parts the table parses on first use. Each remembers what it was parsed from, so a changed
 * query (removeQueryArg) or body (setBody) is parsed afresh without its owner having to say so.
 */
export interface ParsedRequest {
  argsOf: string;
  args: URLSearchParams | undefined;
  cookies: Map<string, string> | undefined;
  jsonOf: Buffer | undefined;
  /** The JSON body; null when the body is not JSON. */
  json: unknown;
}

/**
 * nginx's and APISIX's variables, computed from `s` (APISIX's `ctx.var`). A `switch` on the name, so a
 * lookup is a string compare or a few, with no allocation; the prefixed families (`http_*`, `arg_*`,
 * `cookie_*`, `post_arg.*`) come after. Variables set with setVar are the context's business: it looks
 * them up first and asks the table only when none is set.
 */
export function requestVar(s: RequestState, name: string): string | undefined {
  switch (name) {
    case "uri":
      return s.path;
    case "request_uri":
      return s.req.url;
    case "args":
    case "query_string":
      return s.query === "" ? undefined : s.query;
    case "is_args":
      return s.query === "" ? "" : "?";
    case "host":
      return s.host;
    case "remote_addr":
      return s.remoteAddr;
    case "remote_port":
      // nginx's realip module replaces $remote_port with $remote_addr; an address set without a port is
      // port 0, which $remote_port reads as empty.
      if (s.remotePortOverride === undefined) return String(s.req.socket.remotePort ?? "");
      return s.remotePortOverride === 0 ? "" : String(s.remotePortOverride);
    case "realip_remote_addr":
      return s.realRemoteAddr;
    case "realip_remote_port":
      return String(s.req.socket.remotePort ?? "");
    case "server_addr":
      return normalizeAddress(s.req.socket.localAddress);
    case "server_port":
      return String(s.req.socket.localPort ?? "");
    case "request_method":
      return s.method;
    case "scheme":
      return "encrypted" in s.req.socket ? "https" : "http";
    case "server_protocol":
      return `HTTP/${s.req.httpVersion}`;
    case "route_id":
      return s.routeId;
    case "route_name":
      return s.routeName;
    case "service_id":
      return s.serviceId;
    case "service_name":
      return s.serviceName;
    case "consumer_name":
      return s.consumerName;
    case "consumer_group_id":
      return s.consumerGroupId;
    case "upstream_uri":
      return s.upstreamUri;
    case "upstream_addr":
      return s.upstreamAddr;
    case "upstream_status":
      // nginx joins the statuses of every attempt: "502, 200".
      return s.upstreamStatuses?.join(", ");
    case "bytes_sent":
      return String(s.bytesSent);
    case "request_length":
      return String(requestLength(s));
    case "upstream_response_time":
      return s.upstreamEndTime > 0 ? (s.upstreamEndTime / 1000).toFixed(3) : undefined;
    case "response_source":
      // APISIX's: the upstream answered, or the proxy gave up on it (nginx), or Weir answered itself.
      return s.upstreamHeaderTime > 0 ? "upstream" : s.attempts > 0 ? "nginx" : "apisix";
    case "matched_uri":
      return s.matchedUri;
    case "matched_host":
      return s.matchedHost;
    case "status":
      return s.status === 0 ? undefined : String(s.status);
    case "request_time":
      return ((performance.now() - s.startTime) / 1000).toFixed(3);
    case "content_type":
      return s.req.headers["content-type"];
    case "content_length":
      return s.req.headers["content-length"];
    case "http_user_agent":
      return s.req.headers["user-agent"];
    case "http_host":
      return s.req.headers.host;
  }
  if (name.startsWith("http_")) return headerVar(s.req, name);
  if (name.startsWith("arg_")) return argVar(s, name.slice(4));
  if (name.startsWith("cookie_")) return cookieVar(s, name.slice(7));
  if (name.startsWith("post_arg.")) return postArgVar(s, name.slice(9));
  return undefined;
}

/**
 * nginx's `$request_length`: request line, header lines and body, counted from what node:http parsed
 * (the exact bytes on the wire are not kept; whitespace around header values is not counted).
 */
export function requestLength(s: RequestState): number {
  const req = s.req;
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12; // "GET /x HTTP/1.1\r\n"
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 4;
  n += 2;
  if (s.body !== undefined) return n + s.body.length;
  const length = Number(req.headers["content-length"]);
  return Number.isFinite(length) && length > 0 ? n + length : n;
}

/** `http_x_foo`: the `x-foo` request header as the client sent it; repeated lines joined with ", ". */
function headerVar(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.slice(5).replaceAll("_", "-")];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.join(", ");
}

function parsedOf(s: RequestState): ParsedRequest {
  s.parsed ??= { argsOf: "", args: undefined, cookies: undefined, jsonOf: undefined, json: undefined };
  return s.parsed;
}

/** `arg_foo`: the first `foo` argument of the current query, decoded (nginx's `$arg_foo`). */
function argVar(s: RequestState, name: string): string | undefined {
  const parsed = parsedOf(s);
  if (parsed.args === undefined || parsed.argsOf !== s.query) {
    parsed.args = new URLSearchParams(s.query);
    parsed.argsOf = s.query;
  }
  return parsed.args.get(name) ?? undefined;
}

/** `cookie_foo`: the first `foo` pair of the Cookie header, as nginx's `$cookie_foo` takes the first. */
function cookieVar(s: RequestState, name: string): string | undefined {
  const parsed = parsedOf(s);
  if (parsed.cookies === undefined) {
    const cookies = new Map<string, string>();
    const header = s.req.headers.cookie;
    if (header !== undefined) {
      for (const part of header.split(";")) {
        const eq = part.indexOf("=");
        if (eq === -1) continue;
        const key = part.slice(0, eq).trim();
        if (!cookies.has(key)) cookies.set(key, part.slice(eq + 1).trim());
      }
    }
    parsed.cookies = cookies;
  }
  return parsed.cookies.get(name);
}

/**
 * `post_arg.a.b`: a dotted path into a JSON body that was buffered before (the router reads the body
 * first when a route's vars need it). Objects and arrays render as JSON; a body that is no JSON has none.
 */
function postArgVar(s: RequestState, path: string): string | undefined {
  const body = s.body;
  if (body === undefined) return undefined;
  const parsed = parsedOf(s);
  if (parsed.jsonOf !== body) {
    parsed.jsonOf = body;
    try {
      parsed.json = JSON.parse(body.toString("utf8"));
    } catch {
      parsed.json = null;
    }
  }
  let cur: unknown = parsed.json;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return undefined;
  return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
}
