import assert from "node:assert/strict";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import type { UpstreamNode } from "./balancer.js";
import { createRoundRobinBalancer } from "./roundrobin.js";

const noVars = { var: () => undefined };
const node = (name: string, weight: number, priority = 0): UpstreamNode => ({
  host: name,
  port: 80,
  weight,
  priority,
  key: `${name}:80`,
});

test("weights 3:2:1 give exactly 3, 2 and 1 picks in every cycle of 6 over 600 picks, interleaved", () => {
  const rr = createRoundRobinBalancer([node("a", 3), node("b", 2), node("c", 1)]);
  const total = new Map<string, number>();
  for (let cycle = 0; cycle < 100; cycle++) {
    const counts = new Map<string, number>();
    const seq: string[] = [];
    for (let i = 0; i < 6; i++) {
      const n = rr.pick(noVars, undefined)!.host;
      seq.push(n);
      counts.set(n, (counts.get(n) ?? 0) + 1);
      total.set(n, (total.get(n) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { a: 3, b: 2, c: 1 }, `cycle ${cycle}: ${seq.join("")}`);
    assert.equal(seq.join(""), "abacba", "nginx's smooth order, not runs like aaabbc");
  }
  assert.deepEqual(Object.fromEntries(total), { a: 300, b: 200, c: 100 });
});

test("uneven weights are exact per cycle too", () => {
  const rr = createRoundRobinBalancer([node("a", 5), node("b", 1), node("c", 1)]);
  for (let cycle = 0; cycle < 50; cycle++) {
    const counts: Record<string, number> = {};
    let longestRun = 0;
    let run = 0;
    let prev = "";
    for (let i = 0; i < 7; i++) {
      const n = rr.pick(noVars, undefined)!.host;
      counts[n] = (counts[n] ?? 0) + 1;
      run = n === prev ? run + 1 : 1;
      prev = n;
      longestRun = Math.max(longestRun, run);
    }
    assert.deepEqual(counts, { a: 5, b: 1, c: 1 });
    assert.ok(longestRun <= 3, "the heavy node is spread out");
  }
});

test("equal weights alternate strictly", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("b", 1)]);
  const seq = Array.from({ length: 10 }, () => rr.pick(noVars, undefined)!.host);
  assert.deepEqual(seq, ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
});

test("weight 0 never receives traffic, not even on retries", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("zero", 0), node("b", 2)]);
  for (let i = 0; i < 60; i++) assert.notEqual(rr.pick(noVars, undefined)!.host, "zero");
  assert.equal(rr.pick(noVars, new Set(["a:80", "b:80"])), undefined);
  assert.equal(createRoundRobinBalancer([node("zero", 0)]).pick(noVars, undefined), undefined);
});

test("retries pick the next untried node of the tier and end with undefined", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("b", 1), node("c", 1)]);
  const tried = new Set<string>();
  const picked: string[] = [];
  for (let i = 0; i < 3; i++) {
    const n = rr.pick(noVars, tried)!;
    assert.ok(!tried.has(n.key), `${n.host} was tried already`);
    picked.push(n.host);
    tried.add(n.key);
  }
  assert.deepEqual([...picked].sort(), ["a", "b", "c"]);
  assert.equal(rr.pick(noVars, tried), undefined);
});

test("retries keep the long-run shares exact", () => {
  const rr = createRoundRobinBalancer([node("a", 3), node("b", 1)]);
  // interleave retries (tried = {a}) with first attempts; afterwards the first attempts are exact again.
  for (let i = 0; i < 10; i++) {
    rr.pick(noVars, undefined);
    assert.equal(rr.pick(noVars, new Set(["a:80"]))!.host, "b");
  }
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const n = rr.pick(noVars, undefined)!.host;
    counts[n] = (counts[n] ?? 0) + 1;
  }
  assert.ok(Math.abs(counts.a! - 300) <= 3 && Math.abs(counts.b! - 100) <= 3, JSON.stringify(counts));
});

test("priority tiers: lower tiers only once every node above was tried, then the next lower one", () => {
  const rr = createRoundRobinBalancer([
    node("main1", 1, 10),
    node("main2", 3, 10),
    node("backup1", 1, 0),
    node("backup2", 1, 0),
    node("last", 1, -5),
  ]);
  for (let i = 0; i < 40; i++) assert.match(rr.pick(noVars, undefined)!.host, /^main/);
  assert.match(rr.pick(noVars, new Set(["main1:80"]))!.host, /^main2$/, "untried node of the same tier first");
  const tried = new Set(["main1:80", "main2:80"]);
  const first = rr.pick(noVars, tried)!;
  assert.match(first.host, /^backup/);
  tried.add(first.key);
  const second = rr.pick(noVars, tried)!;
  assert.match(second.host, /^backup/);
  assert.notEqual(second.host, first.host);
  tried.add(second.key);
  assert.equal(rr.pick(noVars, tried)!.host, "last");
  tried.add("last:80");
  assert.equal(rr.pick(noVars, tried), undefined);
});

test("backup tiers balance by weight among themselves", () => {
  const rr = createRoundRobinBalancer([node("main", 1, 1), node("b1", 2, 0), node("b2", 1, 0)]);
  const tried = new Set(["main:80"]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 30; i++) {
    const n = rr.pick(noVars, tried)!.host;
    counts[n] = (counts[n] ?? 0) + 1;
  }
  assert.deepEqual(counts, { b1: 20, b2: 10 });
});

test("a single node, a single tried node and an empty upstream", () => {
  const only = createRoundRobinBalancer([node("only", 5)]);
  for (let i = 0; i < 3; i++) assert.equal(only.pick(noVars, undefined)!.host, "only");
  assert.equal(only.pick(noVars, new Set()), only.pick(noVars, undefined));
  assert.equal(only.pick(noVars, new Set(["only:80"])), undefined);
  assert.equal(createRoundRobinBalancer([]).pick(noVars, undefined), undefined);
});

test("the first attempt allocates nothing: 2M picks trigger no young-generation GC", async () => {
  const rr = createRoundRobinBalancer([node("a", 3), node("b", 2), node("c", 1)]);
  for (let i = 0; i < 10_000; i++) rr.pick(noVars, undefined); // let V8 optimize first
  let scavenges = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  // 2M picks allocating even 16 bytes each would be 32 MB: a dozen scavenges or more. The test runner's
  // own work may cause one or two while we wait, so a small count is tolerated.
  for (let i = 0; i < 2_000_000; i++) rr.pick(noVars, undefined);
  await new Promise((resolve) => setTimeout(resolve, 50)); // gc entries are delivered asynchronously
  observer.disconnect();
  assert.ok(scavenges <= 2, `${scavenges} young-generation GCs during 2M picks`);
});
