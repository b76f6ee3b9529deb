import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { PromptBlocks } from "./prefix-cache.js";
import type { ServingRequest } from "./serving-usage.js";

/** A whole JSON answer; `tokens` is how many tokens it took to "generate" (sets its latency). */
export interface JsonReply {
  kind: "json";
  status: number;
  body: string;
  headers?: OutgoingHttpHeaders;
  id?: string;
  tokens: number;
  serving?: ServingRequest;
}

/** An SSE answer: `head` goes out with the first token, one frame per token, then `tail`. */
export interface StreamReply {
  kind: "stream";
  id: string;
  headers?: OutgoingHttpHeaders;
  head: string;
  frames: string[];
  tail: string;
  serving?: ServingRequest;
}

export type Reply = JsonReply | StreamReply;

/** A response the client abandoned before the simulator finished it. */
export interface AbortedResponse {
  path: string;
  /** The answer's id (chatcmpl-…, msg_…, resp_…) when it had one. */
  id: string | null;
  stream: boolean;
  /** Token frames written before the client left. */
  tokensSent: number;
  tokensPlanned: number;
  /** "timeout" when the request was being held by the timeout fault. */
  fault: "timeout" | null;
  at: number;
}

/** Marks a successful answer for the serving model (a no-op when it is off: no prompt blocks). */
export function served<R extends Reply>(reply: R, prompt: PromptBlocks | undefined, finish: "stop" | "length"): R {
  if (prompt !== undefined) reply.serving = { prompt, finish };
  return reply;
}

export function jsonReply(status: number, value: unknown, tokens = 0, id?: string): JsonReply {
  return { kind: "json", status, body: JSON.stringify(value), tokens, id };
}

const HOLE = "\u0000";
/** Put this where a template leaves a hole; fill it with already JSON-encoded text. */
export const FILL = HOLE;
const HOLE_JSON = JSON.stringify(HOLE);

/**
 * Serialises `value` once and returns a function that fills its FILL holes, in order: a stream writes one
 * event per token, and re-serialising the whole event each time would dominate the simulator's CPU.
 */
export function template(value: unknown): (...fills: string[]) => string {
  const parts = JSON.stringify(value).split(HOLE_JSON);
  return (...fills) => {
    let out = parts[0]!;
    for (let i = 1; i < parts.length; i++) out += fills[i - 1] + parts[i]!;
    return out;
  };
}

export const sseData = (json: string): string => `data: ${json}\n\n`;
export const sseEvent = (event: string, json: string): string => `event: ${event}\ndata: ${json}\n\n`;

export const SSE_HEADERS: OutgoingHttpHeaders = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
};

export interface Timing {
  ttftMs: number;
  interTokenMs: number;
  /** Cut the connection after this many token frames; null: never. */
  breakAfter: number | null;
}

/** An answer still being generated or held; cancel() stops its timers when the simulator closes. */
export interface InFlight {
  cancel(): void;
}

/** Writes answers with their timing and faults, and keeps track of those still going for close(). */
export class Deliveries {
  private readonly inFlight = new Set<InFlight>();

  constructor(private readonly aborted: AbortedResponse[]) {}

  send(res: ServerResponse, path: string, reply: Reply, headers: OutgoingHttpHeaders, timing: Timing): void {
    if (reply.kind === "stream") {
      this.track(new StreamDelivery(res, path, reply, timing, this)).start({ ...SSE_HEADERS, ...headers });
      return;
    }
    const delay = reply.status < 400 ? timing.ttftMs + timing.interTokenMs * Math.max(reply.tokens - 1, 0) : 0;
    if (timing.breakAfter !== null && reply.status < 400) {
      writeTruncated(res, reply, headers);
      return;
    }
    if (delay <= 0) {
      writeJson(res, reply, headers);
      return;
    }
    this.track(new DelayedJson(res, path, reply, headers, delay, this)).start();
  }

  /** The timeout fault: say nothing until the client gives up or the simulator closes. */
  hold(res: ServerResponse, path: string): void {
    const held: InFlight = { cancel: () => res.off("close", onClose) };
    const onClose = () => {
      this.done(held);
      this.abandoned({ path, id: null, stream: false, tokensSent: 0, tokensPlanned: 0, fault: "timeout" });
    };
    res.on("close", onClose);
    this.track(held);
  }

  /** Stops every timer; the connections themselves are closed by the server. */
  cancelAll(): void {
    for (const f of this.inFlight) f.cancel();
    this.inFlight.clear();
  }

  get size(): number {
    return this.inFlight.size;
  }

  done(f: InFlight): void {
    this.inFlight.delete(f);
  }

