import assert from "node:assert/strict";
import { test } from "node:test";
import { compileIpMatcher, validateIp } from "./ip.js";
import { compileRouter } from "./router.js";
import type { MatchInput, RouteSpec, VarSource } from "./types.js";
import { compileVars, validateVars } from "./vars.js";

const vars = (map: Record<string, string> = {}): VarSource => ({ var: (n) => map[n] });
const req = (path: string, extra: Partial<MatchInput> = {}): MatchInput => ({
  method: "GET",
  path,
  host: "api.example.com",
  remoteAddr: "10.0.0.1",
  ...extra,
});
function route(id: string, spec: Partial<RouteSpec<string>>): RouteSpec<string> {
  return { id, payload: id, uris: ["/"], priority: 0, ...spec };
}

test("router semantics table (radixtree_host_uri)", () => {
  const router = compileRouter([
    route("exact", { uris: ["/ai/predict"] }),
    route("prefix-short", { uris: ["/ai/*"] }),
    route("prefix-long", { uris: ["/ai/models/*"] }),
    route("partial-seg", { uris: ["/cha*"] }),
    route("param", { uris: ["/v1/:model/chat"] }),
    route("named-rest", { uris: ["/files/*path"] }),
    route("post-only", { uris: ["/only-post"], methods: ["POST"] }),
    route("exact-guarded", { uris: ["/guarded"], methods: ["PUT"] }),
    route("guard-fallback", { uris: ["/gua*"] }),
    route("low", { uris: ["/prio"], priority: 1 }),
    route("high", { uris: ["/prio"], priority: 10 }),
    route("tie-first", { uris: ["/tie"] }),
    route("tie-second", { uris: ["/tie"] }),
    route("host-exact", { uris: ["/h"], hosts: ["api.example.com"] }),
    route("host-wild", { uris: ["/h"], hosts: ["*.example.com"] }),
    route("host-any", { uris: ["/h"] }),
    route("host-only-wild", { uris: ["/w"], hosts: ["*.example.com"] }),
    route("cidr", { uris: ["/net"], remoteAddrs: ["192.168.0.0/16", "2001:db8::/32"] }),
    route("vars", { uris: ["/vars"], vars: [["arg_tier", "==", "gold"]] }),
    route("root", { uris: ["/"] }),
  ]);
  const table: [MatchInput, string | undefined, VarSource?][] = [
    [req("/ai/predict"), "exact"],
    [req("/ai/other"), "prefix-short"],
    [req("/ai/models/llama"), "prefix-long"],
    [req("/ai"), undefined],
    [req("/chat"), "partial-seg"],
    [req("/v1/llama3/chat"), "param"],
    [req("/v1/llama3/chat/extra"), undefined],
    [req("/files/a/b/c.txt"), "named-rest"],
    [req("/only-post", { method: "POST" }), "post-only"],
    [req("/only-post"), undefined],
    [req("/guarded", { method: "PUT" }), "exact-guarded"],
    [req("/guarded"), "guard-fallback"],
    [req("/prio"), "high"],
    [req("/tie"), "tie-first"],
    [req("/h"), "host-exact"],
    [req("/h", { host: "eu.example.com" }), "host-wild"],
    [req("/h", { host: "a.b.example.com" }), "host-wild"],
    [req("/h", { host: "other.org" }), "host-any"],
    [req("/w", { host: "example.com" }), undefined],
    [req("/net", { remoteAddr: "192.168.3.4" }), "cidr"],
    [req("/net", { remoteAddr: "::ffff:192.168.3.4" }), "cidr"],
    [req("/net", { remoteAddr: "2001:db8::1" }), "cidr"],
    [req("/net", { remoteAddr: "10.1.1.1" }), undefined],
    [req("/vars"), undefined, vars({ arg_tier: "silver" })],
    [req("/vars"), "vars", vars({ arg_tier: "gold" })],
    [req("/"), "root"],
    [req("/unknown"), undefined],
  ];
  for (const [input, expected, v] of table) {
    const m = router.match(input, v ?? vars());
    assert.equal(m?.id, expected, `${input.method} ${input.host}${input.path} (${input.remoteAddr})`);
  }
  assert.deepEqual(router.match(req("/v1/llama3/chat"), vars())?.params, { model: "llama3" });
  assert.deepEqual(router.match(req("/files/a/b"), vars())?.params, { path: "a/b" });
  assert.equal(router.needsBody, false);
});

