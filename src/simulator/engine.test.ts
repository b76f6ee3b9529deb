import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeChat } from "gpt-tokenizer";
import { type EngineClock, type EngineConfig, engineConfig, type Sequence, ServingEngine } from "./engine.js";
import { BlockHasher, chatPromptBlocks, type PromptBlocks, textPromptBlocks } from "./prefix-cache.js";
import { chatPromptTokens, countTokens } from "./tokens.js";

/** Timers that run only when the test advances time, in time order: the engine's steps are exact. */
class FakeClock implements EngineClock {
  t = 0;
  private id = 0;
  private readonly timers = new Map<number, { at: number; run: () => void }>();

  now(): number {
    return this.t;
  }

  schedule(ms: number, run: () => void): unknown {
    this.timers.set(++this.id, { at: this.t + ms, run });
    return this.id;
  }

  cancel(timer: unknown): void {
    this.timers.delete(timer as number);
  }

  /** Runs the timers due up to now + ms (or all of them), moving the clock to each. */
  advance(ms = Number.POSITIVE_INFINITY): void {
    const end = this.t + ms;
    for (let i = 0; i < 1_000_000; i++) {
      let next: [number, { at: number; run: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].run();
    }
    if (Number.isFinite(end)) this.t = end;
  }
}

/** Records when each token and the end arrive. */
class Recorder {
  readonly tokens: number[] = [];
  readonly indexes: number[] = [];
  finishedAt = -1;
  constructor(private readonly clock: FakeClock) {}
  onToken(index: number): void {
    this.tokens.push(this.clock.now());
    this.indexes.push(index);
  }
  onFinish(): void {
    this.finishedAt = this.clock.now();
  }
  get intervals(): number[] {
    return this.tokens.slice(1).map((t, i) => t - this.tokens[i]!);
  }
}

const BASE: Partial<EngineConfig> = {
  slots: 2,
  kvCapacityTokens: 10_000,
  blockTokens: 16,
  prefixCacheBlocks: 1000,
  maxBatchedTokens: 4096,
  prefillMsPerToken: 1,
  decodeMsPerToken: 10,
  batchGrowth: 0,
};

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function promptOf(ids: number[]): PromptBlocks {
  const h = new BlockHasher(16);
  h.pushAll(ids);
  return h.finish();
}

function setup(config: Partial<EngineConfig> = {}) {
  const clock = new FakeClock();
  const engine = new ServingEngine({ ...BASE, ...config }, clock);
  const submit = (prompt: PromptBlocks, output: number) => {
    const r = new Recorder(clock);
    const seq = engine.submit(prompt, output, "stop", r);
    assert.ok(typeof seq !== "string", String(seq));
    return { r, seq: seq as Sequence };
  };
  return { clock, engine, submit };
}

describe("the serving engine", () => {
  test("requests beyond the slots wait in a FIFO queue and start when a slot frees", () => {
    const { clock, engine, submit } = setup();
    const a = submit(promptOf(range(16)), 3);
    const b = submit(promptOf(range(16, 100)), 3);
    const c = submit(promptOf(range(16, 200)), 3);
    clock.advance(0);
    assert.equal(engine.numRunning, 2);
    assert.equal(engine.numWaiting, 1);
    // One step prefills both prompts: 10 ms + 32 tokens × 1 ms; then a token every 10 ms.
    clock.advance();
    assert.deepEqual(a.r.tokens, [42, 52, 62]);
    assert.deepEqual(b.r.tokens, [42, 52, 62]);
    // c is admitted at the step boundary where a and b left: 10 ms + 16 tokens of prefill.
    assert.deepEqual(c.r.tokens, [88, 98, 108]);
    assert.equal(c.seq.admittedAt, 62);
    assert.equal(engine.numRunning + engine.numWaiting, 0);
    assert.equal(engine.totals.finished.stop, 3);
  });

  test("a request is admitted only when its prompt fits in the free KV, even with a slot free", () => {
    const { clock, engine, submit } = setup({ slots: 4, kvCapacityTokens: 100 });
    const a = submit(promptOf(range(60)), 5);
    const b = submit(promptOf(range(60, 1000)), 5);
    clock.advance(0);
    assert.equal(engine.numRunning, 1);
    assert.equal(engine.numWaiting, 1);
    assert.equal(engine.kvUsage, 0.6);
    clock.advance(70);
    assert.equal(a.r.tokens.length, 1);
    assert.equal(engine.kvUsedTokens, 61, "each generated token holds KV too");
    clock.advance();
    assert.ok(b.seq.admittedAt >= a.r.finishedAt, "b waited for a's KV");
    assert.equal(b.r.tokens.length, 5);
    assert.equal(engine.kvUsedTokens, 0);
  });

  test("prefix-cache hits shorten prefill; hits and queries are counted in tokens", () => {
    const { clock, engine, submit } = setup({ slots: 1 });
    const ids = range(320);
    const first = submit(promptOf(ids), 1);
    clock.advance();
    assert.equal(first.seq.cachedTokens, 0);
    assert.equal(first.r.tokens[0], 330);
    const again = submit(promptOf(ids), 1);
    clock.advance();
    // 19 of 20 blocks: the block holding the last prompt token is computed again, as in vLLM.
    assert.equal(again.seq.cachedTokens, 304);
    assert.equal(again.r.tokens[0]! - again.seq.arrivedAt, 10 + 16);
    const sibling = submit(promptOf([...range(160), ...range(160, 5000)]), 1);
    clock.advance();
    assert.equal(sibling.seq.cachedTokens, 160, "a shared prefix hits up to where the prompts differ");
    assert.equal(engine.totals.prefixQueries, 960);
    assert.equal(engine.totals.prefixHits, 304 + 160);
  });

  test("the prefix cache is an LRU of blocks that keeps a prompt's leading blocks longest", () => {
    const run = (config: Partial<EngineConfig>, prompts: number[][]) => {
      const { clock, submit } = setup({ slots: 1, ...config });
      return prompts.map((ids) => {
        const s = submit(promptOf(ids), 1);
        clock.advance();
        return s.seq.cachedTokens;
      });
    };
    const A = range(336);
    const B = range(336, 10_000);
    const C = range(336, 20_000);
    // 21 blocks each; B's 21 blocks push all of A out of a 21-block cache.
    assert.deepEqual(run({ prefixCacheBlocks: 21 }, [A, B, A]), [0, 0, 0]);
    // A prompt longer than the cache keeps its first 10 blocks, not its last.
    assert.deepEqual(run({ prefixCacheBlocks: 10 }, [A, A]), [0, 160]);
    // A hit touches A, so C evicts B, the least recently used.
    assert.deepEqual(run({ prefixCacheBlocks: 42 }, [A, B, A, C, A, B]), [0, 0, 320, 0, 320, 0]);
    assert.deepEqual(run({ prefixCacheBlocks: 0 }, [A, A]), [0, 0], "0 blocks turns the cache off");
  });

  test("more sequences in the batch make every token slower", () => {
    const config = { slots: 4, batchGrowth: 0.5, prefillMsPerToken: 0 };
    const alone = setup(config);
    const one = alone.submit(promptOf(range(16)), 4);
    alone.clock.advance();
    assert.deepEqual(one.r.intervals, [10, 10, 10]);
    const busy = setup(config);
    const three = [0, 1, 2].map((i) => busy.submit(promptOf(range(16, i * 100)), 4));
    busy.clock.advance();
    for (const s of three) assert.deepEqual(s.r.intervals, [20, 20, 20], "10 ms × (1 + 0.5 × 2)");
  });

  test("a prefill chunk in the batch slows the sequences already decoding (chunked prefill)", () => {
    const { clock, submit } = setup({ maxBatchedTokens: 64 });
    const a = submit(promptOf(range(16)), 12);
    clock.advance(40);
    const b = submit(promptOf(range(256, 1000)), 2);
    clock.advance();
    // While b prefills, each step carries a's token and 63 of b's: 10 + 63 ms; alone again, 10 ms.
    assert.ok(a.r.intervals.includes(73), `intervals ${a.r.intervals}`);
    assert.equal(a.r.intervals.at(-1), 10);
    assert.equal(b.r.tokens.length, 2);
  });

  test("slowdown multiplies every duration", () => {
    const normal = setup();
    const slow = setup({ slowdown: 3 });
    const n = normal.submit(promptOf(range(100)), 5);
    const s = slow.submit(promptOf(range(100)), 5);
    normal.clock.advance();
    slow.clock.advance();
    assert.deepEqual(
      s.r.tokens,
      n.r.tokens.map((t) => t * 3),
    );
  });

  test("cancelling frees the slot and KV at once, and a waiting request leaves the queue", () => {
    const { clock, engine, submit } = setup({ slots: 1 });
    const a = submit(promptOf(range(16)), 100);
    const b = submit(promptOf(range(16, 500)), 2);
    const c = submit(promptOf(range(16, 900)), 2);
    clock.advance(100);
    assert.equal(engine.numWaiting, 2);
    engine.cancel(a.seq);
    assert.equal(engine.numRunning, 0);
    assert.equal(engine.kvUsedTokens, 0);
    engine.cancel(c.seq);
    assert.equal(engine.numWaiting, 1);
    const cutAt = clock.t;
    clock.advance();
    assert.ok(b.seq.admittedAt - cutAt <= 10, "b starts at the next step boundary");
    assert.equal(b.r.tokens.length, 2);
    assert.equal(c.r.tokens.length, 0);
    assert.ok(a.r.tokens.length < 100);
    assert.equal(a.r.finishedAt, -1, "a cancelled sequence gets no onFinish");
    assert.equal(engine.totals.finished.abort, 2);
  });

  test("jitter is seeded: the same seed and arrivals give the same timeline, another seed another", () => {
    const timeline = (seed: number) => {
      const { clock, submit } = setup({ jitter: 0.3, seed, slots: 3 });
      const seqs = [0, 1, 2, 3, 4].map((i) => submit(promptOf(range(40, i * 1000)), 6));
      clock.advance();
      return seqs.flatMap((s) => s.r.tokens);
    };
    assert.deepEqual(timeline(7), timeline(7));
    assert.notDeepEqual(timeline(7), timeline(8));
    const steady = setup({ jitter: 0.3, seed: 7, slots: 1, prefillMsPerToken: 0 });
    const s = steady.submit(promptOf(range(16)), 50);
    steady.clock.advance();
    for (const i of s.r.intervals) assert.ok(i >= 7 && i <= 13, `interval ${i} outside 10 ms ± 30%`);
  });

  test("when decoding outgrows the KV, the latest sequence is preempted and recomputed later", () => {
    const { clock, engine, submit } = setup({ kvCapacityTokens: 100 });
    const a = submit(promptOf(range(40)), 30);
    const b = submit(promptOf(range(40, 800)), 30);
    clock.advance();
    assert.ok(engine.totals.preemptions >= 1);
    assert.deepEqual(a.r.indexes, range(30));
    assert.deepEqual(b.r.indexes, range(30), "b's tokens continue where they stopped");
    assert.ok(b.r.finishedAt > a.r.finishedAt);
    assert.equal(engine.kvUsedTokens, 0);
  });

  test("a prompt and answer longer than the KV capacity are refused in vLLM's words", () => {
    const { engine } = setup({ kvCapacityTokens: 100 });
    const refused = engine.submit(promptOf(range(100)), 1, "stop", { onToken() {}, onFinish() {} });
    assert.match(String(refused), /maximum context length is 100 tokens\. However, you requested 101 tokens/);
    assert.equal(engine.numWaiting, 0);
  });

  test("configuration errors name the field", () => {
    assert.throws(() => engineConfig({ slots: 0 }), /slots must be a whole number >= 1/);
    assert.throws(() => engineConfig({ slowdown: 0 }), /slowdown must be a number > 0/);
    assert.throws(() => engineConfig({ slots: 64, maxBatchedTokens: 32 }), /maxBatchedTokens \(32\) must be >= slots/);
  });
});

describe("prompt blocks", () => {
  const system = { role: "system", text: "You answer questions about rivers. ".repeat(20) };
  const ask = (text: string) => ({ role: "user", text });

  test("a chat's blocks cover exactly the tokens its usage bills", () => {
    const turns = [system, ask("How long is the Loire?")];
    const b = chatPromptBlocks(turns, "", 16);
    assert.equal(b.tokens, chatPromptTokens(turns));
    assert.equal(
      b.tokens,
      encodeChat(
        turns.map((t) => ({ role: t.role as "user", content: t.text })),
        "gpt-4o",
      ).length,
    );
    assert.equal(b.hashes.length, Math.floor(b.tokens / 16));
    const tools = JSON.stringify([{ type: "function", function: { name: "f" } }]);
    assert.equal(chatPromptBlocks(turns, tools, 16).tokens, b.tokens + countTokens(tools));
  });

  test("continuing a conversation keeps its leading blocks; another system prompt changes the first", () => {
    const first = chatPromptBlocks([system, ask("Where does the Loire begin?")], "", 16);
    const next = chatPromptBlocks(
      [system, ask("Where does the Loire begin?"), { role: "assistant", text: "Mont Gerbier." }, ask("And end?")],
      "",
      16,
    );
    const shared = Math.floor(first.tokens / 16) - 1;
    assert.deepEqual(next.hashes.slice(0, shared), first.hashes.slice(0, shared));
    const other = chatPromptBlocks([{ role: "system", text: "Be terse." }, ask("Where does the Loire begin?")], "", 16);
    assert.notEqual(other.hashes[0], first.hashes[0]);
    const text = textPromptBlocks(["a b c d ".repeat(40)], 16);
    assert.equal(text.tokens, countTokens("a b c d ".repeat(40)));
  });
});
