import { decode, encode } from "gpt-tokenizer";

/**
 * A Map that forgets its oldest entries past a limit: benchmarks repeat a handful of prompts millions of
 * times, while a long test run must not grow without bound.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();
  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): V {
    if (this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
    return value;
  }
}

const counts = new BoundedCache<string, number>(8192);

/** gpt-tokenizer's count (o200k_base, the GPT-4o encoding) for one text, cached. */
export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  return counts.get(text) ?? counts.set(text, encode(text).length);
}

// Only the serving model asks for ids. Uint32Array halves the memory of number[], and the limit is low because
// one entry can be a whole 8,000-token document.
const ids = new BoundedCache<string, Uint32Array>(2048);
const NO_IDS = new Uint32Array(0);

/** The token ids of one text, cached; primes countTokens, so a prompt is encoded once, not twice. */
export function tokenIds(text: string): Uint32Array {
  if (text.length === 0) return NO_IDS;
  const cached = ids.get(text);
  if (cached !== undefined) return cached;
  const encoded = Uint32Array.from(encode(text));
  if (counts.get(text) === undefined) counts.set(text, encoded.length);
  return ids.set(text, encoded);
}

export interface ChatTurn {
  role: string;
  text: string;
  name?: string;
}

/**
 * Prompt tokens of a chat exactly as OpenAI frames it for GPT-4o: 3 tokens of framing per message, one more
 * for a `name`, and 3 that prime the assistant's reply. Equals `encodeChat(messages, "gpt-4o").length`.
 */
export function chatPromptTokens(turns: readonly ChatTurn[]): number {
  let total = 3;
  for (const t of turns) {
    total += 3 + countTokens(t.role) + countTokens(t.text);
    if (t.name !== undefined) total += 1 + countTokens(t.name);
  }
  return total;
}

/**
 * The text of each token, in order, as a streaming model emits them. A character that spans several tokens
 * (some CJK, emoji) is emitted whole with its last token, so no piece ever holds half a character.
 */
export function tokenPieces(text: string): string[] {
  const ids = encode(text);
  const pieces: string[] = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    const piece = decode(ids.slice(start, i + 1));
    if (piece.endsWith("\uFFFD") && i < ids.length - 1) continue;
    pieces.push(piece);
    start = i + 1;
  }
  return pieces;
}

/** The longest prefix of `text` that is at most `max` tokens. */
export function truncateToTokens(text: string, max: number): string {
  const ids = encode(text);
  if (ids.length <= max) return text;
  return decode(ids.slice(0, max)).replace(/\uFFFD+$/, "");
}
