import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EmbeddedStore } from "./embedded.js";
import { EtcdStore } from "./etcd.js";
import { createStore } from "./index.js";

test("the embedded provider keeps its files in <dataDir>/store", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "weir-data-"));
  try {
    const store = createStore({ provider: "embedded" }, dataDir);
    assert.ok(store instanceof EmbeddedStore);
    await store.open();
    await store.put("/apisix/routes/1", { uri: "/" });
    await store.close();
    assert.deepEqual((await readdir(join(dataDir, "store"))).sort(), ["wal"]);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("the etcd provider gives an etcd store (opened against a real server in etcd.test.ts)", () => {
  const store = createStore(
    { provider: "etcd", hosts: ["http://127.0.0.1:2379"], prefix: "/apisix", timeoutMs: 5000 },
    "/tmp",
  );
  assert.ok(store instanceof EtcdStore);
});
