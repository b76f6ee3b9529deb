import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

/** Every byte Weir wrote under its data dir (store, WAL, snapshots). */
function dataDirBytes(dir: string): string {
  let out = "";
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out += statSync(path).isDirectory() ? dataDirBytes(path) : readFileSync(path).toString("latin1");
  }
  return out;
}

describe("consumer credentials (APISIX 3.x)", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const call = (headers: Record<string, string> = {}, path = "/cred") =>
    fetchBody(`${gw.proxyUrl}${path}`, { headers });
  const asViewer = async (path: string) => {
    const res = await fetch(`${gw.adminUrl}${path}`, { headers: { "X-API-KEY": gw.viewerKey } });
    return { status: res.status, body: (await res.json()) as any };
  };

  before(async () => {
    process.env.WEIR_TEST_CRED_KEY = "key-from-env-77";
    process.env.WEIR_TEST_CRED_JSON = JSON.stringify({ api: "key-from-json-88" });
    gw = await startTestGateway();
    up = await startUpstream("svc");
    const jack = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "jack",
      labels: { custom_id: "495aec6a" },
    });
    assert.equal(jack.status, 201, JSON.stringify(jack.body));
    const route = await gw.admin("PUT", "/apisix/admin/routes/cred", {
      uri: "/cred",
      plugins: { "key-auth": {} },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    assert.equal(route.status, 201, JSON.stringify(route.body));
  });
  after(async () => {
    await gw.stop();
    await up.close();
    delete process.env.WEIR_TEST_CRED_KEY;
    delete process.env.WEIR_TEST_CRED_JSON;
  });

  test("PUT a credential, then its key authenticates as the consumer with the APISIX upstream headers", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/key-auth-one", {
      desc: "jack's first key",
      plugins: { "key-auth": { key: "jack-secret-key-1" } },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal(put.body.key, "/apisix/consumers/jack/credentials/key-auth-one");

    const ok = await call({ apikey: "jack-secret-key-1" });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.headers["x-consumer-username"], "jack");
    assert.equal(ok.body.headers["x-credential-identifier"], "key-auth-one");
    assert.equal(ok.body.headers["x-consumer-custom-id"], "495aec6a");
    assert.equal((await call({ apikey: "nope" })).status, 401);
  });

  test("the store holds the key encrypted; admin reads it in clear, viewer masked", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/key-auth-two", {
      plugins: { "key-auth": { key: "plaintext-never-on-disk-42" } },
    });
    const stored = await gw.gateway.configStore.get("/apisix/consumers/jack/credentials/key-auth-two");
    const storedKey = (stored!.value as any).plugins["key-auth"].key as string;
    assert.notEqual(storedKey, "plaintext-never-on-disk-42");
    assert.ok(storedKey.startsWith("$weir-gcm$"), storedKey);
    const onDisk = dataDirBytes(gw.dataDir);
    assert.ok(onDisk.includes("495aec6a"), "the store is readable on disk, so the next check means something");
    assert.ok(!onDisk.includes("plaintext-never-on-disk-42"), "plaintext found in the data dir");

    const admin = await gw.admin("GET", "/apisix/admin/consumers/jack/credentials/key-auth-two");
    assert.equal(admin.body.value.plugins["key-auth"].key, "plaintext-never-on-disk-42");
    const viewer = await asViewer("/apisix/admin/consumers/jack/credentials/key-auth-two");
    assert.equal(viewer.status, 200);
    assert.equal(viewer.body.value.plugins["key-auth"].key, "******");
    const list = await asViewer("/apisix/admin/consumers/jack/credentials");
    assert.ok(list.body.total >= 2);
    for (const item of list.body.list) assert.equal(item.value.plugins["key-auth"].key, "******");
    assert.equal((await call({ apikey: "plaintext-never-on-disk-42" })).status, 200);
  });

  test("secrets in consumers and routes are masked for viewers too", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "rose",
      plugins: { "basic-auth": { username: "rose", password: "rose-password-9" } },
    });
    const viewer = await asViewer("/apisix/admin/consumers/rose");
    assert.equal(viewer.body.value.plugins["basic-auth"].password, "******");
    assert.equal(viewer.body.value.plugins["basic-auth"].username, "rose", "only secret fields are masked");
    const list = await asViewer("/apisix/admin/consumers");
    const rose = list.body.list.find((i: any) => i.value.username === "rose");
    assert.equal(rose.value.plugins["basic-auth"].password, "******");
    const admin = await gw.admin("GET", "/apisix/admin/consumers/rose");
    assert.equal(admin.body.value.plugins["basic-auth"].password, "rose-password-9");
  });

  test("PATCH of a consumer keeps its encrypted secrets working", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "patchy",
      plugins: { "key-auth": { key: "patchy-key-123" } },
    });
    const patch = await gw.admin("PATCH", "/apisix/admin/consumers/patchy", { desc: "patched" });
    assert.equal(patch.status, 200, JSON.stringify(patch.body));
    const stored = await gw.gateway.configStore.get("/apisix/consumers/patchy");
    assert.ok(((stored!.value as any).plugins["key-auth"].key as string).startsWith("$weir-gcm$"));
    assert.equal((await call({ apikey: "patchy-key-123" })).status, 200);
  });

  test("duplicate identifying keys are rejected, naming the owner", async () => {
    const dupCred = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "mallory",
      plugins: { "key-auth": { key: "jack-secret-key-1" } },
    });
    assert.equal(dupCred.status, 400);
    assert.equal(
      dupCred.body.error_msg,
      "duplicate key of plugin key-auth found with credential: key-auth-one of consumer: jack",
    );
    await gw.admin("PUT", "/apisix/admin/consumers", { username: "mallory" });
    const dupConsumer = await gw.admin("PUT", "/apisix/admin/consumers/mallory/credentials/c1", {
      plugins: { "basic-auth": { username: "rose", password: "x" } },
    });
    assert.equal(dupConsumer.status, 400);
    assert.equal(dupConsumer.body.error_msg, "duplicate username of plugin basic-auth found with consumer: rose");
    // A credential rewritten with its own key is not a duplicate of itself.
    const same = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/key-auth-one", {
      plugins: { "key-auth": { key: "jack-secret-key-1" } },
    });
    assert.equal(same.status, 200, JSON.stringify(same.body));
  });

  test("APISIX's write rules: auth plugins only, one plugin, consumer must exist, no POST/PATCH", async () => {
    const notAuth = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/x", {
      plugins: { "limit-conn": { conn: 1, burst: 0, default_conn_delay: 0.1, key: "remote_addr" } },
    });
    assert.equal(notAuth.status, 400);
    assert.equal(notAuth.body.error_msg, "only supports auth type plugins in consumer credential");
    const two = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/x", {
      plugins: { "key-auth": { key: "a-1" }, "basic-auth": { username: "u", password: "p" } },
    });
    assert.equal(two.status, 400);
    assert.match(two.body.error_msg, /plugins/);
    const bad = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/x", { plugins: { "key-auth": {} } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_msg, /key/);
    const ghost = await gw.admin("PUT", "/apisix/admin/consumers/ghost/credentials/x", {
      plugins: { "key-auth": { key: "ghost-key" } },
    });
    assert.equal(ghost.status, 404);
    assert.equal(ghost.body.error_msg, "consumer not found");
    const post = await gw.admin("POST", "/apisix/admin/consumers/jack/credentials", {
      plugins: { "key-auth": { key: "k" } },
    });
    assert.equal(post.status, 405);
    const patch = await gw.admin("PATCH", "/apisix/admin/consumers/jack/credentials/key-auth-one", { desc: "x" });
    assert.equal(patch.status, 405);
    const noId = await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials", {
      plugins: { "key-auth": { key: "k" } },
    });
    assert.equal(noId.status, 400);
    assert.equal(noId.body.error_msg, "missing credential id");
  });

  test("$env:// references resolve when the config compiles; a missing variable makes the credential unusable", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers", { username: "envy" });
    await gw.admin("PUT", "/apisix/admin/consumers/envy/credentials/e1", {
      plugins: { "key-auth": { key: "$env://WEIR_TEST_CRED_KEY" } },
    });
    await gw.admin("PUT", "/apisix/admin/consumers/envy/credentials/e2", {
      plugins: { "key-auth": { key: "$env://WEIR_TEST_CRED_JSON/api" } },
    });
    await gw.admin("PUT", "/apisix/admin/consumers/envy/credentials/e3", {
      plugins: { "key-auth": { key: "$env://WEIR_TEST_CRED_MISSING" } },
    });
    const viaEnv = await call({ apikey: "key-from-env-77" });
    assert.equal(viaEnv.status, 200);
    assert.equal(viaEnv.body.headers["x-credential-identifier"], "e1");
    assert.equal((await call({ apikey: "key-from-json-88" })).status, 200);
    assert.equal((await call({ apikey: "$env://WEIR_TEST_CRED_KEY" })).status, 401, "the reference is no key");
    assert.equal((await call({ apikey: "$env://WEIR_TEST_CRED_MISSING" })).status, 401, "fails closed");
    const stored = await gw.gateway.configStore.get("/apisix/consumers/envy/credentials/e1");
    assert.equal((stored!.value as any).plugins["key-auth"].key, "$env://WEIR_TEST_CRED_KEY", "stored unresolved");
  });

  test("client-sent consumer headers never reach the upstream", async () => {
    const spoofed = await call({
      apikey: "jack-secret-key-1",
      "X-Consumer-Username": "admin",
      "X-Credential-Identifier": "forged",
      "X-Consumer-Custom-ID": "forged",
    });
    assert.equal(spoofed.body.headers["x-consumer-username"], "jack");
    assert.equal(spoofed.body.headers["x-credential-identifier"], "key-auth-one");
    assert.equal(spoofed.body.headers["x-consumer-custom-id"], "495aec6a");

    await gw.admin("PUT", "/apisix/admin/routes/open", {
      uri: "/open",
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    const open = await call({ "X-Consumer-Username": "admin", "X-Credential-Identifier": "forged" }, "/open");
    assert.equal(open.status, 200);
    assert.equal(open.body.headers["x-consumer-username"], undefined);
    assert.equal(open.body.headers["x-credential-identifier"], undefined);
  });

  test("deleting a consumer deletes its credentials", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers", { username: "temp" });
    await gw.admin("PUT", "/apisix/admin/consumers/temp/credentials/t1", {
      plugins: { "key-auth": { key: "temp-key-1" } },
    });
    assert.equal((await call({ apikey: "temp-key-1" })).status, 200);
    const del = await gw.admin("DELETE", "/apisix/admin/consumers/temp");
    assert.equal(del.status, 200);
    assert.equal((await gw.admin("GET", "/apisix/admin/consumers/temp/credentials/t1")).status, 404);
    assert.equal((await call({ apikey: "temp-key-1" })).status, 401);
    const consumers = await gw.admin("GET", "/apisix/admin/consumers");
    assert.ok(consumers.body.list.every((i: any) => !String(i.key).includes("/credentials/")));
  });

  test("DELETE of one credential", async () => {
    await gw.admin("PUT", "/apisix/admin/consumers/jack/credentials/gone", {
      plugins: { "key-auth": { key: "gone-key" } },
    });
    assert.equal((await call({ apikey: "gone-key" })).status, 200);
    const del = await gw.admin("DELETE", "/apisix/admin/consumers/jack/credentials/gone");
    assert.equal(del.status, 200);
    assert.equal(del.body.key, "/apisix/consumers/jack/credentials/gone");
    assert.equal((await call({ apikey: "gone-key" })).status, 401);
    assert.equal((await gw.admin("DELETE", "/apisix/admin/consumers/jack/credentials/gone")).status, 404);
  });
});
