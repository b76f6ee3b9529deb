import assert from "node:assert/strict";
import { test } from "node:test";
import { apiBreaker, compileWith } from "./api-breaker.js";

/** A request as the breaker sees it: host, path and the upstream's final status. */
function fakeCtx(upstreamStatus: string | undefined) {
  return {
    path: "/chat",
    var: (n: string) => (n === "host" ? "api.test" : n === "upstream_status" ? upstreamStatus : undefined),
  } as never;
}

test("opens after `failures` unhealthy answers, backs off 2, 4, 8 s, half-opens, closes after successes", () => {
  let now = 1000;
  const state = compileWith(
    {
      break_response_code: 502,
      break_response_body: "breaker open",
      unhealthy: { http_statuses: [500, 503], failures: 2 },
      healthy: { http_statuses: [200], successes: 2 },
      max_breaker_sec: 300,
    },
    () => now,
  );
  const access = () => apiBreaker.access!(state, fakeCtx(undefined));
  const answer = (status: string) => apiBreaker.log!(state, fakeCtx(status));

  answer("500");
  assert.equal(access(), undefined, "one failure: still closed");
  answer("503");
  assert.equal((access() as { status: number }).status, 502, "two failures: open");
  now += 2.5;
  assert.equal(access(), undefined, "after 2 s: half-open, one request goes through");
  answer("500");
  answer("500"); // 4 unhealthy → second trip: 4 s
  now += 3;
  assert.equal((access() as { status: number }).status, 502, "second trip lasts 4 s");
  now += 1.5;
  assert.equal(access(), undefined);
  answer("200");
  answer("200");
  answer("500");
  assert.equal(access(), undefined, "two successes closed it: one new failure does not open it");
  answer("502");
  assert.equal(access(), undefined, "statuses in neither list are ignored");
});

test("answers the gateway produced itself (no upstream status) are not counted", () => {
  const state = compileWith({ break_response_code: 502, unhealthy: { failures: 1 } }, () => 0);
  apiBreaker.log!(state, fakeCtx(undefined));
  assert.equal(apiBreaker.access!(state, fakeCtx(undefined)), undefined);
});
