import { setFlagsFromString } from "node:v8";

let bounded = false;

/**
 * Bounds the time of every regex in the process. Patterns come from the Admin API and the strings they
 * meet (headers, URIs, prompts) from clients, and a JavaScript regex backtracks without limit where
 * APISIX's PCRE stops at a match limit: `(a+)+$` against `aaaa…!` would hold the event loop for minutes.
 * With this V8 flag a regex that backtracks too much (50,000 backtracks) is re-run on V8's linear-time
 * engine, which gives the same answer for every pattern it supports (no backreferences or lookaround).
 * A process-wide V8 flag, set once when a gateway is created; it also applies to regexes compiled before.
 */
export function boundRegexBacktracking(): void {
  if (bounded) return;
  bounded = true;
  setFlagsFromString("--enable-experimental-regexp-engine-on-excessive-backtracks");
  // Allows the `l` flag, with which runsInLinearTime() asks V8 whether that engine takes a pattern.
  setFlagsFromString("--enable-experimental-regexp-engine");
}

/** Whether the linear-time fallback can run `re`, so its backtracking is bounded. */
export function runsInLinearTime(re: RegExp): boolean {
  boundRegexBacktracking();
  try {
    new RegExp(re.source, `${re.flags}l`);
    return true;
  } catch {
    return false;
  }
}
