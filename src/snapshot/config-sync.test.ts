import assert from "node:assert/strict";
import { test } from "node:test";
import { pluginRegistry } from "../plugins/index.js";
import { MemoryStore } from "../store/memory.js";
import { PoolManager } from "../upstream/pool.js";
import { ConfigSync } from "./config-sync.js";

async function setup() {
  const store = new MemoryStore();
  const pools = new PoolManager();
  const logs: string[] = [];
  const sync = new ConfigSync({ store, registry: pluginRegistry, pools, log: (l) => logs.push(l) });
  return { store, pools, logs, sync };
}

const nextSnapshot = (sync: ConfigSync) =>
  new Promise<void>((resolve) => {
    const off = sync.onSnapshot(() => {
      off();
      resolve();
    });
  });

test("a burst of writes becomes one rebuild, and the snapshot carries the store revision", async () => {
  const { store, pools, sync } = await setup();
  await sync.start();
  let rebuilds = 0;
  sync.onSnapshot(() => rebuilds++);
  const swapped = nextSnapshot(sync);
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      store.put(`/apisix/routes/r${i}`, {
        uri: `/r${i}`,
        upstream: { nodes: [{ host: "127.0.0.1", port: 1, weight: 1 }] },
      }),
    ),
  );
  await swapped;
  await new Promise((r) => setImmediate(r));
  assert.equal(rebuilds, 1);
  assert.equal(sync.current.revision, store.revision());
  assert.equal(sync.current.routes.size, 20);
  sync.stop();
  await pools.close();
});

test("config written straight into the store is validated: defaults filled, an invalid plugin fails closed and is logged", async () => {
  const { store, pools, logs, sync } = await setup();
  await store.put("/apisix/routes/ok", {
    uri: "/ok",
    plugins: { "limit-req": { rate: 1, burst: 1, key: "remote_addr" } },
    upstream: { nodes: [{ host: "127.0.0.1", port: 1, weight: 1 }] },
  });
  await store.put("/apisix/routes/bad", {
    uri: "/bad",
    plugins: { "limit-req": { rate: "fast" }, "request-id": {} },
    upstream: { nodes: [{ host: "127.0.0.1", port: 1, weight: 1 }] },
  });
  await sync.start();
  assert.deepEqual(sync.current.routes.get("ok")!.plugins.names, ["limit-req"]);
  const bad = sync.current.routes.get("bad")!.plugins;
  assert.deepEqual(bad.names, ["limit-req", "request-id"]);
  // A plugin that cannot run must not be skipped (a broken limiter or auth plugin would fail open).
  const stand = bad.rewrite[0]!;
  assert.equal(stand.name, "limit-req");
  const reply = stand.plugin.rewrite!(stand.state, {} as never) as { status: number; body: { error_msg: string } };
  assert.equal(reply.status, 503);
  assert.match(reply.body.error_msg, /plugin limit-req is misconfigured/);
  assert.ok(
    logs.some((l) => l.includes("route bad") && l.includes("limit-req")),
    logs.join("\n"),
  );
  sync.stop();
  await pools.close();
});

test("deleting a resource removes it from the next snapshot; unrelated upstreams keep their compiled object", async () => {
  const { store, pools, sync } = await setup();
  await store.put("/apisix/upstreams/keep", { nodes: [{ host: "127.0.0.1", port: 1, weight: 1 }] });
  await store.put("/apisix/upstreams/drop", { nodes: [{ host: "127.0.0.1", port: 2, weight: 1 }] });
  await sync.start();
  const kept = sync.current.upstreams.get("keep");
  const swapped = nextSnapshot(sync);
  await store.delete("/apisix/upstreams/drop");
  await swapped;
  assert.equal(sync.current.upstreams.has("drop"), false);
  assert.equal(sync.current.upstreams.get("keep"), kept, "balancer state survives unrelated changes");
  sync.stop();
  await pools.close();
});
