import { seededRandom } from "./answer.js";
import { PrefixCache, type PromptBlocks } from "./prefix-cache.js";

/**
 * The serving model: a continuous-batching engine in the manner of vLLM's scheduler, reduced to the laws that
 * decide latency (docs/simulator.md, "Serving model"). Pure logic over an injectable clock, so tests drive it
 * without real time.
 *
 * Each engine step runs every admitted sequence once. Decoding sequences take one token each; the rest of the
 * step's token budget goes to prefill chunks, oldest admission first (chunked prefill). A step lasts
 *
 *   (decodeMsPerToken × (1 + batchGrowth × (n − 1)) + prefillMsPerToken × prefill tokens) × jitter × slowdown
 *
 * where n is the number of sequences in the step. A sequence whose prefill completes emits its first token at
 * the end of that step; a decoding one emits one token per step.
 */
export interface EngineConfig {
  /** Sequences running at once (vLLM's max_num_seqs, llama.cpp's --parallel). */
  slots: number;
  /** KV cache capacity in tokens, which is also the longest prompt + answer accepted (max_model_len). */
  kvCapacityTokens: number;
  /** Tokens per KV block: the prefix cache's unit (vLLM's block_size). */
  blockTokens: number;
  /** Block hashes the prefix cache keeps, least recently used evicted first. 0 disables it. */
  prefixCacheBlocks: number;
  /** Token budget of one step (vLLM's max_num_batched_tokens): decodes first, then prefill chunks. */
  maxBatchedTokens: number;
  prefillMsPerToken: number;
  /** Duration of a step that decodes a single sequence. */
  decodeMsPerToken: number;
  /** How much each further sequence in a step slows the step down. */
  batchGrowth: number;
  /** Multiplies every duration: 3 is a GPU three times slower. */
  slowdown: number;
  /** Each step lasts ×(1 ± jitter), drawn from a generator seeded by `seed`. */
  jitter: number;
  seed: number;
}

export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = {
  slots: 16,
  kvCapacityTokens: 65_536,
  blockTokens: 16,
  prefixCacheBlocks: 4096,
  maxBatchedTokens: 2048,
  prefillMsPerToken: 0.05,
  decodeMsPerToken: 10,
  batchGrowth: 0.04,
  slowdown: 1,
  jitter: 0,
  seed: 1,
};

type Check = [keyof EngineConfig, (v: number) => boolean, string];
const CHECKS: Check[] = [
  ["slots", (v) => Number.isInteger(v) && v >= 1, "a whole number >= 1"],
  ["kvCapacityTokens", (v) => Number.isInteger(v) && v >= 1, "a whole number >= 1"],
  ["blockTokens", (v) => Number.isInteger(v) && v >= 1, "a whole number >= 1"],
  ["prefixCacheBlocks", (v) => Number.isInteger(v) && v >= 0, "a whole number >= 0"],
  ["maxBatchedTokens", (v) => Number.isInteger(v) && v >= 1, "a whole number >= 1"],
  ["prefillMsPerToken", (v) => v >= 0, "a number >= 0"],
  ["decodeMsPerToken", (v) => v >= 0, "a number >= 0"],
  ["batchGrowth", (v) => v >= 0, "a number >= 0"],
  ["slowdown", (v) => v > 0, "a number > 0"],
  ["jitter", (v) => v >= 0 && v < 1, "a number in [0, 1)"],
  ["seed", (v) => Number.isInteger(v), "a whole number"],
];

/** The defaults with `o` over them; throws a TypeError naming the first bad field. */
export function engineConfig(o: Partial<EngineConfig> = {}): EngineConfig {
  const c: EngineConfig = { ...DEFAULT_ENGINE_CONFIG };
  for (const [key, ok, what] of CHECKS) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
      throw new TypeError(`serving model: ${key} must be ${what}, got ${String(v)}`);
    }
    c[key] = v;
  }
  // vLLM refuses the same: a step must have room for one token of every running sequence.
  if (c.maxBatchedTokens < c.slots) {
    throw new TypeError(`serving model: maxBatchedTokens (${c.maxBatchedTokens}) must be >= slots (${c.slots})`);
  }
  return c;
}

/** Time and timers; the real one in production, a fake one in tests. */
export interface EngineClock {
  now(): number;
  schedule(ms: number, run: () => void): unknown;
  cancel(timer: unknown): void;
}

