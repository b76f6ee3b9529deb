import assert from "node:assert/strict";
import { test } from "node:test";
import type { JsonObject } from "../protocols.js";
import { TranslationError, translationFor } from "../translation.js";
import "./bridges.js";
import { anthropicToolStream, openaiTextStream } from "./wire.fixture.js";

test("importing the module registers both bridges", () => {
  assert.ok(translationFor("openai-chat", "anthropic-messages"));
  assert.ok(translationFor("anthropic-messages", "openai-chat"));
});

test("a request Claude cannot honour throws the call path's TranslationError naming the field", () => {
  const bridge = translationFor("openai-chat", "anthropic-messages")!;
  assert.throws(
    () => bridge.request({ model: "m", messages: [{ role: "user", content: "x" }], n: 3 }),
    (err: unknown) => err instanceof TranslationError && /^n: /.test(err.message),
  );
});

test("OpenAI client over Claude: data-only SSE lines, usage chunk when asked, one [DONE]", () => {
  const stream = translationFor("openai-chat", "anthropic-messages")!.stream(true);
  let text = "";
  for (const event of anthropicToolStream()) text += stream.event(event.type, event as unknown as JsonObject);
  text += stream.end();
  assert.ok(!text.includes("event:"), "OpenAI streams carry no event names");
  assert.equal(text.split("data: [DONE]\n\n").length, 2);
  assert.ok(text.endsWith("data: [DONE]\n\n"));
  const payloads = text
    .split("\n\n")
    .filter((l) => l.startsWith("data: {"))
    .map((l) => JSON.parse(l.slice(6)));
  assert.deepEqual(payloads[payloads.length - 1].choices, []);
  assert.equal(payloads[payloads.length - 1].usage.completion_tokens, 89);
});

test("Anthropic client over an OpenAI model: named events, closed on end() after [DONE]", () => {
  const stream = translationFor("anthropic-messages", "openai-chat")!.stream(false);
  let text = "";
  for (const chunk of openaiTextStream()) text += stream.event(undefined, chunk as unknown as JsonObject);
  text += stream.event(undefined, undefined); // [DONE]
  text += stream.end();
  const names = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual(names, [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
  ]);
  assert.ok(text.includes('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
});
