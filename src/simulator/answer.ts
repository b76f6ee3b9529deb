import { BoundedCache, type ChatTurn, countTokens, tokenPieces, truncateToTokens } from "./tokens.js";

/** Why an answer ended, in neutral words; each provider maps it to its own finish/stop reason. */
export type AnswerEnd = "complete" | "max_tokens" | "stop_sequence";

export interface Answer {
  text: string;
  /** The answer token by token; `pieces.join("") === text`. */
  pieces: string[];
  /** gpt-tokenizer's count of `text`. */
  tokens: number;
  end: AnswerEnd;
  /** The stop sequence that ended the answer, when one did. */
  stopSequence: string | null;
}

export interface AnswerRequest {
  /** Everything the model was given; the answer is a function of it. */
  prompt: string;
  /** Answer length before any cap. */
  tokens: number;
  /** `max_tokens` and its relatives; undefined when the request set none. */
  maxTokens?: number;
  stop?: readonly string[];
}

const WORDS = (
  "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore " +
  "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo " +
  "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint " +
  "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum"
).split(" ");

/** A conversation as one string, the seed of its answer: the same turns give the same answer on every API. */
export const promptText = (turns: readonly ChatTurn[]): string => turns.map((t) => `${t.role}: ${t.text}`).join("\n");

/** FNV-1a: a fast, stable hash so the same prompt always seeds the same answer. */
export function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: tiny deterministic generator of numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Lorem-ipsum sentences seeded by the prompt, long enough to hold `tokens` tokens. */
function loremFor(seed: number, tokens: number): string {
  const random = seededRandom(seed);
  let text = "";
  // Lorem words average under two tokens; a margin of words guarantees the cut lands inside the text.
  let words = 0;
  while (words < tokens + 4) {
    const length = 6 + Math.floor(random() * 9);
    const sentence: string[] = [];
    for (let i = 0; i < length; i++) sentence.push(WORDS[Math.floor(random() * WORDS.length)]!);
    const first = sentence[0]!;
    sentence[0] = first[0]!.toUpperCase() + first.slice(1);
    text += (text === "" ? "" : " ") + sentence.join(" ") + ".";
    words += length;
  }
  return text;
}

const answers = new BoundedCache<string, Answer>(4096);

function build(text: string, end: AnswerEnd, stopSequence: string | null): Answer {
  const pieces = tokenPieces(text);
  return { text, pieces, tokens: countTokens(text), end, stopSequence };
}

/**
 * The simulated model's answer: `tokens` tokens of lorem text chosen by the prompt, cut at the first stop
 * sequence or at `maxTokens`, whichever comes first (a real model stops at whichever it reaches first).
 */
export function composeAnswer(r: AnswerRequest): Answer {
  const stops = r.stop ?? [];
  const key = `${r.tokens}|${r.maxTokens ?? ""}|${stops.join("\u0000")}|${r.prompt}`;
  const cached = answers.get(key);
  if (cached !== undefined) return cached;

  let text = r.tokens <= 0 ? "" : truncateToTokens(loremFor(hashText(r.prompt), r.tokens), r.tokens);
  let stopSequence: string | null = null;
  let cut = -1;
  for (const s of stops) {
    const at = s === "" ? -1 : text.indexOf(s);
    if (at !== -1 && (cut === -1 || at < cut)) {
      cut = at;
      stopSequence = s;
    }
  }
  if (cut !== -1) text = text.slice(0, cut);
  let end: AnswerEnd = cut !== -1 ? "stop_sequence" : "complete";
  if (r.maxTokens !== undefined && countTokens(text) > r.maxTokens) {
    text = truncateToTokens(text, r.maxTokens);
    end = "max_tokens";
    stopSequence = null;
  }
  return answers.set(key, build(text, end, stopSequence));
}
