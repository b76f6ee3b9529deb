import assert from "node:assert/strict";
import { test } from "node:test";
import { hostWithoutPort, normalizeAddress, normalizePath } from "./normalize.js";

test("routing paths are normalized like nginx's $uri", () => {
  const cases: [string, string][] = [
    ["/ai/predict", "/ai/predict"],
    ["/", "/"],
    ["/ai//predict", "/ai/predict"],
    ["/public/../admin", "/admin"],
    ["/a/./b/", "/a/b/"],
    ["/adm%69n", "/admin"],
    ["/%2e%2e/secret", "/secret"],
    ["/../../etc", "/etc"],
    ["/bad%zzescape", "/bad%zzescape"],
    ["/trailing/..", "/"],
  ];
  for (const [raw, expected] of cases) assert.equal(normalizePath(raw), expected, raw);
});

test("plain paths are returned as the same string (no work on the hot path)", () => {
  const p = "/v1/chat/completions";
  assert.equal(normalizePath(p), p);
});

test("$host: the Host header without its port, lower-cased; an IPv6 literal keeps its brackets", () => {
  assert.equal(hostWithoutPort("Example.COM:8080"), "example.com");
  assert.equal(hostWithoutPort("example.com"), "example.com");
  assert.equal(hostWithoutPort("[2001:DB8::1]:9443"), "[2001:db8::1]");
  assert.equal(hostWithoutPort("[::1]"), "[::1]");
  assert.equal(hostWithoutPort(""), "");
  assert.equal(hostWithoutPort(undefined), "");
});

test("IPv4-mapped IPv6 peers read as their IPv4 address, as APISIX shows them", () => {
  assert.equal(normalizeAddress("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(normalizeAddress("::ffff:abcd"), "::ffff:abcd", "not a mapped IPv4 address");
  assert.equal(normalizeAddress("2001:db8::1"), "2001:db8::1");
  assert.equal(normalizeAddress(undefined), "");
});
