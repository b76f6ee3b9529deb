import assert from "node:assert/strict";
import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { test } from "node:test";
import { hostWithoutPort, normalizePath } from "./normalize.js";
import { type RequestState, requestVar } from "./request-vars.js";

interface Init {
  url?: string;
  headers?: Record<string, string | string[]>;
  /** The socket peer's port. */
  peerPort?: number;
}

/** A request as it arrives (nothing routed or sent yet), with `over` applied on top. */
function stateOf(init: Init = {}, over: Partial<RequestState> = {}): RequestState {
  const socket = new Socket();
  if (init.peerPort !== undefined) Object.defineProperty(socket, "remotePort", { value: init.peerPort });
  const req = new IncomingMessage(socket);
  const url = init.url ?? "/";
  req.method = "GET";
  req.url = url;
  req.headers = init.headers ?? {};
  const q = url.indexOf("?");
  const host = req.headers.host;
  return {
    req,
    startTime: 0,
    method: "GET",
    path: normalizePath(q === -1 ? url : url.slice(0, q)),
    query: q === -1 ? "" : url.slice(q + 1),
    host: hostWithoutPort(typeof host === "string" ? host : undefined),
    remoteAddr: "192.0.2.1",
    realRemoteAddr: "192.0.2.1",
    remotePortOverride: undefined,
    routeId: undefined,
    routeName: undefined,
    serviceId: undefined,
    serviceName: undefined,
    matchedUri: undefined,
    matchedHost: undefined,
    consumerName: undefined,
    consumerGroupId: undefined,
    upstreamUri: url,
    upstreamAddr: undefined,
    upstreamStatuses: undefined,
    upstreamHeaderTime: 0,
    upstreamEndTime: 0,
    attempts: 0,
    status: 0,
    bytesSent: 0,
    body: undefined,
    parsed: undefined,
    ...over,
  };
}

test("host is the Host header without port, lower-cased, IPv6 brackets kept; http_host is the header as sent", () => {
  const plain = stateOf({ headers: { host: "API.Example.com:9080" } });
  assert.equal(requestVar(plain, "host"), "api.example.com");
  assert.equal(requestVar(plain, "http_host"), "API.Example.com:9080");
  assert.equal(requestVar(stateOf({ headers: { host: "[2001:DB8::7]:8443" } }), "host"), "[2001:db8::7]");
  assert.equal(requestVar(stateOf({ headers: { host: "[::1]" } }), "host"), "[::1]");
  assert.equal(requestVar(stateOf(), "host"), "", "no Host header");
});

test("remote_port follows real-ip like remote_addr; realip_remote_port stays the socket's", () => {
  const init = { peerPort: 51234 };
  const untouched = stateOf(init);
  assert.equal(requestVar(untouched, "remote_port"), "51234");
  assert.equal(requestVar(untouched, "realip_remote_port"), "51234");
  const withPort = stateOf(init, { remoteAddr: "1.2.3.4", remotePortOverride: 9080 });
  assert.equal(requestVar(withPort, "remote_addr"), "1.2.3.4");
  assert.equal(requestVar(withPort, "remote_port"), "9080");
  assert.equal(requestVar(withPort, "realip_remote_addr"), "192.0.2.1");
  assert.equal(requestVar(withPort, "realip_remote_port"), "51234");
  // nginx's realip module: an address without a port makes the port 0, which $remote_port reads as empty.
  assert.equal(requestVar(stateOf(init, { remoteAddr: "1.2.3.4", remotePortOverride: 0 }), "remote_port"), "");
});

test("response_source: apisix when Weir answered, nginx when the upstream was tried but never answered, else upstream", () => {
  assert.equal(requestVar(stateOf({}, { status: 401 }), "response_source"), "apisix");
  assert.equal(requestVar(stateOf({}, { status: 502, attempts: 2 }), "response_source"), "nginx");
  assert.equal(
    requestVar(stateOf({}, { status: 200, attempts: 2, upstreamHeaderTime: 3.5 }), "response_source"),
    "upstream",
  );
});

