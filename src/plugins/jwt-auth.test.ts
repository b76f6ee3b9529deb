import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { TestContext, type TestRequest } from "../../test/helpers/plugin-context.js";
import { signJwt } from "../auth/jwt.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope, Reply } from "../plugin-api/plugin.js";
import { type JwtAuthConfig, jwtAuth, withoutCookie } from "./jwt-auth.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 1 };
const SECRET = "jack-hs256-secret-that-is-very-long";
const now = () => Math.floor(Date.now() / 1000);

function consumerConf(conf: Record<string, unknown>): Record<string, unknown> {
  assert.equal(validatePluginConfig(jwtAuth, conf, "consumer"), undefined);
  return conf;
}

const jack = consumerConf({ key: "jack-key", secret: SECRET });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaPublic = rsa.publicKey.export({ type: "spki", format: "pem" }) as string;
const rose = consumerConf({ key: "rose-key", algorithm: "RS256", public_key: rsaPublic, lifetime_grace_period: 10 });

function run(routeConf: Record<string, unknown>, request: TestRequest) {
  assert.equal(validatePluginConfig(jwtAuth, routeConf, "route"), undefined);
  const state = jwtAuth.compile!(routeConf as JwtAuthConfig, scope);
  const ctx = new TestContext(request)
    .addCredential("jwt-auth", "jack-key", { username: "jack", credentialId: "cred-jack", conf: jack })
    .addCredential("jwt-auth", "rose-key", { username: "rose", credentialId: undefined, conf: rose });
  ctx.knownConsumers.add("anonymous");
  const reply = jwtAuth.rewrite!(state, ctx) as Reply | undefined;
  return { reply, ctx };
}

const bearer = (token: string): TestRequest => ({ headers: { Authorization: `Bearer ${token}` } });

test("schemas: APISIX's defaults; HS needs secret, others public_key; base64_secret must be base64", () => {
  const route: Record<string, unknown> = {};
  assert.equal(validatePluginConfig(jwtAuth, route, "route"), undefined);
  assert.deepEqual(route, {
    header: "authorization",
    query: "jwt",
    cookie: "jwt",
    hide_credentials: false,
    key_claim_name: "key",
    store_in_ctx: false,
    realm: "jwt",
  });
  const consumer: Record<string, unknown> = { key: "k", secret: "s" };
  assert.equal(validatePluginConfig(jwtAuth, consumer, "consumer"), undefined);
  assert.deepEqual(consumer, {
    key: "k",
    secret: "s",
    algorithm: "HS256",
    exp: 86400,
    base64_secret: false,
    lifetime_grace_period: 0,
  });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(jwtAuth, c, "consumer");
  assert.match(bad({ secret: "s" })!, /property "key" is required/);
  assert.match(bad({ key: "k" })!, /property "secret" is required/);
  assert.match(bad({ key: "k", algorithm: "RS256" })!, /property "public_key" is required/);
  assert.match(bad({ key: "k", algorithm: "none", secret: "s" })!, /"algorithm" validation failed/);
  assert.match(bad({ key: "k", secret: "not base64!", base64_secret: true })!, /"secret" validation failed/);
  assert.equal(bad({ key: "k", secret: Buffer.from("x").toString("base64"), base64_secret: true }), undefined);
  assert.match(validatePluginConfig(jwtAuth, { key_claim_name: "" }, "route")!, /key_claim_name/);
  assert.match(validatePluginConfig(jwtAuth, { realm: 'a"b' }, "route")!, /realm/);
  assert.match(validatePluginConfig(jwtAuth, { claims_to_verify: ["iat"] }, "route")!, /claims_to_verify/);
});

test("a valid token from the header (with or without Bearer) attaches the consumer and its credential", () => {
  const token = signJwt("HS256", SECRET, { key: "jack-key", exp: now() + 60 });
  for (const req of [
    bearer(token),
    { headers: { authorization: token } },
    { headers: { Authorization: `bearer ${token}` } },
  ]) {
    const { reply, ctx } = run({}, req);
    assert.equal(reply, undefined);
    assert.equal(ctx.consumerName, "jack");
    assert.equal(ctx.credentialId, "cred-jack");
  }
});

