import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { AdminKey, AdminRole } from "../config/types.js";

/**
 * APISIX reads the admin key from the `api_key` query argument, then the X-API-KEY header (any casing, as
 * every HTTP header), then the `x_api_key` cookie; the first one present wins.
 */
export function presentedKey(req: IncomingMessage, query: URLSearchParams): string | undefined {
  const arg = query.get("api_key");
  if (arg !== null) return arg;
  const header = req.headers["x-api-key"];
  if (typeof header === "string") return header;
  const cookie = req.headers.cookie;
  if (cookie !== undefined) {
    for (const part of cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq !== -1 && part.slice(0, eq).trim() === "x_api_key") return safeDecode(part.slice(eq + 1).trim());
    }
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * The role of the matching key. Keys are compared as SHA-256 digests with timingSafeEqual, so neither a key's
 * content nor its length shows in the timing, and every configured key is compared every time.
 */
export function roleOf(keys: readonly AdminKey[], presented: string | undefined): AdminRole | undefined {
  if (presented === undefined) return undefined;
  const given = digest(presented);
  let role: AdminRole | undefined;
  for (const k of keys) {
    if (timingSafeEqual(digest(k.key), given) && role === undefined) role = k.role;
  }
  return role;
}

/** APISIX's check_token: undefined when allowed, else the `description` of its 401. */
export function checkToken(
  keys: readonly AdminKey[],
  presented: string | undefined,
  method: string,
): string | undefined {
  if (presented === undefined) return "missing apikey";
  const role = roleOf(keys, presented);
  if (role === undefined) return "wrong apikey";
  if (role === "viewer" && method !== "GET") return "invalid method for role viewer";
  return undefined;
}
