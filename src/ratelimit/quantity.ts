import { compileVarTemplate, type VarTemplate } from "../vars/template.js";
import type { VarSource } from "../vars/var-source.js";

/**
 * A count, limit or time_window as APISIX 3.16+ takes them: a positive integer, or a string resolved per
 * request from variables (`$http_x_quota`). Fixed at config time when it holds no variable.
 */
export type Quantity = number | VarTemplate;

export function positiveInteger(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  const n = Number(text);
  return Number.isInteger(n) && n > 0 && n <= Number.MAX_SAFE_INTEGER ? n : undefined;
}

/** For check(): a string without variables must be a number written as a string. APISIX finds out per request. */
export function quantityError(field: string, value: number | string | undefined): string | undefined {
  if (typeof value !== "string") return undefined;
  if (compileVarTemplate(value).variableCount > 0 || positiveInteger(value) !== undefined) return undefined;
  return `property "${field}" validation failed: "${value}" is neither a positive integer nor has a $variable`;
}

/** Compiles a value check() accepted. */
export function quantity(value: number | string): Quantity {
  if (typeof value === "number") return value;
  const template = compileVarTemplate(value);
  return template.variableCount === 0 ? positiveInteger(value)! : template;
}

/** This request's value; undefined when a variable does not hold a positive integer. */
export function resolveQuantity(q: Quantity, vars: VarSource): number | undefined {
  return typeof q === "number" ? q : positiveInteger(q.render(vars));
}
