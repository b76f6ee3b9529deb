import { compileIpMatcher, validateIp } from "./ip.js";
import type { VarSource } from "./types.js";

/**
 * lua-resty-expr, as APISIX uses it for route `vars`, `_meta.filter` and traffic-split rules:
 * `[[var, op, value], ...]` (all must hold), `["AND"|"OR", expr, expr, ...]`, a leading "!" on AND/OR
 * negates the group, and `[var, "!", op, value]` negates one rule. Everything (regexes, IP lists) is
 * compiled here once; evaluation only reads variables and compares.
 */
export type VarsPredicate = (vars: VarSource) => boolean;

const LOGICAL = new Set(["AND", "OR", "!AND", "!OR"]);
const OPERATORS = new Set(["==", "~=", ">", "<", ">=", "<=", "~~", "~*", "in", "has", "ipmatch"]);

export function validateVars(expr: unknown): string | undefined {
  try {
    compileVars(expr);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export function compileVars(expr: unknown): VarsPredicate {
  if (!Array.isArray(expr)) throw new Error("vars: expression must be an array");
  if (expr.length === 0) return () => true;
  return compileNode(expr, "vars");
}

function compileNode(expr: unknown[], where: string): VarsPredicate {
  const head = expr[0];
  if (typeof head === "string" && LOGICAL.has(head)) {
    if (expr.length < 2) throw new Error(`${where}: "${head}" needs at least one expression`);
    const children = expr.slice(1).map((child, i) => {
      if (!Array.isArray(child)) throw new Error(`${where}[${i + 1}]: expected an expression array`);
      return compileNode(child, `${where}[${i + 1}]`);
    });
    const negate = head.startsWith("!");
    const any = head.endsWith("OR");
    if (any) {
      return negate ? (v) => !children.some((c) => c(v)) : (v) => children.some((c) => c(v));
    }
    return negate ? (v) => !children.every((c) => c(v)) : (v) => children.every((c) => c(v));
  }
  if (Array.isArray(head)) {
    // a list of expressions: all must hold
    const children = expr.map((child, i) => {
      if (!Array.isArray(child)) throw new Error(`${where}[${i}]: expected an expression array`);
      return compileNode(child, `${where}[${i}]`);
    });
    if (children.length === 1) return children[0]!;
    return (v) => {
      for (const c of children) if (!c(v)) return false;
      return true;
    };
  }
  return compileRule(expr, where);
}

function compileRule(rule: unknown[], where: string): VarsPredicate {
  if (rule.length !== 3 && rule.length !== 4) {
    throw new Error(`${where}: a rule is [var, operator, value] or [var, "!", operator, value]`);
  }
  const [name, ...rest] = rule;
  if (typeof name !== "string" || name === "") throw new Error(`${where}: variable name must be a non-empty string`);
  let negate = false;
  if (rest.length === 3) {
    if (rest[0] !== "!") throw new Error(`${where}: expected "!" before the operator`);
    negate = true;
    rest.shift();
  }
  const [op, value] = rest;
  if (typeof op !== "string" || !OPERATORS.has(op)) throw new Error(`${where}: invalid operator "${String(op)}"`);
  const test = compileOperator(op, value, where);
  return negate ? (v) => !test(v.var(name)) : (v) => test(v.var(name));
}

function toNumber(s: string | undefined): number | undefined {
  if (s === undefined || s.trim() === "") return undefined;
  const n = Number(s);
  return Number.isNaN(n) ? undefined : n;
}

function compileOperator(op: string, value: unknown, where: string): (l: string | undefined) => boolean {
  switch (op) {
    case "==":
      if (typeof value === "number") return (l) => toNumber(l) === value;
      if (value === null) return (l) => l === undefined;
      return (l) => l === String(value);
    case "~=":
      if (typeof value === "number") return (l) => toNumber(l) !== value;
      if (value === null) return (l) => l !== undefined;
      return (l) => l !== String(value);
    case ">":
    case "<":
    case ">=":
    case "<=": {
      const r = typeof value === "number" ? value : toNumber(String(value));
      if (r === undefined) throw new Error(`${where}: "${op}" needs a number`);
      return (l) => {
        const n = toNumber(l);
        if (n === undefined) return false;
        return op === ">" ? n > r : op === "<" ? n < r : op === ">=" ? n >= r : n <= r;
      };
    }
    case "~~":
    case "~*": {
      if (typeof value !== "string") throw new Error(`${where}: "${op}" needs a regular expression string`);
      const re = compileRegex(value, op === "~*", where);
      return (l) => l !== undefined && re.test(l);
    }
    case "in": {
      if (!Array.isArray(value)) throw new Error(`${where}: "in" needs an array`);
      const set = new Set(value.map((x) => String(x)));
      return (l) => l !== undefined && set.has(l);
    }
    case "has": {
      const r = String(value);
      // The variable holds a list; APISIX variables here are strings, so a comma-separated list.
      return (l) => l !== undefined && l.split(",").some((x) => x.trim() === r);
    }
    case "ipmatch": {
      const list = Array.isArray(value) ? value.map(String) : [String(value)];
      for (const ip of list) {
        const err = validateIp(ip);
        if (err !== undefined) throw new Error(`${where}: ${err}`);
      }
      const match = compileIpMatcher(list);
      return (l) => l !== undefined && match(l);
    }
  }
  throw new Error(`${where}: invalid operator "${op}"`);
}

/** PCRE as APISIX writes it, to a JS RegExp; `(?i)` prefixes become the i flag. */
export function compileRegex(source: string, caseInsensitive: boolean, where: string): RegExp {
  let flags = caseInsensitive ? "i" : "";
  let body = source;
  if (body.startsWith("(?i)")) {
    body = body.slice(4);
    if (!flags.includes("i")) flags += "i";
  }
  try {
    return new RegExp(body, flags);
  } catch (err) {
    throw new Error(`${where}: invalid regular expression "${source}": ${(err as Error).message}`);
  }
}

/** True when the expression reads `post_arg.*` (the body must be parsed before matching). */
export function readsPostArgs(expr: unknown): boolean {
  if (!Array.isArray(expr)) return false;
  if (typeof expr[0] === "string" && expr[0].startsWith("post_arg.")) return true;
  return expr.some((e) => Array.isArray(e) && readsPostArgs(e));
}