test("the token is taken from the header, else the query, else the cookie; hide_credentials removes it", () => {
  const token = signJwt("HS256", SECRET, { key: "jack-key" });
  const q = run({ hide_credentials: true, query: "jwt-query" }, { url: `/get?a=1&jwt-query=${token}&b=2` });
  assert.equal(q.reply, undefined);
  assert.equal(q.ctx.upstreamUri, "/get?a=1&b=2");
  const c = run(
    { hide_credentials: true, cookie: "jwt-cookie" },
    { headers: { Cookie: `theme=dark; jwt-cookie=${token}; lang=en` } },
  );
  assert.equal(c.reply, undefined);
  assert.deepEqual(c.ctx.requestHeaderValues("cookie"), ["theme=dark; lang=en"]);
  const h = run({ hide_credentials: true, header: "jwt-auth-header" }, { headers: { "jwt-auth-header": token } });
  assert.equal(h.reply, undefined);
  assert.deepEqual(h.ctx.requestHeaderLog, ["remove jwt-auth-header"]);
  const kept = run({}, bearer(token));
  assert.deepEqual(kept.ctx.requestHeaderLog, [], "credentials stay by default");
});

test("APISIX's 401 bodies and the WWW-Authenticate challenge", () => {
  const expect = (req: TestRequest, message: string, conf: Record<string, unknown> = {}) => {
    const { reply, ctx } = run(conf, req);
    assert.deepEqual(reply?.body, { message }, message);
    assert.equal(reply?.status, 401);
    assert.equal(ctx.consumerName, undefined);
    return reply!;
  };
  const missing = expect({}, "Missing JWT token in request", { realm: "my-api" });
  assert.deepEqual(missing.headers, { "WWW-Authenticate": 'Bearer realm="my-api"' });
  expect(bearer("not.a.jwt"), "JWT token invalid");
  expect(bearer(signJwt("HS256", SECRET, { sub: "jack" })), "missing user key in JWT token");
  expect(bearer(signJwt("HS256", SECRET, { key: "nobody" })), "Invalid user key in JWT token");
  expect(bearer(signJwt("HS256", SECRET, { key: 42 })), "Invalid user key in JWT token");
  expect(bearer(signJwt("HS256", "wrong secret", { key: "jack-key" })), "failed to verify jwt");
});

test("attacks: alg none, HS256 with the RSA public key, expired, nbf in the future, tampered, wrong key", () => {
  const refused = (token: string, why: string) => {
    const { reply, ctx } = run({}, bearer(token));
    assert.deepEqual(reply?.body, { message: "failed to verify jwt" }, why);
    assert.equal(ctx.consumerName, undefined, why);
  };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  refused(`${b64({ alg: "none" })}.${b64({ key: "jack-key" })}.`, "alg none");
  refused(signJwt("HS256", rsaPublic, { key: "rose-key" }), "HS256 signed with the RS256 public key");
  refused(signJwt("HS512", SECRET, { key: "jack-key" }), "alg other than the consumer's");
  refused(signJwt("HS256", SECRET, { key: "jack-key", exp: now() - 1 }), "expired");
  refused(signJwt("HS256", SECRET, { key: "jack-key", nbf: now() + 60 }), "nbf in the future");
  const [h, , s] = signJwt("HS256", SECRET, { key: "jack-key", role: "user" }).split(".");
  refused(`${h}.${b64({ key: "jack-key", role: "admin" })}.${s}`, "tampered payload");
  // Rose's key claim with a token Jack signed: the key claim picks Rose's public key, which fails it.
  refused(signJwt("HS256", SECRET, { key: "rose-key" }), "key of another consumer");
  const rs = signJwt("RS256", rsa.privateKey, { key: "rose-key", exp: now() - 5 });
  assert.equal(run({}, bearer(rs)).reply, undefined, "within rose's 10 s grace period");
});

test("claims_to_verify makes listed claims mandatory", () => {
  const token = signJwt("HS256", SECRET, { key: "jack-key" });
  assert.equal(run({}, bearer(token)).reply, undefined);
  assert.deepEqual(run({ claims_to_verify: ["exp"] }, bearer(token)).reply?.body, { message: "failed to verify jwt" });
});

test("key_claim_name, store_in_ctx and anonymous_consumer", () => {
  const token = signJwt("HS256", SECRET, { iss: "jack-key", scope: "read" });
  const { reply, ctx } = run({ key_claim_name: "iss", store_in_ctx: true }, bearer(token));
  assert.equal(reply, undefined);
  assert.deepEqual(ctx.pluginData.get("jwt-auth"), { iss: "jack-key", scope: "read" });
  const anon = run({ anonymous_consumer: "anonymous" }, {});
  assert.equal(anon.reply, undefined);
  assert.equal(anon.ctx.consumerName, "anonymous");
  const gone = run({ anonymous_consumer: "ghost" }, {});
  assert.deepEqual(gone.reply?.body, { message: "Invalid user authorization" });
});

test("withoutCookie keeps every other cookie", () => {
  assert.equal(withoutCookie("jwt=x", "jwt"), "");
  assert.equal(withoutCookie("a=1;jwt=x;  b=2", "jwt"), "a=1; b=2");
});
