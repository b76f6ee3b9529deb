import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, loadConfig, parseListen } from "./load.js";

/** The plugin names a build ships come from the caller (the CLI passes the registry's); any list will do here. */
const knownPlugins = ["key-auth", "limit-req", "prometheus"];

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "weir-conf-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function withFile(yaml: string): { cwd: string; path: string } {
  const cwd = tempDir();
  const path = join(cwd, "config.yaml");
  writeFileSync(path, yaml);
  return { cwd, path };
}

test("defaults: proxy 0.0.0.0:9080, admin 127.0.0.1:9180, embedded store, ./data, all plugins", () => {
  const cwd = tempDir();
  const { config, source } = loadConfig({ knownPlugins, cwd, env: { WEIR_ADMIN_KEY: "k".repeat(32) } });
  assert.equal(source, "defaults");
  assert.deepEqual(config.proxy.listen, [{ host: "0.0.0.0", port: 9080 }]);
  assert.deepEqual(config.admin.listen, { host: "127.0.0.1", port: 9180 });
  assert.equal(config.store.provider, "embedded");
  assert.equal(config.dataDir, join(cwd, "data"));
  assert.deepEqual(config.plugins, knownPlugins);
  assert.deepEqual(config.admin.allow, ["127.0.0.0/24", "::1/128"]);
});

test("file values, then environment overrides win", () => {
  const { cwd, path } = withFile(`
weir:
  node_listen: ["127.0.0.1:7000", "127.0.0.1:7001"]
  data_dir: /tmp/weir-from-file
deployment:
  admin:
    admin_listen: { ip: 127.0.0.1, port: 7180 }
    admin_key: [{ name: a, key: "${"f".repeat(20)}", role: admin }]
plugins: [limit-req]
`);
  const fromFile = loadConfig({ knownPlugins, path, cwd, env: {} }).config;
  assert.deepEqual(
    fromFile.proxy.listen.map((l) => l.port),
    [7000, 7001],
  );
  assert.equal(fromFile.admin.listen.port, 7180);
  assert.equal(fromFile.admin.keys[0]!.key, "f".repeat(20));
  assert.deepEqual(fromFile.plugins, ["limit-req"]);

  const env = {
    WEIR_PROXY_LISTEN: "127.0.0.1:8100,[::1]:8101",
    WEIR_ADMIN_LISTEN: "127.0.0.1:8180",
    WEIR_ADMIN_KEY: "e".repeat(24),
    WEIR_VIEWER_KEY: "v".repeat(24),
    WEIR_DATA_DIR: join(cwd, "envdata"),
    WEIR_ACCESS_LOG: "off",
  };
  const c = loadConfig({ knownPlugins, path, cwd, env }).config;
  assert.deepEqual(c.proxy.listen, [
    { host: "127.0.0.1", port: 8100 },
    { host: "::1", port: 8101 },
  ]);
  assert.equal(c.admin.listen.port, 8180);
  assert.deepEqual(
    c.admin.keys.map((k) => [k.name, k.role]),
    [
      ["admin", "admin"],
      ["viewer", "viewer"],
    ],
  );
  assert.equal(c.dataDir, join(cwd, "envdata"));
  assert.equal(c.accessLog.path, null);
});

test("any key can be set as WEIR__SECTION__KEY, parsed as YAML", () => {
  const cwd = tempDir();
  const { config } = loadConfig({
    knownPlugins,
    cwd,
    env: {
      WEIR_ADMIN_KEY: "k".repeat(32),
      WEIR__DEPLOYMENT__ADMIN__ADMIN_LISTEN__PORT: "9999",
      WEIR__WEIR__GRACEFUL_SHUTDOWN_TIMEOUT: "3",
      WEIR__DEPLOYMENT__ADMIN__ALLOW_ADMIN: "[10.0.0.0/8]",
    },
  });
  assert.equal(config.admin.listen.port, 9999);
  assert.equal(config.shutdownTimeoutMs, 3000);
  assert.deepEqual(config.admin.allow, ["10.0.0.0/8"]);
});

test("APISIX-style env substitution (VAR and VAR:=default) reads the environment; comments are left alone", () => {
  const { cwd, path } = withFile(`
# a comment mentioning \${{NOT_SET_ANYWHERE}}
weir:
  node_listen: "127.0.0.1:\${{PORT}}"
  data_dir: "\${{DIR:=./fallback}}"
`);
  const c = loadConfig({ knownPlugins, path, cwd, env: { PORT: "7777", WEIR_ADMIN_KEY: "k".repeat(32) } }).config;
  assert.equal(c.proxy.listen[0]!.port, 7777);
  assert.equal(c.dataDir, join(cwd, "fallback"));
  assert.throws(
    () => loadConfig({ knownPlugins, path, cwd, env: { WEIR_ADMIN_KEY: "k".repeat(32) } }),
    /PORT is not set/,
  );
});

