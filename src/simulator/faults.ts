import type { IncomingHttpHeaders } from "node:http";

/** How a request goes wrong: an error status, silence until the client leaves, or a stream cut short. */
export type Fault =
  | { kind: "status"; status: number }
  | { kind: "timeout" }
  | { kind: "broken-stream"; afterTokens: number };

/** The same words the `x-sim-fail` header takes. */
export type FailSpec = number | "timeout" | "broken-stream" | `broken-stream:${number}` | `${number}`;

export interface Behaviour {
  /** Delay before the first token (and before a non-stream answer's generation starts). */
  ttftMs: number;
  /** Delay between tokens. */
  interTokenMs: number;
  fail: FailSpec | null;
  /** "omit" leaves usage out of answers, as some self-hosted servers do. */
  usage: "include" | "omit";
  /** Answer length in tokens before max_tokens and stop sequences cut it. */
  tokens: number;
  /** `retry-after` seconds on 429, 503 and 529. */
  retryAfterS: number;
  /** How many following requests this behaviour applies to; null: until reset(). */
  times: number | null;
}

/** What one request does, after the instance's behaviour and the request's x-sim-* headers are combined. */
export interface RequestPlan {
  ttftMs: number;
  interTokenMs: number;
  /** x-sim-ttft-ms or x-sim-itl-ms was sent: this request keeps those delays even with the serving model on. */
  fixedTiming: boolean;
  fault: Fault | null;
  omitUsage: boolean;
  tokens: number;
  retryAfterS: number;
}

export const DEFAULT_ANSWER_TOKENS = 32;
const DEFAULT_BROKEN_AFTER = 3;
const MAX_DELAY_MS = 600_000;

export function parseFail(spec: FailSpec | string): Fault | string {
  const text = String(spec).trim().toLowerCase();
  if (text === "timeout") return { kind: "timeout" };
  if (text === "broken-stream") return { kind: "broken-stream", afterTokens: DEFAULT_BROKEN_AFTER };
  if (text.startsWith("broken-stream:")) {
    const n = Number(text.slice("broken-stream:".length));
    if (!Number.isInteger(n) || n < 0) return `x-sim-fail: "${spec}" needs a whole number of tokens`;
    return { kind: "broken-stream", afterTokens: n };
  }
  const status = Number(text);
  if (Number.isInteger(status) && status >= 400 && status <= 599) return { kind: "status", status };
  return `x-sim-fail: "${spec}" is not a 4xx/5xx status, "timeout" or "broken-stream[:N]"`;
}

function headerNumber(headers: IncomingHttpHeaders, name: string, max: number): number | string | undefined {
  const raw = headers[name];
  if (typeof raw !== "string") return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < 0 || n > max)
    return `${name}: "${raw}" must be a number 0..${max}`;
  return n;
}

/** Combines behaviour and headers; a string is a message naming the header that was wrong. */
export function planRequest(b: Behaviour, headers: IncomingHttpHeaders): RequestPlan | string {
  const ttft = headerNumber(headers, "x-sim-ttft-ms", MAX_DELAY_MS);
  const itl = headerNumber(headers, "x-sim-itl-ms", MAX_DELAY_MS);
  const tokens = headerNumber(headers, "x-sim-tokens", 1_000_000);
  for (const v of [ttft, itl, tokens]) if (typeof v === "string") return v;

  const failHeader = headers["x-sim-fail"];
  const failSpec = typeof failHeader === "string" ? failHeader : b.fail;
  let fault: Fault | null = null;
  if (failSpec !== null) {
    const parsed = parseFail(failSpec);
    if (typeof parsed === "string") return parsed;
    fault = parsed;
  }

  const usageHeader = headers["x-sim-usage"];
  if (usageHeader !== undefined && usageHeader !== "omit" && usageHeader !== "include") {
    return `x-sim-usage: "${usageHeader}" must be "omit" or "include"`;
  }
  return {
    ttftMs: (ttft as number | undefined) ?? b.ttftMs,
    interTokenMs: (itl as number | undefined) ?? b.interTokenMs,
    fixedTiming: ttft !== undefined || itl !== undefined,
    tokens: Math.floor((tokens as number | undefined) ?? b.tokens),
    fault,
    omitUsage: (usageHeader ?? b.usage) === "omit",
    retryAfterS: b.retryAfterS,
  };
}

/**
 * The instance's behaviour: defaults from the options, plus what a test set with behave() for the next
 * requests (all of them, or `times` of them).
 */
export class BehaviourControl {
  private current: Behaviour;
  private remaining: number | null = null;

  constructor(private readonly defaults: Behaviour) {
    this.current = defaults;
  }

  behave(b: Partial<Behaviour>): void {
    if (b.fail !== undefined && b.fail !== null) {
      const parsed = parseFail(b.fail);
      if (typeof parsed === "string") throw new TypeError(parsed);
    }
    this.current = { ...this.current, ...b };
    if (b.times !== undefined) this.remaining = b.times;
    if (this.remaining !== null && this.remaining <= 0) this.reset();
  }

  reset(): void {
    this.current = this.defaults;
    this.remaining = null;
  }

  /** The behaviour for one request; counts it against `times`. */
  next(): Behaviour {
    const current = this.current;
    if (this.remaining !== null && --this.remaining <= 0) this.reset();
    return current;
  }
}