export const REAL_CLOCK: EngineClock = {
  now: () => performance.now(),
  schedule: (ms, run) => setTimeout(run, ms),
  cancel: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export type FinishReason = "stop" | "length" | "abort";

/** Called as the sequence's tokens are generated; the delivery that streams them implements it. */
export interface SequenceListener {
  /** Token `index` was generated: 0 is the first, at the end of prefill. */
  onToken(index: number): void;
  /** The last token was generated (onToken has been called for it) and the sequence left the engine. */
  onFinish(): void;
}

/** Events the metrics dialects turn into histograms. Times are the clock's milliseconds. */
export interface EngineObserver {
  admitted(seq: Sequence): void;
  firstToken(seq: Sequence): void;
  token(seq: Sequence, intervalMs: number): void;
  finished(seq: Sequence, reason: FinishReason): void;
  step(sequences: number, tokens: number, ms: number): void;
}

/** One request inside the engine. The timestamps are -1 until they happen. */
export class Sequence {
  state: "waiting" | "running" | "done" = "waiting";
  admittedAt = -1;
  firstTokenAt = -1;
  lastTokenAt = -1;
  finishedAt = -1;
  /** Prompt tokens found in the prefix cache at the first admission: the usage's cached_tokens. */
  cachedTokens = 0;
  generated = 0;
  /** Tokens of KV this sequence holds. */
  kv = 0;
  prefillLeft = 0;
  slot = -1;
  admissions = 0;

  constructor(
    readonly id: number,
    readonly prompt: PromptBlocks,
    readonly outputTokens: number,
    readonly finish: "stop" | "length",
    readonly listener: SequenceListener,
    readonly arrivedAt: number,
  ) {}
}

/** FIFO with cheap removal: a cancelled sequence is skipped when it reaches the head. */
class WaitingQueue {
  private items: Sequence[] = [];
  private head = 0;
  /** Sequences still waiting. */
  live = 0;

  push(s: Sequence): void {
    this.items.push(s);
    this.live++;
  }

  /** A preempted sequence goes back to the front, as vLLM requeues it. */
  unshift(s: Sequence): void {
    if (this.head > 0) this.items[--this.head] = s;
    else this.items.unshift(s);
    this.live++;
  }

  peek(): Sequence | undefined {
    while (this.head < this.items.length && this.items[this.head]!.state !== "waiting") this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  shift(): void {
    this.head++;
    this.live--;
  }

  forget(): void {
    this.live--;
  }
}

interface Step {
  endsAt: number;
  decode: Sequence[];
  prefill: Sequence[];
  chunks: number[];
}

/** Beyond this much lateness (a blocked event loop), the engine resynchronises instead of catching up. */
const MAX_LAG_MS = 1000;

export class ServingEngine {
  readonly config: EngineConfig;
  readonly totals = {
    /** Prompt tokens of requests whose prefill completed, cached ones included (vLLM's prompt_tokens). */
    promptTokens: 0,
    /** Prompt tokens actually prefilled: cache hits excluded, recomputation after preemption included. */
    computedPromptTokens: 0,
    generationTokens: 0,
    /** Prompt tokens looked up in the prefix cache, and those found (vLLM counts both in tokens). */
    prefixQueries: 0,
    prefixHits: 0,
    preemptions: 0,
    steps: 0,
    /** Sum over steps of the sequences in each step (llama.cpp's n_busy_slots_total). */
    stepSequences: 0,
    maxStepTokens: 0,
    /** Sums over finished requests of their prefill and decode phases. */
    prefillMs: 0,
    decodeMs: 0,
    finished: { stop: 0, length: 0, abort: 0 } as Record<FinishReason, number>,
  };
  /** Prefix-cache hit rate of the latest admission batch, as SGLang reports it per prefill batch. */
  lastBatchHitRate = 0;
  /** The sequence each slot ran last, for llama.cpp's /slots. */
  readonly slotHistory: (Sequence | undefined)[];

  private readonly waiting = new WaitingQueue();
  private readonly running: Sequence[] = [];
  private readonly cache: PrefixCache;
  private readonly random: () => number;
  private readonly freeSlots: number[] = [];
  private kvUsed = 0;
  private current: Step | null = null;
  private timer: unknown = null;
  private nextId = 1;
  private closed = false;

  constructor(
    config: Partial<EngineConfig> = {},
    private readonly clock: EngineClock = REAL_CLOCK,
    private readonly observer: EngineObserver | null = null,
  ) {
    this.config = engineConfig(config);
    this.cache = new PrefixCache(this.config.prefixCacheBlocks);
    this.random = seededRandom(this.config.seed);
    for (let i = this.config.slots - 1; i >= 0; i--) this.freeSlots.push(i);
    this.slotHistory = new Array(this.config.slots).fill(undefined);
  }

  get numRunning(): number {
    return this.running.length;
  }

  get numWaiting(): number {
    return this.waiting.live;
  }

  get kvUsedTokens(): number {
    return this.kvUsed;
  }

  /** 0..1, the fraction of KV capacity held by running sequences. */
  get kvUsage(): number {
    return this.kvUsed / this.config.kvCapacityTokens;
  }

  get cachedBlocks(): number {
    return this.cache.size;
  }

  runningSequences(): readonly Sequence[] {
    return this.running;
  }

  /** Why a request can never run, in vLLM's words (prompt and answer exceed the KV cache); else undefined. */
  refusal(promptTokens: number, outputTokens: number): string | undefined {
    const output = Math.max(1, Math.floor(outputTokens));
    const limit = this.config.kvCapacityTokens;
    if (promptTokens + output <= limit) return undefined;
    return (
      `This model's maximum context length is ${limit} tokens. However, you requested ${promptTokens + output} ` +
      `tokens (${promptTokens} in the messages, ${output} in the completion). Please reduce the length of the ` +
      "messages or completion."
    );
  }

  /** Queues a request for `outputTokens` tokens (at least one); a string is its refusal(). */
  submit(
    prompt: PromptBlocks,
    outputTokens: number,
    finish: "stop" | "length",
    listener: SequenceListener,
  ): Sequence | string {
    const refused = this.refusal(prompt.tokens, outputTokens);
    if (refused !== undefined) return refused;
    const output = Math.max(1, Math.floor(outputTokens));
    const seq = new Sequence(this.nextId++, prompt, output, finish, listener, this.clock.now());
    this.waiting.push(seq);
    // Starting on a zero timer rather than at once lets requests that arrive in the same turn share a step.
    if (this.current === null && this.timer === null && !this.closed) this.timer = this.clock.schedule(0, this.tick);
    return seq;
  }

  /** The client left: the sequence's slot, KV and queue place are free at once. */
  cancel(seq: Sequence): void {
    if (seq.state === "done") return;
    const now = this.clock.now();
    if (seq.state === "running") {
      this.release(seq, now, "abort");
      return;
    }
    seq.state = "done";
    seq.finishedAt = now;
    this.waiting.forget();
    this.totals.finished.abort++;
    this.observer?.finished(seq, "abort");
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) this.clock.cancel(this.timer);
    this.timer = null;
    this.current = null;
  }

  private readonly tick = (): void => {
    this.timer = null;
    const now = this.clock.now();
    const step = this.current;
    let at = now;
    if (step !== null) {
      this.current = null;
      // The next step starts when this one ended, not when its timer fired, so timer lateness does not add up
      // to a slower GPU.
      if (now - step.endsAt <= MAX_LAG_MS) at = step.endsAt;
      this.complete(step, now);
    }
    this.start(at, now);
  };

  private start(at: number, now: number): void {
    if (this.closed) return;
    this.admit(now);
    if (this.running.length === 0) return;
    const c = this.config;
    const decode: Sequence[] = [];
    const prefill: Sequence[] = [];
    const chunks: number[] = [];
    let prefillTokens = 0;
    // Every token this step emits takes one more token of KV. When they do not fit, the latest admitted
    // sequence is preempted (vLLM's recompute preemption: it loses its KV and waits at the front of the queue)
    // and the batch is planned again. A sequence alone always fits, since submit() checked it.
    for (let attempt = 0; attempt <= c.slots; attempt++) {
      decode.length = prefill.length = chunks.length = 0;
      prefillTokens = 0;
      for (const s of this.running) if (s.prefillLeft === 0) decode.push(s);
      let budget = c.maxBatchedTokens - decode.length;
      let completing = 0;
      for (const s of this.running) {
        if (budget <= 0) break;
        if (s.prefillLeft === 0) continue;
        const chunk = Math.min(s.prefillLeft, budget);
        prefill.push(s);
        chunks.push(chunk);
        budget -= chunk;
        prefillTokens += chunk;
        if (chunk === s.prefillLeft) completing++;
      }
      if (this.kvUsed + decode.length + completing <= c.kvCapacityTokens || this.running.length <= 1) break;
      this.preempt(this.running[this.running.length - 1]!);
    }
    const n = decode.length + prefill.length;
    let ms = c.decodeMsPerToken * (1 + c.batchGrowth * (n - 1)) + c.prefillMsPerToken * prefillTokens;
    if (c.jitter > 0) ms *= 1 + c.jitter * (2 * this.random() - 1);
    ms *= c.slowdown;
    const tokens = decode.length + prefillTokens;
    const t = this.totals;
    t.steps++;
    t.stepSequences += n;
    t.computedPromptTokens += prefillTokens;
    if (tokens > t.maxStepTokens) t.maxStepTokens = tokens;
    this.observer?.step(n, tokens, ms);
    this.current = { endsAt: at + ms, decode, prefill, chunks };
    this.timer = this.clock.schedule(Math.max(0, at + ms - now), this.tick);
  }

  private admit(now: number): void {
    const c = this.config;
    let queried = 0;
    let hits = 0;
    while (this.running.length < c.slots) {
      const s = this.waiting.peek();
      if (s === undefined) break;
      const need = s.prompt.tokens + s.generated;
      // First come, first served: a head that does not fit in the free KV holds back the queue, as in vLLM.
      if (this.kvUsed + need > c.kvCapacityTokens) break;
      this.waiting.shift();
      // The last prompt token is always computed, since its logits give the first token; vLLM caps hits the
      // same way. Only full blocks are cached.
      const maxBlocks = Math.max(0, Math.floor((s.prompt.tokens - 1) / c.blockTokens));
      const cached = this.cache.match(s.prompt.hashes, maxBlocks) * c.blockTokens;
      queried += s.prompt.tokens;
      hits += cached;
      s.state = "running";
      s.kv = need;
      this.kvUsed += need;
      s.prefillLeft = Math.max(1, need - cached);
      s.slot = this.freeSlots.pop() ?? -1;
      if (s.slot >= 0) this.slotHistory[s.slot] = s;
      this.running.push(s);
      if (s.admissions++ === 0) {
        s.admittedAt = now;
        s.cachedTokens = cached;
        this.observer?.admitted(s);
      }
    }
    if (queried > 0) {
      this.totals.prefixQueries += queried;
      this.totals.prefixHits += hits;
      this.lastBatchHitRate = hits / queried;
    }
  }

  private complete(step: Step, now: number): void {
    for (const s of step.decode) if (s.state === "running") this.emit(s, now);
    for (let i = 0; i < step.prefill.length; i++) {
      const s = step.prefill[i]!;
      if (s.state !== "running") continue;
      s.prefillLeft -= step.chunks[i]!;
      if (s.prefillLeft > 0) continue;
      // The prompt's blocks are in the KV cache now; later prompts that share them skip their prefill.
      this.cache.insert(s.prompt.hashes);
      if (s.firstTokenAt < 0) this.totals.promptTokens += s.prompt.tokens;
      this.emit(s, now);
    }
  }

  private emit(s: Sequence, now: number): void {
    const index = s.generated++;
    s.kv++;
    this.kvUsed++;
    this.totals.generationTokens++;
    if (index === 0) {
      s.firstTokenAt = now;
      this.observer?.firstToken(s);
    } else {
      this.observer?.token(s, now - s.lastTokenAt);
    }
    s.lastTokenAt = now;
    const last = s.generated >= s.outputTokens;
    // Released before the listener runs, so a listener that cancels (a cut stream) finds it done.
    if (last) this.release(s, now, s.finish);
    s.listener.onToken(index);
    if (last) s.listener.onFinish();
  }

  private release(s: Sequence, now: number, reason: FinishReason): void {
    this.leave(s);
    s.state = "done";
    s.finishedAt = now;
    if (s.firstTokenAt >= 0) {
      this.totals.prefillMs += s.firstTokenAt - s.admittedAt;
      this.totals.decodeMs += now - s.firstTokenAt;
    }
    this.totals.finished[reason]++;
    this.observer?.finished(s, reason);
  }

  private preempt(s: Sequence): void {
    this.leave(s);
    s.state = "waiting";
    s.prefillLeft = 0;
    this.waiting.unshift(s);
    this.totals.preemptions++;
  }

  /** Gives back the sequence's place in the batch, its KV and its slot. */
  private leave(s: Sequence): void {
    const i = this.running.indexOf(s);
    if (i !== -1) this.running.splice(i, 1);
    this.kvUsed -= s.kv;
    s.kv = 0;
    if (s.slot >= 0) this.freeSlots.push(s.slot);
    s.slot = -1;
  }
}
