import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("traffic-split", () => {
  let gw: TestGateway;
  let stable: TestUpstream;
  let canary: TestUpstream;
  let blue: TestUpstream;
  const node = (u: TestUpstream) => ({ nodes: [{ host: "127.0.0.1", port: u.port, weight: 1 }] });
  before(async () => {
    gw = await startTestGateway();
    stable = await startUpstream("stable");
    canary = await startUpstream("canary");
    blue = await startUpstream("blue");
    await gw.admin("PUT", "/apisix/admin/upstreams/canary", node(canary));
    const put = await gw.admin("PUT", "/apisix/admin/routes/split", {
      uri: "/split",
      upstream: node(stable),
      plugins: {
        "traffic-split": {
          rules: [
            {
              match: [{ vars: [["http_x_release", "==", "blue"]] }],
              weighted_upstreams: [{ upstream: { type: "roundrobin", ...node(blue) } }],
            },
            { weighted_upstreams: [{ upstream_id: "canary", weight: 3 }, { weight: 1 }] },
          ],
        },
      },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
  });
  after(async () => {
    await gw.stop();
    await Promise.all([stable.close(), canary.close(), blue.close()]);
  });

  test("weights split traffic exactly per cycle; a weight without upstream is the route's own", async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const node = (await fetchBody(`${gw.proxyUrl}/split`)).body.node as string;
      counts[node] = (counts[node] ?? 0) + 1;
    }
    assert.deepEqual(counts, { canary: 30, stable: 10 });
  });

  test("a matching rule wins (blue-green by header) with an inline upstream", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetchBody(`${gw.proxyUrl}/split`, { headers: { "x-release": "blue" } });
      assert.equal(res.body.node, "blue");
    }
  });

  test("edits to a referenced upstream apply at once", async () => {
    await gw.admin("PUT", "/apisix/admin/upstreams/canary", node(blue));
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await fetchBody(`${gw.proxyUrl}/split`)).body.node);
    assert.deepEqual([...seen].sort(), ["blue", "stable"]);
    await gw.admin("PUT", "/apisix/admin/upstreams/canary", node(canary));
  });

  test("bad rules are rejected with the field named", async () => {
    const res = await gw.admin("PUT", "/apisix/admin/routes/bad-split", {
      uri: "/bad-split",
      upstream: node(stable),
      plugins: {
        "traffic-split": {
          rules: [{ weighted_upstreams: [{ upstream: { nodes: [{ host: "h", port: 0, weight: 1 }] } }] }],
        },
      },
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error_msg, /weighted_upstreams\[0\]\.upstream/);
  });
});
