import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext, type TestRequest } from "../../test/helpers/plugin-context.js";
import { bodyDigest, formatHttpDate, type HmacAlgorithm, hmacSign, signingString } from "../auth/hmac.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope, Reply } from "../plugin-api/plugin.js";
import { type HmacAuthConfig, hmacAuth } from "./hmac-auth.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 1 };
const nowDate = (offset = 0) => formatHttpDate(Math.floor(Date.now() / 1000) + offset);

interface Signed {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  /** The `headers` list of the signature; default "@request-target date". */
  list?: string[];
  algorithm?: HmacAlgorithm;
  keyId?: string;
  secret?: string;
  body?: string;
}

/** A request signed as APISIX's documented client does. */
function signed(s: Signed = {}): TestRequest {
  const method = s.method ?? "GET";
  const url = s.url ?? "/get";
  const headers: Record<string, string> = { Date: nowDate(), ...s.headers };
  const list = s.list ?? ["@request-target", "date"];
  const keyId = s.keyId ?? "john-key";
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const string = signingString(keyId, list, { method, requestUri: url, header: (h) => lower.get(h.toLowerCase()) });
  const algorithm = s.algorithm ?? "hmac-sha256";
  const signature = hmacSign(algorithm, s.secret ?? "john-secret-key", string).toString("base64");
  headers.Authorization = `Signature keyId="${keyId}",algorithm="${algorithm}",headers="${list.join(" ")}",signature="${signature}"`;
  return { method, url, headers, body: s.body };
}

async function run(routeConf: Record<string, unknown>, request: TestRequest) {
  assert.equal(validatePluginConfig(hmacAuth, routeConf, "route"), undefined);
  const state = hmacAuth.compile!(routeConf as HmacAuthConfig, scope);
  const ctx = new TestContext(request).addCredential("hmac-auth", "john-key", {
    username: "john",
    credentialId: "cred-john",
    conf: { key_id: "john-key", secret_key: "john-secret-key" },
  });
  ctx.knownConsumers.add("anonymous");
  const reply = (await hmacAuth.rewrite!(state, ctx)) as Reply | undefined;
  return { reply, ctx };
}

const UNVALIDATED = { message: "client request can't be validated" };

test("schema: APISIX's defaults and bounds", () => {
  const conf: Record<string, unknown> = {};
  assert.equal(validatePluginConfig(hmacAuth, conf, "route"), undefined);
  assert.deepEqual(conf, {
    allowed_algorithms: ["hmac-sha1", "hmac-sha256", "hmac-sha512"],
    clock_skew: 300,
    signed_headers: ["date"],
    validate_request_body: false,
    max_req_body_size: 67108864,
    hide_credentials: false,
    realm: "hmac",
  });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(hmacAuth, c, "route");
  assert.match(bad({ allowed_algorithms: ["hmac-md5"] })!, /allowed_algorithms/);
  assert.match(bad({ allowed_algorithms: [] })!, /allowed_algorithms/);
  assert.match(bad({ clock_skew: 0 })!, /clock_skew/);
  assert.match(bad({ signed_headers: [""] })!, /signed_headers/);
  assert.match(validatePluginConfig(hmacAuth, { key_id: "k" }, "consumer")!, /property "secret_key" is required/);
  assert.match(validatePluginConfig(hmacAuth, { secret_key: "s" }, "consumer")!, /property "key_id" is required/);
});

test("a correctly signed request attaches the consumer; every allowed algorithm works", async () => {
  for (const algorithm of ["hmac-sha1", "hmac-sha256", "hmac-sha512"] as const) {
    const { reply, ctx } = await run({}, signed({ algorithm }));
    assert.equal(reply, undefined, algorithm);
    assert.equal(ctx.consumerName, "john");
    assert.equal(ctx.credentialId, "cred-john");
  }
  const sha1Off = await run({ allowed_algorithms: ["hmac-sha256"] }, signed({ algorithm: "hmac-sha1" }));
  assert.deepEqual(sha1Off.reply?.body, UNVALIDATED);
});

test("header problems are named; signature problems are not; the challenge names the realm", async () => {
  const none = await run({ realm: "apis" }, {});
  assert.equal(none.reply?.status, 401);
  assert.deepEqual(none.reply?.body, { message: "client request can't be validated: missing Authorization header" });
  assert.deepEqual(none.reply?.headers, { "WWW-Authenticate": 'hmac realm="apis"' });
  const basic = await run({}, { headers: { Authorization: "Basic am9objpwdw==" } });
  assert.deepEqual(basic.reply?.body, {
    message: "client request can't be validated: Authorization header does not start with 'Signature'",
  });
  for (const req of [
    signed({ keyId: "nobody" }),
    signed({ secret: "guess" }),
    { headers: { Date: nowDate(), Authorization: 'Signature keyId="john-key",signature="c2ln"' } },
  ]) {
    const { reply, ctx } = await run({}, req);
    assert.deepEqual(reply?.body, UNVALIDATED);
    assert.equal(ctx.consumerName, undefined);
  }
});

test("attack: a replayed request with a stale (or future, or missing) Date is refused", async () => {
  const stale = signed({ headers: { Date: nowDate(-301) } });
  assert.deepEqual((await run({}, stale)).reply?.body, UNVALIDATED);
  assert.deepEqual((await run({}, signed({ headers: { Date: nowDate(400) } }))).reply?.body, UNVALIDATED);
  assert.equal((await run({ clock_skew: 600 }, stale)).reply, undefined, "inside a wider clock_skew");
  const undated = signed({ list: ["@request-target"] });
  delete undated.headers!.Date;
  assert.deepEqual((await run({ signed_headers: [] }, undated)).reply?.body, UNVALIDATED);
});

