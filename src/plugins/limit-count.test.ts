import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope } from "../plugin-api/plugin.js";
import type { CounterResult, RateLimitCounter } from "../ratelimit/counter.js";
import { LocalFixedWindowCounter } from "../ratelimit/local-fixed.js";
import { compileWith, counterKey, type LimitCountConfig, limitCount, limitKey } from "./limit-count.js";

const routeScope: PluginScope = { kind: "route", id: "r1", revision: 3 };

/** Validates like the Admin API (defaults filled in) and compiles against a counter with a hand-driven clock. */
function instance(conf: Record<string, unknown>, scope: PluginScope = routeScope, counter?: RateLimitCounter) {
  const err = validatePluginConfig(limitCount, conf, "route");
  assert.equal(err, undefined);
  const clock = { now: 5_000_000 };
  const c = counter ?? new LocalFixedWindowCounter({ now: () => clock.now, sweepIntervalMs: 0 });
  const state = compileWith(conf as LimitCountConfig, scope, { counter: c });
  const request = (ctx = new TestContext()) => limitCount.access!(state, ctx);
  return { state, clock, counter: c, request };
}

function headers(ctx: TestContext): Record<string, string | undefined> {
  return {
    limit: ctx.getResponseHeader("X-RateLimit-Limit"),
    remaining: ctx.getResponseHeader("X-RateLimit-Remaining"),
    reset: ctx.getResponseHeader("X-RateLimit-Reset"),
  };
}

const bad = (c: Record<string, unknown>) => validatePluginConfig(limitCount, c, "route");

test("schema: APISIX's defaults are filled in", () => {
  const conf: Record<string, unknown> = { count: 2, time_window: 60 };
  assert.equal(validatePluginConfig(limitCount, conf, "route"), undefined);
  assert.deepEqual(conf, {
    count: 2,
    time_window: 60,
    window_type: "fixed",
    key: "remote_addr",
    key_type: "var",
    rejected_code: 503,
    policy: "local",
    allow_degradation: false,
    show_limit_quota_header: true,
    sync_interval: -1,
  });
});

test("schema: bad values are refused with a message naming the field", () => {
  assert.match(
    bad({ count: 0, time_window: 1 })!,
    /property "count" validation failed: expected 0 to be greater than 0/,
  );
  assert.match(bad({ count: 1.5, time_window: 1 })!, /property "count" validation failed/);
  assert.match(bad({ count: 1, time_window: -1 })!, /property "time_window" validation failed/);
  assert.match(bad({ time_window: 1 })!, /property "count" is required/);
  assert.match(bad({ count: 1 })!, /property "time_window" is required/);
  assert.match(bad({ count: 1, time_window: 1, key_type: "header" })!, /property "key_type" validation failed/);
  assert.match(bad({ count: 1, time_window: 1, window_type: "rolling" })!, /property "window_type" validation failed/);
  assert.match(bad({ count: 1, time_window: 1, rejected_code: 600 })!, /property "rejected_code" validation failed/);
  assert.match(bad({ count: 1, time_window: 1, rejected_msg: "" })!, /property "rejected_msg" validation failed/);
  assert.match(bad({ count: "ten", time_window: 1 })!, /property "count" validation failed: "ten" is neither/);
  assert.match(bad({ count: 1, time_window: "0" })!, /property "time_window" validation failed/);
  assert.match(
    bad({ count: 1, time_window: 1, policy: "cluster" })!,
    /property "policy" validation failed: matches none/,
  );
});

test("schema: each Redis policy requires its connection fields, as APISIX's", () => {
  assert.match(bad({ count: 1, time_window: 1, policy: "redis" })!, /property "redis_host" is required/);
  assert.match(
    bad({ count: 1, time_window: 1, policy: "redis", redis_host: "redis.internal", redis_port: 0 })!,
    /redis_port/,
  );
  assert.match(
    bad({ count: 1, time_window: 1, policy: "redis-cluster", redis_cluster_name: "c" })!,
    /property "redis_cluster_nodes" is required/,
  );
  assert.match(
    bad({ count: 1, time_window: 1, policy: "redis-sentinel", redis_sentinels: [{ host: "127.0.0.1", port: 26379 }] })!,
    /property "redis_master_name" is required/,
  );
  const conf: Record<string, unknown> = { count: 1, time_window: 1, policy: "redis", redis_host: "127.0.0.1" };
  assert.equal(bad(conf), undefined);
  assert.equal(conf.redis_port, 6379, "APISIX's defaults are filled in");
  assert.equal(conf.redis_timeout, 1000);
  assert.equal(bad({ count: 1, time_window: 1, redis_host: "127.0.0.1" }), undefined, "redis_* next to local: valid");
  assert.equal(bad({ count: "$http_x_quota", time_window: "60" }), undefined, "variables and numeric strings");
});