test("arg_*: the first argument of the current query, decoded; args and is_args", () => {
  const s = stateOf({ url: "/p?a=1&b=x%20y&a=2&c" });
  assert.equal(requestVar(s, "arg_a"), "1");
  assert.equal(requestVar(s, "arg_b"), "x y");
  assert.equal(requestVar(s, "arg_c"), "");
  assert.equal(requestVar(s, "arg_missing"), undefined);
  assert.equal(requestVar(s, "args"), "a=1&b=x%20y&a=2&c");
  assert.equal(requestVar(s, "is_args"), "?");
  // The parse is kept, but a changed query (removeQueryArg) is parsed again.
  const changed: RequestState = { ...s, query: "b=2" };
  assert.equal(requestVar(changed, "arg_a"), undefined);
  assert.equal(requestVar(changed, "arg_b"), "2");
  const none = stateOf({ url: "/p" });
  assert.equal(requestVar(none, "args"), undefined);
  assert.equal(requestVar(none, "is_args"), "");
});

test("cookie_*: the first pair of that name, trimmed; http_*: dashes for underscores, repeated lines joined", () => {
  const s = stateOf({
    headers: {
      cookie: "a=1; session = abc ;a=2; flag",
      "x-api-version": "v2",
      "x-forwarded-for": ["1.1.1.1", "2.2.2.2"],
    },
  });
  assert.equal(requestVar(s, "cookie_a"), "1");
  assert.equal(requestVar(s, "cookie_session"), "abc");
  assert.equal(requestVar(s, "cookie_flag"), undefined, "a pair without '=' is no cookie");
  assert.equal(requestVar(s, "http_x_api_version"), "v2");
  assert.equal(requestVar(s, "http_x_forwarded_for"), "1.1.1.1, 2.2.2.2");
  assert.equal(requestVar(s, "http_x_missing"), undefined);
  assert.equal(requestVar(stateOf(), "cookie_a"), undefined, "no Cookie header");
});

test("post_arg.*: a dotted path into the buffered JSON body, parsed again when the body is replaced", () => {
  const s = stateOf({}, { body: Buffer.from('{"model":"gpt-4o","opts":{"n":2,"tags":["a"]},"off":null}') });
  assert.equal(requestVar(s, "post_arg.model"), "gpt-4o");
  assert.equal(requestVar(s, "post_arg.opts.n"), "2");
  assert.equal(requestVar(s, "post_arg.opts.tags"), '["a"]');
  assert.equal(requestVar(s, "post_arg.off"), undefined);
  assert.equal(requestVar(s, "post_arg.model.x"), undefined);
  const replaced: RequestState = { ...s, body: Buffer.from('{"model":"claude"}') };
  assert.equal(requestVar(replaced, "post_arg.model"), "claude");
  assert.equal(requestVar(stateOf({}, { body: Buffer.from("not json") }), "post_arg.model"), undefined);
  assert.equal(requestVar(stateOf(), "post_arg.model"), undefined, "no buffered body");
});

test("upstream and response fields: statuses of every attempt, unset until known", () => {
  const before = stateOf();
  assert.equal(requestVar(before, "status"), undefined);
  assert.equal(requestVar(before, "upstream_status"), undefined);
  assert.equal(requestVar(before, "upstream_response_time"), undefined);
  assert.equal(requestVar(before, "bytes_sent"), "0");
  const after = stateOf({}, { status: 200, upstreamStatuses: [502, 200], upstreamEndTime: 12.5, bytesSent: 42 });
  assert.equal(requestVar(after, "status"), "200");
  assert.equal(requestVar(after, "upstream_status"), "502, 200");
  assert.equal(requestVar(after, "upstream_response_time"), "0.013");
  assert.equal(requestVar(after, "bytes_sent"), "42");
  assert.equal(requestVar(after, "no_such_variable"), undefined);
});
