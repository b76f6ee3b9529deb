/**
 * Incremental Server-Sent Events parser over raw response bytes. It cuts the byte stream at event
 * boundaries (a blank line: LF LF or CRLF CRLF; bare-CR line ends, which no LLM provider sends, are not
 * recognised) and hands out each complete event both as its raw
 * bytes, so a pass-through proxy can forward exactly what the provider sent, and as parsed fields for
 * token accounting. Bytes of an event split across TCP chunks wait in `pending` until the event is whole;
 * splitting on bytes (not decoded text) keeps multi-byte UTF-8 characters intact.
 */
export interface SseEvent {
  /** The `event:` field, or undefined for the default "message" type. */
  event: string | undefined;
  /** `data:` lines joined with "\n", as the EventSource spec does; "" when the event has no data. */
  data: string;
  /** The event's bytes as received, terminator included. */
  raw: Buffer;
}

const LF = 10;
const CR = 13;

export class SseParser {
  private pending: Buffer | undefined = undefined;
  /** Bytes seen in total, for max_response_bytes. */
  bytes = 0;

  /** Feeds one chunk; calls `onEvent` for every event completed by it, in order. */
  push(chunk: Buffer, onEvent: (event: SseEvent) => void): void {
    this.bytes += chunk.length;
    let buf = chunk;
    let i = 0;
    if (this.pending !== undefined) {
      // Re-scan the last pending bytes too: a terminator may straddle the chunk boundary.
      i = Math.max(0, this.pending.length - 2);
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let start = 0;
    for (;;) {
      const lf = buf.indexOf(LF, i);
      if (lf === -1) break;
      const next = buf[lf + 1];
      const end = next === LF ? lf + 2 : next === CR && buf[lf + 2] === LF ? lf + 3 : -1;
      if (end === -1) {
        i = lf + 1;
        continue;
      }
      onEvent(parseEvent(buf.subarray(start, end)));
      start = end;
      i = end;
    }
    if (start < buf.length) this.pending = buf.subarray(start);
  }

  /** What is left when the stream ends without a final blank line; providers do send that sometimes. */
  flush(onEvent: (event: SseEvent) => void): void {
    const rest = this.pending;
    this.pending = undefined;
    if (rest !== undefined && rest.length > 0 && !isBlank(rest)) onEvent(parseEvent(rest));
  }
}

function isBlank(buf: Buffer): boolean {
  for (const c of buf) if (c !== LF && c !== CR && c !== 32) return false;
  return true;
}

function parseEvent(raw: Buffer): SseEvent {
  const text = raw.toString("utf8");
  let event: string | undefined;
  let data: string | undefined;
  let pos = 0;
  while (pos < text.length) {
    let eol = pos;
    while (eol < text.length && text.charCodeAt(eol) !== LF && text.charCodeAt(eol) !== CR) eol++;
    const line = text.slice(pos, eol);
    pos = eol + (text.charCodeAt(eol) === CR && text.charCodeAt(eol + 1) === LF ? 2 : 1);
    if (line.length === 0 || line.charCodeAt(0) === 58 /* : comment */) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") data = data === undefined ? value : `${data}\n${value}`;
    else if (field === "event") event = value;
  }
  return { event, data: data ?? "", raw };
}

/** Serialises one event for a client; `data` must not contain raw line breaks (JSON never does). */
export function formatSse(data: string, event?: string): string {
  return event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`;
}
