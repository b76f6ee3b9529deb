import assert from "node:assert/strict";
import { test } from "node:test";
import { LocalFixedWindowCounter } from "./local-fixed.js";

function counter(options: { maxKeys?: number } = {}) {
  const clock = { now: 1_000_000 };
  const c = new LocalFixedWindowCounter({ now: () => clock.now, sweepIntervalMs: 0, ...options });
  return { c, clock };
}

test("fixed: admits exactly `limit`, counts remaining down, then rejects without recording", () => {
  const { c, clock } = counter();
  assert.deepEqual(c.incoming("k", 1, 3, 60), { allowed: true, remaining: 2, resetSeconds: 60 });
  clock.now += 1_500;
  assert.deepEqual(c.incoming("k", 1, 3, 60), { allowed: true, remaining: 1, resetSeconds: 58.5 });
  assert.deepEqual(c.incoming("k", 1, 3, 60), { allowed: true, remaining: 0, resetSeconds: 58.5 });
  assert.deepEqual(c.incoming("k", 1, 3, 60), { allowed: false, remaining: 0, resetSeconds: 58.5 });
  assert.equal(c.incoming("k", 1, 3, 60).allowed, false, "still rejected");
});

test("fixed: the window closes `time_window` after its first request, and the budget is whole again", () => {
  const { c, clock } = counter();
  c.incoming("k", 1, 1, 2);
  clock.now += 1_999;
  assert.equal(c.incoming("k", 1, 1, 2).allowed, false);
  clock.now += 1;
  assert.deepEqual(c.incoming("k", 1, 1, 2), { allowed: true, remaining: 0, resetSeconds: 2 });
});

test("fixed: a cost that does not fit is refused whole and leaves the budget as it was", () => {
  const { c } = counter();
  assert.equal(c.incoming("k", 8, 10, 60).remaining, 2);
  assert.deepEqual(c.incoming("k", 3, 10, 60), { allowed: false, remaining: 2, resetSeconds: 60 });
  assert.deepEqual(c.incoming("k", 2, 10, 60), { allowed: true, remaining: 0, resetSeconds: 60 });
});

test("fixed: cost 0 only looks (check before), commit spends after the fact and may overdraw", () => {
  const { c, clock } = counter();
  assert.deepEqual(c.incoming("k", 0, 100, 60), { allowed: true, remaining: 100, resetSeconds: 60 });
  assert.deepEqual(c.commit("k", 70, 100, 60), { allowed: true, remaining: 30, resetSeconds: 60 });
  assert.equal(c.incoming("k", 0, 100, 60).allowed, true, "30 left");
  assert.deepEqual(c.commit("k", 45, 100, 60), { allowed: false, remaining: 0, resetSeconds: 60 });
  assert.equal(c.incoming("k", 0, 100, 60).allowed, false, "overdrawn: nothing left to check out");
  assert.equal(c.incoming("k", 1, 100, 60).allowed, false);
  clock.now += 60_000;
  assert.deepEqual(c.incoming("k", 0, 100, 60), { allowed: true, remaining: 100, resetSeconds: 60 });
});

test("fixed: keys are independent", () => {
  const { c } = counter();
  assert.equal(c.incoming("a", 1, 1, 60).allowed, true);
  assert.equal(c.incoming("b", 1, 1, 60).allowed, true);
  assert.equal(c.incoming("a", 1, 1, 60).allowed, false);
});

test("fixed: sweep drops closed windows only", () => {
  const { c, clock } = counter();
  c.incoming("short", 1, 5, 1);
  c.incoming("long", 1, 5, 10);
  clock.now += 1_000;
  assert.equal(c.sweep(), 1);
  assert.equal(c.size, 1);
  assert.equal(c.incoming("long", 1, 5, 10).remaining, 3, "the live window kept its count");
});

test("fixed: past maxKeys the stalest key is forgotten, a busy one survives a flood of new keys", () => {
  const { c } = counter({ maxKeys: 4 });
  c.incoming("busy", 1, 100, 60);
  for (let i = 0; i < 20; i++) {
    c.incoming(`flood-${i}`, 1, 1, 60);
    c.incoming("busy", 1, 100, 60);
  }
  assert.ok(c.size <= 4);
  assert.equal(c.incoming("busy", 1, 100, 60).remaining, 100 - 22, "busy kept its count");
  assert.equal(c.incoming("flood-0", 1, 1, 60).allowed, true, "an evicted key starts over");
});
