import assert from "node:assert/strict";
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

test("weights 3:2:1 give exactly 3, 2 and 1 picks in every cycle of 6, interleaved", () => {
  const rr = createRoundRobinBalancer([node("a", 3), node("b", 2), node("c", 1)]);
  for (let cycle = 0; cycle < 100; cycle++) {
    const counts = new Map<string, number>();
    const seq: string[] = [];
    for (let i = 0; i < 6; i++) {
      const n = rr.pick(noVars, undefined)!.host;
      seq.push(n);
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { a: 3, b: 2, c: 1 }, `cycle ${cycle}: ${seq.join("")}`);
    assert.notEqual(seq.join(""), "aaabbc", "smooth, not in runs");
  }
});

test("equal weights alternate strictly", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("b", 1)]);
  const seq = Array.from({ length: 10 }, () => rr.pick(noVars, undefined)!.host);
  assert.deepEqual(seq, ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
});

test("weight 0 never receives traffic", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("zero", 0)]);
  for (let i = 0; i < 50; i++) assert.equal(rr.pick(noVars, undefined)!.host, "a");
});

test("retries skip tried nodes and return undefined when all were tried", () => {
  const rr = createRoundRobinBalancer([node("a", 1), node("b", 1), node("c", 1)]);
  const tried = new Set<string>();
  const picked: string[] = [];
  for (let i = 0; i < 3; i++) {
    const n = rr.pick(noVars, tried)!;
    picked.push(n.host);
    tried.add(n.key);
  }
  assert.deepEqual([...picked].sort(), ["a", "b", "c"]);
  assert.equal(rr.pick(noVars, tried), undefined);
});

test("a lower priority tier is used only when every higher node was tried", () => {
  const rr = createRoundRobinBalancer([node("main1", 1, 10), node("main2", 1, 10), node("backup", 1, -1)]);
  for (let i = 0; i < 20; i++) assert.notEqual(rr.pick(noVars, undefined)!.host, "backup");
  const tried = new Set(["main1:80", "main2:80"]);
  assert.equal(rr.pick(noVars, tried)!.host, "backup");
});

test("a single node and an empty upstream", () => {
  assert.equal(createRoundRobinBalancer([node("only", 5)]).pick(noVars, undefined)!.host, "only");
  assert.equal(createRoundRobinBalancer([]).pick(noVars, undefined), undefined);
});
