import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { basicAuth } from "./basic-auth.js";
import { keyAuth } from "./key-auth.js";

const keyState = keyAuth.compile!(
  { header: "apikey", query: "apikey", realm: "key" },
  { kind: "route", id: "1", revision: 1 },
);

describe("key-auth (unit)", () => {
  test("looks the key up through findCredential and attaches consumer and credential", () => {
    const ctx = new TestContext({ headers: { apikey: "k1" } });
    ctx.addCredential("key-auth", "k1", { username: "jack", credentialId: "c1", conf: { key: "k1" } });
    assert.equal(keyAuth.rewrite!(keyState, ctx), undefined);
    assert.equal(ctx.consumerName, "jack");
    assert.equal(ctx.credentialId, "c1");
  });

  test("the header wins over the query; an unknown key is a 401 with the challenge", () => {
    const ctx = new TestContext({ url: "/?apikey=k1", headers: { apikey: "other" } });
    ctx.addCredential("key-auth", "k1", { username: "jack", credentialId: undefined, conf: { key: "k1" } });
    const reply = keyAuth.rewrite!(keyState, ctx) as { status: number; body: unknown; headers: unknown };
    assert.equal(reply.status, 401);
    assert.deepEqual(reply.body, { message: "Invalid API key in request" });
    assert.deepEqual(reply.headers, { "WWW-Authenticate": 'apikey realm="key"' });
  });
});

describe("basic-auth (unit)", () => {
  const state = basicAuth.compile!({ realm: "basic" }, { kind: "route", id: "1", revision: 1 });
  const auth = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`;
  test("a password may contain colons (RFC 7617 splits at the first)", () => {
    const ctx = new TestContext({ headers: { authorization: auth("u:pa:ss") } });
    ctx.addCredential("basic-auth", "u", { username: "jack", credentialId: undefined, conf: { password: "pa:ss" } });
    assert.equal(basicAuth.rewrite!(state, ctx), undefined);
    assert.equal(ctx.consumerName, "jack");
  });
  test("a password that is a prefix or extension of the real one fails", () => {
    for (const given of ["pa:s", "pa:sss", ""]) {
      const ctx = new TestContext({ headers: { authorization: auth(`u:${given}`) } });
      ctx.addCredential("basic-auth", "u", { username: "jack", credentialId: undefined, conf: { password: "pa:ss" } });
      assert.equal((basicAuth.rewrite!(state, ctx) as { status: number }).status, 401, given);
      assert.equal(ctx.consumerName, undefined);
    }
  });
});