  abandoned(a: Omit<AbortedResponse, "at">): void {
    this.aborted.push({ ...a, at: Date.now() });
  }

  track<T extends InFlight>(f: T): T {
    this.inFlight.add(f);
    return f;
  }
}

export function writeJson(res: ServerResponse, reply: JsonReply, headers: OutgoingHttpHeaders): void {
  res.writeHead(reply.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(reply.body),
    ...headers,
    ...reply.headers,
  });
  res.end(reply.body);
}

/** broken-stream on a non-streaming answer: promise the whole body, send half, hang up. */
function writeTruncated(res: ServerResponse, reply: JsonReply, headers: OutgoingHttpHeaders): void {
  res.writeHead(reply.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(reply.body),
    ...headers,
    ...reply.headers,
  });
  res.write(reply.body.slice(0, Math.floor(reply.body.length / 2)));
  hangUp(res);
}

/** Closes the connection once what was written has left, so the client sees data and then a cut. */
export function hangUp(res: ServerResponse): void {
  res.socket?.destroySoon();
}

class DelayedJson implements InFlight {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly path: string,
    private readonly reply: JsonReply,
    private readonly headers: OutgoingHttpHeaders,
    private readonly delay: number,
    private readonly owner: Deliveries,
  ) {}

  start(): void {
    this.res.on("close", this.onClose);
    this.timer = setTimeout(this.send, this.delay);
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.res.off("close", this.onClose);
  }

  private readonly send = (): void => {
    this.res.off("close", this.onClose);
    this.owner.done(this);
    writeJson(this.res, this.reply, this.headers);
  };

  private readonly onClose = (): void => {
    clearTimeout(this.timer);
    this.owner.done(this);
    const { path, reply } = this;
    this.owner.abandoned({
      path,
      id: reply.id ?? null,
      stream: false,
      tokensSent: 0,
      tokensPlanned: reply.tokens,
      fault: null,
    });
  };
}

const BATCH_CHARS = 64 * 1024;

class StreamDelivery implements InFlight {
  private sent = 0;
  private started = false;
  private over = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly path: string,
    private readonly reply: StreamReply,
    private readonly timing: Timing,
    private readonly owner: Deliveries,
  ) {}

  start(headers: OutgoingHttpHeaders): void {
    this.res.writeHead(200, { ...headers, ...this.reply.headers });
    // During a TTFT wait the client already sees the status, as real servers answer before prefill ends.
    if (this.timing.ttftMs > 0) this.res.flushHeaders();
    this.res.on("close", this.onClose);
    this.after(this.timing.ttftMs);
  }

  cancel(): void {
    this.over = true;
    clearTimeout(this.timer);
  }

  private after(ms: number): void {
    if (ms <= 0) this.step();
    else this.timer = setTimeout(this.step, ms);
  }

  /**
   * One write per token when tokens are spaced out. Without a delay, tokens leave in batches of about
   * BATCH_CHARS, so a burst costs few writes yet still stops at back-pressure between batches.
   */
  private readonly step = (): void => {
    this.timer = undefined;
    if (this.over) return;
    const { res, reply, timing } = this;
    const frames = reply.frames;
    const burst = timing.interTokenMs <= 0;
    const stopAt = Math.min(frames.length, timing.breakAfter ?? frames.length);
    let chunk = this.started ? "" : reply.head;
    this.started = true;
    for (;;) {
      const until = burst ? stopAt : Math.min(this.sent + 1, stopAt);
      while (this.sent < until && chunk.length < BATCH_CHARS) chunk += frames[this.sent++];
      if (this.sent === timing.breakAfter) {
        this.cut(chunk);
        return;
      }
      if (this.sent === frames.length) {
        this.finish(chunk);
        return;
      }
      const writable = res.write(chunk);
      chunk = "";
      if (!writable) {
        res.once("drain", this.resume);
        return;
      }
      if (!burst) {
        this.after(timing.interTokenMs);
        return;
      }
    }
  };

  private readonly resume = (): void => this.after(this.timing.interTokenMs);

  private finish(chunk: string): void {
    this.over = true;
    this.owner.done(this);
    this.res.end(chunk + this.reply.tail);
  }

  private cut(chunk: string): void {
    this.over = true;
    this.owner.done(this);
    if (chunk !== "") this.res.write(chunk);
    hangUp(this.res);
  }

  private readonly onClose = (): void => {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    this.owner.done(this);
    this.owner.abandoned({
      path: this.path,
      id: this.reply.id,
      stream: true,
      tokensSent: this.sent,
      tokensPlanned: this.reply.frames.length,
      fault: null,
    });
  };
}
