import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope, Reply } from "../plugin-api/plugin.js";
import {
  compileWith,
  type LeakyBucketStore,
  type LimitReqConfig,
  LocalLeakyBucketStore,
  limitKey,
  limitReq,
  REJECTED,
} from "./limit-req.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 7 };

/** Validates like the Admin API (defaults filled in) and compiles with a hand-driven clock. */
function instance(conf: Record<string, unknown>, options: { maxKeys?: number } = {}) {
  const err = validatePluginConfig(limitReq, conf, "route");
  assert.equal(err, undefined);
  const clock = { now: 0 };
  const state = compileWith(conf as unknown as LimitReqConfig, scope, {
    now: () => clock.now,
    sweepIntervalMs: 0,
    ...options,
  });
  const request = (ctx = new TestContext()) => limitReq.access!(state, ctx);
  return { state, clock, request, destroy: () => limitReq.destroy!(state) };
}

/** Weir adds Retry-After to rejections: 1/rate seconds always make room again (at least 1 s). */
const RETRY_1S = { "Retry-After": "1" };

test("schema: APISIX's defaults are filled in and bounds enforced", () => {
  const conf: Record<string, unknown> = { rate: 1, burst: 0, key: "remote_addr" };
  assert.equal(validatePluginConfig(limitReq, conf, "route"), undefined);
  assert.deepEqual(conf, {
    rate: 1,
    burst: 0,
    key: "remote_addr",
    key_type: "var",
    policy: "local",
    rejected_code: 503,
    nodelay: false,
    allow_degradation: false,
  });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(limitReq, c, "route");
  assert.match(bad({ rate: 0, burst: 0, key: "k" })!, /property "rate" validation failed/);
  assert.match(bad({ rate: 1, burst: -1, key: "k" })!, /property "burst" validation failed/);
  assert.match(bad({ rate: 1, burst: 1 })!, /property "key" is required/);
  assert.match(bad({ rate: 1, burst: 1, key: "k", key_type: "header" })!, /"key_type" validation failed: matches none/);
  assert.match(bad({ rate: 1, burst: 1, key: "k", rejected_code: 600 })!, /"rejected_code" validation failed/);
  assert.match(bad({ rate: 1, burst: 1, key: "k", rejected_msg: "" })!, /"rejected_msg" validation failed/);
  assert.match(bad({ rate: 1, burst: 1, key: "k", policy: "redis" })!, /property "redis_host" is required/);
  assert.match(
    bad({ rate: 1, burst: 1, key: "k", policy: "redis-sentinel" })!,
    /property "policy" validation failed: matches none of the enum values/,
    "limit-req has no Sentinel policy, as in APISIX",
  );
});

test("bucket: rate=1 burst=1 accepts, delays by excess/rate, rejects past burst without counting", () => {
  const b = new LocalLeakyBucketStore(1, 1, { sweepIntervalMs: 0 });
  const table: [at: number, expected: number][] = [
    [0, 0], // empty bucket: through at once
    [0, 1000], // excess 1000 = burst: waits 1 s
    [0, REJECTED], // excess would be 2000 > 1000
    [500, REJECTED], // 1000 - 500 + 1000 = 1500 > 1000; the rejected ones above were not counted
    [1000, 1000], // 1000 - 1000 + 1000 = 1000: waits 1 s again
    [3000, 0], // fully leaked
    [3250, 750], // 0 - 250 + 1000
  ];
  for (const [at, expected] of table) assert.equal(b.incoming("k", at), expected, `at ${at} ms`);
});

test("bucket: burst=0 admits exactly `rate` requests per second, evenly spaced", () => {
  const b = new LocalLeakyBucketStore(2, 0, { sweepIntervalMs: 0 });
  assert.equal(b.incoming("k", 0), 0);
  assert.equal(b.incoming("k", 499), REJECTED);
  assert.equal(b.incoming("k", 500), 0);
  assert.equal(b.incoming("k", 999), REJECTED);
  assert.equal(b.incoming("k", 1000), 0);
});

test("bucket: fractional rates store the excess truncated to an integer, as resty.limit.req's unsigned long", () => {
  const b = new LocalLeakyBucketStore(1.5, 5, { sweepIntervalMs: 0 });
  assert.equal(b.incoming("k", 0), 0);
  // 0 - 1500 * 1 / 1000 + 1000 = 998.5 → delay from the untruncated value, 998 stored
  assert.equal(b.incoming("k", 1), (998.5 / 1500) * 1000);
  // 998 - 1.5 + 1000 = 1996.5 (1997 had 998.5 been stored)
  assert.equal(b.incoming("k", 2), (1996.5 / 1500) * 1000);
  // sub-millisecond clocks are floored to ms like ngx.now(): no time passed, 1996 + 1000
  assert.equal(b.incoming("k", 2.9), (2996 / 1500) * 1000);
});

