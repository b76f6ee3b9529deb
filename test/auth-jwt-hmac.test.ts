import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { bodyDigest, formatHttpDate, hmacSign, signingString } from "../src/auth/hmac.js";
import { encodeBase64url, signJwt } from "../src/auth/jwt.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { startUpstream, type TestUpstream } from "./helpers/upstream.js";

const JACK_SECRET = "jack-hs256-secret-that-is-very-long";
const now = () => Math.floor(Date.now() / 1000);
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const RSA_PUBLIC = rsa.publicKey.export({ type: "spki", format: "pem" }) as string;
const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const EC_PUBLIC = ec.publicKey.export({ type: "spki", format: "pem" }) as string;

/** Headers for a request signed as APISIX's documented hmac-auth client does. */
function hmacHeaders(
  method: string,
  path: string,
  options: { date?: string; extra?: Record<string, string>; list?: string[]; body?: string } = {},
): Record<string, string> {
  const headers: Record<string, string> = { Date: options.date ?? formatHttpDate(now()), ...options.extra };
  if (options.body !== undefined) headers.Digest = bodyDigest(options.body);
  const list = options.list ?? ["@request-target", "date"];
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const string = signingString("john-key", list, {
    method,
    requestUri: path,
    header: (h) => lower.get(h.toLowerCase()),
  });
  const signature = hmacSign("hmac-sha256", "john-secret-key", string).toString("base64");
  headers.Authorization = `Signature keyId="john-key",algorithm="hmac-sha256",headers="${list.join(" ")}",signature="${signature}"`;
  return headers;
}