test("attack: the path, the method or a signed header changed after signing", async () => {
  const changed = (req: TestRequest, change: Partial<TestRequest>) => ({ ...req, ...change });
  const req = signed({ url: "/get?x=1", headers: { "X-Tenant": "a" }, list: ["@request-target", "date", "x-tenant"] });
  assert.equal((await run({}, req)).reply, undefined);
  assert.deepEqual((await run({}, changed(req, { url: "/admin?x=1" }))).reply?.body, UNVALIDATED);
  assert.deepEqual((await run({}, changed(req, { url: "/get?x=2" }))).reply?.body, UNVALIDATED);
  assert.deepEqual((await run({}, changed(req, { method: "DELETE" }))).reply?.body, UNVALIDATED);
  const tenant = { ...req, headers: { ...req.headers, "X-Tenant": "b" } };
  assert.deepEqual((await run({}, tenant)).reply?.body, UNVALIDATED);
});

test("attack: header order and case tricks in the signed headers list", async () => {
  const req = signed({ headers: { "X-A": "1", "X-B": "2" }, list: ["date", "x-a", "x-b"] });
  assert.equal((await run({ signed_headers: ["date", "x-a"] }, req)).reply, undefined);
  const auth = req.headers!.Authorization as string;
  const reordered = {
    ...req,
    headers: { ...req.headers, Authorization: auth.replace("date x-a x-b", "date x-b x-a") },
  };
  assert.deepEqual((await run({}, reordered)).reply?.body, UNVALIDATED, "same signature, other order");
  const recased = { ...req, headers: { ...req.headers, Authorization: auth.replace("x-a", "X-A") } };
  assert.deepEqual((await run({}, recased)).reply?.body, UNVALIDATED, "names are signed as spelled");
  // The route's required headers must be listed exactly; listing "Date" does not satisfy "date".
  const upper = signed({ list: ["@request-target", "Date"] });
  assert.deepEqual((await run({}, upper)).reply?.body, UNVALIDATED);
  assert.equal((await run({ signed_headers: ["Date"] }, upper)).reply, undefined);
  // Dropping a required header from the list (and re-signing without it) is refused.
  assert.deepEqual(
    (await run({ signed_headers: ["date", "x-a"] }, signed({ list: ["date"] }))).reply?.body,
    UNVALIDATED,
  );
  // A second value of a signed header is joined into what is checked, so it breaks the signature.
  const doubled = { ...req, headers: { ...req.headers, "x-a": ["1", "evil"] } } as unknown as TestRequest;
  assert.deepEqual((await run({}, doubled)).reply?.body, UNVALIDATED);
});

test("validate_request_body: Digest must match the body; tampered or missing digests are refused", async () => {
  const body = '{"name": "world"}';
  const ok = signed({ method: "POST", url: "/post", body, headers: { Digest: bodyDigest(body) } });
  const conf = { validate_request_body: true };
  assert.equal((await run(conf, ok)).reply, undefined);
  assert.deepEqual((await run(conf, { ...ok, body: '{"name": "mallory"}' })).reply?.body, UNVALIDATED);
  const noDigest = signed({ method: "POST", url: "/post", body });
  assert.deepEqual((await run(conf, noDigest)).reply?.body, UNVALIDATED);
  assert.equal((await run({}, { ...ok, body: "ignored" })).reply, undefined, "body not checked unless asked");
  const big = signed({
    method: "POST",
    url: "/post",
    body: "x".repeat(20),
    headers: { Digest: bodyDigest("x".repeat(20)) },
  });
  const tooBig = await run({ validate_request_body: true, max_req_body_size: 10 }, big);
  assert.equal(tooBig.reply?.status, 413);
  assert.match(
    String((tooBig.reply?.body as { message?: string } | undefined)?.message),
    /request size 20 is greater than the maximum size 10/,
  );
});

test("the body is not read unless validate_request_body is on", async () => {
  // TestContext.readBody() turns a missing body into an empty buffer, so an untouched `body` proves no read.
  const { ctx, reply } = await run({}, signed({ method: "POST", url: "/post" }));
  assert.equal(reply, undefined);
  assert.equal(ctx.body, undefined);
  const read = await run(
    { validate_request_body: true },
    signed({ method: "POST", url: "/post", headers: { Digest: bodyDigest("") } }),
  );
  assert.equal(read.reply, undefined);
  assert.deepEqual(read.ctx.body, Buffer.alloc(0));
});

test("hide_credentials removes Authorization upstream; anonymous_consumer lets unsigned requests through", async () => {
  const hidden = await run({ hide_credentials: true }, signed());
  assert.deepEqual(hidden.ctx.requestHeaderLog, ["remove authorization"]);
  const kept = await run({}, signed());
  assert.deepEqual(kept.ctx.requestHeaderLog, []);
  const anon = await run({ anonymous_consumer: "anonymous" }, {});
  assert.equal(anon.reply, undefined);
  assert.equal(anon.ctx.consumerName, "anonymous");
  const ghost = await run({ anonymous_consumer: "ghost" }, {});
  assert.deepEqual(ghost.reply?.body, { message: "Invalid user authorization" });
});