test("post_arg vars make the router ask for the body", () => {
  const router = compileRouter([route("json", { uris: ["/x"], vars: [["post_arg.model", "==", "gpt-4o"]] })]);
  assert.equal(router.needsBody, true);
  assert.equal(router.match(req("/x"), vars({ "post_arg.model": "gpt-4o" }))?.id, "json");
  assert.equal(router.match(req("/x"), vars({ "post_arg.model": "other" })), undefined);
});

test("every vars operator, negation and AND/OR nesting", () => {
  const v = vars({ arg_n: "15", arg_s: "Hello", arg_list: "a, b", remote_addr: "10.1.2.3" });
  const cases: [unknown[], boolean][] = [
    [[["arg_s", "==", "Hello"]], true],
    [[["arg_s", "~=", "Hello"]], false],
    [[["arg_n", "==", 15]], true],
    [[["arg_n", ">", 10]], true],
    [[["arg_n", "<", 10]], false],
    [[["arg_n", ">=", 15]], true],
    [[["arg_n", "<=", 14]], false],
    [[["arg_s", "~~", "^H.l"]], true],
    [[["arg_s", "~~", "^h"]], false],
    [[["arg_s", "~*", "^h"]], true],
    [[["arg_s", "in", ["Hi", "Hello"]]], true],
    [[["arg_list", "has", "b"]], true],
    [[["remote_addr", "ipmatch", ["10.0.0.0/8"]]], true],
    [[["arg_s", "!", "==", "Hello"]], false],
    [[["arg_missing", "==", "x"]], false],
    [[["arg_missing", "~=", "x"]], true],
    [["OR", ["arg_s", "==", "no"], ["arg_n", "==", "15"]], true],
    [["AND", ["arg_s", "==", "Hello"], ["arg_n", "==", "16"]], false],
    [["!AND", ["arg_s", "==", "Hello"], ["arg_n", "==", "16"]], true],
    [["OR", ["AND", ["arg_s", "==", "Hello"], ["arg_n", ">", 1]], ["arg_s", "==", "x"]], true],
    [[], true],
  ];
  for (const [expr, expected] of cases) assert.equal(compileVars(expr)(v), expected, JSON.stringify(expr));
});

test("invalid vars and addresses are refused with a message", () => {
  for (const bad of [
    "not-an-array",
    [["arg_a", "===", "1"]],
    [["arg_a", "~~", "("]],
    [["arg_a", "in", "not-a-list"]],
    [["arg_a"]],
    [["arg_a", ">", "abc"]],
    ["AND"],
  ]) {
    assert.equal(typeof validateVars(bad), "string", JSON.stringify(bad));
  }
  assert.equal(validateVars([["arg_a", "==", "1"]]), undefined);
  for (const bad of ["10.0.0.0/33", "300.1.1.1", "fe80::/129", "nonsense", "1.2.3.4/x"]) {
    assert.equal(typeof validateIp(bad), "string", bad);
  }
  const m = compileIpMatcher(["127.0.0.1", "::1", "fd00::/8"]);
  assert.equal(m("127.0.0.1"), true);
  assert.equal(m("::1"), true);
  assert.equal(m("fd12:3456::1"), true);
  assert.equal(m("127.0.0.2"), false);
});

test("5,000 routes compile and every one matches its own path", () => {
  const specs = Array.from({ length: 5000 }, (_, i) =>
    route(`r${i}`, {
      uris: i % 2 === 0 ? [`/svc${i}/exact`] : [`/svc${i}/*`],
      methods: i % 3 === 0 ? ["POST"] : undefined,
    }),
  );
  const router = compileRouter(specs);
  for (let i = 0; i < 5000; i++) {
    const path = i % 2 === 0 ? `/svc${i}/exact` : `/svc${i}/deep/path`;
    const method = i % 3 === 0 ? "POST" : "GET";
    assert.equal(router.match(req(path, { method }), vars())?.id, `r${i}`);
  }
});
