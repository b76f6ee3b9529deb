import assert from "node:assert/strict";
import { test } from "node:test";
import { connectionTokens, isHopByHopResponseHeader, isManagedRequestHeader } from "../http/headers.js";

test("hop-by-hop and gateway-owned request headers are recognized in any casing", () => {
  for (const name of [
    "Connection",
    "KEEP-ALIVE",
    "transfer-encoding",
    "TE",
    "Upgrade",
    "Trailer",
    "Proxy-Connection",
    "Proxy-Authorization",
    "Host",
    "X-Forwarded-For",
    "x-forwarded-proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Real-IP",
    "Expect",
  ]) {
    assert.equal(isManagedRequestHeader(name), true, name);
  }
  for (const name of ["content-type", "Content-Length", "authorization", "x-request-id", "accept"]) {
    assert.equal(isManagedRequestHeader(name), false, name);
  }
});

test("hop-by-hop response headers are not relayed", () => {
  for (const name of ["Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Trailer"]) {
    assert.equal(isHopByHopResponseHeader(name), true, name);
  }
  for (const name of ["content-length", "content-type", "set-cookie", "x-ratelimit-remaining"]) {
    assert.equal(isHopByHopResponseHeader(name), false, name);
  }
});

test("headers named by Connection are hop-by-hop too", () => {
  assert.equal(connectionTokens("keep-alive"), undefined);
  assert.deepEqual([...(connectionTokens("close, X-Secret ,x-other") ?? [])], ["x-secret", "x-other"]);
});
