import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bodyDigest,
  decodeBase64,
  formatHttpDate,
  hmacSign,
  parseHttpDate,
  parseSignatureHeader,
  type SignedRequest,
  safeEqual,
  signingString,
} from "./hmac.js";

function request(method: string, requestUri: string, headers: Record<string, string>): SignedRequest {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method, requestUri, header: (name) => lower.get(name.toLowerCase()) };
}

// APISIX's hmac-auth doc ships a Python signer; the expected values are what that script computes (run with
// Python's hmac module). The outputs printed in the doc were made with another secret and do not match it.
test("APISIX's documented signer: GET /get signed over @request-target and date", () => {
  const date = "Fri, 06 Sep 2024 06:41:29 GMT";
  const s = signingString("john-key", ["@request-target", "date"], request("GET", "/get", { Date: date }));
  assert.equal(s, `john-key\nGET /get\ndate: ${date}\n`);
  assert.equal(
    hmacSign("hmac-sha256", "john-secret-key", s).toString("base64"),
    "j+feO3Wm5em0agp0A70FZErf6lrMDVs7zjQ9MxomPx0=",
  );
});

test("APISIX's documented body signer: the Digest of the body and the signature", () => {
  assert.equal(bodyDigest('{"name": "world"}'), "SHA-256=78qzJuLwSpZ8HacsTdFCQJWxzPMOf8bYctRk2ySLpS8=");
  const date = "Fri, 06 Sep 2024 09:16:16 GMT";
  const s = signingString("john-key", ["@request-target", "date"], request("POST", "/post", { Date: date }));
  assert.equal(
    hmacSign("hmac-sha256", "john-secret-key", s).toString("base64"),
    "sJDnsFOF2hWLoWFZVMBfLd2gPChqmW44PkXZg5iF9P0=",
  );
});

test("signing string: listed order and spelling, query string in the target, absent headers left out", () => {
  const req = request("POST", "/a?b=1", { "X-One": "1", "x-two": "2" });
  assert.equal(signingString("k", ["x-two", "X-One", "@request-target"], req), "k\nx-two: 2\nX-One: 1\nPOST /a?b=1\n");
  assert.equal(signingString("k", ["x-missing", "", "x-two"], req), "k\nx-two: 2\n");
  assert.equal(signingString("k", undefined, req), "k\n");
  assert.equal(signingString("k", ["@request-target"], request("GET", "", {})), "k\nGET /\n");
  // Reordering the list changes what is signed, so a signature does not survive it.
  assert.notEqual(signingString("k", ["x-one", "x-two"], req), signingString("k", ["x-two", "x-one"], req));
});

test("Authorization parsing follows APISIX's field matching", () => {
  assert.deepEqual(
    parseSignatureHeader(
      'Signature keyId="john-key",algorithm="hmac-sha256",headers="@request-target date",signature="c2ln"',
    ),
    { keyId: "john-key", algorithm: "hmac-sha256", headers: ["@request-target", "date"], signature: "c2ln" },
  );
  assert.equal(parseSignatureHeader(undefined), "missing Authorization header");
  assert.equal(parseSignatureHeader('Bearer keyId="x"'), "Authorization header does not start with 'Signature'");
  // Unknown fields are ignored, the last of a repeated field wins, spaces around fields are allowed.
  const p = parseSignatureHeader('Signature  keyId="a" , foo="bar", keyId="b",signature=""');
  assert.ok(typeof p !== "string");
  assert.equal(p.keyId, "b");
  assert.equal(p.signature, "");
  assert.equal(p.algorithm, undefined);
  assert.equal(p.headers, undefined);
});

test("HTTP dates: the three RFC 9110 forms parse; anything else does not", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
  assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  assert.equal(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), t);
  assert.equal(parseHttpDate("Sun Nov  6 08:49:37 1994"), t);
  for (const bad of [
    "Sun, 06 Nov 1994 08:49:37 PST",
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "1994-11-06T08:49:37Z",
    "Sun, 31 Feb 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 25:49:37 GMT",
    "784111777",
    "",
  ]) {
    assert.equal(parseHttpDate(bad), undefined, bad);
  }
  assert.equal(parseHttpDate(formatHttpDate(1_725_604_889)), 1_725_604_889);
});

test("base64 and constant-time comparison helpers", () => {
  assert.deepEqual(decodeBase64("c2ln"), Buffer.from("sig"));
  assert.deepEqual(decodeBase64("aGk="), Buffer.from("hi"));
  assert.deepEqual(decodeBase64("aGk"), Buffer.from("hi"));
  assert.equal(decodeBase64("a-_b"), undefined);
  assert.equal(decodeBase64("a"), undefined);
  assert.equal(safeEqual(Buffer.from("abc"), Buffer.from("abc")), true);
  assert.equal(safeEqual(Buffer.from("abc"), Buffer.from("abd")), false);
  assert.equal(safeEqual(Buffer.from("abc"), Buffer.from("abcd")), false);
});
