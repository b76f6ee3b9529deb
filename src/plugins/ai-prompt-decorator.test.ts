import assert from "node:assert/strict";
import { test } from "node:test";
import { TestContext } from "../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../config/validate.js";
import type { PluginScope } from "../plugin-api/plugin.js";
import { type AiPromptDecoratorConfig, aiPromptDecorator } from "./ai-prompt-decorator.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 1 };

// APISIX's documentation example.
const DOC_CONF = {
  prepend: [{ role: "system", content: "Answer briefly and conceptually." }],
  append: [{ role: "user", content: "End the answer with a simple analogy." }],
};

function plugin(conf: Record<string, unknown> = DOC_CONF) {
  const err = validatePluginConfig(aiPromptDecorator, conf, "route");
  assert.equal(err, undefined);
  const state = aiPromptDecorator.compile!(conf as AiPromptDecoratorConfig, scope);
  return async (body: unknown, url = "/v1/chat/completions") => {
    const raw = typeof body === "string" ? body : JSON.stringify(body);
    const ctx = new TestContext({ method: "POST", url, body: raw });
    const reply = await aiPromptDecorator.rewrite!(state, ctx);
    const sent = ctx.body?.toString("utf8");
    return { reply, sent, changed: sent !== raw };
  };
}

test("schema: prepend or append is required; roles and non-empty content as in APISIX", () => {
  const bad = (c: Record<string, unknown>) => validatePluginConfig(aiPromptDecorator, c, "route");
  assert.match(bad({})!, /object matches none of the required: \["prepend"\] or \["append"\]/);
  assert.match(bad({ prepend: [{ role: "tool", content: "x" }] })!, /"prepend\[0\].role" validation failed/);
  assert.match(bad({ append: [{ role: "user", content: "" }] })!, /"append\[0\].content" validation failed/);
  assert.match(bad({ append: [{ role: "user" }] })!, /"append\[0\].content" is required/);
  assert.equal(bad({ append: [] }), undefined);
  assert.equal(bad({ ...DOC_CONF }), undefined);
});

test("APISIX doc example: the system prompt goes first, the user suffix last", async () => {
  const run = plugin();
  const { reply, sent } = await run({
    model: "gpt-4",
    messages: [{ role: "user", content: "What is mTLS authentication?" }],
  });
  assert.equal(reply, undefined);
  assert.deepEqual(JSON.parse(sent!), {
    model: "gpt-4",
    messages: [
      { role: "system", content: "Answer briefly and conceptually." },
      { role: "user", content: "What is mTLS authentication?" },
      { role: "user", content: "End the answer with a simple analogy." },
    ],
  });
});

test("only prepend or only append", async () => {
  const pre = plugin({ prepend: [{ role: "system", content: "S" }] });
  assert.deepEqual(JSON.parse((await pre({ messages: [{ role: "user", content: "q" }] })).sent!).messages, [
    { role: "system", content: "S" },
    { role: "user", content: "q" },
  ]);
  const app = plugin({ append: [{ role: "assistant", content: "A" }] });
  assert.deepEqual(JSON.parse((await app({ messages: [{ role: "user", content: "q" }] })).sent!).messages, [
    { role: "user", content: "q" },
    { role: "assistant", content: "A" },
  ]);
});

test("bodies: APISIX's 400s for empty and non-JSON; non-chat JSON passes untouched; {} gets a conversation", async () => {
  const run = plugin();
  assert.deepEqual((await run("")).reply, {
    status: 400,
    body: { message: "could not get body: request body is empty" },
  });
  const notJson = (await run("nope")).reply as { status: number; body: { message: string } };
  assert.equal(notJson.status, 400);
  assert.match(notJson.body.message, /^could not parse JSON request body: /);
  const other = await run({ prompt: "complete me" });
  assert.equal(other.reply, undefined);
  assert.equal(other.changed, false);
  assert.equal(JSON.parse((await run({})).sent!).messages.length, 2);
});

test("Anthropic /v1/messages: system prompts join `system`, the others wrap `messages`", async () => {
  const run = plugin();
  const url = "/v1/messages";
  const asString = JSON.parse(
    (await run({ system: "Be kind.", messages: [{ role: "user", content: "q" }] }, url)).sent!,
  );
  assert.equal(asString.system, "Answer briefly and conceptually.\nBe kind.");
  assert.deepEqual(asString.messages, [
    { role: "user", content: "q" },
    { role: "user", content: "End the answer with a simple analogy." },
  ]);
  const blocks = [{ type: "text", text: "Be kind." }];
  const asBlocks = JSON.parse((await run({ system: blocks, messages: [] }, url)).sent!);
  assert.deepEqual(asBlocks.system, [{ type: "text", text: "Answer briefly and conceptually." }, ...blocks]);
  const none = JSON.parse((await run({ messages: [] }, url)).sent!);
  assert.equal(none.system, "Answer briefly and conceptually.");
});

test("each request gets its own copies of the configured messages", async () => {
  const state = aiPromptDecorator.compile!(DOC_CONF as AiPromptDecoratorConfig, scope);
  const ctx = new TestContext({ method: "POST", body: '{"messages":[]}' });
  await aiPromptDecorator.rewrite!(state, ctx);
  const shared = ctx.pluginData.get("ai.chat-body") as { value: { messages: { content: string }[] } };
  shared.value.messages[0]!.content = "mutated";
  const again = new TestContext({ method: "POST", body: '{"messages":[]}' });
  await aiPromptDecorator.rewrite!(state, again);
  assert.equal(JSON.parse(again.body!.toString()).messages[0].content, "Answer briefly and conceptually.");
});