test("schema: rules, with APISIX's own messages for what cannot go together", () => {
  const rule = { count: 1, time_window: 1, key: "$remote_addr" };
  assert.equal(bad({ rules: [rule] }), undefined);
  assert.equal(
    bad({ count: 1, time_window: 1, rules: [rule] }),
    "failed to check the configuration of plugin limit-count err: count/time_window and rules cannot be specified at the same time",
  );
  assert.match(bad({ group: "g", rules: [rule] })!, /group and rules cannot be specified at the same time/);
  assert.match(bad({ rules: [rule, { ...rule, count: 5 }] })!, /duplicate key '\$remote_addr' in rules/);
  assert.match(bad({ rules: [{ time_window: 1, key: "$remote_addr" }] })!, /property "rules\[0\]\.count" is required/);
  assert.match(bad({ rules: [{ ...rule, count: "many" }] })!, /rules\[0\]\.count/);
});

test("access: admits `count`, then rejects with rejected_code; headers on both, as APISIX sets them", () => {
  const { request, clock } = instance({ count: 2, time_window: 60 });
  const first = new TestContext();
  assert.equal(request(first), undefined);
  assert.deepEqual(headers(first), { limit: "2", remaining: "1", reset: "60" });
  clock.now += 1_234;
  const second = new TestContext();
  assert.equal(request(second), undefined);
  assert.deepEqual(headers(second), { limit: "2", remaining: "0", reset: "58.76" });
  clock.now += 5;
  const third = new TestContext();
  assert.deepEqual(request(third), { status: 503 });
  assert.deepEqual(headers(third), { limit: "2", remaining: "0", reset: "58.76" }, "floored to 2 decimals");
});

test("access: rejected_msg becomes {error_msg}; show_limit_quota_header false sends no quota headers, only Retry-After", () => {
  const { request } = instance({
    count: 1,
    time_window: 60,
    rejected_code: 429,
    rejected_msg: "quota exceeded",
    show_limit_quota_header: false,
  });
  const ok = new TestContext();
  assert.equal(request(ok), undefined);
  const rejected = new TestContext();
  assert.deepEqual(request(rejected), { status: 429, body: { error_msg: "quota exceeded" } });
  assert.deepEqual(ok.responseHeaderLog, []);
  assert.deepEqual(rejected.responseHeaderLog, ["set Retry-After: 60"], "when the window gives budget back");
});

test("access: after the window the budget is back", () => {
  const { request, clock } = instance({ count: 1, time_window: 2 });
  assert.equal(request(), undefined);
  assert.deepEqual(request(), { status: 503 });
  clock.now += 2_000;
  assert.equal(request(), undefined);
});

test("key: a variable, with the client address when it is unset or empty; a constant as is", () => {
  const { state, request } = instance({ count: 1, time_window: 60, key: "http_x_api_key" });
  const client = (key: string | undefined, ip = "10.0.0.1") =>
    new TestContext({ remoteAddr: ip, headers: key === undefined ? {} : { "X-Api-Key": key } });
  assert.equal(limitKey(state, client("alice")), "alice");
  assert.equal(limitKey(state, client(undefined)), "10.0.0.1");
  assert.equal(limitKey(state, client("")), "10.0.0.1");
  assert.equal(request(client("alice", "10.0.0.1")), undefined);
  assert.equal(request(client("bob", "10.0.0.1")), undefined, "another key, same address: own budget");
  assert.deepEqual(request(client("alice", "10.0.0.2")), { status: 503 }, "same key elsewhere: same budget");

  const constant = instance({ count: 1, time_window: 60, key_type: "constant", key: "everyone" });
  assert.equal(limitKey(constant.state, client(undefined)), "everyone");
  assert.equal(constant.request(client(undefined, "10.0.0.1")), undefined);
  assert.deepEqual(constant.request(client(undefined, "10.0.0.2")), { status: 503 }, "one budget for all");
});

test("key: var_combination (APISIX's `$remote_addr $consumer_name` example), unresolved → client address", () => {
  const { state } = instance({
    count: 1,
    time_window: 60,
    key_type: "var_combination",
    key: "$remote_addr $consumer_name",
  });
  const ctx = new TestContext({ remoteAddr: "10.0.0.7" });
  ctx.setVar("consumer_name", "jane");
  assert.equal(limitKey(state, ctx), "10.0.0.7 jane");
  const none = instance({ count: 1, time_window: 60, key_type: "var_combination", key: "$http_a$http_b" });
  assert.equal(limitKey(none.state, new TestContext({ remoteAddr: "10.0.0.8" })), "10.0.0.8");
});

test("scope: two routes never share a budget; a group shares one across routes", () => {
  const counter = new LocalFixedWindowCounter({ sweepIntervalMs: 0 });
  const conf = { count: 1, time_window: 60 };
  const a = instance({ ...conf }, { kind: "route", id: "a", revision: 1 }, counter);
  const b = instance({ ...conf }, { kind: "route", id: "b", revision: 1 }, counter);
  const on = (routeId: string) => Object.assign(new TestContext(), { routeId });
  assert.equal(a.request(on("a")), undefined);
  assert.equal(b.request(on("b")), undefined, "same config, same client, other route: own budget");
  assert.deepEqual(a.request(on("a")), { status: 503 });

  const g1 = instance({ ...conf, group: "shared" }, { kind: "route", id: "a", revision: 1 }, counter);
  const g2 = instance({ ...conf, group: "shared" }, { kind: "route", id: "b", revision: 1 }, counter);
  assert.equal(g1.request(on("a")), undefined);
  assert.deepEqual(g2.request(on("b")), { status: 503 }, "the group's one budget is spent");
  const other = instance({ ...conf, group: "share" }, { kind: "route", id: "b", revision: 1 }, counter);
  assert.equal(other.request(on("b")), undefined, "another group");
});

