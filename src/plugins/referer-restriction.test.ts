import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type RefererRestrictionConfig, refererHost, refererRestriction } from "./referer-restriction.js";

const scope = { kind: "route", id: "1", revision: 1 };

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(refererRestriction, conf, "route"), undefined);
  const state = refererRestriction.compile!(conf as RefererRestrictionConfig, scope);
  return (referer?: string) =>
    refererRestriction.access!(state, new TestContext({ headers: referer === undefined ? {} : { Referer: referer } }));
}

const invalid = (conf: unknown) => validatePluginConfig(refererRestriction, conf, "route");
const DENIED = { status: 403, body: { message: "Your referer host is not allowed" } };

test("schema: APISIX's defaults, exactly one list, host_def entries", () => {
  const conf: Record<string, unknown> = { whitelist: ["*.xx.com"] };
  assert.equal(invalid(conf), undefined);
  assert.deepEqual(conf, {
    whitelist: ["*.xx.com"],
    bypass_missing: false,
    message: "Your referer host is not allowed",
  });
  assert.match(invalid({ whitelist: ["a.com"], blacklist: ["b.com"] })!, /only one schema/);
  assert.match(invalid({ whitelist: ["a/b"] })!, /whitelist/);
  assert.match(invalid({ whitelist: ["a.*.com"] })!, /whitelist/);
  assert.match(invalid({ blacklist: ["a.com"], message: "" })!, /message/);
});

test("whitelist: APISIX's examples", () => {
  const check = instance({ whitelist: ["xx.com", "*.xx.com"] });
  assert.equal(check("http://xx.com/x"), undefined);
  assert.equal(check("https://www.xx.com/x?a=1"), undefined);
  assert.equal(check("http://xx.com:8080/"), undefined);
  assert.deepEqual(check("http://yy.com/x"), DENIED);
  assert.deepEqual(check(), DENIED, "missing Referer");
  assert.deepEqual(check("not a url"), DENIED, "malformed Referer counts as missing");
});

test("blacklist refuses listed hosts and lets others through", () => {
  const check = instance({ blacklist: ["evil.com", "*.tracker.net"], message: "no" });
  assert.deepEqual(check("http://evil.com/"), { status: 403, body: { message: "no" } });
  assert.deepEqual(check("http://a.b.tracker.net/"), { status: 403, body: { message: "no" } });
  assert.equal(check("http://good.org/"), undefined);
  assert.equal(check("http://tracker.net/"), undefined, "*.tracker.net is not tracker.net itself");
});

test("bypass_missing lets a missing or malformed Referer through", () => {
  const check = instance({ whitelist: ["xx.com"], bypass_missing: true });
  assert.equal(check(), undefined);
  assert.equal(check("ftp://xx.com/"), undefined);
  assert.deepEqual(check("http://yy.com/"), DENIED);
});

test("look-alike hosts do not match", () => {
  const exact = instance({ whitelist: ["example.org"] });
  assert.deepEqual(exact("http://example.org.evil.com/"), DENIED, "a suffix does not make a match");
  assert.deepEqual(exact("http://notexample.org/"), DENIED);
  assert.deepEqual(exact("http://sub.example.org/"), DENIED, "no wildcard, no subdomains");
  assert.deepEqual(exact("http://example.org@evil.com/"), DENIED, "userinfo is not the host");

  const wildcard = instance({ whitelist: ["*.example.org"] });
  assert.equal(wildcard("http://evil.com.example.org/"), undefined, "a real subdomain of example.org");
  assert.deepEqual(wildcard("http://example.org/"), DENIED, "the parent is not its own subdomain");
  assert.deepEqual(wildcard("http://evilexample.org/"), DENIED);
  assert.deepEqual(wildcard("http://example.org.evil.com/"), DENIED);
});

test("a blacklist cannot be dodged by case, a trailing dot, a port, userinfo or escapes", () => {
  const check = instance({ blacklist: ["evil.com"] });
  for (const referer of [
    "http://EVIL.com/",
    "http://evil.com./",
    "https://evil.com:443/",
    "http://good.org@evil.com/",
    "http://ev%69l.com/",
    "//evil.com/",
  ]) {
    assert.deepEqual(check(referer), DENIED, referer);
  }
});

test("refererHost reads the host as a URL parser would", () => {
  assert.equal(refererHost("https://Example.ORG:8443/path?q#f"), "example.org");
  assert.equal(refererHost("http://[::1]:8080/"), "[::1]");
  assert.equal(refererHost("http://exämple.org/"), "xn--exmple-cua.org");
  assert.equal(refererHost("http:///path"), undefined);
  assert.equal(refererHost("android-app://com.example/"), undefined);
});
