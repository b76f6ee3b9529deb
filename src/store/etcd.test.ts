import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { type EtcdServer, makeCerts, startEtcd } from "../../test/helpers/etcd.js";
import { EtcdStore } from "./etcd.js";
import { CompareFailedError, type WatchEvent } from "./types.js";

const run = promisify(execFile);

// The store contract against a real etcd: the same semantics the embedded store's tests prove.
let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(() => etcd.close());

let n = 0;
async function openStore(prefix = `/t${++n}`): Promise<EtcdStore> {
  const store = new EtcdStore({ hosts: [etcd.url], prefix, timeoutMs: 2000 });
  await store.open();
  return store;
}

function collect(store: EtcdStore, prefix: string, from: number) {
  const events: WatchEvent[] = [];
  const watcher = store.watch(prefix, from, (batch) => events.push(...batch));
  const until = async (count: number) => {
    for (let i = 0; i < 200 && events.length < count; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(events.length >= count, `expected ${count} events, got ${events.length}`);
  };
  return { events, watcher, until };
}

test("put, get, list and delete with etcd's revisions; keys live under the configured prefix", async () => {
  const store = await openStore("/weir-prefix");
  try {
    const a = await store.put("/apisix/routes/1", { uri: "/a" });
    assert.equal(a.key, "/apisix/routes/1");
    assert.equal(a.createRevision, a.modRevision);
    const b = await store.put("/apisix/routes/1", { uri: "/b" });
    assert.equal(b.createRevision, a.createRevision);
    assert.ok(b.modRevision > a.modRevision);
    assert.equal(store.revision(), b.modRevision);
    await store.put("/apisix/upstreams/u", { nodes: {} });
    assert.deepEqual((await store.get("/apisix/routes/1"))?.value, { uri: "/b" });
    const listed = await store.list("/apisix/routes/");
    assert.deepEqual(
      listed.entries.map((e) => e.key),
      ["/apisix/routes/1"],
    );
    // The raw etcd key is APISIX's layout under the prefix.
    const raw = await etcd.call("/v3/kv/range", { key: Buffer.from("/weir-prefix/routes/1").toString("base64") });
    assert.deepEqual(JSON.parse(Buffer.from(raw.kvs[0].value, "base64").toString()), { uri: "/b" });
    const removed = await store.delete("/apisix/routes/1");
    assert.deepEqual(removed?.value, { uri: "/b" });
    assert.equal(await store.get("/apisix/routes/1"), undefined);
    assert.equal(await store.delete("/apisix/routes/1"), undefined);
  } finally {
    await store.close();
  }
});

test("compare-and-swap: create-only and on modRevision, for put and delete; a failed one writes nothing", async () => {
  const store = await openStore();
  try {
    const first = await store.put("/apisix/routes/cas", { v: 1 }, { prevRevision: 0 });
    await assert.rejects(store.put("/apisix/routes/cas", { v: 2 }, { prevRevision: 0 }), CompareFailedError);
    await assert.rejects(
      store.put("/apisix/routes/cas", { v: 2 }, { prevRevision: first.modRevision + 100 }),
      (err: CompareFailedError) => err.currentRevision === first.modRevision,
    );
    const second = await store.put("/apisix/routes/cas", { v: 2 }, { prevRevision: first.modRevision });
    await assert.rejects(store.delete("/apisix/routes/cas", { prevRevision: first.modRevision }), CompareFailedError);
    assert.deepEqual((await store.get("/apisix/routes/cas"))?.value, { v: 2 });
    await store.delete("/apisix/routes/cas", { prevRevision: second.modRevision });
    assert.equal(await store.get("/apisix/routes/cas"), undefined);
  } finally {
    await store.close();
  }
});

test("watch: replays from a revision, then follows live writes and deletes in order", async () => {
  const store = await openStore();
  try {
    const start = await store.put("/apisix/routes/w1", { v: 1 });
    await store.put("/apisix/routes/w2", { v: 2 });
    const { events, watcher, until } = collect(store, "/apisix/", start.modRevision);
    await until(2);
    await store.delete("/apisix/routes/w1");
    await store.put("/apisix/services/s", { v: 3 });
    await until(4);
    watcher.close();
    assert.deepEqual(
      events.map((e) => [e.type, e.key]),
      [
        ["put", "/apisix/routes/w1"],
        ["put", "/apisix/routes/w2"],
        ["delete", "/apisix/routes/w1"],
        ["put", "/apisix/services/s"],
      ],
    );
    assert.deepEqual(events[2]!.entry.value, { v: 1 }, "a delete carries the entry it removed");
    const revisions = events.map((e) => e.revision);
    assert.deepEqual(
      revisions,
      [...revisions].sort((x, y) => x - y),
    );
  } finally {
    await store.close();
  }
});

/** A TCP hop to etcd that can be cut, as a network partition between one gateway and etcd. */
async function partitionable(target: string) {
  const { port } = new URL(target);
  const sockets = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(Number(port), "127.0.0.1");
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    heal() {
      cut = false;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test("watch resumes after a partition; when etcd compacted what it missed, it relists and tells the difference", async () => {
  const prefix = `/t${++n}`;
  const hop = await partitionable(etcd.url);
  const watched = new EtcdStore({ hosts: [hop.url], prefix, timeoutMs: 2000 });
  await watched.open();
  const writer = await openStore(prefix);
  try {
    await writer.put("/apisix/routes/keep", { v: 1 });
    const base = await writer.put("/apisix/routes/gone", { v: 1 });
    const { events, watcher, until } = collect(watched, "/apisix/", base.modRevision + 1);
    await writer.put("/apisix/routes/live", { v: 1 });
    await until(1);
    hop.cut();
    await writer.put("/apisix/routes/keep", { v: 2 });
    await writer.delete("/apisix/routes/gone");
    const last = await writer.put("/apisix/routes/new", { v: 1 });
    await etcd.call("/v3/kv/compaction", { revision: String(last.modRevision), physical: true });
    hop.heal();
    await until(4);
    watcher.close();
    assert.deepEqual(
      events.map((e) => [e.type, e.key]),
      [
        ["put", "/apisix/routes/live"],
        ["put", "/apisix/routes/keep"],
        ["put", "/apisix/routes/new"],
        ["delete", "/apisix/routes/gone"],
      ],
    );
    assert.deepEqual(events[1]!.entry.value, { v: 2 });
  } finally {
    await watched.close();
    await writer.close();
    await hop.close();
  }
});

test("watch resumes after an etcd restart from the revision after the last one it delivered", async () => {
  const store = await openStore();
  try {
    const base = await store.put("/apisix/routes/r", { v: 1 });
    const { events, watcher, until } = collect(store, "/apisix/", base.modRevision + 1);
    await etcd.stop();
    await etcd.start();
    await store.put("/apisix/routes/r", { v: 2 });
    await until(1);
    watcher.close();
    assert.deepEqual(
      events.map((e) => [e.type, e.key, e.entry.value]),
      [["put", "/apisix/routes/r", { v: 2 }]],
    );
  } finally {
    await store.close();
  }
});

test("a dead member in hosts is passed over, for requests and for the watch", async () => {
  const store = new EtcdStore({ hosts: ["http://127.0.0.1:1", etcd.url], prefix: `/t${++n}`, timeoutMs: 1000 });
  await store.open();
  try {
    const { events, watcher, until } = collect(store, "/apisix/", store.revision() + 1);
    await store.put("/apisix/routes/é", { name: "ünïcödé" });
    await until(1);
    watcher.close();
    assert.deepEqual(events[0]!.entry.value, { name: "ünïcödé" });
    assert.equal(events[0]!.key, "/apisix/routes/é");
  } finally {
    await store.close();
  }
});

test("an unreachable etcd fails open() with a clear error", async () => {
  const store = new EtcdStore({ hosts: ["http://127.0.0.1:1"], prefix: "/apisix", timeoutMs: 500 });
  await assert.rejects(store.open(), /etcd unreachable/);
  await store.close();
});

test("https etcd with client certificates: the configured cert, key and CA get through; without them, refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-etcd-certs-"));
  const certs = makeCerts(dir);
  const secure = await startEtcd({ tls: certs });
  const pem = (path: string) => readFileSync(path, "utf8");
  try {
    const store = new EtcdStore({
      hosts: [secure.url],
      prefix: "/apisix",
      timeoutMs: 2000,
      tls: { cert: pem(certs.clientCert), key: pem(certs.clientKey), ca: pem(certs.ca), verify: true },
    });
    await store.open();
    const { events, watcher, until } = collect(store, "/apisix/", store.revision() + 1);
    await store.put("/apisix/routes/tls", { v: 1 });
    await until(1);
    watcher.close();
    await store.close();
    const noClientCert = new EtcdStore({
      hosts: [secure.url],
      prefix: "/apisix",
      timeoutMs: 2000,
      tls: { ca: pem(certs.ca), verify: true },
    });
    await assert.rejects(noClientCert.open(), /etcd unreachable|certificate/);
    await noClientCert.close();
    const untrusted = new EtcdStore({
      hosts: [secure.url],
      prefix: "/apisix",
      timeoutMs: 2000,
      tls: { cert: pem(certs.clientCert), key: pem(certs.clientKey), verify: true },
    });
    await assert.rejects(
      untrusted.open(),
      /self.signed|unable to verify|etcd unreachable/i,
      "etcd's certificate is checked",
    );
    await untrusted.close();
    assert.equal(events[0]!.key, "/apisix/routes/tls");
  } finally {
    await secure.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an expired auth token is renewed: the request that finds it stale is answered, not failed", async () => {
  const shortLived = await startEtcd({ args: ["--auth-token", "simple", "--auth-token-ttl", "1"] });
  try {
    const env = { ...process.env, ETCDCTL_API: "3" };
    const ctl = (...args: string[]) => run("etcdctl", ["--endpoints", shortLived.url, ...args], { env });
    await ctl("role", "add", "root");
    await ctl("user", "add", "root", "--new-user-password=root-pw-0123");
    await ctl("user", "grant-role", "root", "root");
    await ctl("auth", "enable");
    const store = new EtcdStore({
      hosts: [shortLived.url],
      prefix: "/apisix",
      timeoutMs: 2000,
      user: "root",
      password: "root-pw-0123",
    });
    await store.open();
    try {
      await store.put("/apisix/routes/before", { v: 1 });
      await new Promise((r) => setTimeout(r, 2500)); // the 1 s token expires (etcd checks about every second)
      await store.put("/apisix/routes/after", { v: 2 });
      assert.deepEqual((await store.get("/apisix/routes/after"))?.value, { v: 2 });
    } finally {
      await store.close();
    }
  } finally {
    await shortLived.close();
  }
});

// Last: it turns authentication on for the shared server.
test("with etcd auth on: user and password get a token; a wrong password is a clear error", async () => {
  const env = { ...process.env, ETCDCTL_API: "3" };
  const ctl = (...args: string[]) => run("etcdctl", ["--endpoints", etcd.url, ...args], { env });
  await ctl("role", "add", "root");
  await ctl("user", "add", "root", "--new-user-password=root-pw-0123");
  await ctl("user", "grant-role", "root", "root");
  await ctl("auth", "enable");
  const store = new EtcdStore({
    hosts: [etcd.url],
    prefix: `/t${++n}`,
    timeoutMs: 2000,
    user: "root",
    password: "root-pw-0123",
  });
  await store.open();
  try {
    const { events, watcher, until } = collect(store, "/apisix/", store.revision() + 1);
    await store.put("/apisix/routes/authed", { v: 1 });
    assert.deepEqual((await store.get("/apisix/routes/authed"))?.value, { v: 1 });
    await until(1);
    watcher.close();
    assert.equal(events[0]!.key, "/apisix/routes/authed", "the watch stream carries the token too");
  } finally {
    await store.close();
  }
  const anonymous = new EtcdStore({ hosts: [etcd.url], prefix: "/apisix", timeoutMs: 2000 });
  await assert.rejects(anonymous.open(), /user name is empty/);
  await anonymous.close();
  const wrong = new EtcdStore({
    hosts: [etcd.url],
    prefix: "/apisix",
    timeoutMs: 2000,
    user: "root",
    password: "nope",
  });
  await assert.rejects(wrong.open(), /authentication failed/);
  await wrong.close();
});