test("scope: the route's config keeps its budget when recompiled; a consumer's own config is its own budget", () => {
  const counter = new LocalFixedWindowCounter({ sweepIntervalMs: 0 });
  const conf = { count: 1, time_window: 60 };
  const before = instance({ ...conf }, { kind: "route", id: "r1", revision: 1 }, counter);
  const after = instance({ ...conf }, { kind: "route", id: "r1", revision: 2 }, counter);
  const jack = instance({ ...conf }, { kind: "consumer", id: "jack", revision: 9 }, counter);
  const jill = instance({ ...conf }, { kind: "consumer", id: "jill", revision: 9 }, counter);
  const ctx = () => Object.assign(new TestContext(), { routeId: "r1" });
  assert.equal(counterKey(before.state, ctx()), counterKey(after.state, ctx()));
  assert.equal(before.request(ctx()), undefined);
  assert.deepEqual(after.request(ctx()), { status: 503 }, "recompiling does not buy a second budget");
  // (The route's own plugins are never recompiled under a consumer: the snapshot reuses their instances.)
  assert.equal(jack.request(ctx()), undefined);
  assert.equal(jill.request(ctx()), undefined, "identical configs on two consumers are two budgets");
  assert.deepEqual(jack.request(ctx()), { status: 503 });
  const edited = instance({ ...conf, rejected_code: 429 }, { kind: "route", id: "r1", revision: 3 }, counter);
  assert.notEqual(counterKey(edited.state, ctx()), counterKey(before.state, ctx()), "a changed config starts afresh");
  assert.equal(edited.request(ctx()), undefined);
});

test("scope: a global rule's budget spans all routes", () => {
  const { request } = instance({ count: 1, time_window: 60 }, { kind: "global_rule", id: "*", revision: 1 });
  assert.equal(request(Object.assign(new TestContext(), { routeId: "a" })), undefined);
  assert.deepEqual(request(Object.assign(new TestContext(), { routeId: "b" })), { status: 503 });
});

test("count and time_window from variables; a value that is not a positive integer fails closed", () => {
  const { request } = instance({ count: "$http_x_quota", time_window: 60, key: "http_x_user" });
  const call = (quota: string | undefined, user = "u") =>
    new TestContext({ headers: quota === undefined ? { "x-user": user } : { "x-quota": quota, "x-user": user } });
  const ctx = call("2");
  assert.equal(request(ctx), undefined);
  assert.equal(headers(ctx).limit, "2");
  assert.equal(request(call("2")), undefined);
  assert.deepEqual(request(call("2")), { status: 503 });
  assert.equal(request(call("3")), undefined, "the limit is this request's");
  for (const v of [undefined, "0", "-1", "1.5", "abc", "9007199254740992"]) {
    assert.deepEqual(request(call(v, "v")), { status: 500 }, `quota ${v}`);
  }
  const lenient = instance({ count: "$http_x_quota", time_window: 60, allow_degradation: true });
  assert.equal(lenient.request(call("abc")), undefined, "allow_degradation lets it through");
});

test("counter failures: 500 {error_msg}, or through with allow_degradation; async counters are awaited", async () => {
  const failing: RateLimitCounter = {
    incoming: () => {
      throw new Error("down");
    },
    commit: () => {
      throw new Error("down");
    },
    close() {},
  };
  assert.deepEqual(instance({ count: 1, time_window: 1 }, routeScope, failing).request(), {
    status: 500,
    body: { error_msg: "failed to limit count" },
  });
  assert.equal(
    instance({ count: 1, time_window: 1, allow_degradation: true }, routeScope, failing).request(),
    undefined,
  );

  const answers: CounterResult[] = [
    { allowed: true, remaining: 4, resetSeconds: 9.999 },
    { allowed: false, remaining: 0, resetSeconds: 3 },
  ];
  const remote: RateLimitCounter = {
    incoming: () => Promise.resolve(answers.shift()!),
    commit: () => Promise.reject(new Error("unused")),
    close() {},
  };
  const { request } = instance({ count: 5, time_window: 10 }, routeScope, remote);
  const ctx = new TestContext();
  assert.equal(await request(ctx), undefined);
  assert.deepEqual(headers(ctx), { limit: "5", remaining: "4", reset: "9.99" });
  assert.deepEqual(await request(), { status: 503 });
  const unreachable: RateLimitCounter = { ...remote, incoming: () => Promise.reject(new Error("ECONNREFUSED")) };
  assert.deepEqual(await instance({ count: 1, time_window: 1 }, routeScope, unreachable).request(), {
    status: 500,
    body: { error_msg: "failed to limit count" },
  });
});
