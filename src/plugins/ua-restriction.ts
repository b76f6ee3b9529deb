import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { runsInLinearTime } from "../router/regex-limit.js";
import { compileRegex } from "../router/vars.js";

/**
 * ua-restriction: lets through only User-Agents matching an allowlist regex, or refuses those matching a
 * denylist regex. Regexes are compiled once; each distinct User-Agent is judged once and the verdict kept
 * in a bounded cache, since a fleet of clients sends few distinct values.
 *
 * JavaScript regexes have no backtracking limit (PCRE, which APISIX uses, has one); the gateway bounds
 * them with V8's linear-time fallback (router/regex-limit.ts). Two guards remain for what that cannot
 * cover: patterns that nest unbounded quantifiers (`(a+)+`, the exponential kind) and that engine cannot
 * run (a backreference, a lookaround, a large counted repeat) are refused at config time, and a User-Agent longer
 * than MAX_USER_AGENT is refused without running any regex.
 */
export const name = "ua-restriction";
export const priority = 2999;

/** Longest User-Agent matched against the lists; longer ones are refused. Real browsers send < 500. */
export const MAX_USER_AGENT = 1024;
/** Distinct User-Agents whose verdict is remembered per plugin instance (APISIX's lrucache count). */
export const VERDICT_CACHE_SIZE = 4096;

const RegexList = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 });

export const schema = Type.Object(
  {
    bypass_missing: Type.Optional(Type.Boolean({ default: false })),
    allowlist: Type.Optional(RegexList),
    denylist: Type.Optional(RegexList),
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, default: "Not allowed" })),
  },
  { oneOf: [{ required: ["allowlist"] }, { required: ["denylist"] }] },
);
export type UaRestrictionConfig = Static<typeof schema>;

interface State {
  rules: RegExp[];
  /** true: a match lets the request through (allowlist); false: a match refuses it (denylist). */
  allowOnMatch: boolean;
  bypassMissing: boolean;
  rejection: Reply;
  /** User-Agent (trimmed) → passes. Insertion order doubles as the eviction order. */
  verdicts: Map<string, boolean>;
}

function check(conf: UaRestrictionConfig): string | undefined {
  const field = conf.allowlist !== undefined ? "allowlist" : "denylist";
  const list = conf.allowlist ?? conf.denylist ?? [];
  for (let i = 0; i < list.length; i++) {
    const err = ruleError(list[i]!, `property "${field}[${i}]" validation failed`);
    if (err !== undefined) return err;
  }
  return undefined;
}

function ruleError(pattern: string, where: string): string | undefined {
  let re: RegExp;
  try {
    re = compileRegex(pattern, false, where);
  } catch (err) {
    return (err as Error).message;
  }
  // The linear-time fallback bounds such a pattern, but only one that engine can run.
  if (nestsUnboundedQuantifiers(pattern) && !runsInLinearTime(re)) {
    return `${where}: regex "${pattern}" repeats a group that itself repeats without bound and V8's linear-time engine cannot run it (a backreference, a lookaround, a large counted repeat), so its backtracking cannot be bounded`;
  }
  return undefined;
}

function compile(conf: UaRestrictionConfig): State {
  const allowOnMatch = conf.allowlist !== undefined;
  const list = (allowOnMatch ? conf.allowlist : conf.denylist) ?? [];
  return {
    rules: list.map((pattern) => compileRegex(pattern, false, "regex")),
    allowOnMatch,
    bypassMissing: conf.bypass_missing === true,
    rejection: { status: 403, body: { message: conf.message ?? "Not allowed" } },
    verdicts: new Map(),
  };
}

/**
 * Several User-Agent lines are judged one by one, as APISIX does: the allowlist passes the request when any
 * line is allowed; the denylist refuses it when any line is denied.
 */
function access(state: State, ctx: PluginContext): Reply | undefined {
  const raw = ctx.req.rawHeaders;
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const header = raw[i]!;
    if (header.length !== 10 || header.toLowerCase() !== "user-agent") continue;
    seen = true;
    const passes = verdict(state, raw[i + 1]!);
    if (passes === state.allowOnMatch) return passes ? undefined : state.rejection;
  }
  if (!seen) return state.bypassMissing ? undefined : state.rejection;
  // No line decided: none was allowed (allowlist) or none was denied (denylist).
  return state.allowOnMatch ? state.rejection : undefined;
}

/** Whether one User-Agent value passes the list. */
function verdict(state: State, value: string): boolean {
  const ua = value.trim();
  if (ua.length > MAX_USER_AGENT) return false;
  const known = state.verdicts.get(ua);
  if (known !== undefined) return known;
  let matched = false;
  for (const rule of state.rules) {
    if (rule.test(ua)) {
      matched = true;
      break;
    }
  }
  const passes = matched === state.allowOnMatch;
  if (state.verdicts.size >= VERDICT_CACHE_SIZE) state.verdicts.delete(state.verdicts.keys().next().value!);
  state.verdicts.set(ua, passes);
  return passes;
}

/**
 * True when a group that contains an unbounded quantifier (`*`, `+`, `{n,}`, a wide `{n,m}`) is itself
 * repeated the same way: `(a+)+`, `(\w*x)*`, `(?:a{2,})+`, the shape of exponential backtracking. Narrow
 * repeats (`?`, `{2}`, `{1,3}`) and flat patterns pass. A heuristic: `(a|aa)+` is not caught, hence the
 * input length bound as well.
 */
export function nestsUnboundedQuantifiers(pattern: string): boolean {
  // One entry per open group: whether something inside it repeats without bound.
  const groups: boolean[] = [];
  // Set right after a `)`: whether the group just closed repeats inside.
  let closedGroupRepeats: boolean | undefined;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    const closed = closedGroupRepeats;
    closedGroupRepeats = undefined;
    if (c === "\\") {
      i += 2;
    } else if (c === "[") {
      i++;
      if (pattern[i] === "^") i++;
      if (pattern[i] === "]") i++;
      while (i < pattern.length && pattern[i] !== "]") i += pattern[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "(") {
      groups.push(false);
      i++;
    } else if (c === ")") {
      closedGroupRepeats = groups.pop() ?? false;
      // What repeats inside a group repeats inside the groups around it too.
      if (closedGroupRepeats && groups.length > 0) groups[groups.length - 1] = true;
      i++;
    } else {
      const unbounded = unboundedQuantifierAt(pattern, i);
      if (unbounded === 0) {
        i++;
        continue;
      }
      if (closed === true) return true;
      if (groups.length > 0) groups[groups.length - 1] = true;
      i += unbounded;
    }
  }
  return false;
}

/** Length of the unbounded quantifier at `i` (`*`, `+`, `{n,}`, or `{n,m}` spanning more than 10), or 0. */
function unboundedQuantifierAt(pattern: string, i: number): number {
  const c = pattern[i];
  if (c === "*" || c === "+") return 1;
  if (c !== "{") return 0;
  const m = /^\{(\d+),(\d*)\}/.exec(pattern.slice(i, i + 24));
  if (m === null) return 0;
  return m[2] === "" || Number(m[2]) - Number(m[1]) > 10 ? m[0].length : 0;
}

export const uaRestriction: Plugin<UaRestrictionConfig, State> = { name, priority, schema, check, compile, access };
