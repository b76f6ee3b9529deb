import assert from "node:assert/strict";
import { test } from "node:test";
import type { UpstreamNode } from "./balancer.js";
import { createChashBalancer } from "./chash.js";
import { createEwmaBalancer } from "./ewma.js";
import { createLeastConnBalancer } from "./least-conn.js";

const node = (name: string, weight = 1, priority = 0): UpstreamNode => ({
  host: name,
  port: 80,
  weight,
  priority,
  key: `${name}:80`,
});
const req = (vars: Record<string, string>) => ({ var: (n: string) => vars[n] });

test("chash: a key always maps to the same node; removing one of 5 nodes remaps only its keys", () => {
  const five = ["a", "b", "c", "d", "e"].map((n) => node(n));
  const ring = createChashBalancer(five, { key: "arg_user" });
  const before = new Map<string, string>();
  for (let i = 0; i < 10_000; i++) before.set(`u${i}`, ring.pick(req({ arg_user: `u${i}` }), undefined)!.host);
  for (let i = 0; i < 100; i++)
    assert.equal(ring.pick(req({ arg_user: `u${i}` }), undefined)!.host, before.get(`u${i}`));
  const four = createChashBalancer(
    five.filter((n) => n.host !== "c"),
    { key: "arg_user" },
  );
  let moved = 0;
  for (const [k, was] of before) {
    const now = four.pick(req({ arg_user: k }), undefined)!.host;
    if (now !== was) {
      moved++;
      assert.equal(was, "c", "only keys of the removed node move");
    }
  }
  const onC = [...before.values()].filter((v) => v === "c").length;
  assert.equal(moved, onC);
});

test("chash: adding a 6th node remaps about 1/6 of 10,000 keys; weights 3:1 split keys about 75/25", () => {
  const five = ["a", "b", "c", "d", "e"].map((n) => node(n));
  const six = [...five, node("f")];
  const r5 = createChashBalancer(five, { key: "arg_user" });
  const r6 = createChashBalancer(six, { key: "arg_user" });
  let moved = 0;
  for (let i = 0; i < 10_000; i++) {
    const r = req({ arg_user: `user-${i}` });
    if (r5.pick(r, undefined)!.host !== r6.pick(r, undefined)!.host) moved++;
  }
  assert.ok(moved / 10_000 > 0.1 && moved / 10_000 < 0.25, `moved ${moved / 100}%`);
  const weighted = createChashBalancer([node("heavy", 3), node("light", 1)], { key: "arg_user" });
  let heavy = 0;
  for (let i = 0; i < 10_000; i++) if (weighted.pick(req({ arg_user: `k${i}` }), undefined)!.host === "heavy") heavy++;
  assert.ok(Math.abs(heavy / 10_000 - 0.75) < 0.07, `heavy share ${heavy / 100}%`);
});

test("chash: hash_on header, cookie, vars_combination; empty key falls back to remote_addr", () => {
  const nodes = ["a", "b", "c"].map((n) => node(n));
  const byHeader = createChashBalancer(nodes, { hashOn: "header", key: "X-User" });
  const byArg = createChashBalancer(nodes, { key: "arg_u" });
  assert.equal(byHeader.pick(req({ http_x_user: "z1" }), undefined), byArg.pick(req({ arg_u: "z1" }), undefined));
  const byCookie = createChashBalancer(nodes, { hashOn: "cookie", key: "sid" });
  assert.equal(byCookie.pick(req({ cookie_sid: "z1" }), undefined), byArg.pick(req({ arg_u: "z1" }), undefined));
  const combo = createChashBalancer(nodes, { hashOn: "vars_combination", key: "$arg_a-$arg_b" });
  assert.equal(combo.pick(req({ arg_a: "x", arg_b: "y" }), undefined), byArg.pick(req({ arg_u: "x-y" }), undefined));
  assert.equal(
    byArg.pick(req({ remote_addr: "10.0.0.7" }), undefined),
    byArg.pick(req({ arg_u: "10.0.0.7" }), undefined),
  );
});

test("chash: retries walk to untried nodes, then give up; lower tiers only when the upper one is spent", () => {
  const ring = createChashBalancer([node("a", 1, 1), node("b", 1, 1), node("backup", 1, 0)], { key: "arg_u" });
  const r = req({ arg_u: "k" });
  const first = ring.pick(r, undefined)!;
  assert.notEqual(first.host, "backup");
  const tried = new Set([first.key]);
  const second = ring.pick(r, tried)!;
  assert.notEqual(second.host, first.host);
  assert.notEqual(second.host, "backup");
  tried.add(second.key);
  assert.equal(ring.pick(r, tried)!.host, "backup");
  tried.add("backup:80");
  assert.equal(ring.pick(r, tried), undefined);
});

test("least_conn: new requests go to the node with fewest in flight, relative to weight", () => {
  const [a, b] = [node("a"), node("b")];
  const lc = createLeastConnBalancer([a, b]);
  for (let i = 0; i < 3; i++) lc.onAttemptStart!(a); // a is busy with slow requests
  for (let i = 0; i < 3; i++) {
    const picked = lc.pick(req({}), undefined)!;
    assert.equal(picked.host, "b");
    lc.onAttemptStart!(picked);
  }
  // now 3 vs 3: both get traffic again
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(lc.pick(req({}), undefined)!.host);
  assert.deepEqual([...seen].sort(), ["a", "b"]);
  const weighted = createLeastConnBalancer([node("big", 4), node("small", 1)]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 10; i++) {
    const n = weighted.pick(req({}), undefined)!;
    weighted.onAttemptStart!(n);
    counts[n.host] = (counts[n.host] ?? 0) + 1;
  }
  assert.deepEqual(counts, { big: 8, small: 2 });
});