test("bucket: keys are independent", () => {
  const b = new LocalLeakyBucketStore(1, 0, { sweepIntervalMs: 0 });
  assert.equal(b.incoming("a", 0), 0);
  assert.equal(b.incoming("b", 0), 0);
  assert.equal(b.incoming("a", 10), REJECTED);
});

test("access: admitted, delayed (a promise that waits excess/rate), then rejected with rejected_code", async () => {
  const { request, clock, destroy } = instance({ rate: 20, burst: 1, key: "remote_addr" });
  assert.equal(request(), undefined);
  const started = performance.now();
  const delayed = request();
  assert.ok(delayed instanceof Promise, "the second request waits");
  assert.deepEqual(request(), { status: 503, headers: RETRY_1S }, "past burst: rejected, no body without rejected_msg");
  assert.equal(await delayed, undefined, "then it proceeds");
  assert.ok(performance.now() - started >= 45, "1000/20 = 50 ms");
  clock.now = 100; // two requests' worth leaked at 20/s
  assert.equal(request(), undefined);
  destroy();
});

test("access: rejected_msg becomes {error_msg} and rejected_code the status", () => {
  const { request, destroy } = instance({
    rate: 1,
    burst: 0,
    key: "remote_addr",
    rejected_code: 429,
    rejected_msg: "slow down",
  });
  assert.equal(request(), undefined);
  assert.deepEqual(request(), { status: 429, body: { error_msg: "slow down" }, headers: RETRY_1S } satisfies Reply);
  destroy();
});

test("access: nodelay lets delayed requests through at once, still counted", () => {
  const { request, destroy } = instance({ rate: 1, burst: 2, key: "remote_addr", nodelay: true });
  assert.equal(request(), undefined);
  assert.equal(request(), undefined, "would wait 1 s");
  assert.equal(request(), undefined, "would wait 2 s");
  assert.deepEqual(request(), { status: 503, headers: RETRY_1S });
  destroy();
});

test("a rejection's Retry-After is 1/rate rounded up: at 0.25 requests/s a client waits 4 s", () => {
  const { request, destroy } = instance({ rate: 0.25, burst: 0, key: "remote_addr", rejected_code: 429 });
  assert.equal(request(), undefined);
  assert.deepEqual(request(), { status: 429, headers: { "Retry-After": "4" } });
  destroy();
});

test("access: delays under 1 ms are not slept (APISIX's delay >= 0.001)", async () => {
  const { request, destroy } = instance({ rate: 2000, burst: 10, key: "remote_addr" });
  assert.equal(request(), undefined);
  assert.equal(request(), undefined, "excess 1 request at 2000/s: 0.5 ms, proceeds at once");
  const third = request();
  assert.ok(third instanceof Promise, "excess 2 requests: exactly 1 ms, slept");
  await third;
  destroy();
});

test("key: a variable, with the client address when it is unset or empty", () => {
  const { state, request, destroy } = instance({ rate: 1, burst: 0, key: "http_x_api_key" });
  const client = (key: string | undefined, ip = "10.0.0.1") =>
    new TestContext({ remoteAddr: ip, headers: key === undefined ? {} : { "X-Api-Key": key } });
  assert.equal(limitKey(state, client("alice")), "alice");
  assert.equal(limitKey(state, client(undefined)), "10.0.0.1");
  assert.equal(limitKey(state, client("")), "10.0.0.1");
  assert.equal(request(client("alice", "10.0.0.1")), undefined);
  assert.equal(request(client("bob", "10.0.0.1")), undefined, "another key, same address: own bucket");
  assert.deepEqual(
    request(client("alice", "10.0.0.2")),
    { status: 503, headers: RETRY_1S },
    "same key from elsewhere: same bucket",
  );
  assert.equal(request(client(undefined, "10.0.0.3")), undefined);
  assert.deepEqual(request(client(undefined, "10.0.0.3")), { status: 503, headers: RETRY_1S });
  destroy();
});

test("key: var_combination interpolates; no resolved variable falls back to the client address", () => {
  const { state, destroy } = instance({
    rate: 1,
    burst: 0,
    key: "$remote_addr $http_x_user",
    key_type: "var_combination",
  });
  assert.equal(
    limitKey(state, new TestContext({ remoteAddr: "10.0.0.1", headers: { "x-user": "u1" } })),
    "10.0.0.1 u1",
  );
  assert.equal(limitKey(state, new TestContext({ remoteAddr: "10.0.0.1" })), "10.0.0.1 ");
  destroy();
  const onlyHeaders = instance({ rate: 1, burst: 0, key: "$http_a-$http_b", key_type: "var_combination" });
  assert.equal(limitKey(onlyHeaders.state, new TestContext({ remoteAddr: "10.0.0.9" })), "10.0.0.9");
  assert.equal(limitKey(onlyHeaders.state, new TestContext({ headers: { b: "2" } })), "-2");
  onlyHeaders.destroy();
  // APISIX counts no resolved variable in a key without any: the client address is the key.
  const literal = instance({ rate: 1, burst: 0, key: "everyone", key_type: "var_combination" });
  assert.equal(limitKey(literal.state, new TestContext({ remoteAddr: "10.0.0.5" })), "10.0.0.5");
  literal.destroy();
});

