/**
 * Just enough of the Prometheus text exposition format (version 0.0.4, and the OpenMetrics text that
 * prometheus_client serves when asked) to pull the samples of a few named series out of a model server's
 * scrape. A vLLM scrape is 30-100 KB of mostly histogram buckets and may be read every 250 ms per replica,
 * so the scan allocates only for the lines it wants: every other line is checked for shape (a metric name,
 * then labels or a blank) and skipped without slicing.
 *
 * Format rules followed (prometheus/docs content/docs/instrumenting/exposition_formats.md):
 * - `#` lines are HELP, TYPE or comments; blank lines are ignored; lines end in `\n` (a trailing `\r` is
 *   tolerated for servers behind proxies that rewrite line endings).
 * - A sample is `name{label="value",...} value [timestamp]`; names match `[a-zA-Z_:][a-zA-Z0-9_:]*`
 *   (colons are how vLLM, SGLang and llama.cpp namespace theirs); label values are double-quoted and
 *   may hold `\"`, `\\` and `\n` escapes, so a `}` or `,` inside quotes does not end the label set.
 * - Values are Go floats: `NaN`, `+Inf`, `-Inf` (and `Inf`) besides decimal and exponent forms. The
 *   optional millisecond timestamp after the value is ignored: a scrape is read as of when it arrived.
 */

export interface ScanResult {
  /** Lines shaped like samples, wanted or not. */
  readonly samples: number;
  /** Non-comment lines that are not samples: a body with many of these and no samples is not Prometheus. */
  readonly invalid: number;
}

/** Called once per sample of a wanted series, in body order; `value` may be NaN or ±Infinity. */
export type SampleSink = (name: string, value: number) => void;

const HASH = 35;
const CR = 13;
const SPACE = 32;
const TAB = 9;
const BRACE_OPEN = 123;
const BRACE_CLOSE = 125;
const QUOTE = 34;
const BACKSLASH = 92;

/**
 * Scans `text` once and hands every sample whose metric name is in `wanted` to `sink`. Never throws: a
 * malformed line is counted in `invalid` and skipped, so one bad line from a server does not lose the rest
 * of its scrape. `prefixes` (optional) are the leading characters every wanted name shares; lines that
 * start with none of them are skipped before their name is even sliced.
 */
export function scanSamples(
  text: string,
  wanted: ReadonlySet<string>,
  sink: SampleSink,
  prefixes: readonly string[] = [],
): ScanResult {
  let samples = 0;
  let invalid = 0;
  const end = text.length;
  let pos = 0;
  while (pos < end) {
    let eol = text.indexOf("\n", pos);
    if (eol === -1) eol = end;
    const lineStart = pos;
    pos = eol + 1;
    let lineEnd = eol;
    if (lineEnd > lineStart && text.charCodeAt(lineEnd - 1) === CR) lineEnd--;
    let i = lineStart;
    while (i < lineEnd && isBlank(text.charCodeAt(i))) i++;
    if (i === lineEnd || text.charCodeAt(i) === HASH) continue;

    // Metric name.
    const nameStart = i;
    if (!isNameStart(text.charCodeAt(i))) {
      invalid++;
      continue;
    }
    i++;
    while (i < lineEnd && isNameChar(text.charCodeAt(i))) i++;
    const nameEnd = i;
    const next = i < lineEnd ? text.charCodeAt(i) : -1;
    if (next !== BRACE_OPEN && !isBlank(next)) {
      invalid++;
      continue;
    }
    samples++;
    if (prefixes.length > 0 && !startsWithAny(text, nameStart, prefixes)) continue;
    const name = text.slice(nameStart, nameEnd);
    if (!wanted.has(name)) continue;

    // Labels: skipped, but with quotes and escapes honoured so the value is found where it really is.
    if (next === BRACE_OPEN) {
      i = skipLabels(text, i + 1, lineEnd);
      if (i === -1) {
        samples--;
        invalid++;
        continue;
      }
    }
    while (i < lineEnd && isBlank(text.charCodeAt(i))) i++;
    let valueEnd = i;
    while (valueEnd < lineEnd && !isBlank(text.charCodeAt(valueEnd))) valueEnd++;
    const value = parseValue(text.slice(i, valueEnd));
    if (value === undefined) {
      samples--;
      invalid++;
      continue;
    }
    sink(name, value);
  }
  return { samples, invalid };
}

/** Index just past the `}` that closes a label set opened before `i`, or -1 if the line ends first. */
function skipLabels(text: string, i: number, lineEnd: number): number {
  let quoted = false;
  while (i < lineEnd) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) quoted = false;
    } else if (c === QUOTE) quoted = true;
    else if (c === BRACE_CLOSE) return i + 1;
    i++;
  }
  return -1;
}

/** A Go ParseFloat-style value, as Prometheus writes them; undefined when it is not a number at all. */
export function parseValue(token: string): number | undefined {
  if (token.length === 0) return undefined;
  const n = Number(token);
  if (!Number.isNaN(n)) return n;
  switch (token.toLowerCase()) {
    case "nan":
      return Number.NaN;
    case "+inf":
    case "inf":
      return Number.POSITIVE_INFINITY;
    case "-inf":
      return Number.NEGATIVE_INFINITY;
    default:
      return undefined;
  }
}

function startsWithAny(text: string, at: number, prefixes: readonly string[]): boolean {
  for (const p of prefixes) if (text.startsWith(p, at)) return true;
  return false;
}

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}
