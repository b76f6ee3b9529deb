import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type CsrfConfig, compileWith, cookieTime, csrf, issueToken, verifyToken } from "./csrf.js";

function instance(conf: Record<string, unknown>, clock = { now: 1_700_000_000 }) {
  assert.equal(validatePluginConfig(csrf, conf, "route"), undefined);
  return { state: compileWith(conf as CsrfConfig, () => clock.now), clock };
}

test("schema: key required; APISIX's defaults; key is an encrypted field", () => {
  const conf: Record<string, unknown> = { key: "k" };
  assert.equal(validatePluginConfig(csrf, conf, "route"), undefined);
  assert.deepEqual(conf, { key: "k", expires: 7200, name: "apisix-csrf-token" });
  assert.match(validatePluginConfig(csrf, {}, "route")!, /property "key" is required/);
  assert.deepEqual(csrf.encryptFields, ["key"]);
});

test("tokens: issued tokens verify; another key, tampering or age past expires do not", () => {
  const { state, clock } = instance({ key: "k", expires: 60 });
  const token = issueToken(state, clock.now);
  assert.equal(verifyToken(state, token), true);
  assert.equal(verifyToken(instance({ key: "other" }).state, token), false);
  const t = JSON.parse(Buffer.from(token, "base64").toString());
  const reencode = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64");
  assert.equal(verifyToken(state, reencode({ ...t, expires: t.expires + 100 })), false, "issue time is signed");
  assert.equal(verifyToken(state, reencode({ ...t, random: "x" })), false);
  assert.equal(verifyToken(state, reencode({ random: t.random, expires: t.expires })), false, "no sign");
  assert.equal(verifyToken(state, "%%%"), false);
  clock.now += 60;
  assert.equal(verifyToken(state, token), true, "exactly expires seconds old is still valid");
  clock.now += 1;
  assert.equal(verifyToken(state, token), false, "expired");
  const forever = instance({ key: "k", expires: 0 }, { now: clock.now + 1e6 });
  assert.equal(verifyToken(forever.state, token), true, "expires 0 skips the age check");
});

test("access: safe methods pass; unsafe ones get APISIX's 401 messages in order", () => {
  const { state, clock } = instance({ key: "k" });
  const token = issueToken(state, clock.now);
  const run = (method: string, headers: Record<string, string>) =>
    csrf.access!(state, new TestContext({ method, headers }));
  for (const m of ["GET", "HEAD", "OPTIONS"]) assert.equal(run(m, {}), undefined);
  assert.deepEqual(run("POST", {}), { status: 401, body: { error_msg: "no csrf token in headers" } });
  assert.deepEqual(run("PUT", { "apisix-csrf-token": "" }), {
    status: 401,
    body: { error_msg: "no csrf token in headers" },
  });
  assert.deepEqual(run("PUT", { "apisix-csrf-token": token }), { status: 401, body: { error_msg: "no csrf cookie" } });
  assert.deepEqual(run("PATCH", { "apisix-csrf-token": token, cookie: "apisix-csrf-token=x" }), {
    status: 401,
    body: { error_msg: "csrf token mismatch" },
  });
  assert.equal(run("DELETE", { "apisix-csrf-token": token, cookie: `a=b; apisix-csrf-token=${token}` }), undefined);
});

test("header_filter: a fresh cookie with path, SameSite and an nginx cookie_time Expires", () => {
  const { state } = instance({ key: "k", name: "my-token", expires: 10 }, { now: 1_289_993_245 });
  const ctx = new TestContext();
  csrf.header_filter!(state, ctx);
  const line = ctx.getResponseHeader("Set-Cookie")!;
  assert.match(line, /^my-token=[A-Za-z0-9+/=]+;path=\/;SameSite=Lax;Expires=Wed, 17-Nov-2010 11:27:35 GMT$/);
  assert.equal(cookieTime(1_289_993_255), "Wed, 17-Nov-2010 11:27:35 GMT");
  const token = line.slice("my-token=".length, line.indexOf(";"));
  assert.equal(verifyToken(state, token), true);
});
