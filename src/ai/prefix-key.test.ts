import assert from "node:assert/strict";
import { test } from "node:test";
import { promptPrefixKey } from "./prefix-key.js";

const system = { role: "system", content: "You are a weir engineer. ".repeat(50) };
const turn1 = [system, { role: "user", content: "How do weirs work?" }];
const turn3 = [
  ...turn1,
  { role: "assistant", content: "Water flows over them." },
  { role: "user", content: "And fish?" },
  { role: "assistant", content: "Fish ladders." },
  { role: "user", content: "Thanks" },
];

test("every turn of one conversation has the same prefix key; another conversation a different one", () => {
  const k1 = promptPrefixKey("openai-chat", { messages: turn1 });
  assert.match(k1 ?? "", /^[0-9a-f]{16}$/);
  assert.equal(promptPrefixKey("openai-chat", { messages: turn3 }), k1);
  const other = [system, { role: "user", content: "What is a sluice?" }];
  assert.notEqual(promptPrefixKey("openai-chat", { messages: other }), k1);
  // Tools are part of the cached prompt: other tools, another key.
  assert.notEqual(promptPrefixKey("openai-chat", { messages: turn1, tools: [{ type: "function" }] }), k1);
});

test("Anthropic Messages and the Responses API key on their system prompt / instructions and first input", () => {
  const a1 = promptPrefixKey("anthropic-messages", { system: "S", messages: [{ role: "user", content: "hi" }] });
  const a2 = promptPrefixKey("anthropic-messages", {
    system: "S",
    messages: [
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
      { role: "user", content: "more" },
    ],
  });
  assert.equal(a1, a2);
  assert.notEqual(
    promptPrefixKey("anthropic-messages", { system: "T", messages: [{ role: "user", content: "hi" }] }),
    a1,
  );
  const r1 = promptPrefixKey("openai-responses", { instructions: "I", input: "question" });
  assert.notEqual(r1, promptPrefixKey("openai-responses", { instructions: "I", input: "other question" }));
  assert.equal(promptPrefixKey("openai-embeddings", { input: "x" }), undefined);
  assert.equal(promptPrefixKey("openai-chat", { messages: "not a list" }), undefined);
});

test("a huge first message costs a bounded hash and still keys its conversation", () => {
  const huge = [{ role: "user", content: "x".repeat(2_000_000) }];
  const k = promptPrefixKey("openai-chat", { messages: huge });
  assert.equal(promptPrefixKey("openai-chat", { messages: [...huge, { role: "assistant", content: "y" }] }), k);
});
