import type { VarSource } from "./var-source.js";

/**
 * APISIX's `core.utils.resolve_var` (and, for proxy-rewrite header values, `resolve_var_with_captures`),
 * parsed once at config time so a request only concatenates strings.
 *
 * Syntax, as APISIX accepts it:
 * - `$name` where name is `[A-Za-z0-9_.]+`, and `${name}` with optional blanks inside the braces;
 * - `${name ?? default}`: the default is used when the variable is unset;
 * - `\$` is not a variable; APISIX leaves the backslash in the output too, and so does this;
 * - with `captures`, `$N` / `${N}` (digits) first refer to regex captures, as proxy-rewrite's header
 *   values do after a `regex_uri` match; unmatched or missing captures are empty.
 * An unset variable renders as the empty string.
 */

/** Capture groups of the regex match a template may refer to (`$0` is the whole match). */
export type Captures = ArrayLike<string | undefined>;

type Part =
  | { readonly kind: 0; readonly text: string }
  | { readonly kind: 1; readonly name: string; readonly fallback: string | undefined }
  | { readonly kind: 2; readonly index: number };

const LITERAL = 0;
const VARIABLE = 1;
const CAPTURE = 2;

// The same patterns APISIX matches with ngx.re (PCRE); JS supports the lookbehind.
const CAPTURE_RE = /(?<!\\)\$\{?(\d+)\}?/g;
const VAR_RE = /(?<!\\)\$(?:\{\s*([^}]+?)\s*\}|([\w.]+))/g;
const DEFAULT_SEP = /\s*\?\?\s*/;

export class VarTemplate {
  readonly source: string;
  /** Number of `$var` references (captures excluded). */
  readonly variableCount: number;
  private readonly parts: readonly Part[];

  constructor(source: string, parts: readonly Part[]) {
    this.source = source;
    this.parts = parts;
    let n = 0;
    for (const p of parts) if (p.kind === VARIABLE) n++;
    this.variableCount = n;
  }

  /** True when the template has no variables or captures: render() returns `source` as is. */
  get isStatic(): boolean {
    return this.parts.length === 1 && this.parts[0]!.kind === LITERAL;
  }

  /**
   * The rendered string. `escaper` is applied to every substituted value (APISIX's escaper argument), never
   * to the template's own text.
   */
  render(vars: VarSource, captures?: Captures, escaper?: (value: string) => string): string {
    const parts = this.parts;
    if (parts.length === 1 && parts[0]!.kind === LITERAL) return parts[0]!.text;
    let out = "";
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (p.kind === LITERAL) {
        out += p.text;
        continue;
      }
      let value: string | undefined;
      if (p.kind === VARIABLE) value = vars.var(p.name) ?? p.fallback;
      else value = captures?.[p.index];
      if (value === undefined || value === "") continue;
      out += escaper === undefined ? value : escaper(value);
    }
    return out;
  }

  /**
   * Like render(), but undefined when no variable had a value: APISIX's `n_resolved == 0`, which limit-req's
   * `var_combination` treats as "no key" and replaces by the client address. A template without variables
   * resolves nothing, as in APISIX. Empty values count as unresolved here (see limit-req for why).
   */
  renderIfResolved(vars: VarSource): string | undefined {
    const parts = this.parts;
    let out = "";
    let resolved = false;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (p.kind === LITERAL) {
        out += p.text;
      } else if (p.kind === VARIABLE) {
        const value = vars.var(p.name) ?? p.fallback;
        if (value !== undefined && value !== "") {
          out += value;
          resolved = true;
        }
      }
    }
    return resolved ? out : undefined;
  }
}

/** Parses `source` once; `captures: true` also recognises `$N` capture references (proxy-rewrite headers). */
export function compileVarTemplate(source: string, options?: { captures?: boolean }): VarTemplate {
  const parts: Part[] = [];
  if (!source.includes("$")) return new VarTemplate(source, [{ kind: LITERAL, text: source }]);
  if (options?.captures === true) {
    let last = 0;
    for (const m of source.matchAll(CAPTURE_RE)) {
      if (m.index > last) parseVariables(source.slice(last, m.index), parts);
      parts.push({ kind: CAPTURE, index: Number(m[1]) });
      last = m.index + m[0].length;
    }
    if (last < source.length) parseVariables(source.slice(last), parts);
  } else {
    parseVariables(source, parts);
  }
  if (parts.length === 0) parts.push({ kind: LITERAL, text: "" });
  return new VarTemplate(source, parts);
}

function parseVariables(text: string, parts: Part[]): void {
  let last = 0;
  for (const m of text.matchAll(VAR_RE)) {
    if (m.index > last) pushLiteral(parts, text.slice(last, m.index));
    if (m[2] !== undefined) {
      parts.push({ kind: VARIABLE, name: m[2], fallback: undefined });
    } else {
      // `${a ?? b ?? c}`: APISIX splits on `??` and uses only the first default.
      const segs = m[1]!.split(DEFAULT_SEP);
      parts.push({ kind: VARIABLE, name: segs[0]!, fallback: segs.length > 1 ? segs[1] : undefined });
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) pushLiteral(parts, text.slice(last));
}

function pushLiteral(parts: Part[], text: string): void {
  const prev = parts[parts.length - 1];
  if (prev !== undefined && prev.kind === LITERAL) parts[parts.length - 1] = { kind: LITERAL, text: prev.text + text };
  else parts.push({ kind: LITERAL, text });
}
