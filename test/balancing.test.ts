import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("balancers over real sockets", () => {
  let gw: TestGateway;
  let a: TestUpstream;
  let b: TestUpstream;
  let slow: TestUpstream;
  before(async () => {
    gw = await startTestGateway();
    a = await startUpstream("a");
    b = await startUpstream("b");
    slow = await startUpstream("slow", (_req, res) => setTimeout(() => res.end('{"node":"slow"}'), 300));
  });
  after(async () => {
    await gw.stop();
    await Promise.all([a.close(), b.close(), slow.close()]);
  });
  const nodes = (...ups: TestUpstream[]) => ups.map((u) => ({ host: "127.0.0.1", port: u.port, weight: 1 }));

  test("chash on a header keeps each user on one node and spreads users over nodes", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/sticky", {
      uri: "/sticky",
      upstream: { type: "chash", hash_on: "header", key: "X-User", nodes: nodes(a, b) },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const used = new Set<string>();
    for (let u = 0; u < 20; u++) {
      const seen = new Set<string>();
      for (let i = 0; i < 3; i++)
        seen.add((await fetchBody(`${gw.proxyUrl}/sticky`, { headers: { "x-user": `user${u}` } })).body.node);
      assert.equal(seen.size, 1, `user${u} stayed on one node`);
      used.add([...seen][0]!);
    }
    assert.deepEqual([...used].sort(), ["a", "b"]);
  });

  test("least_conn sends concurrent requests away from a slow node", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/lc", {
      uri: "/lc",
      upstream: { type: "least_conn", nodes: nodes(slow, a) },
    });
    const one = () =>
      new Promise<string>((resolve, reject) => {
        const req = request(`${gw.proxyUrl}/lc`, { agent: false }, (res) => {
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve(JSON.parse(body).node));
        });
        req.on("error", reject);
        req.end();
      });
    // warm-up: one slow request in flight, then a burst arrives
    const first = one();
    await new Promise((r) => setTimeout(r, 50));
    const burst = await Promise.all(Array.from({ length: 10 }, one));
    await first;
    const toSlow = burst.filter((n) => n === "slow").length;
    assert.ok(toSlow <= 3, `slow node got ${toSlow} of 10 while busy`);
  });

  test("an unsupported balancer type is refused by the Admin API", async () => {
    const res = await gw.admin("PUT", "/apisix/admin/upstreams/odd", { type: "random", nodes: nodes(a) });
    assert.equal(res.status, 400);
    assert.match(res.body.error_msg, /type/);
  });
});

describe("a node killed under load", () => {
  test("no client sees an error while retries can reach the other node", async () => {
    const gw = await startTestGateway();
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    try {
      await gw.admin("PUT", "/apisix/admin/routes/kill", {
        uri: "/kill",
        upstream: {
          nodes: [
            { host: "127.0.0.1", port: a.port, weight: 1 },
            { host: "127.0.0.1", port: b.port, weight: 1 },
          ],
        },
      });
      const failures: string[] = [];
      let served = 0;
      const worker = async () => {
        for (let i = 0; i < 150; i++) {
          const res = await fetchBody(`${gw.proxyUrl}/kill`).catch((err: Error) => ({ status: 0, body: err.message }));
          if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(res.body)}`);
          else served++;
        }
      };
      const load = Promise.all(Array.from({ length: 4 }, worker));
      await new Promise((r) => setTimeout(r, 100));
      await b.close(); // connections reset, port refuses from now on
      await load;
      assert.deepEqual(failures, []);
      assert.equal(served, 600);
      assert.ok(a.received.length > 300, "the surviving node took over");
    } finally {
      await gw.stop();
      await a.close();
    }
  });
});

describe("ewma over real sockets", () => {
  test("traffic moves off a node that becomes 10x slower", async () => {
    const gw = await startTestGateway();
    let slowMs = 5;
    // "steady" answers in 20 ms throughout; "slowing" starts at 5 ms (so it takes most traffic), then
    // becomes 10x slower (50 ms) and must lose it.
    const fast = await startUpstream("steady", (_req, res) => setTimeout(() => res.end('{"node":"steady"}'), 20));
    const slowing = await startUpstream("slowing", (_req, res) =>
      setTimeout(() => res.end('{"node":"slowing"}'), slowMs),
    );
    try {
      const nodes = [
        { host: "127.0.0.1", port: fast.port, weight: 1 },
        { host: "127.0.0.1", port: slowing.port, weight: 1 },
      ];
      // Warm both nodes' pooled connections first: ewma takes a node's first sample as its estimate, so a
      // cold connect on that sample would stand in for the node's speed for seconds.
      await gw.admin("PUT", "/apisix/admin/routes/ewma", { uri: "/ewma", upstream: { type: "roundrobin", nodes } });
      for (let i = 0; i < 10; i++) await fetchBody(`${gw.proxyUrl}/ewma`);
      await gw.admin("PUT", "/apisix/admin/routes/ewma", { uri: "/ewma", upstream: { type: "ewma", nodes } });
      const run = async (n: number) => {
        const counts: Record<string, number> = { steady: 0, slowing: 0 };
        for (let i = 0; i < n; i++) counts[(await fetchBody(`${gw.proxyUrl}/ewma`)).body.node as string]!++;
        return counts;
      };
      const before = await run(40);
      assert.ok(before.slowing! >= 24, `the faster node serves most: ${JSON.stringify(before)}`);
      slowMs = 50;
      // The estimate moves with wall time (10 s decay), not with a request count: the slowing node's
      // average passes the steady one's about 4 s after the change whatever the request rate, so the
      // adaptation phase is timed (8 s), not counted, and a loaded machine cannot cut it short.
      const adaptUntil = performance.now() + 8000;
      for (let i = 0; i < 1000 && performance.now() < adaptUntil; i++) await fetchBody(`${gw.proxyUrl}/ewma`);
      const afterShift = await run(100);
      // APISIX's EWMA (10 s decay) moves gradually: most traffic leaves, a trickle keeps probing it.
      assert.ok(afterShift.slowing! <= 35, `the slow node got ${afterShift.slowing} of 100`);
      assert.ok(afterShift.slowing! / 100 < before.slowing! / 40 - 0.3, "its share dropped substantially");
    } finally {
      await gw.stop();
      await fast.close();
      await slowing.close();
    }
  });
});