test("bad config files are refused with a message naming the key and the file", () => {
  const { cwd, path } = withFile("deployment:\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: high }\n");
  assert.throws(
    () => loadConfig({ knownPlugins, path, cwd, env: {} }),
    (err: Error) =>
      err instanceof ConfigError && err.message.includes(path) && err.message.includes("deployment.admin.admin_listen"),
  );
  const typo = withFile("weir:\n  node_lisen: 1\n");
  assert.throws(() => loadConfig({ knownPlugins, path: typo.path, cwd: typo.cwd, env: {} }), /node_lisen/);
  const badPlugin = withFile("plugins: [limit-req, no-such-plugin]\n");
  assert.throws(
    () => loadConfig({ knownPlugins, path: badPlugin.path, cwd: badPlugin.cwd, env: {} }),
    /no-such-plugin.*known: /,
  );
  assert.throws(
    () => loadConfig({ knownPlugins, path: join(cwd, "missing.yaml"), cwd, env: {} }),
    /no such config file/,
  );
});

test("short or well-known admin keys are refused", () => {
  const cwd = tempDir();
  assert.throws(() => loadConfig({ knownPlugins, cwd, env: { WEIR_ADMIN_KEY: "short" } }), /shorter than 16/);
  assert.throws(
    () => loadConfig({ knownPlugins, cwd, env: { WEIR_ADMIN_KEY: "edd1c9f034335f136f87ad84b625c8f1" } }),
    /well-known/,
  );
});

test("without a configured key one is generated once, kept 0600 in the data dir, and reported only the first time", () => {
  const cwd = tempDir();
  const first = loadConfig({ knownPlugins, cwd, env: {} });
  assert.ok(first.generatedAdminKey !== undefined && first.generatedAdminKey.length >= 32);
  const file = join(cwd, "data", "admin_key");
  assert.equal(readFileSync(file, "utf8").trim(), first.generatedAdminKey);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const second = loadConfig({ knownPlugins, cwd, env: {} });
  assert.equal(second.generatedAdminKey, undefined);
  assert.equal(second.config.admin.keys[0]!.key, first.generatedAdminKey);
  const readOnly = loadConfig({ knownPlugins, cwd: tempDir(), env: {}, readOnly: true });
  assert.equal(readOnly.generatedAdminKey, undefined);
});

test("listen addresses: host:port, [v6]:port, bare port, objects; bad ones are named", () => {
  assert.deepEqual(parseListen("0.0.0.0:9080", "x", "h"), { host: "0.0.0.0", port: 9080 });
  assert.deepEqual(parseListen("[::]:9080", "x", "h"), { host: "::", port: 9080 });
  assert.deepEqual(parseListen(9080, "x", "h"), { host: "h", port: 9080 });
  assert.deepEqual(parseListen({ ip: "127.0.0.1", port: 1 }, "x", "h"), { host: "127.0.0.1", port: 1 });
  assert.throws(() => parseListen("nonsense", "WEIR_PROXY_LISTEN", "h"), /WEIR_PROXY_LISTEN: "nonsense"/);
  assert.throws(() => parseListen("1.2.3.4:99999", "WEIR_PROXY_LISTEN", "h"), /out of range/);
});

test("deployment.etcd.tls: the PEM files are read at load; a missing file or a cert without its key is an error", () => {
  const yaml = (tls: string) => `
deployment:
  role_traditional: { config_provider: etcd }
  admin:
    admin_key: [{ name: a, key: "${"e".repeat(20)}", role: admin }]
  etcd:
    host: ["https://127.0.0.1:2379"]
    tls: ${tls}
`;
  const ok = withFile(yaml("{ cert: c.pem, key: k.pem, trusted_ca: ca.pem, verify: false, sni: etcd.internal }"));
  writeFileSync(join(ok.cwd, "c.pem"), "CERT");
  writeFileSync(join(ok.cwd, "k.pem"), "KEY");
  writeFileSync(join(ok.cwd, "ca.pem"), "CA");
  const store = loadConfig({ knownPlugins, path: ok.path, cwd: ok.cwd, env: {} }).config.store;
  assert.deepEqual(store.provider === "etcd" ? store.tls : undefined, {
    cert: "CERT",
    key: "KEY",
    ca: "CA",
    verify: false,
    sni: "etcd.internal",
  });
  const missing = withFile(yaml("{ cert: nope.pem, key: nope-key.pem }"));
  assert.throws(
    () => loadConfig({ knownPlugins, path: missing.path, cwd: missing.cwd, env: {} }),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /deployment\.etcd\.tls\.cert: cannot read nope\.pem/);
      return true;
    },
  );
  const half = withFile(yaml("{ cert: c.pem }"));
  assert.throws(
    () => loadConfig({ knownPlugins, path: half.path, cwd: half.cwd, env: {} }),
    /cert and key go together/,
  );
});
