import { type ChatTurn, tokenIds } from "./tokens.js";

/** What the serving model needs of a prompt: its length and the chained hashes of its full blocks. */
export interface PromptBlocks {
  tokens: number;
  /** One hash per full block of `blockTokens` tokens; a partial last block is never cached, as in vLLM. */
  hashes: readonly number[];
}

const LANE_A = 0x811c9dc5;
const LANE_B = 0x9e3779b9;
const TWO_32 = 0x1_0000_0000;

/** murmur3's finaliser: spreads the bits of a 32-bit lane. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Hashes a token stream in blocks, each block's hash seeded by the one before it, like vLLM's prefix caching:
 * equal hashes at block i mean equal tokens in blocks 0..i. Two 32-bit lanes make a 53-bit hash, so thousands of
 * cached blocks almost never collide (one lane alone would, at the bench's scale).
 */
export class BlockHasher {
  private readonly hashes: number[] = [];
  private a = LANE_A;
  private b = LANE_B;
  private inBlock = 0;
  private tokens = 0;

  constructor(private readonly blockTokens: number) {}

  push(id: number): void {
    this.a = Math.imul(this.a ^ id, 0x01000193);
    this.b = Math.imul(this.b + id, 0x2c1b3c6d) ^ (this.b >>> 15);
    this.tokens++;
    if (++this.inBlock < this.blockTokens) return;
    const a = mix(this.a);
    const b = mix(this.b ^ a);
    this.hashes.push((b & 0x1f_ffff) * TWO_32 + a);
    // The next block starts from this one's hash: the chain.
    this.a = a;
    this.b = b;
    this.inBlock = 0;
  }

  pushAll(ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++) this.push(ids[i]!);
  }

  finish(): PromptBlocks {
    return { tokens: this.tokens, hashes: this.hashes };
  }
}

// Stand-ins for the GPT-4o chat framing tokens (<|im_start|>, <|im_sep|>, <|im_end|>): three per message and
// three priming the reply, the same count chatPromptTokens() bills.
const START = 200264;
const END = 200265;
const SEP = 200266;
const NAME = 200267;
const ASSISTANT = 173781;

/**
 * A chat prompt as the serving model sees it: tool definitions first (chat templates put them in the system
 * prompt), then each turn framed as GPT-4o frames it. `tokens` equals chatPromptTokens(turns) +
 * countTokens(tools), so usage and the cache agree, and equal leading turns give equal leading blocks.
 */
export function chatPromptBlocks(turns: readonly ChatTurn[], tools: string, blockTokens: number): PromptBlocks {
  const h = new BlockHasher(blockTokens);
  h.pushAll(tokenIds(tools));
  for (const t of turns) {
    h.push(START);
    h.pushAll(tokenIds(t.role));
    if (t.name !== undefined) {
      h.push(NAME);
      h.pushAll(tokenIds(t.name));
    }
    h.push(SEP);
    h.pushAll(tokenIds(t.text));
    h.push(END);
  }
  h.push(START);
  h.push(ASSISTANT);
  h.push(SEP);
  return h.finish();
}

/** Legacy completions: the prompt strings one after another, as one sequence. */
export function textPromptBlocks(texts: readonly string[], blockTokens: number): PromptBlocks {
  const h = new BlockHasher(blockTokens);
  for (const t of texts) h.pushAll(tokenIds(t));
  return h.finish();
}

/**
 * An LRU of block hashes. A Map keeps insertion order, so touching is delete + set and the oldest entry is the
 * first key. A prompt's blocks are touched last block first, so the leading blocks, which every continuation of
 * the conversation shares, are evicted last (vLLM frees a request's blocks in reverse order for the same reason).
 */
export class PrefixCache {
  private readonly blocks = new Map<number, true>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.blocks.size;
  }

  /** How many leading blocks of `hashes`, at most `max`, are cached; those are touched. */
  match(hashes: readonly number[], max: number): number {
    const limit = Math.min(max, hashes.length);
    let n = 0;
    while (n < limit && this.blocks.has(hashes[n]!)) n++;
    for (let i = n - 1; i >= 0; i--) this.touch(hashes[i]!);
    return n;
  }

  /** The blocks of a prompt whose prefill just finished. */
  insert(hashes: readonly number[]): void {
    if (this.capacity <= 0) return;
    for (let i = hashes.length - 1; i >= 0; i--) this.touch(hashes[i]!);
    while (this.blocks.size > this.capacity) {
      const oldest = this.blocks.keys().next();
      if (oldest.done === true) break;
      this.blocks.delete(oldest.value);
    }
  }

  private touch(h: number): void {
    this.blocks.delete(h);
    this.blocks.set(h, true);
  }
}
