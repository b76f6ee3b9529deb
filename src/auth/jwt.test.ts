import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { test } from "node:test";
import {
  decodeBase64url,
  decodeJwt,
  encodeBase64url,
  hmacVerifier,
  type JwsAlgorithm,
  type JwsVerifier,
  type Jwt,
  MAX_TOKEN_LENGTH,
  publicKeyVerifier,
  signJwt,
  verifySignature,
  verifyTimeClaims,
} from "./jwt.js";

function decoded(token: string): Jwt {
  const r = decodeJwt(token);
  assert.ok(r.ok, r.ok ? "" : r.reason);
  return r.value;
}

function verifierFor(algorithm: JwsAlgorithm, pem: string): JwsVerifier {
  const r = publicKeyVerifier(algorithm, pem);
  assert.ok(r.ok, r.ok ? "" : r.reason);
  return r.value;
}

const verifies = (token: string, verifier: JwsVerifier) => {
  const r = decodeJwt(token);
  return r.ok && verifySignature(r.value, verifier).ok;
};

const jwkToPem = (jwk: Record<string, string>) =>
  createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }) as string;

const RSA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const RSA_PUBLIC = RSA.publicKey.export({ type: "spki", format: "pem" }) as string;
const RSA_PRIVATE = RSA.privateKey.export({ type: "pkcs8", format: "pem" }) as string;

function pair(kind: "ec" | "ed25519", curve?: string) {
  const k = kind === "ec" ? generateKeyPairSync("ec", { namedCurve: curve! }) : generateKeyPairSync("ed25519");
  return {
    publicPem: k.publicKey.export({ type: "spki", format: "pem" }) as string,
    privatePem: k.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  };
}

test("RFC 7515 A.1: the HS256 example verifies with its key, and not with another", () => {
  const token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const key = decodeBase64url(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
  )!;
  const jwt = decoded(token);
  assert.deepEqual(jwt.payload, { iss: "joe", exp: 1300819380, "http://example.com/is_root": true });
  assert.ok(verifySignature(jwt, hmacVerifier("HS256", key)).ok);
  assert.equal(verifySignature(jwt, hmacVerifier("HS256", Buffer.from("other"))).ok, false);
});

test("jwt.io's HS256 example and APISIX's documented token verify with their secrets", () => {
  const jwtIo =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ" +
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  assert.ok(verifies(jwtIo, hmacVerifier("HS256", Buffer.from("your-256-bit-secret"))));
  const apisix =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJrZXkiOiJqYWNrLWtleSIsIm5iZiI6MTcyOTEzMjI3MX0" +
    ".UEPXy5jpid624T1XpfjM0PLY73LZPjV3Qt8yZ92kVuU";
  assert.ok(verifies(apisix, hmacVerifier("HS256", Buffer.from("jack-hs256-secret-that-is-very-long"))));
  assert.deepEqual(decoded(apisix).payload, { key: "jack-key", nbf: 1729132271 });
});

test("RFC 7515 A.3: the ES256 example (raw r||s signature) verifies; its DER form is refused", () => {
  const token =
    "eyJhbGciOiJFUzI1NiJ9" +
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  const pem = jwkToPem({
    kty: "EC",
    crv: "P-256",
    x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
  });
  const verifier = verifierFor("ES256", pem);
  assert.ok(verifies(token, verifier));
  // The same signature as OpenSSL's DER sequence is what a careless signer sends; JOSE forbids it.
  const k = pair("ec", "prime256v1");
  const input = `${encodeBase64url('{"alg":"ES256"}')}.${encodeBase64url('{"key":"k"}')}`;
  const der = sign("sha256", Buffer.from(input), k.privatePem);
  assert.equal(verifies(`${input}.${encodeBase64url(der)}`, verifierFor("ES256", k.publicPem)), false);
});

test("RFC 8037 A.4: the Ed25519 example signature verifies with EdDSA", () => {
  const verifier = verifierFor(
    "EdDSA",
    jwkToPem({ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }),
  );
  const signature = decodeBase64url(
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
  )!;
  assert.ok(verifier.verify("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc", signature));
  assert.equal(verifier.verify("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd", signature), false);
});

