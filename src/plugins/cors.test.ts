import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type CorsConfig, cors, originsMatcher } from "./cors.js";

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(cors, conf, "route"), undefined);
  return cors.compile!(conf as CorsConfig, { kind: "route", id: "1", revision: 1 });
}

function respond(
  state: ReturnType<typeof instance>,
  headers: Record<string, string>,
  ctx = new TestContext({ headers }),
) {
  cors.header_filter!(state, ctx);
  return ctx;
}

test("schema: APISIX's defaults; origins must match APISIX's origins pattern", () => {
  const conf: Record<string, unknown> = {};
  assert.equal(validatePluginConfig(cors, conf, "route"), undefined);
  assert.deepEqual(conf, {
    allow_origins: "*",
    allow_methods: "*",
    allow_headers: "*",
    max_age: 5,
    allow_credential: false,
  });
  for (const bad of ["example.com", "http://a.com, http://b.com", "*,http://a.com", ""]) {
    assert.match(
      validatePluginConfig(cors, { allow_origins: bad }, "route")!,
      /property "allow_origins" validation failed/,
    );
  }
  assert.equal(validatePluginConfig(cors, { allow_origins: "null" }, "route"), undefined);
});

test("check: `*` anywhere with allow_credential is refused, `**` is accepted", () => {
  const msg = "you can not set '*' for other option when 'allow_credential' is true";
  const base = { allow_origins: "https://a.com", allow_methods: "GET", allow_headers: "x", allow_credential: true };
  assert.equal(validatePluginConfig(cors, { ...base }, "route"), undefined);
  for (const field of ["allow_origins", "allow_methods", "allow_headers", "expose_headers", "timing_allow_origins"]) {
    assert.match(
      validatePluginConfig(cors, { ...base, [field]: "*" }, "route")!,
      new RegExp(msg.replace(/[*()']/g, ".")),
    );
  }
  assert.equal(
    validatePluginConfig(
      cors,
      { allow_origins: "**", allow_methods: "**", allow_headers: "**", allow_credential: true },
      "route",
    ),
    undefined,
  );
});

test("originsMatcher: lists match exactly and echo only a listed origin", () => {
  const list = originsMatcher("https://a.com,https://b.com:8443");
  assert.equal(list("https://b.com:8443"), "https://b.com:8443");
  assert.equal(list("https://b.com"), undefined);
  assert.equal(list("https://a.com.evil.io"), undefined);
  assert.equal(list(undefined), undefined);
  assert.equal(originsMatcher("*")("https://x"), "*");
  assert.equal(originsMatcher("**")("https://x"), "https://x");
  assert.equal(originsMatcher("**")(undefined), "*");
  assert.equal(originsMatcher("**")("null"), undefined);
  assert.equal(originsMatcher("https://only.com")("https://other.com"), undefined);
});

test("rewrite: every OPTIONS request is answered with 200; other methods pass", () => {
  const state = instance({});
  assert.deepEqual(cors.rewrite!(state, new TestContext({ method: "OPTIONS" })), { status: 200, body: "" });
  assert.equal(cors.rewrite!(state, new TestContext({ method: "GET" })), undefined);
});

test("header_filter: allowed origin gets headers and Vary; `**` allow_headers echoes the request's list", () => {
  const state = instance({ allow_origins: "https://a.com", allow_headers: "**", expose_headers: "x-e", max_age: -1 });
  const ctx = respond(state, { Origin: "https://a.com", "Access-Control-Request-Headers": "x-1" });
  assert.deepEqual(ctx.responseHeaderLog, [
    "add Vary: Origin",
    "set Access-Control-Allow-Origin: https://a.com",
    "set Access-Control-Allow-Methods: *",
    "set Access-Control-Max-Age: -1",
    "set Access-Control-Expose-Headers: x-e",
    "set Access-Control-Allow-Headers: x-1",
  ]);
  const denied = respond(state, { Origin: "https://b.com" });
  assert.deepEqual(denied.responseHeaderLog, [
    "add Vary: Origin",
    "remove Access-Control-Allow-Origin",
    "remove Access-Control-Allow-Credentials",
  ]);
});

test("metadata: keys resolve through plugin_metadata; `*` there allows the request's origin", () => {
  const state = instance({ allow_origins_by_metadata: ["k1", "k2", "missing"] });
  const ctx = new TestContext({ headers: { Origin: "https://x.com" } });
  ctx.metadata.set("cors", { allow_origins: { k1: "https://a.com,https://b.com", k2: "*" } });
  respond(state, {}, ctx);
  assert.equal(ctx.getResponseHeader("Access-Control-Allow-Origin"), "https://x.com");
  const none = new TestContext({ headers: { Origin: "https://x.com" } });
  respond(state, {}, none);
  assert.equal(none.getResponseHeader("Access-Control-Allow-Origin"), undefined, "no metadata: nothing allowed");
  const fallback = instance({ allow_origins: "https://local.com", allow_origins_by_metadata: ["k"] });
  const local = new TestContext({ headers: { Origin: "https://local.com" } });
  local.metadata.set("cors", { allow_origins: { k: "https://a.com" } });
  respond(fallback, {}, local);
  assert.equal(
    local.getResponseHeader("Access-Control-Allow-Origin"),
    "https://local.com",
    "falls back to allow_origins",
  );
});

test("timing_allow_origins: set only for a matching origin", () => {
  const state = instance({ timing_allow_origins: "https://t.com,https://u.com" });
  assert.equal(respond(state, { Origin: "https://t.com" }).getResponseHeader("Timing-Allow-Origin"), "https://t.com");
  assert.equal(respond(state, { Origin: "https://v.com" }).getResponseHeader("Timing-Allow-Origin"), undefined);
});
