import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import { type ClientControlConfig, clientControl } from "./client-control.js";

const compile = (conf: Record<string, unknown>) => {
  assert.equal(validatePluginConfig(clientControl, conf, "route"), undefined);
  return clientControl.compile!(conf as ClientControlConfig, { kind: "route", id: "1", revision: 1 });
};

test("schema: max_body_size is a non-negative integer, optional", () => {
  assert.equal(validatePluginConfig(clientControl, {}, "route"), undefined);
  assert.match(
    validatePluginConfig(clientControl, { max_body_size: -1 }, "route")!,
    /"max_body_size" validation failed/,
  );
  assert.match(
    validatePluginConfig(clientControl, { max_body_size: 1.5 }, "route")!,
    /"max_body_size" validation failed/,
  );
});

test("rewrite: a declared Content-Length over the cap is 413; otherwise the cap is set for streaming", () => {
  const state = compile({ max_body_size: 10 });
  assert.deepEqual(clientControl.rewrite!(state, new TestContext({ headers: { "content-length": "11" } })), {
    status: 413,
  });
  const ok = new TestContext({ headers: { "content-length": "10" } });
  assert.equal(clientControl.rewrite!(state, ok), undefined);
  assert.equal(ok.maxBodySize, 10);
  const chunked = new TestContext({ headers: { "transfer-encoding": "chunked" } });
  assert.equal(clientControl.rewrite!(state, chunked), undefined);
  assert.equal(chunked.maxBodySize, 10, "counted while it streams");
});

test("rewrite: 0 lifts the cap (overriding a global rule's); no max_body_size leaves it alone", () => {
  const ctx = new TestContext({ headers: { "content-length": "999999" } });
  ctx.maxBodySize = 5;
  assert.equal(clientControl.rewrite!(compile({ max_body_size: 0 }), ctx), undefined);
  assert.equal(ctx.maxBodySize, 0);
  const untouched = new TestContext();
  untouched.maxBodySize = 5;
  clientControl.rewrite!(compile({}), untouched);
  assert.equal(untouched.maxBodySize, 5);
});