test("every asymmetric algorithm round-trips with generated keys and rejects a tampered payload", () => {
  const ec256 = pair("ec", "prime256v1");
  const ec384 = pair("ec", "secp384r1");
  const ec521 = pair("ec", "secp521r1");
  const ed = pair("ed25519");
  const cases: [JwsAlgorithm, string, string][] = [
    ["RS256", RSA_PRIVATE, RSA_PUBLIC],
    ["RS384", RSA_PRIVATE, RSA_PUBLIC],
    ["RS512", RSA_PRIVATE, RSA_PUBLIC],
    ["PS256", RSA_PRIVATE, RSA_PUBLIC],
    ["PS384", RSA_PRIVATE, RSA_PUBLIC],
    ["PS512", RSA_PRIVATE, RSA_PUBLIC],
    ["ES256", ec256.privatePem, ec256.publicPem],
    ["ES384", ec384.privatePem, ec384.publicPem],
    ["ES512", ec521.privatePem, ec521.publicPem],
    ["EdDSA", ed.privatePem, ed.publicPem],
  ];
  for (const [alg, privatePem, publicPem] of cases) {
    const token = signJwt(alg, privatePem, { key: "user-key", role: "user" });
    const verifier = verifierFor(alg, publicPem);
    assert.ok(verifies(token, verifier), `${alg} verifies`);
    const [h, , s] = token.split(".");
    const tampered = `${h}.${encodeBase64url(JSON.stringify({ key: "user-key", role: "admin" }))}.${s}`;
    assert.equal(verifies(tampered, verifier), false, `${alg} tampered payload`);
  }
});

test("HS384/HS512 round-trip; a token signed with another secret fails", () => {
  for (const alg of ["HS256", "HS384", "HS512"] as const) {
    const token = signJwt(alg, "s3cret", { key: "k" });
    assert.ok(verifies(token, hmacVerifier(alg, Buffer.from("s3cret"))), alg);
    assert.equal(verifies(token, hmacVerifier(alg, Buffer.from("s3cret!"))), false, alg);
  }
});

test("attack: alg none is refused by every verifier", () => {
  const unsigned = `${encodeBase64url('{"alg":"none","typ":"JWT"}')}.${encodeBase64url('{"key":"k"}')}.`;
  const jwt = decoded(unsigned);
  for (const v of [hmacVerifier("HS256", Buffer.from("x")), verifierFor("RS256", RSA_PUBLIC)]) {
    const r = verifySignature(jwt, v);
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.reason, /algorithm mismatch/);
  }
  // "None", "NONE" and a missing alg fare no better.
  for (const header of ['{"alg":"None"}', '{"alg":"NONE"}']) {
    const t = `${encodeBase64url(header)}.${encodeBase64url('{"key":"k"}')}.`;
    assert.equal(verifySignature(decoded(t), hmacVerifier("HS256", Buffer.from("x"))).ok, false);
  }
  assert.equal(decodeJwt(`${encodeBase64url("{}")}.${encodeBase64url('{"key":"k"}')}.`).ok, false);
});

test("attack: HS256 signed with the RSA public key as secret fails against the RS256 consumer", () => {
  const forged = signJwt("HS256", RSA_PUBLIC, { key: "k" });
  const rs = verifierFor("RS256", RSA_PUBLIC);
  assert.equal(verifies(forged, rs), false);
  // Even claiming RS256 in the header, the HMAC bytes are no RSA signature.
  const input = `${encodeBase64url('{"alg":"RS256"}')}.${encodeBase64url('{"key":"k"}')}`;
  const mac = decodeBase64url(signJwt("HS256", RSA_PUBLIC, { key: "k" }).split(".")[2]!)!;
  assert.equal(verifies(`${input}.${encodeBase64url(mac)}`, rs), false);
});

