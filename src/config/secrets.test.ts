import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  CIPHER_PREFIX,
  Keyring,
  loadKeyring,
  MASK,
  mapFields,
  type PluginSecretFields,
  PluginSecrets,
  resolveEnvRefs,
} from "./secrets.js";

describe("Keyring", () => {
  test("round-trips, marks ciphertext, and never repeats a ciphertext", () => {
    const ring = new Keyring(["k1"]);
    const a = ring.encrypt("secret");
    assert.ok(a.startsWith(CIPHER_PREFIX));
    assert.notEqual(a, ring.encrypt("secret"), "random IV");
    assert.equal(ring.decrypt(a), "secret");
    assert.equal(ring.decrypt("stored-in-clear-earlier"), "stored-in-clear-earlier");
  });

  test("rotation: the first entry encrypts, every entry decrypts; a removed key fails loudly", () => {
    const old = new Keyring(["old"]).encrypt("v");
    const rotated = new Keyring(["new", "old"]);
    assert.equal(rotated.decrypt(old), "v");
    assert.equal(new Keyring(["new"]).decrypt(rotated.encrypt("w")), "w");
    assert.throws(() => new Keyring(["other"]).decrypt(old), /no keyring entry/);
  });

  test("tampered ciphertext is rejected, not decrypted to garbage", () => {
    const ring = new Keyring(["k"]);
    const c = ring.encrypt("secret");
    const raw = Buffer.from(c.slice(CIPHER_PREFIX.length), "base64");
    raw[raw.length - 20]! ^= 1;
    assert.throws(() => ring.decrypt(CIPHER_PREFIX + raw.toString("base64")));
  });

  test("a generated key is kept in the data dir with mode 0600 and reused", () => {
    const dir = mkdtempSync(join(tmpdir(), "weir-keyring-"));
    try {
      const c = loadKeyring([], dir).encrypt("x");
      const file = join(dir, "data_encryption_key");
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.ok(readFileSync(file, "utf8").trim().length >= 32);
      assert.equal(loadKeyring(undefined, dir).decrypt(c), "x");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("field paths and secrets of plugin configs", () => {
  test("`*` matches every key at its level; missing paths and non-strings are left alone", () => {
    const conf = { auth: { header: { Authorization: "a", "X-Key": "b" }, query: { k: 1 } }, other: "c" };
    mapFields(conf, ["auth.header.*", "auth.query.*", "missing.x", "other"], (v) => v.toUpperCase());
    assert.deepEqual(conf, { auth: { header: { Authorization: "A", "X-Key": "B" }, query: { k: 1 } }, other: "C" });
  });

  const plugin: PluginSecretFields = { encryptFields: ["key", "auth.header.*"] };
  const secrets = new PluginSecrets(new Keyring(["k"]), new Map([["p", plugin]]));

  test("encrypt, decrypt and mask touch only the declared fields; env refs stay readable", () => {
    const plugins = { p: { key: "s1", auth: { header: { a: "s2" } }, plain: "x", ref: "$env://X" }, q: { key: "y" } };
    secrets.encrypt(plugins);
    assert.ok(plugins.p.key.startsWith(CIPHER_PREFIX));
    assert.ok(plugins.p.auth.header.a.startsWith(CIPHER_PREFIX));
    assert.equal(plugins.p.plain, "x");
    assert.equal(plugins.q.key, "y", "unknown plugin untouched");
    const once = plugins.p.key;
    secrets.encrypt(plugins);
    assert.equal(plugins.p.key, once, "never encrypted twice");
    const masked = structuredClone(plugins);
    secrets.mask(masked);
    assert.equal(masked.p.key, MASK);
    secrets.decrypt(plugins);
    assert.deepEqual(plugins.p, { key: "s1", auth: { header: { a: "s2" } }, plain: "x", ref: "$env://X" });
    const withRef = { key: "$env://NOT_ENCRYPTED" };
    secrets.encrypt({ p: withRef });
    assert.equal(withRef.key, "$env://NOT_ENCRYPTED");
  });

  test("prepare decrypts and resolves without touching the stored object", () => {
    const stored = { key: new Keyring(["k"]).encrypt("s1"), url: "$ENV://WEIR_UNIT_URL" };
    const before = structuredClone(stored);
    process.env.WEIR_UNIT_URL = "http://x";
    try {
      assert.deepEqual(secrets.prepare(plugin, stored), { key: "s1", url: "http://x" });
      assert.deepEqual(stored, before);
    } finally {
      delete process.env.WEIR_UNIT_URL;
    }
    assert.throws(() => secrets.prepare(plugin, stored), /WEIR_UNIT_URL/);
  });
});

describe("$env:// references", () => {
  const env = { A: "alpha", J: '{"user":"u1","n":2}', BAD: "not json" };
  test("plain and subkey references resolve anywhere in a config; others are returned as they are", () => {
    const conf = { a: "$env://A", list: ["$env://J/user", 1], deep: { n: "$env://J/n" }, keep: "env://A" };
    assert.deepEqual(resolveEnvRefs(conf, env), { a: "alpha", list: ["u1", 1], deep: { n: "2" }, keep: "env://A" });
    const untouched = { x: "y", z: [1] };
    assert.equal(resolveEnvRefs(untouched, env), untouched, "no copy when nothing refers to env");
  });
  test("a missing variable, a non-JSON value or a missing subkey throws naming it", () => {
    assert.throws(() => resolveEnvRefs({ a: "$env://NOPE" }, env), /NOPE/);
    assert.throws(() => resolveEnvRefs("$env://BAD/x", env), /BAD/);
    assert.throws(() => resolveEnvRefs("$env://J/missing", env), /missing/);
  });
});