test("instances (route config revisions) never share buckets", () => {
  const first = instance({ rate: 1, burst: 0, key: "remote_addr" });
  const second = instance({ rate: 1, burst: 0, key: "remote_addr" });
  assert.equal(first.request(), undefined);
  assert.deepEqual(first.request(), { status: 503, headers: RETRY_1S });
  assert.equal(second.request(), undefined, "a new revision starts afresh");
  first.destroy();
  second.destroy();
});

test("eviction: thousands of idle client addresses are swept once their buckets drained", () => {
  const b = new LocalLeakyBucketStore(10, 5, { sweepIntervalMs: 0 });
  for (let i = 0; i < 5000; i++) b.incoming(`10.0.${i >> 8}.${i & 255}`, 0);
  b.incoming("busy", 0);
  b.incoming("busy", 0); // excess 1000
  assert.equal(b.size, 5001);
  // A bucket is dropped only when the next request could not tell: excess + 1000 leaked (100 ms at 10/s
  // for an excess of 0). Dropping at excess 0 alone would let a request at 50 ms skip its wait.
  assert.equal(b.sweep(99), 0);
  assert.equal(b.sweep(100), 5000);
  assert.equal(b.size, 1, "the busy key still holds excess");
  assert.equal(b.incoming("busy", 150), 50, "and kept its state: 1000 - 1500 + 1000 = 500 → 50 ms");
});

test("eviction: a swept key behaves exactly as if it had been kept", () => {
  const kept = new LocalLeakyBucketStore(2, 1, { sweepIntervalMs: 0 });
  const swept = new LocalLeakyBucketStore(2, 1, { sweepIntervalMs: 0 });
  for (const b of [kept, swept]) {
    b.incoming("k", 0);
    b.incoming("k", 0);
  }
  swept.sweep(1000); // excess 1000 + 1000 leaked at 2/s after 1 s
  assert.equal(swept.size, 0);
  for (const at of [1000, 1000, 1000, 1200, 1700])
    assert.equal(swept.incoming("k", at), kept.incoming("k", at), `at ${at}`);
});

test("eviction: the idle sweep runs on an unref'd timer from compile until destroy", async () => {
  const clock = { now: 0 };
  const state = compileWith({ rate: 100, burst: 0, key: "remote_addr" }, scope, {
    now: () => clock.now,
    sweepIntervalMs: 5,
  });
  for (let i = 0; i < 100; i++) limitReq.access!(state, new TestContext({ remoteAddr: `10.0.0.${i}` }));
  const store = state.store as LocalLeakyBucketStore;
  assert.equal(store.size, 100);
  clock.now = 10_000;
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(store.size, 0);
  limitReq.destroy!(state);
});

test("memory cap: past maxKeys the least recently used key is forgotten, busy keys survive a flood", () => {
  const b = new LocalLeakyBucketStore(1, 1000, { sweepIntervalMs: 0, maxKeys: 100 });
  b.incoming("busy", 0);
  for (let i = 0; i < 10_000; i++) {
    b.incoming(`flood-${i}`, 0);
    if (i % 10 === 0) b.incoming("busy", 0);
    assert.ok(b.size <= 100);
  }
  // busy was counted 1 + 1000 times at t=0: its excess is 1000 * 1000 (= burst), so it is still limited.
  assert.equal(b.incoming("busy", 0), REJECTED, "busy kept its bucket through 10 000 new keys");
  assert.equal(b.incoming("flood-0", 0), 0, "an old idle key was forgotten and starts afresh");
});

test("allow_degradation decides when the store fails, sync or async", async () => {
  const failing: LeakyBucketStore = {
    incoming() {
      throw new Error("redis down");
    },
    close() {},
  };
  const failingAsync: LeakyBucketStore = {
    incoming: () => Promise.reject(new Error("redis down")),
    close() {},
  };
  const slow: LeakyBucketStore = { incoming: () => Promise.resolve(5), close() {} };
  const strict = instance({ rate: 1, burst: 0, key: "remote_addr" });
  const lenient = instance({ rate: 1, burst: 0, key: "remote_addr", allow_degradation: true });
  strict.state.store = failing;
  lenient.state.store = failing;
  assert.deepEqual(strict.request(), { status: 500 });
  assert.equal(lenient.request(), undefined);
  strict.state.store = failingAsync;
  lenient.state.store = failingAsync;
  assert.deepEqual(await strict.request(), { status: 500 });
  assert.equal(await lenient.request(), undefined);
  strict.state.store = slow;
  assert.equal(await strict.request(), undefined, "an async store's delay is waited too");
});
