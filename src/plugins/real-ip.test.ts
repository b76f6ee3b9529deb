import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext, type TestRequest } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { parseAddress, type RealIpConfig, realIp } from "./real-ip.js";

const scope = { kind: "route", id: "1", revision: 1 };

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(realIp, conf, "route"), undefined);
  const state = realIp.compile!(conf as RealIpConfig, scope);
  return (request: TestRequest) => {
    const ctx = new TestContext(request);
    assert.equal(realIp.rewrite!(state, ctx), undefined, "real-ip never answers the client");
    return ctx;
  };
}

const invalid = (conf: unknown) => validatePluginConfig(realIp, conf, "route");

test("schema: source is required, recursive defaults to false, trusted_addresses are addresses", () => {
  const conf: Record<string, unknown> = { source: "http_x_real_ip" };
  assert.equal(invalid(conf), undefined);
  assert.deepEqual(conf, { source: "http_x_real_ip", recursive: false });
  assert.match(invalid({})!, /source/);
  assert.match(invalid({ source: "" })!, /source/);
  assert.match(invalid({ source: "x", trusted_addresses: [] })!, /trusted_addresses/);
  assert.match(invalid({ source: "x", trusted_addresses: ["nope"] })!, /trusted_addresses/);
  assert.match(invalid({ source: "x", trusted_addresses: [":/8"] })!, /invalid ip address: :\/8/);
});

test("APISIX's example: address and port from a query argument, sent by a trusted peer", () => {
  const run = instance({ source: "arg_realip", trusted_addresses: ["127.0.0.0/24"] });
  const ctx = run({ url: "/get?realip=1.2.3.4:9080", remoteAddr: "127.0.0.1" });
  assert.equal(ctx.remoteAddr, "1.2.3.4");
  assert.equal(ctx.var("remote_port"), "9080");
  assert.equal(ctx.realRemoteAddr, "127.0.0.1");
});

test("a peer outside trusted_addresses changes nothing, whatever it sends", () => {
  const run = instance({ source: "http_x_forwarded_for", trusted_addresses: ["10.0.0.0/8"] });
  const ctx = run({ headers: { "X-Forwarded-For": "1.1.1.1" }, remoteAddr: "192.0.2.9" });
  assert.equal(ctx.remoteAddr, "192.0.2.9");
});

test("without trusted_addresses nobody is trusted (Weir differs from APISIX here)", () => {
  const run = instance({ source: "http_x_forwarded_for" });
  assert.equal(run({ headers: { "X-Forwarded-For": "1.1.1.1" }, remoteAddr: "127.0.0.1" }).remoteAddr, "127.0.0.1");
  const everyone = instance({ source: "http_x_forwarded_for", trusted_addresses: ["0.0.0.0/0", "::/0"] });
  assert.equal(everyone({ headers: { "X-Forwarded-For": "1.1.1.1" }, remoteAddr: "::1" }).remoteAddr, "1.1.1.1");
});

test("X-Forwarded-For: the last hop, several lines read as one list", () => {
  const run = instance({ source: "http_x_forwarded_for", trusted_addresses: ["127.0.0.1", "::1"] });
  assert.equal(run({ headers: { "X-Forwarded-For": "::1, ::2" } }).remoteAddr, "::2");
  assert.equal(run({ headers: { "X-Forwarded-For": ["::1", "::2"] } }).remoteAddr, "::2");
  assert.equal(run({ headers: { "X-Forwarded-For": "1.1.1.1,   2.2.2.2" } }).remoteAddr, "2.2.2.2");
});

test("recursive walks right to left past trusted proxies (nginx's real_ip_recursive)", () => {
  const conf = { source: "http_x_forwarded_for", trusted_addresses: ["192.128.0.0/16", "127.0.0.0/24"] };
  const plain = instance(conf);
  const recursive = instance({ ...conf, recursive: true });
  const headers = { "X-Forwarded-For": "1.1.1.1, 192.128.1.1, 127.0.0.1" };
  assert.equal(recursive({ headers }).remoteAddr, "1.1.1.1");
  assert.equal(plain({ headers }).remoteAddr, "127.0.0.1", "not recursive: the last hop, trusted or not");
  // A client cannot skip past an untrusted hop by prepending addresses of its own.
  const spoofed = { "X-Forwarded-For": "6.6.6.6, 203.0.113.5, 192.128.1.1" };
  assert.equal(recursive({ headers: spoofed }).remoteAddr, "203.0.113.5");
  assert.equal(recursive({ headers: { "X-Forwarded-For": "127.0.0.2, 192.128.9.9" } }).remoteAddr, "127.0.0.2");
  // An unreadable hop stops the walk and, being no address, changes nothing.
  assert.equal(recursive({ headers: { "X-Forwarded-For": "1.1.1.1, unknown, 127.0.0.1" } }).remoteAddr, "127.0.0.1");
});

test("a missing or invalid address leaves the client as it was", () => {
  const run = instance({ source: "http_x_real_ip", trusted_addresses: ["127.0.0.1"] });
  assert.equal(run({}).remoteAddr, "127.0.0.1");
  for (const bad of ["", "example.com", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:http", "[::1", "300.1.1.1"]) {
    assert.equal(run({ headers: { "X-Real-IP": bad } }).remoteAddr, "127.0.0.1", bad);
  }
  const ctx = run({ headers: { "X-Real-IP": "[2001:db8::1]:443" } });
  assert.equal(ctx.remoteAddr, "2001:db8::1");
  assert.equal(ctx.var("remote_port"), "443");
});

test("parseAddress: the forms APISIX's parse_addr accepts", () => {
  assert.deepEqual(parseAddress("1.2.3.4"), { ip: "1.2.3.4", port: undefined });
  assert.deepEqual(parseAddress("1.2.3.4:80"), { ip: "1.2.3.4", port: 80 });
  assert.deepEqual(parseAddress("::1"), { ip: "::1", port: undefined });
  assert.deepEqual(parseAddress("[::1]"), { ip: "::1", port: undefined });
  assert.deepEqual(parseAddress("[::1]:8080"), { ip: "::1", port: 8080 });
  assert.equal(parseAddress("[1.2.3.4]"), undefined);
  assert.equal(parseAddress("[::1]x"), undefined);
});
