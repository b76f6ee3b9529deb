import assert from "node:assert/strict";
import { test } from "node:test";
import { InstanceCooldown, MAX_RETRY_AFTER_MS, retryAfterMs, retryAfterSeconds } from "./cooldown.js";

const NOW = Date.parse("2025-01-01T00:00:00Z");

test("Retry-After as delay-seconds, as an HTTP-date in each RFC 9110 format, and retry-after-ms first", () => {
  assert.equal(retryAfterMs({ "retry-after": "2" }, NOW), 2000);
  assert.equal(retryAfterMs({ "retry-after": " 7 " }, NOW), 7000);
  assert.equal(retryAfterMs({ "retry-after": "1.5" }, NOW), 1500, "fractions, as openai-node reads them");
  assert.equal(retryAfterMs({ "retry-after": "Wed, 01 Jan 2025 00:00:30 GMT" }, NOW), 30_000, "IMF-fixdate");
  assert.equal(retryAfterMs({ "retry-after": "Wednesday, 01-Jan-25 00:00:30 GMT" }, NOW), 30_000, "RFC 850");
  assert.equal(retryAfterMs({ "retry-after": "Wed Jan  1 00:00:30 2025" }, NOW), 30_000, "asctime is UTC");
  assert.equal(retryAfterMs({ "retry-after-ms": "250", "retry-after": "9" }, NOW), 250);
});

test("attack: a garbage, negative or enormous Retry-After never parks an instance for long", () => {
  for (const bad of ["soon", "-5", "1e9x", "", "0x10", "Foo 12", "12 apples"])
    assert.equal(retryAfterMs({ "retry-after": bad }, NOW), undefined, JSON.stringify(bad));
  assert.equal(retryAfterMs({ "retry-after": "Tue, 31 Dec 2024 23:59:00 GMT" }, NOW), 0, "a past date: no wait");
  assert.equal(retryAfterMs({ "retry-after": "99999999" }, NOW), MAX_RETRY_AFTER_MS);
  assert.equal(retryAfterMs({ "retry-after-ms": "abc" }, NOW), undefined);
});

test("Anthropic's reset headers count only for the limits that ran out, the latest of them", () => {
  const headers = {
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:05Z",
    "anthropic-ratelimit-tokens-remaining": "0",
    "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:12Z",
    "anthropic-ratelimit-output-tokens-remaining": "900",
    "anthropic-ratelimit-output-tokens-reset": "2025-01-01T00:00:59Z",
  };
  assert.equal(retryAfterMs(headers, NOW), 12_000);
  assert.equal(retryAfterMs({ ...headers, "retry-after": "3" }, NOW), 3000, "retry-after wins");
  assert.equal(retryAfterMs({ "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:05Z" }, NOW), undefined);
});

test("a sit-out starts once, is extended but never shortened, and ends by itself", () => {
  const cd = new InstanceCooldown();
  assert.equal(cd.coolingAt(1000), false);
  assert.equal(cd.sitOut(2000, "rate_limited", 1000), true, "a fresh sit-out");
  assert.equal(cd.sitOut(500, "overloaded", 1500), false, "already sitting out; a shorter one changes nothing");
  assert.deepEqual([cd.until, cd.reason], [3000, "rate_limited"]);
  assert.equal(cd.sitOut(5000, "overloaded", 1500), false);
  assert.deepEqual([cd.until, cd.reason], [6500, "overloaded"]);
  assert.equal(cd.coolingAt(6499), true);
  assert.equal(cd.coolingAt(6500), false);
  assert.equal(cd.until, 0, "an expired sit-out is cleared, so the next pick reads no clock");
});

test("answers: 429/503 with Retry-After sit out; other 5xx count towards the failure policy; a success resets", () => {
  const policy = { failures: 2, durationMs: 30_000 };
  const cd = new InstanceCooldown();
  assert.equal(cd.answered(429, {}, policy, 0), undefined, "a 429 that names no wait is neither");
  assert.equal(cd.answered(500, {}, policy, 0), undefined);
  assert.equal(cd.answered(200, {}, policy, 0), undefined);
  assert.equal(cd.failures, 0, "a success starts the count again");
  assert.equal(cd.answered(502, {}, policy, 0), undefined);
  assert.equal(cd.answered(503, {}, policy, 10), "failures", "the second failure in a row");
  assert.equal(cd.until, 30_010);
  const limited = new InstanceCooldown();
  assert.equal(limited.answered(429, { "retry-after": "2" }, undefined, 100), "rate_limited");
  assert.equal(limited.until, 2100);
  const overloaded = new InstanceCooldown();
  assert.equal(overloaded.answered(529, { "retry-after": "1" }, undefined, 0), "overloaded");
  const noPolicy = new InstanceCooldown();
  for (let i = 0; i < 10; i++) assert.equal(noPolicy.answered(500, {}, undefined, 0), undefined);
  assert.equal(noPolicy.until, 0, "without a cooldown policy failures never park an instance");
});

test("Weir's own Retry-After is whole seconds, at least 1", () => {
  assert.equal(retryAfterSeconds(1000, 0), "1");
  assert.equal(retryAfterSeconds(1001, 0), "2");
  assert.equal(retryAfterSeconds(10, 9), "1");
});
