import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext, type TestRequest } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type RequestIdConfig, requestId } from "./request-id.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function instance(conf: Record<string, unknown> = {}) {
  assert.equal(validatePluginConfig(requestId, conf, "route"), undefined);
  return requestId.compile!(conf as RequestIdConfig, { kind: "route", id: "1", revision: 1 });
}

/** rewrite, then (after the "upstream" answered with `upstreamHeaders`) header_filter. */
function run(state: ReturnType<typeof instance>, request: TestRequest = {}, upstreamHeaders: [string, string][] = []) {
  const ctx = new TestContext(request);
  assert.equal(requestId.rewrite!(state, ctx), undefined);
  ctx.status = 200;
  ctx.responseHeaders.push(...upstreamHeaders);
  requestId.header_filter!(state, ctx);
  return ctx;
}

test("schema: APISIX's defaults, including range_id's", () => {
  const conf: Record<string, unknown> = {};
  assert.equal(validatePluginConfig(requestId, conf, "route"), undefined);
  assert.deepEqual(conf, {
    header_name: "X-Request-Id",
    include_in_response: true,
    algorithm: "uuid",
    range_id: { length: 16, char_set: "abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789" },
  });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(requestId, c, "route");
  assert.match(bad({ algorithm: "snowflake" })!, /property "algorithm" validation failed: matches none/);
  assert.match(bad({ range_id: { length: 5 } })!, /property "range_id.length" validation failed/);
  assert.match(bad({ range_id: { char_set: "abc" } })!, /property "range_id.char_set" validation failed/);
  for (const algorithm of ["uuid", "nanoid", "range_id", "ksuid", "uuidv7"])
    assert.equal(bad({ algorithm }), undefined);
});

test("generates a uuid, sends it upstream, returns it to the client and exposes $apisix_request_id", () => {
  const ctx = run(instance());
  const id = ctx.getRequestHeader("X-Request-Id");
  assert.match(id!, UUID_V4);
  assert.deepEqual(ctx.requestHeaderLog, [`set X-Request-Id: ${id}`]);
  assert.deepEqual(ctx.responseHeaderLog, [`set X-Request-Id: ${id}`]);
  assert.equal(ctx.var("apisix_request_id"), id);
});

test("keeps the id the client sent; an empty one is replaced", () => {
  const state = instance();
  const kept = run(state, { headers: { "x-request-id": "client-123" } });
  assert.deepEqual(kept.requestHeaderLog, [], "the request header is left alone");
  assert.equal(kept.getResponseHeader("x-request-id"), "client-123");
  assert.equal(kept.var("apisix_request_id"), "client-123");
  const empty = run(state, { headers: { "X-Request-Id": "" } });
  assert.match(empty.getRequestHeader("x-request-id")!, UUID_V4);
});

test("an id in the upstream's response is not overwritten", () => {
  const ctx = run(instance(), {}, [["X-Request-Id", "from-upstream"]]);
  assert.deepEqual(ctx.responseHeaderLog, []);
  assert.equal(ctx.getResponseHeader("x-request-id"), "from-upstream");
});

test("include_in_response false keeps the id off the response", () => {
  const ctx = run(instance({ include_in_response: false }));
  assert.match(ctx.getRequestHeader("x-request-id")!, UUID_V4);
  assert.deepEqual(ctx.responseHeaderLog, []);
});

test("header_name chooses the header, both ways", () => {
  const ctx = run(instance({ header_name: "X-Trace" }), { headers: { "x-trace": "t-1" } });
  assert.equal(ctx.getResponseHeader("x-trace"), "t-1");
  assert.equal(ctx.getResponseHeader("x-request-id"), undefined);
});

test("ids are unique", () => {
  for (const algorithm of ["uuid", "nanoid", "range_id", "ksuid", "uuidv7"]) {
    const state = instance({ algorithm });
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(run(state).getRequestHeader("x-request-id")!);
    assert.equal(seen.size, 5000, algorithm);
  }
});

test("nanoid: 21 characters of the URL-safe alphabet", () => {
  const id = run(instance({ algorithm: "nanoid" })).getRequestHeader("x-request-id")!;
  assert.match(id, /^[A-Za-z0-9_-]{21}$/);
});

test("range_id: length characters drawn only from char_set, every one of them in use", () => {
  const state = instance({ algorithm: "range_id", range_id: { char_set: "abcdef", length: 30 } });
  const used = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const id = run(state).getRequestHeader("x-request-id")!;
    assert.match(id, /^[a-f]{30}$/);
    for (const c of id) used.add(c);
  }
  assert.equal(used.size, 6);
  const defaults = run(instance({ algorithm: "range_id" })).getRequestHeader("x-request-id")!;
  assert.match(defaults, /^[a-zA-Z0-9]{16}$/);
});

test("ksuid: 27 base62 characters whose first 4 bytes are seconds since the KSUID epoch", () => {
  const id = run(instance({ algorithm: "ksuid" })).getRequestHeader("x-request-id")!;
  assert.match(id, /^[0-9A-Za-z]{27}$/);
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let n = 0n;
  for (const c of id) n = n * 62n + BigInt(alphabet.indexOf(c));
  const seconds = Number(n >> 128n) + 1_400_000_000;
  assert.ok(Math.abs(seconds - Date.now() / 1000) < 5, `timestamp ${seconds}`);
});

test("uuidv7: version 7, RFC variant, current Unix milliseconds first", () => {
  const before = Date.now();
  const id = run(instance({ algorithm: "uuidv7" })).getRequestHeader("x-request-id")!;
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const ms = Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
  assert.ok(ms >= before && ms <= Date.now(), `timestamp ${ms}`);
});
