// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${name} is the APISIX template syntax under test
import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext, type TestRequest } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { compileReplacement, escapeUri, type ProxyRewriteConfig, proxyRewrite } from "./proxy-rewrite.js";

/** Validates like the Admin API, compiles once, and runs the rewrite phase for one request. */
function rewrite(conf: Record<string, unknown>, request: TestRequest): TestContext {
  assert.equal(validatePluginConfig(proxyRewrite, conf, "route"), undefined);
  const state = proxyRewrite.compile!(conf as ProxyRewriteConfig, { kind: "route", id: "1", revision: 1 });
  const ctx = new TestContext(request);
  assert.equal(proxyRewrite.rewrite!(state, ctx), undefined);
  return ctx;
}

const invalid = (conf: Record<string, unknown>) => validatePluginConfig(proxyRewrite, conf, "route");

test("schema: APISIX's checks and messages", () => {
  assert.match(
    invalid({ uri: "hello" })!,
    /property "uri" validation failed: failed to match pattern "\^\\\/\.\*" with "hello"/,
  );
  assert.match(invalid({ method: "FETCH" })!, /property "method" validation failed: matches none of the enum values/);
  assert.match(invalid({ host: "a b" })!, /property "host" validation failed/);
  assert.match(
    invalid({ regex_uri: ["^/test/(.*)"] })!,
    /"regex_uri" validation failed: expect array to have at least 2 items/,
  );
  assert.match(invalid({ regex_uri: ["^/a", "/b", "^/c"] })!, /The length of regex_uri should be an even number/);
  assert.match(invalid({ regex_uri: ["[^/test/(.*)", "/$1"] })!, /invalid regex_uri\(\[\^\/test\/\(\.\*\), \/\$1\)/);
  assert.match(invalid({ regex_uri: ["^/test/(.*)", "/$`1"] })!, /invalid capturing variable name found/);
  assert.match(invalid({ regex_uri: ["^/(.*)", "/${1"] })!, /the closing bracket in "1" variable is missing/);
  assert.match(invalid({ regex_uri: ["^/(.*)", "/$name"] })!, /named captures not supported yet/);
  assert.match(invalid({ headers: { "X-Api:Version": "v2" } })!, /invalid field character in header/);
  assert.match(invalid({ headers: { "X-Api-Version": "v2\r\n" } })!, /invalid value character in header/);
  assert.match(invalid({ headers: { set: { "X-A": "a\nb" } } })!, /invalid value character in header/);
  assert.match(invalid({ headers: { add: {} } })!, /validation failed/);
  assert.match(invalid({ headers: { remove: [] } })!, /validation failed/);
  for (const ok of [
    { uri: "/x", method: "PATCH", host: "test.com:8080" },
    { headers: { add: { "X-A": ["1", 2] }, set: { "X-B": 3 }, remove: ["Referer"] } },
    { headers: { "X-Api-Version": "v2", "X-Num": 1 } },
    { uri: "/x", scheme: "https" }, // removed in APISIX 3.0; ignored, not an error
  ]) {
    assert.equal(invalid(ok), undefined, JSON.stringify(ok));
  }
});

test("schema: use_real_request_uri_unsafe defaults to false", () => {
  const conf: Record<string, unknown> = { uri: "/x" };
  invalid(conf);
  assert.deepEqual(conf, { uri: "/x", use_real_request_uri_unsafe: false });
});

test("replacement templates follow ngx.re.sub", () => {
  assert.deepEqual(compileReplacement("/$1_${2}x$$3"), ["/", 1, "_", 2, "x$3"]);
  assert.deepEqual(compileReplacement("$10a"), [10, "a"]);
  assert.equal(typeof compileReplacement("trailing $"), "string");
  assert.equal(typeof compileReplacement("${}"), "string");
  assert.equal(typeof compileReplacement("${1a}"), "string");
});

test("uri replaces the path and keeps the client's query string", () => {
  const conf = { uri: "/plugin_proxy_rewrite_args" };
  assert.equal(
    rewrite(conf, { url: "/hello?q=apisix&a=iresty" }).upstreamUri,
    "/plugin_proxy_rewrite_args?q=apisix&a=iresty",
  );
  assert.equal(rewrite(conf, { url: "/hello" }).upstreamUri, "/plugin_proxy_rewrite_args");
  assert.equal(
    rewrite(conf, { url: "/hello?" }).upstreamUri,
    "/plugin_proxy_rewrite_args",
    "an empty query adds nothing",
  );
});

test("a uri with its own query string is joined to the client's with &", () => {
  assert.equal(rewrite({ uri: "/x?a=1" }, { url: "/hello?q=2" }).upstreamUri, "/x?a=1&q=2");
  assert.equal(rewrite({ uri: "/x?a=1" }, { url: "/hello" }).upstreamUri, "/x?a=1");
});

test("uri interpolates variables", () => {
  assert.equal(rewrite({ uri: "/$arg_new_uri" }, { url: "/test?new_uri=hello" }).upstreamUri, "/hello?new_uri=hello");
  assert.equal(
    rewrite({ uri: "/api/${http_x_version}$uri" }, { url: "/users/7", headers: { "X-Version": "v2" } }).upstreamUri,
    "/api/v2/users/7",
  );
  const ctx = rewrite({ uri: "/new$uri" }, { url: "/old" });
  assert.equal(ctx.var("uri"), "/new/old", "later plugins and the log see the rewritten $uri");
});

test("a ? inside a variable's value is escaped, never a query separator (APISIX proxy-rewrite3 TEST 24)", () => {
  const ctx = rewrite(
    { uri: "/$uri/remain", host: "test.xxxx.com" },
    { url: "/hello%3f0z=700%26a=c%20HTTP/1.1%0D%0AHost:google.com%0d%0a%0d%0a" },
  );
  assert.equal(ctx.upstreamUri, "//hello%253F0z=700&a=c%20HTTP/1.1%0D%0AHost:google.com%0D%0A%0D%0A/remain");
  assert.equal(ctx.upstreamHost, "test.xxxx.com");
});

test("without uri the normalized path is re-escaped like nginx (APISIX proxy-rewrite3 TEST 22)", () => {
  const ctx = rewrite(
    { host: "test.xxxx.com" },
    { url: "/hello%3f0z=700%26a=c%20HTTP/1.1%0D%0AHost:google.com%0d%0a%0d%0a" },
  );
  assert.equal(ctx.upstreamUri, "/hello%3F0z=700&a=c%20HTTP/1.1%0D%0AHost:google.com%0D%0A%0D%0A");
  assert.equal(rewrite({ host: "a.com" }, { url: "/caf%C3%A9/%5Fx?q=%20" }).upstreamUri, "/caf%C3%A9/_x?q=%20");
});

test("escapeUri uses nginx's NGX_ESCAPE_URI set", () => {
  assert.equal(escapeUri("/a-z_A.Z~0!$&'()*+,;=:@/"), "/a-z_A.Z~0!$&'()*+,;=:@/", "kept as is");
  assert.equal(escapeUri(' "#%<>?\\^`{|}\x7f\x01'), "%20%22%23%25%3C%3E%3F%5C%5E%60%7B%7C%7D%7F%01");
  assert.equal(escapeUri("/ü中"), "/%C3%BC%E4%B8%AD");
});

test("regex_uri rewrites with captures", () => {
  const conf = { regex_uri: ["^/test/(.*)/(.*)/(.*)", "/$1_$2_$3"] };
  assert.equal(rewrite(conf, { url: "/test/plugin/proxy/rewrite" }).upstreamUri, "/plugin_proxy_rewrite");
  assert.equal(rewrite(conf, { url: "/test/plugin/proxy/rewrite?x=1" }).upstreamUri, "/plugin_proxy_rewrite?x=1");
  assert.equal(rewrite(conf, { url: "/other" }).upstreamUri, "/other", "no match: the path is kept");
  assert.equal(rewrite({ regex_uri: ["^/test/(.*)", "/${1}1"] }, { url: "/test/hello" }).upstreamUri, "/hello1");
  assert.equal(rewrite({ regex_uri: ["^/(a)?(b)", "/[$1][$2][$3]$$"] }, { url: "/b" }).upstreamUri, "/[][b][]$");
});

test("regex_uri replaces only the first match and keeps the rest of the path", () => {
  assert.equal(rewrite({ regex_uri: ["/v1/", "/v2/"] }, { url: "/api/v1/x/v1/" }).upstreamUri, "/api/v2/x/v1/");
});

test("regex_uri tries pairs in order and the first match wins", () => {
  const conf = {
    regex_uri: ["^/test/(.*)/hello", "/hello/$1", "^/test/(.*)/world", "/world/$1", "^/test/(.*)", "/any"],
  };
  assert.equal(rewrite(conf, { url: "/test/plugin/hello" }).upstreamUri, "/hello/plugin");
  assert.equal(rewrite(conf, { url: "/test/plugin/world" }).upstreamUri, "/world/plugin");
  assert.equal(rewrite(conf, { url: "/test/other" }).upstreamUri, "/any");
});

test("regex_uri: a ? in the replacement starts a query the client's args join with &", () => {
  const conf = { regex_uri: ["^/test/(.*)/(.*)/(.*)", "/$1_$2_$3?a=c"] };
  assert.equal(rewrite(conf, { url: "/test/plugin/proxy/rewrite" }).upstreamUri, "/plugin_proxy_rewrite?a=c");
  assert.equal(rewrite(conf, { url: "/test/plugin/proxy/rewrite?b=d" }).upstreamUri, "/plugin_proxy_rewrite?a=c&b=d");
  // The client's path had a decoded '?': then everything is path and escaped, as APISIX does.
  assert.equal(rewrite(conf, { url: "/test/a%3F/b/c" }).upstreamUri, "/a%3F_b_c%3Fa=c");
});

test("regex_uri (?i) prefix matches case-insensitively", () => {
  assert.equal(rewrite({ regex_uri: ["(?i)^/API/(.*)", "/$1"] }, { url: "/api/users" }).upstreamUri, "/users");
});

test("headers: add, set and remove, in that order, with variables", () => {
  const ctx = rewrite(
    {
      headers: {
        add: { "X-Added": "$remote_addr", "X-Multi": ["a", "$arg_name"] },
        set: { "X-Api-Test": "hello", "X-Key": "$http_key", "X-Gone": "$helle" },
        remove: ["Referer"],
      },
    },
    {
      url: "/hello?name=Bill",
      headers: { "X-Api-Test": "", "X-Multi": "client", Key: "X-APISIX", Referer: "http://x", "X-Gone": "old" },
      remoteAddr: "10.1.1.1",
    },
  );
  assert.deepEqual(ctx.requestHeaderLog, [
    "add X-Added: 10.1.1.1",
    "add X-Multi: a",
    "add X-Multi: Bill",
    "set X-Api-Test: hello",
    "set X-Key: X-APISIX",
    "remove X-Gone", // an unset variable leaves the header out, as nginx's set_header with ""
    "remove Referer",
  ]);
  assert.deepEqual(ctx.requestHeaderValues("x-multi"), ["client", "a", "Bill"]);
  assert.equal(ctx.getRequestHeader("x-api-test"), "hello");
  assert.equal(ctx.getRequestHeader("referer"), undefined);
  assert.equal(ctx.getRequestHeader("x-gone"), undefined);
});

test("headers: set with several values replaces the header with several lines", () => {
  const ctx = rewrite({ headers: { set: { "X-V": ["1", "2"] } } }, { headers: { "X-V": "0" } });
  assert.deepEqual(ctx.requestHeaderValues("x-v"), ["1", "2"]);
});

test("headers: the legacy flat map means set", () => {
  const ctx = rewrite({ headers: { "X-Api-Version": "v2", "X-Num": 3 } }, { headers: { "x-api-version": "v1" } });
  assert.deepEqual(ctx.requestHeaderLog, ["set X-Api-Version: v2", "set X-Num: 3"]);
  assert.deepEqual(ctx.requestHeaderValues("x-api-version"), ["v2"]);
});

test("headers: regex_uri captures are available as $N (APISIX proxy-rewrite3 TEST 27/29)", () => {
  const conf = { regex_uri: ["^/test/(.*)/(.*)/(.*)", "/echo"], headers: { add: { "X-Request-ID": "$1/$2/$3" } } };
  assert.equal(
    rewrite(conf, { url: "/test/plugin/proxy/rewrite" }).getRequestHeader("x-request-id"),
    "plugin/proxy/rewrite",
  );
  assert.equal(rewrite(conf, { url: "/echo" }).getRequestHeader("x-request-id"), "//", "no match: captures are empty");
});

test("method and host", () => {
  const ctx = rewrite({ method: "POST", host: "test.com:6443" }, { method: "GET", url: "/hello" });
  assert.equal(ctx.upstreamMethod, "POST");
  assert.equal(ctx.var("request_method"), "POST", "as ngx.req.set_method, later plugins see it");
  assert.equal(ctx.upstreamHost, "test.com:6443");
  assert.equal(ctx.upstreamUri, "/hello");
});

test("use_real_request_uri_unsafe sends the request uri as the client sent it", () => {
  const unsafe = { use_real_request_uri_unsafe: true };
  assert.equal(rewrite(unsafe, { url: "/print%5Furi%5Fdetailed" }).upstreamUri, "/print%5Furi%5Fdetailed");
  assert.equal(rewrite(unsafe, { url: "/a?q=apisix" }).upstreamUri, "/a?q=apisix", "the query string exactly once");
  const withUri = { uri: "/print_uri_detailed", use_real_request_uri_unsafe: true };
  assert.equal(
    rewrite(withUri, { url: "/hello?name=a%20b&x=%E4%B8%AD" }).upstreamUri,
    "/print_uri_detailed?name=a%20b&x=%E4%B8%AD",
  );
  assert.equal(rewrite(withUri, { url: "/hello?a=1?b=2" }).upstreamUri, "/print_uri_detailed?a=1?b=2");
  const ownQuery = { uri: "/plugin_proxy_rewrite_args?x=1", use_real_request_uri_unsafe: true };
  assert.equal(rewrite(ownQuery, { url: "/hello?q=apisix" }).upstreamUri, "/plugin_proxy_rewrite_args?x=1&q=apisix");
  const regex = { regex_uri: ["^/hello/(.*)", "/print/$1"], use_real_request_uri_unsafe: true };
  assert.equal(
    rewrite(regex, { url: "/hello/%ED%85%8C%EC%8A%A4%ED%8A%B8" }).upstreamUri,
    "/print/%ED%85%8C%EC%8A%A4%ED%8A%B8",
    "matched against the raw uri, not re-escaped",
  );
});

test("the same config compiled once serves many requests", () => {
  const conf = { regex_uri: ["^/u/(\\d+)", "/users/$1"], headers: { set: { "X-User": "$1" } } };
  assert.equal(validatePluginConfig(proxyRewrite, conf, "route"), undefined);
  const state = proxyRewrite.compile!(conf as ProxyRewriteConfig, { kind: "route", id: "1", revision: 1 });
  for (const id of ["1", "22", "333"]) {
    const ctx = new TestContext({ url: `/u/${id}` });
    proxyRewrite.rewrite!(state, ctx);
    assert.equal(ctx.upstreamUri, `/users/${id}`);
    assert.equal(ctx.getRequestHeader("x-user"), id);
  }
});
