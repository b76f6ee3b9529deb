import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { DEFAULT_MAX_BODY, detectProtocol, isObject, promptMessages, readJsonBody } from "./ai/chat-body.js";

/**
 * ai-prompt-guard: checks the prompt of a chat request (OpenAI chat or Anthropic Messages) against allow and
 * deny regexes before it reaches the model. By default only the last message, and only if it is the user's;
 * the checked texts are joined with a space, so a phrase split across messages is still one match. Patterns
 * are PCRE as in APISIX, compiled to JS RegExps once per config; one JS cannot express is refused at the
 * Admin API.
 */
export const name = "ai-prompt-guard";
export const priority = 1072;

type FailMode = "skip" | "warn" | "error";

export const schema = Type.Object({
  max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MAX_BODY })),
  match_all_roles: Type.Optional(Type.Boolean({ default: false })),
  match_all_conversation_history: Type.Optional(Type.Boolean({ default: false })),
  allow_patterns: Type.Optional(Type.Array(Type.String(), { default: [] })),
  deny_patterns: Type.Optional(Type.Array(Type.String(), { default: [] })),
  // APISIX defaults to "skip" (let unrecognized bodies through unchecked); a guard that fails open can be
  // walked around by sending a body it does not understand, so Weir fails closed unless told otherwise.
  fail_mode: Type.Optional(
    Type.Unsafe<FailMode>({ type: "string", enum: ["skip", "warn", "error"], default: "error" }),
  ),
});
export type AiPromptGuardConfig = Static<typeof schema>;

interface State {
  maxBodySize: number;
  allRoles: boolean;
  allHistory: boolean;
  allow: RegExp[];
  deny: RegExp[];
  failClosed: boolean;
}

const NOT_ALLOWED: Reply = { status: 400, body: { message: "Request doesn't match allow patterns" } };
const DENIED: Reply = { status: 400, body: { message: "Request contains prohibited content" } };
const EMPTY: Reply = { status: 400, body: { message: "Empty request body" } };
const UNRECOGNIZED: Reply = { status: 400, body: { message: "Request format not recognized by ai-prompt-guard" } };

function check(conf: AiPromptGuardConfig): string | undefined {
  return checkPatterns(conf.allow_patterns, "allow") ?? checkPatterns(conf.deny_patterns, "deny");
}

function checkPatterns(patterns: string[] | undefined, kind: "allow" | "deny"): string | undefined {
  const list = patterns ?? [];
  for (let i = 0; i < list.length; i++) {
    const compiled = compilePcre(list[i]!);
    if (typeof compiled === "string") {
      return `property "${kind}_patterns[${i}]" validation failed: invalid ${kind}_pattern: ${list[i]} (${compiled})`;
    }
  }
  return undefined;
}

function compile(conf: AiPromptGuardConfig): State {
  const regexes = (patterns: string[] | undefined) =>
    (patterns ?? []).map((p) => {
      const re = compilePcre(p);
      if (typeof re === "string") throw new Error(`invalid pattern ${p}: ${re}`);
      return re;
    });
  return {
    maxBodySize: conf.max_req_body_size ?? DEFAULT_MAX_BODY,
    allRoles: conf.match_all_roles === true,
    allHistory: conf.match_all_conversation_history === true,
    allow: regexes(conf.allow_patterns),
    deny: regexes(conf.deny_patterns),
    failClosed: (conf.fail_mode ?? "error") === "error",
  };
}

async function access(state: State, ctx: PluginContext): Promise<Reply | undefined> {
  const read = await readJsonBody(ctx, state.maxBodySize);
  if (!read.ok) {
    if (read.reason === "empty") return EMPTY;
    if (read.reason === "too-large") return { status: 400, body: { message: read.message } };
    return state.failClosed ? { status: 400, body: { message: read.message } } : undefined;
  }
  const body = read.value;
  const protocol = detectProtocol(body, ctx.var("uri") ?? ctx.path);
  if (protocol === undefined || !isObject(body)) return state.failClosed ? UNRECOGNIZED : undefined;

  let messages = promptMessages(body, protocol);
  if (!state.allHistory) messages = messages.slice(-1);
  if (!state.allRoles) messages = messages.filter((m) => m.role === "user");
  // Nothing of the user's to check: the request goes on (APISIX ends it here with an empty 200).
  if (messages.length === 0) return undefined;
  const text = messages.length === 1 ? messages[0]!.content : messages.map((m) => m.content).join(" ");

  if (state.allow.length > 0 && !state.allow.some((re) => re.test(text))) return NOT_ALLOWED;
  if (state.deny.some((re) => re.test(text))) return DENIED;
  return undefined;
}

export const aiPromptGuard: Plugin<AiPromptGuardConfig, State> = { name, priority, schema, check, compile, access };

// ---- PCRE → RegExp ----------------------------------------------------------------------------------------

/** Leading PCRE option settings, `(?i)` etc.; JS (Node 20) has no inline modifiers. */
const LEADING_OPTIONS = /^\(\?([a-zA-Z]+)\)/;
const JS_FLAGS: Record<string, string> = { i: "i", m: "m", s: "s" };

/**
 * Escapes of letters that mean something in PCRE but are a plain letter in a JS regex without the `u` flag
 * (`\A` would silently match "A"). A pattern that needs the non-unicode fallback must not contain them.
 */
const JS_LETTER_ESCAPES = new Set("dDwWsSbBnrtfvxuck");

/**
 * APISIX matches with ngx.re.find(…, "jou"): PCRE in UTF-8 mode. JS's `u` flag is the closest, but it
 * refuses PCRE-style needless escapes (`\-`, `\:`), so such patterns fall back to a non-unicode RegExp
 * when they carry no letter escape whose meaning would change. `\A`, `\z` and `\Z` become `^` / `$`.
 * Returns the RegExp or why the pattern cannot be used.
 */
export function compilePcre(pattern: string): RegExp | string {
  let source = pattern;
  let flags = "";
  const options = LEADING_OPTIONS.exec(source);
  if (options !== null) {
    for (const letter of options[1]!) {
      const flag = JS_FLAGS[letter];
      if (flag === undefined) return `unsupported option (?${letter})`;
      if (!flags.includes(flag)) flags += flag;
    }
    source = source.slice(options[0].length);
  }
  source = translateAnchors(source);
  try {
    return new RegExp(source, `${flags}u`);
  } catch (unicodeErr) {
    const letterEscape = nonJsLetterEscape(source);
    if (letterEscape !== undefined) return `\\${letterEscape} is not supported`;
    try {
      return new RegExp(source, flags);
    } catch {
      return (unicodeErr as Error).message;
    }
  }
}

/** `\A` → `^`, `\z` / `\Z` → `$`, outside character classes. */
function translateAnchors(source: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === "\\" && i + 1 < source.length) {
      const next = source[i + 1]!;
      i++;
      if (!inClass && next === "A") out += "^";
      else if (!inClass && (next === "z" || next === "Z")) out += "$";
      else out += c + next;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    out += c;
  }
  return out;
}

function nonJsLetterEscape(source: string): string | undefined {
  for (let i = 0; i < source.length - 1; i++) {
    if (source[i] !== "\\") continue;
    const next = source[++i]!;
    if (/[a-zA-Z]/.test(next) && !JS_LETTER_ESCAPES.has(next)) return next;
  }
  return undefined;
}
