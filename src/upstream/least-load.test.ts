import assert from "node:assert/strict";
import { test } from "node:test";
import type { UpstreamNode } from "./balancer.js";
import { createLeastLoadBalancer, type LoadReading } from "./least-load.js";

const node = (host: string, weight = 1, priority = 0): UpstreamNode => ({
  host,
  port: 80,
  weight,
  priority,
  key: `${host}:80`,
});
const req = { var: () => undefined };

/** A scraper's state as the balancer reads it; a test moves it the way scrapes would. */
class Reading {
  state: { stale: boolean; generation: number; signals: LoadReading["signals"] } = {
    stale: false,
    generation: 0,
    signals: undefined,
  };
  scrape(waiting: number, running: number, kvUsage?: number): void {
    this.state = { stale: false, generation: this.state.generation + 1, signals: { waiting, running, kvUsage } };
  }
}

function picks(b: ReturnType<typeof createLeastLoadBalancer>, n: number, start = true): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const picked = b.pick(req, undefined)!;
    if (start) b.onAttemptStart!(picked);
    counts[picked.host] = (counts[picked.host] ?? 0) + 1;
  }
  return counts;
}

test("least_load: a burst between two scrapes spreads by the calls sent since the last one", () => {
  const [a, b] = [node("a"), node("b")];
  const ra = new Reading();
  const rb = new Reading();
  ra.scrape(10, 4); // a queues 10 and runs 4
  rb.scrape(0, 4);
  const lb = createLeastLoadBalancer([a, b], (n) => (n === a ? ra : rb));
  // b looks idle by 10, so the first 10 calls go to b; after that each gets its turn.
  const counts = picks(lb, 14);
  assert.ok((counts.b ?? 0) >= 11 && (counts.b ?? 0) <= 13, JSON.stringify(counts));

  // The next scrape of b includes the calls we sent: they are not counted twice.
  const before = lb.estimates().find((e) => e.key === "b:80")!;
  rb.scrape(0, 4 + before.inFlight);
  const after = lb.estimates().find((e) => e.key === "b:80")!;
  assert.equal(after.estimated, before.estimated);
  assert.ok(after.fresh);
});

test("least_load: traffic shifts off a replica whose queue grows", () => {
  const [a, b] = [node("a"), node("b")];
  const ra = new Reading();
  const rb = new Reading();
  ra.scrape(0, 2);
  rb.scrape(0, 2);
  const lb = createLeastLoadBalancer([a, b], (n) => (n === a ? ra : rb));
  assert.deepEqual(picks(lb, 10, false), { a: 5, b: 5 }, "equal load: they take turns");
  ra.scrape(30, 8); // someone else's traffic queues on a
  assert.deepEqual(picks(lb, 10, false), { b: 10 });
});

test("least_load: a stale or missing reading counts this gateway's calls in flight only (least_conn)", () => {
  const [a, b, c] = [node("a"), node("b"), node("c")];
  const ra = new Reading();
  ra.scrape(50, 10);
  ra.state = { ...ra.state, stale: true }; // the server stopped answering its metrics
  const lb = createLeastLoadBalancer([a, b, c], (n) => (n === a ? ra : undefined));
  assert.deepEqual(picks(lb, 9), { a: 3, b: 3, c: 3 });
  for (const e of lb.estimates()) assert.equal(e.fresh, false);
  assert.deepEqual(
    lb.estimates().map((e) => e.estimated),
    [3, 3, 3],
  );
});

test("least_load: a nearly full KV cache costs extra; weights scale the score", () => {
  const [a, b] = [node("a"), node("b")];
  const ra = new Reading();
  const rb = new Reading();
  ra.scrape(1, 4, 0.98);
  rb.scrape(2, 4, 0.5);
  const lb = createLeastLoadBalancer([a, b], (n) => (n === a ? ra : rb));
  assert.equal(lb.pick(req, undefined)!.host, "b", "a queues less but its cache is full");

  const [big, small] = [node("big", 3), node("small", 1)];
  const weighted = createLeastLoadBalancer([big, small], () => undefined);
  assert.deepEqual(picks(weighted, 8), { big: 6, small: 2 });
});

test("least_load: tried nodes are skipped and a lower priority tier is used only after the top one", () => {
  const [a, b, backup] = [node("a", 1, 1), node("b", 1, 1), node("backup", 1, 0)];
  const lb = createLeastLoadBalancer([a, b, backup], () => undefined);
  assert.equal(lb.pick(req, new Set(["a:80"]))!.host, "b");
  assert.equal(lb.pick(req, new Set(["a:80", "b:80"]))!.host, "backup");
  assert.equal(lb.pick(req, new Set(["a:80", "b:80", "backup:80"])), undefined);
  lb.onAttemptStart!(a);
  lb.onAttemptEnd!(a, 5, false);
  lb.onAttemptEnd!(a, 5, false); // an extra end never drives the count below zero
  assert.equal(lb.estimates().find((e) => e.key === "a:80")!.inFlight, 0);
});