test("keys must fit the algorithm", () => {
  const ec384 = pair("ec", "secp384r1");
  const ed = pair("ed25519");
  const refused: [JwsAlgorithm, string, RegExp][] = [
    ["ES256", ec384.publicPem, /prime256v1/],
    ["RS256", ec384.publicPem, /RSA/],
    ["PS256", ed.publicPem, /RSA/],
    ["EdDSA", RSA_PUBLIC, /Ed25519/],
    ["RS256", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----", /invalid public key/],
  ];
  for (const [alg, pem, reason] of refused) {
    const r = publicKeyVerifier(alg, pem);
    assert.equal(r.ok, false, alg);
    assert.match(r.ok ? "" : r.reason, reason);
  }
  // A private key is accepted: its public half is used.
  assert.ok(publicKeyVerifier("RS256", RSA_PRIVATE).ok);
});

test("base64url is strict: padding, the standard alphabet, stray bits and bad lengths are refused", () => {
  assert.deepEqual(decodeBase64url("aGk"), Buffer.from("hi"));
  for (const bad of ["aGk=", "a+8", "a/8", "aGl", "a", "aG k", "aGk\n"]) {
    assert.equal(decodeBase64url(bad), undefined, JSON.stringify(bad));
  }
  const token = signJwt("HS256", "s", { key: "k" });
  const [h, p, s] = token.split(".") as [string, string, string];
  assert.equal(decodeJwt(`${h}=.${p}.${s}`).ok, false, "padded header");
  assert.equal(decodeJwt(`${h}.${p}.${s}=`).ok, false, "padded signature");
});

test("malformed tokens are refused with a reason", () => {
  const token = signJwt("HS256", "s", { key: "k" });
  const [h, p, s] = token.split(".") as [string, string, string];
  const cases: [string, RegExp][] = [
    [`${h}.${p}`, /invalid jwt string/],
    [`${h}.${p}.${s}.x.y`, /invalid jwt string/],
    [`${encodeBase64url("[1]")}.${p}.${s}`, /invalid header/],
    [`${h}.${encodeBase64url("null")}.${s}`, /invalid payload/],
    [`${h}.${encodeBase64url("not json")}.${s}`, /invalid payload/],
    [`${encodeBase64url('{"alg":"HS256","crit":["exp"]}')}.${p}.${s}`, /critical/],
    [`${h}.${encodeBase64url(JSON.stringify({ pad: "x".repeat(MAX_TOKEN_LENGTH) }))}.${s}`, /longer than/],
  ];
  for (const [t, reason] of cases) {
    const r = decodeJwt(t);
    assert.equal(r.ok, false, t.slice(0, 40));
    assert.match(r.ok ? "" : r.reason, reason);
  }
});

test("exp and nbf: expired, not yet valid, within the grace period, required, wrong type", () => {
  const now = 1_700_000_000;
  const check = (payload: Record<string, unknown>, leeway = 0, required?: ("exp" | "nbf")[]) =>
    verifyTimeClaims(payload, { now, leeway, required });
  assert.equal(check({}), undefined, "absent claims are not checked by default");
  assert.equal(check({ exp: now + 1 }), undefined);
  assert.match(check({ exp: now })!, /'exp' claim expired at/);
  assert.match(check({ exp: now - 10 }, 5)!, /expired/);
  assert.equal(check({ exp: now - 10 }, 11), undefined, "grace period");
  assert.equal(check({ nbf: now }), undefined, "usable from nbf on");
  assert.match(check({ nbf: now + 1 })!, /'nbf' claim not valid until/);
  assert.equal(check({ nbf: now + 30 }, 30), undefined, "grace period");
  assert.match(check({ exp: "2099-01-01" })!, /claim exp is not a number/);
  assert.match(check({}, 0, ["exp"])!, /claim exp is missing/);
  assert.equal(check({ nbf: now + 100 }, 0, ["exp"])!, "claim exp is missing", "only listed claims");
  assert.equal(check({ exp: now + 1, nbf: now + 100 }, 0, ["exp"]), undefined, "nbf not listed");
});