describe("jwt-auth and hmac-auth over real sockets", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const upstream = () => ({ nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] });
  const put = (path: string, body: unknown) => gw.put(path, body);
  const get = (path: string, headers: Record<string, string> = {}) => fetchBody(`${gw.proxyUrl}${path}`, { headers });

  before(async () => {
    gw = await startTestGateway();
    up = await startUpstream("svc");
    // APISIX's doc example: consumer jack with a jwt-auth credential, route /headers with jwt-auth.
    await put("/apisix/admin/consumers", { username: "jack" });
    await put("/apisix/admin/consumers/jack/credentials/cred-jack-jwt-auth", {
      plugins: { "jwt-auth": { key: "jack-key", secret: JACK_SECRET } },
    });
    await put("/apisix/admin/consumers", {
      username: "rose",
      plugins: { "jwt-auth": { key: "rose-key", algorithm: "RS256", public_key: RSA_PUBLIC } },
    });
    await put("/apisix/admin/consumers", {
      username: "lily",
      plugins: { "jwt-auth": { key: "lily-key", algorithm: "ES256", public_key: EC_PUBLIC } },
    });
    await put("/apisix/admin/consumers", { username: "john" });
    await put("/apisix/admin/consumers/john/credentials/cred-john-hmac-auth", {
      plugins: { "hmac-auth": { key_id: "john-key", secret_key: "john-secret-key" } },
    });
    await put("/apisix/admin/routes/jwt-route", { uri: "/headers", plugins: { "jwt-auth": {} }, upstream: upstream() });
    await put("/apisix/admin/routes/jwt-hide", {
      uri: "/hide",
      plugins: { "jwt-auth": { query: "jwt-query", hide_credentials: true } },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/jwt-hide-rewritten", {
      uri: "/hide-rewritten",
      plugins: {
        "jwt-auth": { hide_credentials: true },
        "proxy-rewrite": { uri: "/inner" },
      },
      upstream: upstream(),
    });
    await put("/apisix/admin/routes/hmac-route", { uri: "/get", plugins: { "hmac-auth": {} }, upstream: upstream() });
    await put("/apisix/admin/routes/hmac-body", {
      uri: "/post",
      methods: ["POST"],
      plugins: { "hmac-auth": { validate_request_body: true, hide_credentials: true } },
      upstream: upstream(),
    });
  });
  after(async () => {
    await gw.stop();
    await up.close();
  });

  test("a token signed with jack's secret reaches the upstream as jack, with his credential id", async () => {
    const token = signJwt("HS256", JACK_SECRET, { key: "jack-key", exp: now() + 60 });
    const res = await get("/headers", { Authorization: token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.headers["x-consumer-username"], "jack");
    assert.equal(res.body.headers["x-credential-identifier"], "cred-jack-jwt-auth");
    assert.equal(res.body.headers.authorization, token, "credentials are kept by default");
    const withBearer = await get("/headers", { Authorization: `Bearer ${token}` });
    assert.equal(withBearer.status, 200);
  });

  test("RS256 and ES256 consumers verify tokens signed with their private keys", async () => {
    const rs = await get("/headers", { Authorization: signJwt("RS256", rsa.privateKey, { key: "rose-key" }) });
    assert.equal(rs.status, 200);
    assert.equal(rs.body.headers["x-consumer-username"], "rose");
    const es = await get("/headers", { Authorization: signJwt("ES256", ec.privateKey, { key: "lily-key" }) });
    assert.equal(es.status, 200);
    assert.equal(es.body.headers["x-consumer-username"], "lily");
  });

  test("jwt-auth attacks answer 401 with APISIX's messages and never reach the upstream", async () => {
    const before = up.received.length;
    const b64 = (v: unknown) => encodeBase64url(JSON.stringify(v));
    const [h, , s] = signJwt("HS256", JACK_SECRET, { key: "jack-key", admin: false }).split(".");
    const cases: [string | undefined, string][] = [
      [undefined, "Missing JWT token in request"],
      ["garbage", "JWT token invalid"],
      [`${b64({ alg: "none", typ: "JWT" })}.${b64({ key: "jack-key" })}.`, "failed to verify jwt"],
      [signJwt("HS256", RSA_PUBLIC, { key: "rose-key" }), "failed to verify jwt"],
      [signJwt("HS256", JACK_SECRET, { key: "jack-key", exp: now() - 5 }), "failed to verify jwt"],
      [signJwt("HS256", JACK_SECRET, { key: "jack-key", nbf: now() + 300 }), "failed to verify jwt"],
      [`${h}.${b64({ key: "jack-key", admin: true })}.${s}`, "failed to verify jwt"],
      [signJwt("HS256", JACK_SECRET, { key: "nobody" }), "Invalid user key in JWT token"],
      [signJwt("HS256", JACK_SECRET, { sub: "jack" }), "missing user key in JWT token"],
    ];
    for (const [token, message] of cases) {
      const res = await get("/headers", token === undefined ? {} : { Authorization: token });
      assert.equal(res.status, 401, message);
      assert.deepEqual(res.body, { message });
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="jwt"');
    }
    assert.equal(up.received.length, before);
  });

  test("a query token with hide_credentials is not passed upstream", async () => {
    const token = signJwt("HS256", JACK_SECRET, { key: "jack-key" });
    const res = await get(`/hide?a=1&jwt-query=${token}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.url, "/hide?a=1");
    // proxy-rewrite runs after jwt-auth and appends the query: the one jwt-auth left, not the client's
    const rewritten = await get(`/hide-rewritten?jwt=${token}&a=1`);
    assert.equal(rewritten.status, 200, JSON.stringify(rewritten.body));
    assert.equal(rewritten.body.url, "/inner?a=1");
  });

  test("consumer config errors are 400s naming the field", async () => {
    const bad = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "broken",
      plugins: { "jwt-auth": { key: "broken-key", algorithm: "RS256" } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_msg, /public_key/);
    const hmac = await gw.admin("PUT", "/apisix/admin/consumers", {
      username: "broken",
      plugins: { "hmac-auth": { key_id: "k" } },
    });
    assert.equal(hmac.status, 400);
    assert.match(hmac.body.error_msg, /secret_key/);
  });

  test("a signed request (APISIX's doc flow) reaches the upstream as john", async () => {
    const res = await get("/get", hmacHeaders("GET", "/get"));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.headers["x-consumer-username"], "john");
    assert.equal(res.body.headers["x-credential-identifier"], "cred-john-hmac-auth");
  });

  test("hmac-auth attacks: stale Date replay, another path, reordered headers list", async () => {
    const stale = await get("/get", hmacHeaders("GET", "/get", { date: formatHttpDate(now() - 3600) }));
    assert.equal(stale.status, 401);
    assert.deepEqual(stale.body, { message: "client request can't be validated" });
    assert.equal(stale.headers.get("www-authenticate"), 'hmac realm="hmac"');
    const otherPath = await get("/get?admin=1", hmacHeaders("GET", "/get"));
    assert.equal(otherPath.status, 401);
    const signed = hmacHeaders("GET", "/get");
    signed.Authorization = signed.Authorization!.replace("@request-target date", "date @request-target");
    assert.equal((await get("/get", signed)).status, 401);
    const missing = await get("/get");
    assert.deepEqual(missing.body, { message: "client request can't be validated: missing Authorization header" });
  });

  test("validate_request_body: the signed body passes, a tampered one is refused, credentials hidden", async () => {
    const body = '{"name": "world"}';
    const post = (headers: Record<string, string>, sent: string) =>
      fetchBody(`${gw.proxyUrl}/post`, { method: "POST", headers, body: sent });
    const ok = await post(hmacHeaders("POST", "/post", { body }), body);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.body, body, "the buffered body still goes upstream");
    assert.equal(ok.body.headers.authorization, undefined, "hide_credentials");
    const tampered = await post(hmacHeaders("POST", "/post", { body }), '{"name": "mallory"}');
    assert.equal(tampered.status, 401);
    assert.deepEqual(tampered.body, { message: "client request can't be validated" });
  });
});
