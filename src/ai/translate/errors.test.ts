import assert from "node:assert/strict";
import { test } from "node:test";
import { anthropicErrorToOpenAI, openaiErrorToAnthropic } from "./errors.js";

const anthropicError = (type: string, message: string) => ({ type: "error", error: { type, message } });
const openaiError = (type: string, code: string | null, message = "m") => ({
  error: { message, type, param: null, code },
});

test("Anthropic error types reach an OpenAI client with OpenAI's status, type and code", () => {
  const table: [string, number, number, string, string | null][] = [
    ["invalid_request_error", 400, 400, "invalid_request_error", null],
    ["authentication_error", 401, 401, "invalid_request_error", "invalid_api_key"],
    ["permission_error", 403, 403, "invalid_request_error", "permission_denied"],
    ["not_found_error", 404, 404, "invalid_request_error", "not_found"],
    ["request_too_large", 413, 413, "invalid_request_error", "request_too_large"],
    ["rate_limit_error", 429, 429, "requests", "rate_limit_exceeded"],
    ["api_error", 500, 500, "server_error", null],
    ["overloaded_error", 529, 503, "server_error", "overloaded"],
  ];
  for (const [type, status, outStatus, openaiType, code] of table) {
    const out = anthropicErrorToOpenAI(status, anthropicError(type, `why ${type}`));
    assert.deepEqual(
      out,
      { status: outStatus, body: { error: { message: `why ${type}`, type: openaiType, param: null, code } } },
      type,
    );
  }
});

test("an Anthropic body nobody can parse still maps by status", () => {
  assert.deepEqual(anthropicErrorToOpenAI(429, "slow down"), {
    status: 429,
    body: { error: { message: "slow down", type: "requests", param: null, code: "rate_limit_exceeded" } },
  });
  const out = anthropicErrorToOpenAI(502, undefined);
  assert.equal(out.status, 502);
  assert.equal(out.body.error.type, "server_error");
  assert.match(out.body.error.message, /502/);
});

test("OpenAI-compatible errors reach an Anthropic client with Anthropic's type; 503 becomes 529", () => {
  const table: [number, unknown, number, string][] = [
    [400, openaiError("invalid_request_error", null), 400, "invalid_request_error"],
    [401, openaiError("invalid_request_error", "invalid_api_key"), 401, "authentication_error"],
    [403, openaiError("invalid_request_error", null), 403, "permission_error"],
    [404, openaiError("invalid_request_error", "model_not_found"), 404, "not_found_error"],
    [422, { detail: [{ loc: ["body", "messages"], msg: "field required" }] }, 422, "invalid_request_error"],
    [429, openaiError("requests", "rate_limit_exceeded"), 429, "rate_limit_error"],
    [500, openaiError("server_error", null), 500, "api_error"],
    [503, openaiError("server_error", null), 529, "overloaded_error"],
  ];
  for (const [status, body, outStatus, type] of table) {
    const out = openaiErrorToAnthropic(status, body);
    assert.equal(out.status, outStatus, `${status}`);
    assert.equal(out.body.type, "error");
    assert.equal(out.body.error.type, type, `${status}`);
  }
  assert.equal(openaiErrorToAnthropic(422, { detail: "bad" }).body.error.message, "bad");
  assert.match(
    openaiErrorToAnthropic(422, { detail: [{ msg: "field required" }] }).body.error.message,
    /field required/,
  );
  assert.equal(openaiErrorToAnthropic(400, { error: "plain string" }).body.error.message, "plain string");
});

test("an error object inside a 200 stream is classified by its code or type", () => {
  const of = (body: unknown) => openaiErrorToAnthropic(0, body);
  assert.deepEqual(of(openaiError("tokens", "rate_limit_exceeded", "TPM")), {
    status: 429,
    body: { type: "error", error: { type: "rate_limit_error", message: "TPM" } },
  });
  assert.equal(of(openaiError("rate_limit_exceeded", null)).body.error.type, "rate_limit_error");
  assert.equal(of(openaiError("invalid_request_error", null)).body.error.type, "invalid_request_error");
  assert.equal(of(openaiError("server_error", null)).body.error.type, "api_error");
  assert.equal(anthropicErrorToOpenAI(0, anthropicError("something_new", "?")).status, 500);
});
