import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * csrf: double-submit cookie. Every response sets a fresh signed token cookie; GET/HEAD/OPTIONS pass,
 * any other method must send the same token in the header of that name, and the token must carry a
 * valid signature and not be older than `expires` seconds. The token is APISIX's shape (base64 of
 * `{"random","expires","sign"}`, `expires` being the issue time) but signed with HMAC-SHA256 under `key`
 * and compared in constant time.
 */
export const name = "csrf";
export const priority = 2980;

export const schema = Type.Object({
  key: Type.String(),
  expires: Type.Optional(Type.Integer({ default: 7200 })),
  name: Type.Optional(Type.String({ default: "apisix-csrf-token" })),
});
export type CsrfConfig = Static<typeof schema>;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

interface State {
  key: string;
  expires: number;
  cookieName: string;
  headerName: string;
  now: () => number;
  /** The `; Expires=` suffix only changes once a second. */
  cookieSuffixAt: number;
  cookieSuffix: string;
}

interface Token {
  random: string;
  expires: number;
  sign: string;
}

const NO_HEADER: Reply = { status: 401, body: { error_msg: "no csrf token in headers" } };
const NO_COOKIE: Reply = { status: 401, body: { error_msg: "no csrf cookie" } };
const MISMATCH: Reply = { status: 401, body: { error_msg: "csrf token mismatch" } };
const BAD_SIGNATURE: Reply = { status: 401, body: { error_msg: "Failed to verify the csrf token signature" } };

/** Seconds since the epoch, like ngx.time(). */
const systemClock = () => Math.floor(Date.now() / 1000);

function compile(conf: CsrfConfig): State {
  return compileWith(conf, systemClock);
}

/** compile() with an injectable clock (seconds), for tests of expiry. */
export function compileWith(conf: CsrfConfig, now: () => number): State {
  const cookieName = conf.name ?? "apisix-csrf-token";
  return {
    key: conf.key,
    expires: conf.expires ?? 7200,
    cookieName,
    headerName: cookieName.toLowerCase(),
    now,
    cookieSuffixAt: -1,
    cookieSuffix: "",
  };
}

function access(state: State, ctx: PluginContext): Reply | undefined {
  if (SAFE_METHODS.has(ctx.method)) return undefined;
  const header = ctx.req.headers[state.headerName];
  const headerToken = Array.isArray(header) ? header[0] : header;
  if (headerToken === undefined || headerToken === "") return NO_HEADER;
  const cookieToken = ctx.var(`cookie_${state.cookieName}`);
  if (cookieToken === undefined) return NO_COOKIE;
  if (!sameString(headerToken, cookieToken)) return MISMATCH;
  return verifyToken(state, cookieToken) ? undefined : BAD_SIGNATURE;
}

function header_filter(state: State, ctx: PluginContext): void {
  const now = state.now();
  ctx.addResponseHeader(
    "Set-Cookie",
    `${state.cookieName}=${issueToken(state, now)};path=/;SameSite=Lax;Expires=${expiresAt(state, now)}`,
  );
}

// ---- tokens -----------------------------------------------------------------------------------------------

export function issueToken(state: State, now: number): string {
  const random = randomBytes(16).toString("hex");
  const token: Token = { random, expires: now, sign: sign(state.key, random, now) };
  return Buffer.from(JSON.stringify(token)).toString("base64");
}

export function verifyToken(state: State, cookie: string): boolean {
  let token: Partial<Token>;
  try {
    token = JSON.parse(Buffer.from(cookie, "base64").toString("utf8")) as Partial<Token>;
  } catch {
    return false;
  }
  if (token === null || typeof token !== "object") return false;
  const { random, expires, sign: signature } = token;
  if ((typeof random !== "string" && typeof random !== "number") || random === "") return false;
  if (typeof expires !== "number" || !Number.isFinite(expires) || typeof signature !== "string") return false;
  if (state.expires > 0 && state.now() - expires > state.expires) return false;
  return sameString(signature, sign(state.key, String(random), expires));
}

function sign(key: string, random: string, issuedAt: number): string {
  return createHmac("sha256", key).update(`{expires:${issuedAt},random:${random}}`).digest("hex");
}

/** Constant-time for equal lengths; a length difference is not secret (tokens have a fixed shape). */
function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function expiresAt(state: State, now: number): string {
  if (state.cookieSuffixAt !== now) {
    state.cookieSuffixAt = now;
    state.cookieSuffix = cookieTime(now + state.expires);
  }
  return state.cookieSuffix;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** nginx's ngx_http_cookie_time: `Thu, 18-Nov-2010 11:27:35 GMT`. */
export function cookieTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} GMT`;
}

export const csrf: Plugin<CsrfConfig, State> = {
  name,
  priority,
  schema,
  encryptFields: ["key"],
  compile,
  access,
  header_filter,
};
