import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type IpRestrictionConfig, ipRestriction } from "./ip-restriction.js";

const scope = { kind: "route", id: "1", revision: 1 };

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(ipRestriction, conf, "route"), undefined);
  const state = ipRestriction.compile!(conf as IpRestrictionConfig, scope);
  return (remoteAddr: string) => ipRestriction.access!(state, new TestContext({ remoteAddr }));
}

const invalid = (conf: unknown) => validatePluginConfig(ipRestriction, conf, "route");

test("schema: APISIX's defaults, exactly one list, response_code 403..404", () => {
  const conf: Record<string, unknown> = { whitelist: ["127.0.0.1"] };
  assert.equal(invalid(conf), undefined);
  assert.deepEqual(conf, { whitelist: ["127.0.0.1"], message: "Your IP address is not allowed", response_code: 403 });
  assert.match(invalid({ whitelist: ["1.1.1.1"], blacklist: ["2.2.2.2"] })!, /only one schema/);
  assert.match(invalid({})!, /matches none/);
  assert.match(invalid({ whitelist: [] })!, /whitelist/);
  assert.match(invalid({ blacklist: ["1.1.1.1"], response_code: 401 })!, /response_code/);
  assert.match(invalid({ blacklist: ["1.1.1.1"], response_code: 405 })!, /response_code/);
  assert.equal(invalid({ blacklist: ["1.1.1.1"], response_code: 404 }), undefined);
  assert.match(invalid({ blacklist: ["1.1.1.1"], message: "" })!, /message/);
  assert.match(invalid({ blacklist: ["1.1.1.1"], message: "x".repeat(1025) })!, /message/);
});

test("schema: entries that are not addresses or CIDRs are refused, naming the entry", () => {
  assert.match(invalid({ whitelist: ["not-an-ip"] })!, /whitelist/);
  assert.match(invalid({ whitelist: ["1.1.1.1/33"] })!, /whitelist/);
  // The ip_def pattern lets this malformed IPv6 CIDR through; the parser does not.
  assert.match(invalid({ blacklist: [":/8"] })!, /invalid ip address: :\/8/);
  assert.equal(invalid({ whitelist: ["10.0.0.0/8", "::1", "fe80::/10", "0.0.0.0/0", "::/0"] }), undefined);
});

test("whitelist lets only listed addresses through, with APISIX's body", () => {
  const check = instance({ whitelist: ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"] });
  assert.equal(check("127.0.0.1"), undefined);
  assert.equal(check("10.20.30.40"), undefined);
  assert.equal(check("2001:db8::7"), undefined);
  assert.deepEqual(check("11.0.0.1"), { status: 403, body: { message: "Your IP address is not allowed" } });
  assert.deepEqual(check("2001:db9::1"), { status: 403, body: { message: "Your IP address is not allowed" } });
});

test("blacklist refuses listed addresses with the configured code and message", () => {
  const check = instance({ blacklist: ["192.168.0.0/16"], response_code: 404, message: "go away" });
  assert.deepEqual(check("192.168.1.1"), { status: 404, body: { message: "go away" } });
  assert.equal(check("192.169.0.1"), undefined);
  assert.equal(check("::1"), undefined);
});

test("an IPv4-mapped IPv6 peer matches its IPv4 rule", () => {
  const check = instance({ whitelist: ["127.0.0.1/32"] });
  assert.equal(check("::ffff:127.0.0.1"), undefined);
  assert.notEqual(check("::ffff:127.0.0.2"), undefined);
});

test("/0 covers its whole family and nothing of the other", () => {
  const v4 = instance({ blacklist: ["0.0.0.0/0"] });
  assert.notEqual(v4("1.2.3.4"), undefined);
  assert.notEqual(v4("255.255.255.255"), undefined);
  assert.equal(v4("2001:db8::1"), undefined);
  const v6 = instance({ blacklist: ["::/0"] });
  assert.notEqual(v6("2001:db8::1"), undefined);
  assert.notEqual(v6("::1"), undefined);
  assert.equal(v6("1.2.3.4"), undefined);
});
