import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { EtcdStore } from "../src/store/etcd.js";
import { type EtcdServer, startEtcd } from "./helpers/etcd.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";
import { type Running, startWeir } from "./helpers/weir-process.js";

const run = promisify(execFile);
const KEYRING = "weir-shared-keyring-0123456789ab";

/**
 * Config in etcd, APISIX's layout: two Weir nodes (one in this process, one a separate `weir start`) read
 * and write one etcd, and a route written by etcdctl, as an APISIX deployment's tooling writes it, is served.
 */
describe("etcd config store: many Weir nodes, one config", () => {
  let etcd: EtcdServer;
  let up: TestUpstream;
  let a: TestGateway;
  let b: Running;

  const eventually = async (what: string, check: () => Promise<boolean>) => {
    for (let i = 0; i < 200; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`${what} did not happen`);
  };
  const status = async (base: string, path: string, headers: Record<string, string> = {}) =>
    (await fetchBody(`${base}${path}`, { headers })).status;
  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });

  before(async () => {
    [etcd, up] = await Promise.all([startEtcd(), startUpstream("etcd-node")]);
    const store = new EtcdStore({ hosts: [etcd.url], prefix: "/apisix", timeoutMs: 2000 });
    await store.open();
    a = await startTestGateway({ store, keyring: [KEYRING] });
    b = await startWeir({
      WEIR_CONFIG_PROVIDER: "etcd",
      WEIR_ETCD_HOSTS: etcd.url,
      WEIR__WEIR__DATA_ENCRYPTION__KEYRING: `["${KEYRING}"]`,
    });
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
    await a.gateway.configStore.close();
    await Promise.all([etcd.close(), up.close()]);
  });

  test("a route written through one node's Admin API is served by the other; a delete on the other removes it", async () => {
    await a.put("/apisix/admin/routes/shared", { uri: "/shared", upstream: upstream() });
    await eventually("b serves /shared", async () => (await status(b.proxy, "/shared")) === 200);
    const viaB = await fetchBody(`${b.admin}/apisix/admin/routes/shared`, { headers: { "X-API-KEY": b.key } });
    assert.equal(viaB.status, 200);
    assert.equal(viaB.body.value.uri, "/shared");
    const del = await fetch(`${b.admin}/apisix/admin/routes/shared`, {
      method: "DELETE",
      headers: { "X-API-KEY": b.key },
    });
    assert.equal(del.status, 200);
    await eventually("a stops serving /shared", async () => (await status(a.proxyUrl, "/shared")) === 404);
  });

  test("secrets written on one node work on the other when both share the keyring", async () => {
    await a.put("/apisix/admin/consumers", { username: "jack", plugins: { "key-auth": { key: "jack-etcd-key" } } });
    await a.put("/apisix/admin/routes/guarded", { uri: "/guarded", plugins: { "key-auth": {} }, upstream: upstream() });
    const raw = await etcd.call("/v3/kv/range", { key: Buffer.from("/apisix/consumers/jack").toString("base64") });
    const stored = Buffer.from(raw.kvs[0].value, "base64").toString();
    assert.ok(!stored.includes("jack-etcd-key"), "the key is encrypted in etcd");
    await eventually(
      "b authenticates jack",
      async () => (await status(b.proxy, "/guarded", { apikey: "jack-etcd-key" })) === 200,
    );
    assert.equal(await status(b.proxy, "/guarded", { apikey: "wrong" }), 401);
  });

  test("a route put with etcdctl in APISIX's layout is served, and reads back with etcd's revisions", async () => {
    const value = JSON.stringify({
      uri: "/from-etcdctl",
      upstream: { type: "roundrobin", nodes: { [`127.0.0.1:${up.port}`]: 1 } },
    });
    await run("etcdctl", ["--endpoints", etcd.url, "put", "/apisix/routes/from-etcdctl", value], {
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    await eventually("a serves it", async () => (await status(a.proxyUrl, "/from-etcdctl")) === 200);
    await eventually("b serves it", async () => (await status(b.proxy, "/from-etcdctl")) === 200);
    const got = await a.admin("GET", "/apisix/admin/routes/from-etcdctl");
    const raw = await etcd.call("/v3/kv/range", { key: Buffer.from("/apisix/routes/from-etcdctl").toString("base64") });
    assert.equal(got.body.modifiedIndex, Number(raw.kvs[0].mod_revision));
    assert.equal(got.body.createdIndex, Number(raw.kvs[0].create_revision));
  });

  test("etcd down: the data plane keeps serving the last config, writes get a 503, and both recover", async () => {
    await a.put("/apisix/admin/routes/steady", { uri: "/steady", upstream: upstream() });
    await eventually("b serves /steady", async () => (await status(b.proxy, "/steady")) === 200);
    const metric = async (name: string) => {
      const text = await (
        await fetch(`http://127.0.0.1:${a.gateway.metricsAddress!.port}/apisix/prometheus/metrics`)
      ).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    assert.equal(await metric("apisix_etcd_reachable"), 1);
    assert.ok((await metric('apisix_etcd_modify_indexes{key="x_etcd_index"}'))! > 0);
    assert.ok((await metric('apisix_etcd_modify_indexes{key="routes"}'))! > 0);
    await etcd.stop();
    try {
      assert.equal(await metric("apisix_etcd_reachable"), 0);
      assert.equal(await status(a.proxyUrl, "/steady"), 200);
      assert.equal(await status(b.proxy, "/steady"), 200);
      const write = await a.admin("PUT", "/apisix/admin/routes/during-outage", { uri: "/x", upstream: upstream() });
      assert.equal(write.status, 503);
      assert.match(write.body.error_msg, /config store unavailable/);
    } finally {
      await etcd.start();
    }
    await eventually("writes work again", async () => {
      const res = await a.admin("PUT", "/apisix/admin/routes/after-outage", { uri: "/after", upstream: upstream() });
      return res.status === 201 || res.status === 200;
    });
    await eventually("b follows again", async () => (await status(b.proxy, "/after")) === 200);
  });
});
