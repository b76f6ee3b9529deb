import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AdminKey, AdminRole } from "../config/types.js";

/** APISIX reads the admin key from the X-API-KEY header, the `api_key` query arg or the `x_api_key` cookie. */
export function presentedKey(req: IncomingMessage, query: URLSearchParams): string | undefined {
  const header = req.headers["x-api-key"];
  if (typeof header === "string" && header !== "") return header;
  const arg = query.get("api_key");
  if (arg !== null && arg !== "") return arg;
  const cookie = req.headers.cookie;
  if (cookie !== undefined) {
    for (const part of cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq !== -1 && part.slice(0, eq).trim() === "x_api_key") return decodeURIComponent(part.slice(eq + 1).trim());
    }
  }
  return undefined;
}

/** The role of the matching key, compared in constant time so timing does not reveal key prefixes. */
export function roleOf(keys: readonly AdminKey[], presented: string | undefined): AdminRole | undefined {
  if (presented === undefined) return undefined;
  const given = Buffer.from(presented);
  let role: AdminRole | undefined;
  for (const k of keys) {
    const expected = Buffer.from(k.key);
    if (expected.length === given.length && timingSafeEqual(expected, given) && role === undefined) role = k.role;
  }
  return role;
}
