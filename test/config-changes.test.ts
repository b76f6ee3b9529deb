import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Agent, request } from "undici";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

describe("config changes reach the data plane", () => {
  let a: TestUpstream;
  let b: TestUpstream;
  before(async () => {
    a = await startUpstream("a");
    b = await startUpstream("b");
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  test("config survives a restart with the same data dir", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "weir-restart-"));
    try {
      const first = await startTestGateway({ dataDir });
      const put = await first.admin("PUT", "/apisix/admin/routes/kept", {
        uri: "/kept",
        upstream: { nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }] },
      });
      assert.equal(put.status, 201);
      await first.stop();

      const second = await startTestGateway({ dataDir });
      try {
        const got = await second.admin("GET", "/apisix/admin/routes/kept");
        assert.equal(got.status, 200);
        assert.deepEqual(got.body.value, put.body.value);
        assert.equal(got.body.modifiedIndex, put.body.modifiedIndex);
        const res = await fetch(`${second.proxyUrl}/kept`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { node: string }).node, "a");
        // revisions keep growing after a restart
        const again = await second.admin("PUT", "/apisix/admin/routes/kept2", {
          uri: "/kept2",
          upstream: { nodes: [{ host: "127.0.0.1", port: a.port, weight: 1 }] },
        });
        assert.ok(again.body.modifiedIndex > put.body.modifiedIndex);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe("under load", () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway();
    });
    after(async () => gw.stop());

    test("no request is lost and none sees a mix of old and new config", async () => {
      const version = (n: 1 | 2) => ({
        uri: "/live",
        plugins: { "proxy-rewrite": { uri: `/v${n}` } },
        upstream: { nodes: [{ host: "127.0.0.1", port: n === 1 ? a.port : b.port, weight: 1 }] },
      });
      assert.equal((await gw.admin("PUT", "/apisix/admin/routes/live", version(1))).status, 201);

      const dispatcher = new Agent({ connections: 16 });
      let stop = false;
      const outcomes = new Map<string, number>();
      const failures: string[] = [];
      const worker = async () => {
        for (let i = 0; i < 400 && !stop; i++) {
          try {
            const res = await request(`${gw.proxyUrl}/live`, { dispatcher });
            const body = (await res.body.json()) as { node: string; url: string };
            if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
            const key = `${body.node}${body.url}`;
            outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, worker));
      for (let i = 0; i < 30; i++) {
        const res = await gw.admin("PUT", "/apisix/admin/routes/live", version(i % 2 === 0 ? 2 : 1));
        assert.equal(res.status, 200);
        // unrelated writes too: other routes and upstreams come and go
        await gw.admin("PUT", `/apisix/admin/upstreams/churn${i}`, {
          nodes: [{ host: "127.0.0.1", port: b.port, weight: 1 }],
        });
        await new Promise((r) => setTimeout(r, 10));
      }
      stop = true;
      await load;
      await dispatcher.close();
      assert.deepEqual(failures, []);
      const keys = [...outcomes.keys()].sort();
      assert.deepEqual(keys, ["a/v1", "b/v2"], `only consistent pairs: ${JSON.stringify([...outcomes])}`);
    });
  });
});
