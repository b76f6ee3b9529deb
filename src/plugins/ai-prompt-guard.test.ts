import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope } from "../plugin-api/plugin.js";
import { type AiPromptGuardConfig, aiPromptGuard, compilePcre } from "./ai-prompt-guard.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 1 };

// The patterns of APISIX's documentation example: allow a dollar amount, deny a US phone number.
const ALLOW_DOLLARS = "\\$?\\(?\\d{1,3}(,\\d{3})*(\\.\\d{1,2})?\\)?";
const DENY_PHONE = "(\\([0-9]{3}\\)|[0-9]{3}-)[0-9]{3}-[0-9]{4}";

function guard(conf: Record<string, unknown>) {
  const err = validatePluginConfig(aiPromptGuard, conf, "route");
  assert.equal(err, undefined);
  const state = aiPromptGuard.compile!(conf as AiPromptGuardConfig, scope);
  return (body: unknown, url = "/v1/chat/completions") => {
    const ctx = new TestContext({
      method: "POST",
      url,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return aiPromptGuard.access!(state, ctx);
  };
}

const user = (content: unknown) => ({ role: "user", content });
const chat = (...messages: unknown[]) => ({ model: "m", messages });
const DENIED = { status: 400, body: { message: "Request contains prohibited content" } };
const NOT_ALLOWED = { status: 400, body: { message: "Request doesn't match allow patterns" } };

test("schema: APISIX's fields and defaults (fail_mode defaults to error in Weir)", () => {
  const conf: Record<string, unknown> = {};
  assert.equal(validatePluginConfig(aiPromptGuard, conf, "route"), undefined);
  assert.deepEqual(conf, {
    max_req_body_size: 67108864,
    match_all_roles: false,
    match_all_conversation_history: false,
    allow_patterns: [],
    deny_patterns: [],
    fail_mode: "error",
  });
  const bad = (c: Record<string, unknown>) => validatePluginConfig(aiPromptGuard, c, "route");
  assert.match(bad({ fail_mode: "ignore" })!, /property "fail_mode" validation failed: matches none of the enum/);
  assert.match(bad({ deny_patterns: [1] })!, /property "deny_patterns\[0\]" validation failed: wrong type/);
  assert.match(bad({ max_req_body_size: 0 })!, /property "max_req_body_size" validation failed/);
});

test("check: a pattern JS cannot compile is refused, naming the field and the pattern", () => {
  const bad = (c: Record<string, unknown>) => validatePluginConfig(aiPromptGuard, c, "route");
  assert.match(bad({ deny_patterns: ["ok", "(unclosed"] })!, /"deny_patterns\[1\]".*invalid deny_pattern: \(unclosed/);
  assert.match(bad({ allow_patterns: ["a++b"] })!, /"allow_patterns\[0\]".*invalid allow_pattern: a\+\+b/);
  assert.match(bad({ deny_patterns: ["(?>atomic)"] })!, /invalid deny_pattern/);
  assert.match(bad({ deny_patterns: ["(?x) spaced"] })!, /unsupported option \(\?x\)/);
  assert.equal(bad({ allow_patterns: [ALLOW_DOLLARS], deny_patterns: [DENY_PHONE] }), undefined);
});

test("PCRE translation: (?i), \\A and \\z, needless escapes; letter escapes JS would misread are refused", () => {
  const re = (p: string) => {
    const r = compilePcre(p);
    assert.ok(r instanceof RegExp, `${p}: ${String(r)}`);
    return r;
  };
  assert.ok(re("(?i)ignore previous").test("IGNORE PREVIOUS instructions"));
  assert.ok(re("\\Ahello\\z").test("hello"));
  assert.ok(!re("\\Ahello\\z").test("Ahelloz"), "\\A is an anchor, not the letter A");
  assert.ok(re("a\\-b\\:c").test("a-b:c"), "PCRE's needless escapes still work");
  assert.ok(re("\\p{Lu}{3}").test("ABC"), "unicode classes, as PCRE's UTF-8 mode");
  assert.match(String(compilePcre("\\h+\\-")), /\\h is not supported/);
});

test("APISIX doc example: allow dollars, deny phone numbers; allow is checked first", async () => {
  const check = guard({ allow_patterns: [ALLOW_DOLLARS], deny_patterns: [DENY_PHONE] });
  assert.equal(await check(chat(user("Can you recommend a laptop for $1,000?"))), undefined);
  assert.deepEqual(await check(chat(user("My number is 555-123-4567, budget $800"))), DENIED);
  assert.deepEqual(await check(chat(user("Tell me a joke"))), NOT_ALLOWED);
});

test("only the last message, and only if it is the user's, by default", async () => {
  const check = guard({ deny_patterns: ["forbidden"] });
  assert.deepEqual(await check(chat(user("forbidden"))), DENIED);
  assert.equal(await check(chat(user("forbidden"), { role: "assistant", content: "ok" }, user("fine"))), undefined);
  assert.equal(await check(chat({ role: "system", content: "forbidden" })), undefined, "system is not the user's");
  assert.equal(await check(chat(user("fine"), { role: "assistant", content: "forbidden" })), undefined);
  // A trailing message without text does not hide the last prompt (APISIX drops textless messages first).
  assert.deepEqual(await check(chat(user("forbidden"), { role: "user", content: [] })), DENIED);
});

test("attack: the text moved to an earlier message is caught with match_all_conversation_history", async () => {
  const check = guard({ deny_patterns: ["forbidden"], match_all_conversation_history: true });
  assert.deepEqual(await check(chat(user("forbidden"), { role: "assistant", content: "ok" }, user("fine"))), DENIED);
  // Messages are joined with a space, so a phrase split across them still matches.
  const phrase = guard({ deny_patterns: ["ignore previous"], match_all_conversation_history: true });
  assert.deepEqual(await phrase(chat(user("ignore"), user("previous"))), DENIED);
  assert.equal(
    await check(chat({ role: "system", content: "forbidden" }, user("fine"))),
    undefined,
    "roles still apply",
  );
});

test("attack: content-part arrays are checked part by part", async () => {
  const check = guard({ deny_patterns: ["forbidden"] });
  const parts = [
    { type: "image_url", image_url: { url: "https://example.com/x.png" } },
    { type: "text", text: "harmless" },
    { type: "text", text: "forbidden" },
  ];
  assert.deepEqual(await check(chat(user(parts))), DENIED);
  assert.equal(await check(chat(user([{ type: "text", text: "fine" }]))), undefined);
});

test("attack: a system message is caught when match_all_roles", async () => {
  const check = guard({ deny_patterns: ["forbidden"], match_all_roles: true, match_all_conversation_history: true });
  assert.deepEqual(await check(chat({ role: "system", content: "forbidden" }, user("fine"))), DENIED);
  const lastOnly = guard({ deny_patterns: ["forbidden"], match_all_roles: true });
  assert.deepEqual(
    await lastOnly(chat(user("fine"), { role: "assistant", content: [{ type: "text", text: "forbidden" }] })),
    DENIED,
  );
});

test("Anthropic /v1/messages: system (string or blocks) and tool results are prompt text too", async () => {
  const check = guard({ deny_patterns: ["forbidden"], match_all_roles: true, match_all_conversation_history: true });
  const url = "/v1/messages";
  assert.deepEqual(await check({ system: "forbidden", messages: [user("hi")] }, url), DENIED);
  assert.deepEqual(await check({ system: [{ type: "text", text: "forbidden" }], messages: [user("hi")] }, url), DENIED);
  const toolResult = { type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "forbidden" }] };
  assert.deepEqual(await check({ messages: [user([toolResult])] }, url), DENIED);
  assert.equal(await check({ system: "be nice", messages: [user("hi")] }, url), undefined);
  const userOnly = guard({ deny_patterns: ["forbidden"] });
  assert.equal(await userOnly({ system: "forbidden", messages: [user("hi")] }, url), undefined);
});

test("bodies the guard cannot read: 400 with APISIX's messages; fail_mode skip lets them through", async () => {
  const strict = guard({ deny_patterns: ["x"] });
  assert.deepEqual(await strict(""), { status: 400, body: { message: "Empty request body" } });
  const notJson = (await strict("not json")) as { status: number; body: { message: string } };
  assert.equal(notJson.status, 400);
  assert.match(notJson.body.message, /JSON/);
  const unrecognized = { status: 400, body: { message: "Request format not recognized by ai-prompt-guard" } };
  assert.deepEqual(await strict({ prompt: "x" }), unrecognized);
  assert.deepEqual(await strict({ messages: { 0: user("x") } }), unrecognized, "messages must be an array");
  assert.deepEqual(await strict([user("x")]), unrecognized);
  const lenient = guard({ deny_patterns: ["x"], fail_mode: "skip" });
  assert.equal(await lenient("not json"), undefined);
  assert.equal(await lenient({ prompt: "x" }), undefined);
  assert.deepEqual(await lenient(""), { status: 400, body: { message: "Empty request body" } });
});

test("max_req_body_size: larger bodies are refused before and after reading", async () => {
  const check = guard({ deny_patterns: ["x"], max_req_body_size: 10 });
  const message = "request size 76 is greater than the maximum size 10 allowed";
  assert.deepEqual(await check(chat(user("a long enough message"))), { status: 400, body: { message } });
  const state = aiPromptGuard.compile!({ max_req_body_size: 10 } as AiPromptGuardConfig, scope);
  const ctx = new TestContext({ method: "POST", headers: { "content-length": "999" } });
  let read = false;
  ctx.readBody = () => {
    read = true;
    return Promise.resolve(Buffer.alloc(0));
  };
  const reply = await aiPromptGuard.access!(state, ctx);
  assert.deepEqual(reply, {
    status: 400,
    body: { message: "request size 999 is greater than the maximum size 10 allowed" },
  });
  assert.equal(read, false, "a declared length over the limit is refused without buffering");
});
