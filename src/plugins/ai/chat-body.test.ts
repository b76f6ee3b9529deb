import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { TestContext } from "../../../test/helpers/plugin-context.js";
import { validatePluginConfig } from "../../config/validate.js";
import type { Plugin, PluginScope } from "../../plugin-api/plugin.js";
import { aiPromptDecorator } from "../ai-prompt-decorator.js";
import { aiPromptGuard } from "../ai-prompt-guard.js";
import { CHAT_BODY_KEY, promptMessages, readJsonBody, replaceJsonBody } from "./chat-body.js";

const scope: PluginScope = { kind: "route", id: "1", revision: 1 };

function instance(plugin: Plugin, conf: Record<string, unknown>) {
  assert.equal(validatePluginConfig(plugin, conf, "route"), undefined);
  return plugin.compile!(conf, scope);
}

test("a 10 MB body is read once and parsed once for decorator and guard together", async () => {
  const decorator = instance(aiPromptDecorator, { prepend: [{ role: "system", content: "S" }] });
  const guard = instance(aiPromptGuard, { deny_patterns: ["forbidden"], match_all_conversation_history: true });
  const big = "a".repeat(10 * 1024 * 1024);
  const ctx = new TestContext({
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: big }] }),
  });
  const readBody = ctx.readBody.bind(ctx);
  let reads = 0;
  ctx.readBody = () => {
    reads++;
    return readBody();
  };
  const parse = mock.method(JSON, "parse");
  try {
    assert.equal(await aiPromptDecorator.rewrite!(decorator, ctx), undefined);
    assert.equal(await aiPromptGuard.access!(guard, ctx), undefined);
    assert.equal(parse.mock.callCount(), 1, "parsed by the first plugin only");
  } finally {
    parse.mock.restore();
  }
  assert.equal(reads, 2, "each plugin asks ctx.readBody(), which buffers once");
  const sent = JSON.parse(ctx.body!.toString("utf8"));
  assert.equal(sent.messages.length, 2);
  assert.equal(sent.messages[1].content.length, big.length);
});

test("a body replaced by someone else (ctx.setBody) is parsed afresh", async () => {
  const ctx = new TestContext({ method: "POST", body: '{"messages":[]}' });
  const first = await readJsonBody(ctx, 1000);
  assert.deepEqual(first, { ok: true, value: { messages: [] } });
  ctx.setBody('{"other":1}');
  assert.deepEqual(await readJsonBody(ctx, 1000), { ok: true, value: { other: 1 } });
  replaceJsonBody(ctx, { mine: true });
  const cached = ctx.pluginData.get(CHAT_BODY_KEY) as { raw: Buffer };
  assert.equal(cached.raw, ctx.body, "the shared parse belongs to the buffer sent upstream");
  assert.deepEqual(await readJsonBody(ctx, 1000), { ok: true, value: { mine: true } });
});

test("promptMessages: text of strings and text parts, textless messages dropped, Anthropic system first", () => {
  const body = {
    system: [{ type: "text", text: "sys" }],
    messages: [
      { role: "user", content: [{ type: "text", text: "a" }, { type: "image" }, { type: "text", text: "b" }] },
      { role: "assistant", content: null, tool_calls: [] },
      "not a message",
      { role: "user", content: "c" },
    ],
  };
  assert.deepEqual(promptMessages(body, "anthropic-messages"), [
    { role: "system", content: "sys" },
    { role: "user", content: "a b" },
    { role: "user", content: "c" },
  ]);
  assert.equal(promptMessages(body, "openai-chat").length, 2, "`system` is Anthropic's field only");
});
