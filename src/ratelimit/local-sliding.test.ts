import assert from "node:assert/strict";
import { test } from "node:test";
import { LocalSlidingWindowCounter } from "./local-sliding.js";

/** Windows are epoch-aligned; the clock starts at a window boundary (10 s windows below). */
function counter() {
  const clock = { now: 1_000_000 };
  const c = new LocalSlidingWindowCounter({ now: () => clock.now, sweepIntervalMs: 0 });
  return { c, clock };
}

test("sliding: inside one window it admits exactly `limit`; reset is the time left in the window", () => {
  const { c, clock } = counter();
  clock.now += 2_500;
  for (let i = 1; i <= 3; i++) {
    assert.deepEqual(c.incoming("k", 1, 3, 10), { allowed: true, remaining: 3 - i, resetSeconds: 7.5 });
  }
  assert.deepEqual(c.incoming("k", 1, 3, 10), { allowed: false, remaining: 0, resetSeconds: 7.5 });
});

test("sliding: the previous window weighs in by the share still covered, so no double burst at the boundary", () => {
  const { c, clock } = counter();
  for (let i = 0; i < 10; i++) assert.equal(c.incoming("k", 1, 10, 10).allowed, true);
  clock.now += 10_000; // next window, previous fully covered: estimate 10
  assert.equal(c.incoming("k", 1, 10, 10).allowed, false, "a fixed window would admit 10 more here");
  clock.now += 5_000; // half covered: estimate 5
  let admitted = 0;
  for (let i = 0; i < 10; i++) if (c.incoming("k", 1, 10, 10).allowed) admitted++;
  assert.equal(admitted, 5);
});

test("sliding: a fractional estimate below the limit admits (APISIX's estimated >= limit rejects)", () => {
  const { c, clock } = counter();
  for (let i = 0; i < 10; i++) c.incoming("k", 1, 10, 10);
  clock.now += 10_500; // weight 0.95: estimate 9.5
  assert.deepEqual(c.incoming("k", 1, 10, 10), { allowed: true, remaining: 0, resetSeconds: 9.5 });
  // estimate 10.5; below 10 again once the previous share shrank by 0.5 requests, i.e. in 0.5 s
  assert.deepEqual(c.incoming("k", 1, 10, 10), { allowed: false, remaining: 0, resetSeconds: 0.5 });
  clock.now += 500;
  assert.equal(c.incoming("k", 1, 10, 10).allowed, false, "estimate exactly 10 is still too many");
  clock.now += 1;
  assert.equal(c.incoming("k", 1, 10, 10).allowed, true);
});

test("sliding: with the current window itself full, budget returns only with the next window", () => {
  const { c, clock } = counter();
  clock.now += 3_000;
  c.incoming("k", 1, 1, 10);
  assert.deepEqual(c.incoming("k", 1, 1, 10), { allowed: false, remaining: 0, resetSeconds: 7 });
});

test("sliding: two windows later the key is fresh, and sweep forgets it", () => {
  const { c, clock } = counter();
  c.incoming("k", 1, 1, 10);
  clock.now += 10_000;
  assert.equal(c.sweep(), 0, "the previous window still counts");
  clock.now += 10_000;
  assert.equal(c.sweep(), 1);
  assert.deepEqual(c.incoming("k", 1, 1, 10), { allowed: true, remaining: 0, resetSeconds: 10 });
});

test("sliding: cost 0 only looks, commit spends unconditionally", () => {
  const { c } = counter();
  assert.deepEqual(c.incoming("k", 0, 50, 10), { allowed: true, remaining: 50, resetSeconds: 10 });
  assert.deepEqual(c.commit("k", 60, 50, 10), { allowed: false, remaining: 0, resetSeconds: 10 });
  assert.equal(c.incoming("k", 0, 50, 10).allowed, false);
});

test("sliding: a different window length for the same key starts over instead of mixing counts", () => {
  const { c } = counter();
  c.incoming("k", 1, 1, 10);
  assert.equal(c.incoming("k", 1, 1, 10).allowed, false);
  assert.equal(c.incoming("k", 1, 1, 20).allowed, true);
});
