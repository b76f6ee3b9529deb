import assert from "node:assert/strict";
import { test } from "node:test";
import { REJECTED } from "./leaky-bucket.js";
import { LocalLeakyBucketStore } from "./local-leaky.js";

// limit-req's in-process buckets (the plugin's own tests, in src/plugins/limit-req.test.ts, drive them too).

const bucket = (rate: number, burst: number, maxKeys?: number) =>
  new LocalLeakyBucketStore(rate, burst, { sweepIntervalMs: 0, maxKeys });

test("leaky: requests spaced exactly 1/rate apart never wait; one that comes early waits for its turn", () => {
  const b = bucket(10, 2);
  for (let at = 0; at <= 1000; at += 100) assert.equal(b.incoming("k", at), 0, `at ${at} ms`);
  // 100 ms early: the previous request has not leaked yet, so this one waits the 100 ms it came early by.
  assert.equal(b.incoming("k", 1000), 100);
});

test("leaky: at one instant the first request passes, `burst` more queue at 1/rate each, the next is rejected", () => {
  const b = bucket(5, 3);
  assert.deepEqual(
    [0, 0, 0, 0, 0].map(() => b.incoming("k", 0)),
    [0, 200, 400, 600, REJECTED],
  );
});

test("leaky: a rejected request leaves no trace; the bucket drains as if it never came", () => {
  const rejectedOnce = bucket(1, 1);
  const never = bucket(1, 1);
  for (const b of [rejectedOnce, never]) {
    b.incoming("k", 0);
    b.incoming("k", 0);
  }
  assert.equal(rejectedOnce.incoming("k", 0), REJECTED);
  for (const at of [400, 900, 2500]) assert.equal(rejectedOnce.incoming("k", at), never.incoming("k", at), `at ${at}`);
});

test("leaky: the sweep drops only buckets whose next request would start from empty", () => {
  const b = bucket(4, 4);
  b.incoming("idle", 0); // excess 0 stored: gone once the 1000 the next request adds would have leaked
  b.incoming("queued", 0);
  b.incoming("queued", 0); // excess 1000
  assert.equal(b.sweep(249), 0);
  assert.equal(b.sweep(250), 1, "1000 leaked at 4/s in 250 ms");
  assert.equal(b.size, 1);
  assert.equal(b.sweep(500), 1);
  assert.equal(b.size, 0);
});

test("leaky: past maxKeys the stalest key is forgotten; close() forgets every key", () => {
  const b = bucket(1, 0, 2);
  b.incoming("a", 0);
  b.incoming("b", 0);
  b.incoming("c", 0);
  assert.equal(b.size, 2);
  assert.equal(b.incoming("a", 0), 0, "a was the stalest: forgotten, so it starts afresh");
  assert.equal(b.incoming("c", 0), REJECTED, "c was kept");
  b.close();
  assert.equal(b.size, 0);
});