test("ewma: traffic moves off a node that became 10x slower, and off failing nodes", () => {
  let now = 0;
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
  const [fast, slow] = [node("fast"), node("slow")];
  const ewma = createEwmaBalancer([fast, slow], () => now, random);
  for (let i = 0; i < 50; i++) {
    now += 100;
    ewma.onAttemptStart!(fast);
    ewma.onAttemptEnd!(fast, 10, false);
    ewma.onAttemptStart!(slow);
    ewma.onAttemptEnd!(slow, 100, false);
  }
  let toFast = 0;
  for (let i = 0; i < 1000; i++) if (ewma.pick(req({}), undefined)!.host === "fast") toFast++;
  assert.ok(toFast >= 900, `fast got ${toFast / 10}%`);

  const [ok, broken] = [node("ok"), node("broken")];
  const e2 = createEwmaBalancer([ok, broken], () => now, random);
  now += 100;
  e2.onAttemptEnd!(ok, 20, false);
  e2.onAttemptEnd!(broken, 5, true);
  let toOk = 0;
  for (let i = 0; i < 100; i++) if (e2.pick(req({}), undefined)!.host === "ok") toOk++;
  assert.ok(toOk >= 90, `ok got ${toOk}%`);
  assert.equal(e2.pick(req({}), new Set(["ok:80", "broken:80"])), undefined);
});

test("ewma over AI instances learns the time to first token, not how long the answer streamed", () => {
  let now = 0;
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
  // "long" answers its first token fast and then streams for 5 s; "queued" waits 800 ms for its first token
  // and streams a short answer. By response time "long" looks slower; by first token it is the better one.
  const [long, queued] = [node("long"), node("queued")];
  const ewma = createEwmaBalancer([long, queued], () => now, random, "first-token");
  for (let i = 0; i < 20; i++) {
    now += 100;
    ewma.onAttemptStart!(long);
    ewma.onFirstToken!(long, 30);
    ewma.onAttemptEnd!(long, 5000, false);
    ewma.onAttemptStart!(queued);
    ewma.onFirstToken!(queued, 800);
    ewma.onAttemptEnd!(queued, 900, false);
  }
  let toLong = 0;
  for (let i = 0; i < 100; i++) if (ewma.pick(req({}), undefined)!.host === "long") toLong++;
  assert.ok(toLong >= 90, `long got ${toLong}%`);

  // The same samples in "response" mode (upstreams): the end latency is what counts, first tokens are not.
  const byResponse = createEwmaBalancer([long, queued], () => now, random);
  now += 100;
  byResponse.onFirstToken?.(long, 30);
  byResponse.onAttemptEnd!(long, 5000, false);
  byResponse.onAttemptEnd!(queued, 900, false);
  let toQueued = 0;
  for (let i = 0; i < 100; i++) if (byResponse.pick(req({}), undefined)!.host === "queued") toQueued++;
  assert.ok(toQueued >= 90, `queued got ${toQueued}%`);
});

test("chash with bounded loads: keys keep their node while load is even, and a hot key spills to neighbours", () => {
  const nodes = [node("a"), node("b"), node("c"), node("d")];
  const plain = createChashBalancer(nodes, { hashOn: "header", key: "x-key" });
  const bounded = createChashBalancer(nodes, { hashOn: "header", key: "x-key", boundedLoad: 1.25 });
  const keyReq = (k: string) => req({ http_x_key: k });

  // Under no load the bound changes nothing: every key goes where plain chash sends it.
  for (let i = 0; i < 50; i++)
    assert.equal(bounded.pick(keyReq(`k${i}`), undefined), plain.pick(keyReq(`k${i}`), undefined));

  // One hot key, 40 calls in flight at once: plain chash piles all on one node; bounded keeps every node at
  // or under ⌈1.25 × mean⌉ + 1.
  const held: Record<string, number> = {};
  for (let i = 0; i < 40; i++) {
    const n = bounded.pick(keyReq("hot"), undefined)!;
    bounded.onAttemptStart!(n);
    held[n.host] = (held[n.host] ?? 0) + 1;
  }
  const home = plain.pick(keyReq("hot"), undefined)!.host;
  assert.ok(Object.keys(held).length > 1, `spilled beyond ${home}: ${JSON.stringify(held)}`);
  for (const [host, count] of Object.entries(held)) assert.ok(count <= Math.ceil(1.25 * 10) + 1, `${host} ${count}`);
  assert.ok((held[home] ?? 0) >= 10, "the key's own node is filled first");

  // Calls end: the key goes home again.
  for (const n of nodes) for (let i = 0; i < (held[n.host] ?? 0); i++) bounded.onAttemptEnd!(n, 1, false);
  assert.equal(bounded.pick(keyReq("hot"), undefined)!.host, home);

  // A retry whose untried nodes are all full still gets a node: the bound yields to the retry.
  const two = createChashBalancer([node("x"), node("y")], { hashOn: "header", key: "x-key", boundedLoad: 1 });
  const first = two.pick(keyReq("r"), undefined)!;
  two.onAttemptStart!(first);
  two.onAttemptStart!(first);
  const other = first.host === "x" ? "y:80" : "x:80";
  assert.equal(two.pick(keyReq("r"), new Set([other]))!.host, first.host);
});
