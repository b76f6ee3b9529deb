import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { boundRegexBacktracking } from "../router/regex-limit.js";
import {
  MAX_USER_AGENT,
  nestsUnboundedQuantifiers,
  type UaRestrictionConfig,
  uaRestriction,
  VERDICT_CACHE_SIZE,
} from "./ua-restriction.js";

const scope = { kind: "route", id: "1", revision: 1 };

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(uaRestriction, conf, "route"), undefined);
  const state = uaRestriction.compile!(conf as UaRestrictionConfig, scope);
  const call = (...agents: string[]) =>
    uaRestriction.access!(state, new TestContext({ headers: agents.length === 0 ? {} : { "User-Agent": agents } }));
  return { state, call };
}

const invalid = (conf: unknown) => validatePluginConfig(uaRestriction, conf, "route");
const DENIED = { status: 403, body: { message: "Not allowed" } };

test("schema: APISIX's defaults, exactly one list", () => {
  const conf: Record<string, unknown> = { denylist: ["my-bot1"] };
  assert.equal(invalid(conf), undefined);
  assert.deepEqual(conf, { denylist: ["my-bot1"], bypass_missing: false, message: "Not allowed" });
  assert.match(invalid({ allowlist: ["a"], denylist: ["b"] })!, /only one schema/);
  assert.match(invalid({ allowlist: "my-bot1" })!, /property "allowlist" validation failed: wrong type/);
  assert.match(invalid({ denylist: 100 })!, /property "denylist" validation failed: wrong type/);
  assert.match(invalid({ denylist: [""] })!, /denylist/);
  assert.match(invalid({ denylist: ["a"], message: "" })!, /message/);
  assert.match(invalid({ denylist: ["a"], bypass_missing: "yes" })!, /bypass_missing/);
});

test("a regex JavaScript cannot compile is a 400 naming the entry", () => {
  const err = invalid({ denylist: ["ok", "(unclosed"] });
  assert.match(err!, /property "denylist\[1\]" validation failed: .*invalid regular expression "\(unclosed"/);
});

test("denylist: APISIX's examples (exact names, regex, several User-Agent lines)", () => {
  const { call } = instance({ denylist: ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"] });
  assert.deepEqual(call("my-bot1"), DENIED);
  assert.deepEqual(call("Baiduspider/3.0"), DENIED);
  assert.equal(call("foo/bar"), undefined);
  assert.deepEqual(call("my-bot1", "my-bot2"), DENIED);
  assert.deepEqual(call("my-bot2", "my-bot1"), DENIED);
  assert.deepEqual(call("foo/bar", "my-bot1"), DENIED, "one denied line is enough");
});

test("allowlist: any allowed User-Agent line lets the request through", () => {
  const { call } = instance({ allowlist: ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"] });
  assert.equal(call("my-bot1"), undefined);
  assert.equal(call("Baiduspider/3.0"), undefined);
  assert.deepEqual(call("foo/bar"), DENIED);
  assert.equal(call("foo/bar", "my-bot1"), undefined);
  assert.equal(call("my-bot1", "foo/bar"), undefined);
});

test("a missing User-Agent is refused unless bypass_missing", () => {
  assert.deepEqual(instance({ allowlist: ["x"] }).call(), DENIED);
  assert.deepEqual(instance({ denylist: ["x"] }).call(), DENIED);
  assert.equal(instance({ denylist: ["x"], bypass_missing: true }).call(), undefined);
  assert.equal(instance({ allowlist: ["x"], bypass_missing: true }).call(), undefined);
});

test("custom message", () => {
  const { call } = instance({ denylist: ["Baiduspider"], message: "Do you want to do something bad?" });
  assert.deepEqual(call("Baiduspider/1.0"), { status: 403, body: { message: "Do you want to do something bad?" } });
});

test("surrounding whitespace does not change the verdict; regexes search anywhere, case-sensitively", () => {
  const { call } = instance({ allowlist: ["^curl/"] });
  assert.equal(call("  curl/8.0  "), undefined);
  assert.deepEqual(call("CURL/8.0"), DENIED);
  assert.equal(instance({ allowlist: ["(?i)^curl/"] }).call("CURL/8.0"), undefined);
});

test("verdicts are cached per User-Agent and the cache stays bounded", () => {
  const { state, call } = instance({ denylist: ["bot"] });
  for (let i = 0; i < VERDICT_CACHE_SIZE + 50; i++) call(`client/${i}`);
  assert.equal(state.verdicts.size, VERDICT_CACHE_SIZE);
  assert.equal(state.verdicts.has("client/0"), false, "oldest verdicts are evicted first");
  // The cache answers, not the regex: swapping the rule proves the cached verdict is used.
  state.rules = [/client/];
  assert.equal(call(`client/${VERDICT_CACHE_SIZE + 49}`), undefined);
});

test("nested unbounded repeats are found; refused only where the linear-time fallback cannot bound them", () => {
  for (const pattern of ["(a+)+$", "(a*)*b", "((ab)+c*)+", "(?:\\w+\\s?){2,}x", "(.*a)+"]) {
    assert.equal(nestsUnboundedQuantifiers(pattern), true, pattern);
    assert.equal(invalid({ denylist: [pattern] }), undefined, `${pattern}: bounded by the linear-time engine`);
  }
  for (const pattern of ["(a+)+\\1", "((?=a)a+)+$", "(?<=x)(a*)*b", "(x+){1,100}"]) {
    assert.equal(nestsUnboundedQuantifiers(pattern), true, pattern);
    assert.match(invalid({ denylist: [pattern] })!, /denylist\[0\].*cannot be bounded/, pattern);
  }
  for (const pattern of [
    "my-bot1",
    "(Baiduspider)/(\\d+)\\.(\\d+)",
    "(ab)+",
    "a+b*",
    "(a+)?",
    "\\(a+\\)+",
    "[(a+)]+",
  ]) {
    assert.equal(nestsUnboundedQuantifiers(pattern), false, pattern);
  }
});

test("an exponential pattern meets a hostile User-Agent and answers at once (the linear-time fallback)", {
  timeout: 10_000,
}, () => {
  boundRegexBacktracking(); // as every gateway does when it is created
  const { call } = instance({ denylist: ["^(a+)+$", "(a|aa)+$"] });
  // Without the fallback either regex takes minutes on 1000 a's and a '!'; the test would time out.
  assert.equal(call(`${"a".repeat(1000)}!`), undefined, "not denied: neither pattern matches");
  assert.equal((call("aaaa") as { status: number }).status, 403);
});

test("a User-Agent past MAX_USER_AGENT is refused without running the regexes", () => {
  const { call, state } = instance({ denylist: ["bot"] });
  let ran = 0;
  state.rules = [{ test: () => ++ran > 0 && false } as unknown as RegExp];
  assert.deepEqual(call("a".repeat(MAX_USER_AGENT + 1)), DENIED);
  assert.equal(ran, 0);
  assert.equal(call("a".repeat(MAX_USER_AGENT)), undefined);
  assert.equal(ran, 1);
  // Polynomial patterns stay bounded too: this cubic search over the longest accepted input takes ~0.2 s.
  const slow = instance({ denylist: ["a*a*b"] });
  const started = performance.now();
  assert.equal(slow.call("a".repeat(MAX_USER_AGENT)), undefined);
  assert.ok(performance.now() - started < 2_000);
});
