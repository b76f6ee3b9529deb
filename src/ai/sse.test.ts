import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type SseEvent, SseParser } from "./sse.js";

function feed(chunks: (string | Buffer)[]): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) parser.push(typeof c === "string" ? Buffer.from(c) : c, (e) => out.push(e));
  parser.flush((e) => out.push(e));
  return out;
}

describe("SseParser", () => {
  test("splits events on blank lines and keeps each event's raw bytes", () => {
    const events = feed(['data: {"a":1}\n\nevent: ping\ndata: {}\n\ndata: [DONE]\n\n']);
    assert.deepEqual(
      events.map((e) => [e.event, e.data, e.raw.toString()]),
      [
        [undefined, '{"a":1}', 'data: {"a":1}\n\n'],
        ["ping", "{}", "event: ping\ndata: {}\n\n"],
        [undefined, "[DONE]", "data: [DONE]\n\n"],
      ],
    );
  });

  test("an event split at every possible byte boundary parses the same", () => {
    const text = 'event: content_block_delta\r\ndata: {"t":"héllo 🌍"}\r\n\r\ndata: x\n\n';
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const events = feed([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(
        events.map((e) => [e.event, e.data]),
        [
          ["content_block_delta", '{"t":"héllo 🌍"}'],
          [undefined, "x"],
        ],
        `cut at ${cut}`,
      );
      assert.equal(Buffer.concat(events.map((e) => e.raw)).toString(), text);
    }
  });

  test("one byte at a time", () => {
    const text = "data: a\ndata: b\n\n: comment\n\ndata:c\n\n";
    const events = feed([...Buffer.from(text)].map((b) => Buffer.from([b])));
    assert.deepEqual(
      events.map((e) => e.data),
      ["a\nb", "", "c"],
    );
  });

  test("a final event without its blank line is flushed at the end", () => {
    assert.deepEqual(
      feed(["data: 1\n\ndata: 2"]).map((e) => e.data),
      ["1", "2"],
    );
    assert.deepEqual(feed(["data: 1\n\n\n"]).length, 1);
  });

  test("counts bytes for response limits", () => {
    const parser = new SseParser();
    parser.push(Buffer.from("data: 12345\n\n"), () => undefined);
    parser.push(Buffer.from("data: 6"), () => undefined);
    assert.equal(parser.bytes, 20);
  });
});
