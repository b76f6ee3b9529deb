import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import type { Reply } from "../plugin-api/plugin.js";
import { decodeForm, type RequestValidationConfig, requestValidation } from "./request-validation.js";

function instance(conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(requestValidation, conf, "route"), undefined);
  return requestValidation.compile!(conf as RequestValidationConfig, { kind: "route", id: "1", revision: 1 });
}

const run = (state: ReturnType<typeof instance>, ctx: TestContext) =>
  requestValidation.rewrite!(state, ctx) as Reply | Promise<Reply | undefined> | undefined;

test("schema: one of header_schema/body_schema; defaults; invalid JSON Schemas are refused", () => {
  const conf: Record<string, unknown> = { header_schema: { type: "object" } };
  assert.equal(validatePluginConfig(requestValidation, conf, "route"), undefined);
  assert.equal(conf.rejected_code, 400);
  assert.equal(conf.max_req_body_size, 67108864);
  assert.match(validatePluginConfig(requestValidation, {}, "route")!, /object matches none of the required/);
  assert.match(
    validatePluginConfig(requestValidation, { body_schema: { type: "object", minProperties: -1 } }, "route")!,
    /body_schema: schema is invalid/,
  );
  assert.match(
    validatePluginConfig(requestValidation, { header_schema: { type: 1 } }, "route")!,
    /header_schema: schema is invalid/,
  );
  assert.match(
    validatePluginConfig(requestValidation, { body_schema: {}, rejected_msg: "" }, "route")!,
    /property "rejected_msg" validation failed/,
  );
});

test("headers: checked without reading the body; the body is never read without body_schema", () => {
  const state = instance({
    header_schema: { type: "object", required: ["X-Token"], properties: { "X-Token": { minLength: 3 } } },
  });
  const ok = new TestContext({ headers: { "x-token": "abcd" }, body: "not json" });
  assert.equal(run(state, ok), undefined);
  assert.deepEqual(run(state, new TestContext()), { status: 400, body: 'property "X-Token" is required' });
  assert.deepEqual(run(state, new TestContext({ headers: { "X-Token": "ab" } })), {
    status: 400,
    body: 'property "X-Token" validation failed: string too short, expected at least 3, got 2',
  });
});

test("body: JSON is re-serialized after passing (defaults included); form bodies are decoded", async () => {
  const state = instance({
    body_schema: { type: "object", properties: { n: { type: "integer" }, d: { type: "string", default: "x" } } },
  });
  const ctx = new TestContext({ method: "POST", headers: { "content-type": "application/json" }, body: '{ "n" : 1 }' });
  assert.equal(await run(state, ctx), undefined);
  assert.equal(ctx.body?.toString(), '{"n":1,"d":"x"}');
  const bad = new TestContext({ method: "POST", body: '{"n":"1"}' });
  assert.deepEqual(await run(state, bad), {
    status: 400,
    body: 'property "n" validation failed: wrong type: expected integer, got string',
  });
  const notJson = await run(state, new TestContext({ method: "POST", body: "{" }));
  assert.equal(notJson?.status, 400);
  assert.match(String(notJson?.body), /^failed to decode the req body: /);
  assert.deepEqual(await run(state, new TestContext({ method: "POST" })), { status: 400 }, "no body at all");

  const form = instance({ body_schema: { type: "object", required: ["a"], properties: { a: { type: "string" } } } });
  const f = new TestContext({
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body: "a=1+2&b",
  });
  assert.equal(await run(form, f), undefined);
  assert.equal(f.body?.toString(), "a=1+2&b", "form bodies go upstream as sent");
});

test("body: rejected_msg replaces every reason; an oversized body is refused before it is read", async () => {
  const state = instance({
    body_schema: { type: "object" },
    rejected_msg: "nope",
    rejected_code: 422,
    max_req_body_size: 4,
  });
  const big = new TestContext({ method: "POST", headers: { "content-length": "10" }, body: "{}" });
  assert.deepEqual(await run(state, big), { status: 422, body: "nope" });
  assert.deepEqual(await run(state, new TestContext({ method: "POST", body: "[1]" })), { status: 422, body: "nope" });
  assert.equal(await run(state, new TestContext({ method: "POST", body: "{}" })), undefined);
});

test("decodeForm: ngx.decode_args semantics", () => {
  assert.deepEqual(decodeForm("a=1&b=x%20y+z&a=2&flag&=v&c="), { a: ["1", "2"], b: "x y z", flag: true, c: "" });
  assert.deepEqual(decodeForm("bad=%zz"), { bad: "%zz" });
  assert.deepEqual(decodeForm(""), {});
});

test("destroy releases the compiled schemas", () => {
  const state = instance({ body_schema: { type: "object" }, header_schema: { type: "object" } });
  requestValidation.destroy!(state);
});
