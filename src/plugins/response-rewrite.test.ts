import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type ResponseRewriteConfig, responseRewrite } from "./response-rewrite.js";

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(responseRewrite, conf, "route"), undefined);
  return responseRewrite.compile!(conf as ResponseRewriteConfig, { kind: "route", id: "1", revision: 1 });
}

/** Runs header_filter then body_filter over `chunks`, as the response writer does. */
function respond(
  state: ReturnType<typeof instance>,
  chunks: string[],
  init: { status?: number; headers?: [string, string][] } = {},
) {
  const ctx = new TestContext();
  ctx.status = init.status ?? 200;
  for (const [n, v] of init.headers ?? []) ctx.responseHeaders.push([n, v]);
  responseRewrite.header_filter!(state, ctx);
  const out: Buffer[] = chunks.map((c) => responseRewrite.body_filter!(state, ctx, Buffer.from(c), false));
  out.push(responseRewrite.body_filter!(state, ctx, Buffer.alloc(0), true));
  return { ctx, body: Buffer.concat(out).toString(), pieces: out.map((b) => b.toString()) };
}

test("schema: APISIX's bounds and defaults; cross-field checks with messages naming the field", () => {
  const conf: Record<string, unknown> = { filters: [{ regex: "a", replace: "b" }] };
  assert.equal(validatePluginConfig(responseRewrite, conf, "route"), undefined);
  assert.deepEqual(conf.filters, [{ regex: "a", replace: "b", scope: "once", options: "jo" }]);
  assert.equal(conf.max_resp_body_size, 67108864);
  const bad = (c: Record<string, unknown>) => validatePluginConfig(responseRewrite, c, "route")!;
  assert.match(bad({ status_code: 199 }), /"status_code" validation failed/);
  assert.match(bad({ filters: [] }), /"filters" validation failed/);
  assert.match(bad({ filters: [{ regex: "a" }] }), /"filters\[0\].replace" is required/);
  assert.match(bad({ filters: [{ regex: "a", replace: "", scope: "all" }] }), /"filters\[0\].scope" validation failed/);
  assert.match(bad({ headers: { add: ["no-colon"] } }), /validation failed/);
  assert.match(bad({ body: "x", body_base64: true }), /invalid base64 content/);
  assert.match(bad({ filters: [{ regex: "a", replace: "$x" }] }), /regex "a" validation failed/);
  assert.match(bad({ filters: [{ regex: "a", replace: "b", options: "x" }] }), /"x" \(extended\) is not supported/);
});

test("body: replaces the whole body at the first chunk and drops the rest; cache validators removed", () => {
  const state = instance({ body: "new" });
  const { ctx, body } = respond(state, ["old ", "body"], {
    headers: [
      ["Content-Length", "8"],
      ["ETag", '"1"'],
      ["Last-Modified", "x"],
      ["Content-Encoding", "gzip"],
    ],
  });
  assert.equal(body, "new");
  for (const h of ["Content-Length", "ETag", "Last-Modified", "Content-Encoding"]) {
    assert.equal(ctx.getResponseHeader(h), undefined, h);
  }
});

test("vars: evaluated on the response; an unmatched response streams through unchanged", () => {
  const state = instance({ body: "rewritten", status_code: 200, vars: [["status", "==", 500]] });
  const miss = respond(state, ["a", "b"], { status: 404, headers: [["Content-Length", "2"]] });
  assert.deepEqual(miss.pieces, ["a", "b", ""]);
  assert.equal(miss.ctx.status, 404);
  assert.equal(miss.ctx.getResponseHeader("Content-Length"), "2");
  const hit = respond(state, ["a"], { status: 500 });
  assert.equal(hit.body, "rewritten");
  assert.equal(hit.ctx.status, 200);
  const byHeader = instance({
    headers: { set: { "X-Kind": "json" } },
    vars: [["upstream_http_content_type", "~~", "json"]],
  });
  assert.equal(
    respond(byHeader, [], { headers: [["Content-Type", "application/json"]] }).ctx.getResponseHeader("X-Kind"),
    "json",
  );
  assert.equal(
    respond(byHeader, [], { headers: [["Content-Type", "text/html"]] }).ctx.getResponseHeader("X-Kind"),
    undefined,
  );
});

test("filters: held until eof, then substituted (once, global, captures, options)", () => {
  const state = instance({
    filters: [
      { regex: "(H)ELLO", replace: "[$1]", options: "i" },
      { regex: "o", scope: "global", replace: "0" },
      { regex: "x*", scope: "global", replace: "-" },
    ],
  });
  const { pieces, body } = respond(state, ["hello ", "world"]);
  assert.deepEqual(pieces, ["", "", body], "nothing is sent before the whole body is seen");
  assert.equal(body, "-[-h-]- -w-0-r-l-d-");
});

test("filters: gzip bodies are decoded first; an unknown encoding is left entirely alone", () => {
  const state = instance({ filters: [{ regex: "secret", replace: "***" }] });
  const z = gzipSync("a secret").toString("latin1");
  const ctx = new TestContext();
  ctx.status = 200;
  ctx.responseHeaders.push(["Content-Encoding", "gzip"]);
  responseRewrite.header_filter!(state, ctx);
  const out = responseRewrite.body_filter!(state, ctx, Buffer.from(z, "latin1"), true);
  assert.equal(out.toString(), "a ***");
  assert.equal(ctx.getResponseHeader("Content-Encoding"), undefined);
  const zstd = respond(state, ["a secret"], { headers: [["Content-Encoding", "zstd"]] });
  assert.equal(zstd.body, "a secret");
  assert.equal(zstd.ctx.getResponseHeader("Content-Encoding"), "zstd");
});

test("filters: a body past max_resp_body_size is truncated there, as APISIX does", () => {
  const state = instance({ filters: [{ regex: "a", scope: "global", replace: "b" }], max_resp_body_size: 4 });
  const { body } = respond(state, ["aaa", "aaa", "aaa"]);
  assert.equal(body, "bbbb");
});

test("headers: add (`Name: value`), set, remove in APISIX's order, with variables", () => {
  const state = instance({
    headers: {
      add: ["X-A: $remote_addr", "X-A: 2"],
      set: { "X-S": "s", "X-Gone": "later" },
      remove: ["X-Gone", "Server"],
    },
  });
  const { ctx } = respond(state, []);
  assert.deepEqual(ctx.responseHeaderLog, [
    "add X-A: 127.0.0.1",
    "add X-A: 2",
    "set X-S: s",
    "set X-Gone: later",
    "remove X-Gone",
    "remove Server",
  ]);
});
