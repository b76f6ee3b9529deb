import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * HTTP request signatures as APISIX's hmac-auth checks them (draft-cavage-http-signatures-12, HMAC only):
 * `Authorization: Signature keyId="…",algorithm="…",headers="…",signature="…"`, the signing string, the
 * `Date` freshness check and the `Digest: SHA-256=…` body check. Pure functions; the plugin wires them up.
 */

export const HMAC_ALGORITHMS = ["hmac-sha1", "hmac-sha256", "hmac-sha512"] as const;
export type HmacAlgorithm = (typeof HMAC_ALGORITHMS)[number];

const HASH: Record<HmacAlgorithm, string> = {
  "hmac-sha1": "sha1",
  "hmac-sha256": "sha256",
  "hmac-sha512": "sha512",
};

export function isHmacAlgorithm(name: string): name is HmacAlgorithm {
  return Object.hasOwn(HASH, name);
}

export interface SignatureParams {
  keyId: string | undefined;
  algorithm: string | undefined;
  signature: string | undefined;
  /** The `headers` list in the client's order and spelling; undefined when the client sent none. */
  headers: string[] | undefined;
}

// APISIX matches `%s*(%w+)="(.-)"` in each comma-separated piece: the first key="value" found wins in a
// piece, values stop at the first quote and cannot contain commas.
const FIELD = /([A-Za-z0-9]+)="([^"]*)"/;

/**
 * Parses the Authorization header. The error strings are APISIX's (the client sees them after
 * "client request can't be validated: ").
 */
export function parseSignatureHeader(authorization: string | undefined): SignatureParams | string {
  if (authorization === undefined) return "missing Authorization header";
  if (!authorization.startsWith("Signature")) return "Authorization header does not start with 'Signature'";
  const params: SignatureParams = { keyId: undefined, algorithm: undefined, signature: undefined, headers: undefined };
  for (const piece of authorization.slice("Signature".length).split(",")) {
    const m = FIELD.exec(piece);
    if (m === null) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "keyId") params.keyId = value;
    else if (key === "algorithm") params.algorithm = value;
    else if (key === "signature") params.signature = value;
    else if (key === "headers") params.headers = value.split(" ");
  }
  return params;
}

export interface SignedRequest {
  method: string;
  /** The request target as the client sent it: path and query (nginx `$request_uri`). */
  requestUri: string;
  /** Case-insensitive header lookup; several lines of one header come joined with ", ". */
  header(name: string): string | undefined;
}

/**
 * APISIX's signing string: the keyId, then for each listed header in the listed order `name: value` (name
 * spelled as listed), `@request-target` as `METHOD uri`, each followed by a newline. A listed header the
 * request does not carry is left out, as APISIX does: the signer and the verifier then agree without it.
 */
export function signingString(keyId: string, headers: readonly string[] | undefined, request: SignedRequest): string {
  let out = `${keyId}\n`;
  for (const name of headers ?? []) {
    const value = name === "" ? undefined : request.header(name);
    if (value !== undefined) out += `${name}: ${value}\n`;
    else if (name === "@request-target") out += `${request.method} ${request.requestUri || "/"}\n`;
  }
  return out;
}

export function hmacSign(algorithm: HmacAlgorithm, secret: string | Buffer, message: string): Buffer {
  return createHmac(HASH[algorithm], secret).update(message).digest();
}

/** Constant-time comparison for secrets of possibly different lengths (the length itself is not secret). */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Standard base64, padding optional (as ngx.decode_base64); undefined for anything else. */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, "base64") : undefined;
}

/** The `Digest` header value for a body: `SHA-256=` + base64(sha256(body)), as APISIX expects. */
export function bodyDigest(body: Buffer | string): string {
  return `SHA-256=${createHash("sha256").update(body).digest("base64")}`;
}

// ---- HTTP dates -------------------------------------------------------------------------------------------

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
// The three forms of RFC 9110 §5.6.7, which nginx's ngx_parse_http_time reads too. Date.parse is not used:
// it accepts almost anything and reads zone-less dates in local time.
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850 = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`,
);
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/** Seconds since the epoch for an HTTP date, or undefined when it is not one. */
export function parseHttpDate(text: string): number | undefined {
  let day: string;
  let month: string;
  let year: number;
  let clock: [string, string, string];
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) {
    [day, month, year, clock] = [m[1]!, m[2]!, Number(m[3]), [m[4]!, m[5]!, m[6]!]];
  } else if ((m = RFC850.exec(text)) !== null) {
    // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
    const yy = Number(m[3]);
    const current = new Date().getUTCFullYear();
    year = 2000 + yy > current + 50 ? 1900 + yy : 2000 + yy;
    [day, month, clock] = [m[1]!, m[2]!, [m[4]!, m[5]!, m[6]!]];
  } else if ((m = ASCTIME.exec(text)) !== null) {
    [month, day, year, clock] = [m[1]!, m[2]!.trim(), Number(m[6]), [m[3]!, m[4]!, m[5]!]];
  } else {
    return undefined;
  }
  const [h, min, s] = clock.map(Number) as [number, number, number];
  const d = Number(day);
  const mon = MONTHS.indexOf(month);
  if (h > 23 || min > 59 || s > 60 || d < 1) return undefined;
  const ms = Date.UTC(year, mon, d, h, min, s);
  // Date.UTC rolls 31 Feb over into March; a real date round-trips.
  if (new Date(ms).getUTCDate() !== d) return undefined;
  return ms / 1000;
}

/** Formats seconds since the epoch as an IMF-fixdate (what clients put in `Date`). */
export function formatHttpDate(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}
