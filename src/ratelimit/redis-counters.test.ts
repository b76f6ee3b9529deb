import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type RedisServer, startRedis } from "../../test/helpers/redis.js";
import { RedisFixedWindowCounter, RedisSlidingWindowCounter } from "./redis-counters.js";

// The Redis counters against a real server: the same answers as the local counters' tests expect.
let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(() => redis.close());

const conf = () => ({ policy: "redis", redis_host: "127.0.0.1", redis_port: redis.port });

test("fixed window: cost 0 only looks; commit may overdraw, and then nothing more is admitted", async () => {
  const c = new RedisFixedWindowCounter(conf(), "unit-fixed");
  try {
    assert.deepEqual(await c.incoming("k", 0, 10, 60), { allowed: true, remaining: 10, resetSeconds: 60 });
    const spent = await c.commit("k", 12, 10, 60);
    assert.equal(spent.allowed, false, "overdrawn");
    assert.equal(spent.remaining, 0);
    assert.ok(spent.resetSeconds > 59 && spent.resetSeconds <= 60);
    assert.equal((await c.incoming("k", 0, 10, 60)).allowed, false);
    assert.equal((await c.incoming("k", 1, 10, 60)).allowed, false);
    assert.equal((await c.incoming("other", 10, 10, 60)).allowed, true, "keys are separate");
    assert.equal((await c.incoming("other", 1, 10, 60)).allowed, false, "a rejection records nothing");
    assert.equal((await c.incoming("other", 0, 10, 60)).remaining, 0);
  } finally {
    c.close();
  }
});

test("fixed window: the budget comes back when the window's key expires", async () => {
  const c = new RedisFixedWindowCounter(conf(), "unit-expiry");
  try {
    assert.equal((await c.incoming("k", 1, 1, 0.3)).allowed, true);
    assert.equal((await c.incoming("k", 1, 1, 0.3)).allowed, false);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await c.incoming("k", 1, 1, 0.3)).allowed, true);
  } finally {
    c.close();
  }
});

test("sliding window: the previous window weighs in by the share still covered", async () => {
  let now = 1_000_000_000_000; // aligned to a 10 s window
  const c = new RedisSlidingWindowCounter(conf(), "unit-sliding", () => now);
  try {
    for (let i = 0; i < 4; i++) assert.equal((await c.incoming("k", 1, 4, 10)).allowed, true);
    assert.equal((await c.incoming("k", 1, 4, 10)).allowed, false);
    now += 12_500; // a quarter into the next window: the previous 4 weigh 3
    const r = await c.incoming("k", 1, 4, 10);
    assert.equal(r.allowed, true);
    assert.equal(r.remaining, 0);
    assert.equal((await c.incoming("k", 1, 4, 10)).allowed, false);
  } finally {
    c.close();
  }
});
