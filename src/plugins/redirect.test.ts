// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${name} is the APISIX template syntax under test
import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { parseTemplate, type RedirectConfig, redirect } from "./redirect.js";

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(redirect, conf, "route"), undefined);
  return redirect.compile!(conf as RedirectConfig, { kind: "route", id: "1", revision: 1 });
}

test("schema: defaults, exactly one of uri/regex_uri/http_to_https, APISIX's messages", () => {
  const conf: Record<string, unknown> = { uri: "/x" };
  assert.equal(validatePluginConfig(redirect, conf, "route"), undefined);
  assert.deepEqual(conf, { uri: "/x", ret_code: 302, encode_uri: false, append_query_string: false });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(redirect, c, "route")!;
  assert.match(bad({ uri: "/" }), /"uri" validation failed: string too short/);
  assert.match(bad({ uri: "/a", ret_code: 199 }), /"ret_code" validation failed/);
  assert.match(bad({ regex_uri: ["a"] }), /"regex_uri" validation failed/);
  assert.match(bad({ uri: "/a", http_to_https: true }), /only one schema/);
  assert.match(bad({ http_to_https: true, append_query_string: true }), /only one of `http_to_https` and/);
  assert.match(bad({ regex_uri: ["^/(a", "/$1"] }), /invalid regex_uri \(\^\/\(a, \/\$1\), err:/);
  assert.match(bad({ regex_uri: ["^/(a)", "/$x"] }), /invalid regex_uri/);
});

test("parseTemplate: APISIX's grammar (names without dots, \\$ kept literally)", () => {
  assert.deepEqual(parseTemplate("/a/$uri.html"), ["/a/", { variable: "uri" }, ".html"]);
  assert.deepEqual(parseTemplate("${host}:8443\\$x$"), [{ variable: "host" }, ":8443\\$x$"]);
});

test("rewrite: uri template renders variables, unset ones are empty", () => {
  const state = instance({ uri: "https://$host/new$uri?from=$arg_from&x=$arg_missing" });
  const ctx = new TestContext({ url: "/old?from=me", headers: { host: "api.example.com:9080" } });
  assert.deepEqual(redirect.rewrite!(state, ctx), {
    status: 302,
    headers: { Location: "https://api.example.com/new/old?from=me&x=" },
  });
});

test("rewrite: regex_uri substitutes the first match of $uri; no match proxies", () => {
  const state = instance({ regex_uri: ["^/iresty/(.*)/(.*)/(.*)", "/$1-$2-$3"], ret_code: 307 });
  assert.deepEqual(redirect.rewrite!(state, new TestContext({ url: "/iresty/a/b/c" })), {
    status: 307,
    headers: { Location: "/a-b-c" },
  });
  assert.equal(redirect.rewrite!(state, new TestContext({ url: "/other" })), undefined);
});

test("rewrite: append_query_string joins with & when the target has a query; encode_uri spares it", () => {
  const state = instance({ uri: "/t?x=1", append_query_string: true, encode_uri: true });
  assert.deepEqual(redirect.rewrite!(state, new TestContext({ url: "/p?a=b" })), {
    status: 302,
    headers: { Location: "/t?x=1&a=b" },
  });
  const encoded = instance({ uri: "/a b/$arg_q", encode_uri: true });
  assert.equal(
    (redirect.rewrite!(encoded, new TestContext({ url: "/?q=%C3%BC" })) as { headers: Record<string, string> }).headers
      .Location,
    "/a%20b/%C3%BC",
  );
});

test("rewrite: http_to_https honours X-Forwarded-Proto, uses 301/308", () => {
  const state = instance({ http_to_https: true });
  const get = new TestContext({ url: "/p?q=1", headers: { host: "h.example" } });
  assert.deepEqual(redirect.rewrite!(state, get), { status: 301, headers: { Location: "https://h.example/p?q=1" } });
  const post = new TestContext({ method: "POST", url: "/p", headers: { host: "h.example" } });
  assert.equal((redirect.rewrite!(state, post) as { status: number }).status, 308);
  const tls = new TestContext({ headers: { host: "h", "x-forwarded-proto": "https" } });
  assert.equal(redirect.rewrite!(state, tls), undefined);
});
