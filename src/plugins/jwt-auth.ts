import { type Static, Type } from "@sinclair/typebox";
import {
  decodeJwt,
  HMAC_ALGORITHMS,
  hmacVerifier,
  isHmacAlgorithm,
  JWS_ALGORITHMS,
  type JwsAlgorithm,
  type JwsVerifier,
  publicKeyVerifier,
  type TimeClaim,
  verifySignature,
  verifyTimeClaims,
} from "../auth/jwt.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * jwt-auth: identifies the consumer from a JWT in a header, query argument or cookie. The token's key claim
 * names a consumer credential; that credential's algorithm and secret or public key verify the token, then
 * exp/nbf are checked. Keys are turned into verifiers once per consumer config, not per request.
 */
export const name = "jwt-auth";
export const priority = 2510;

// APISIX's realm pattern: printable ASCII without `"` and `\`, so it can sit in a quoted header value.
const Realm = (fallback: string) =>
  Type.String({ pattern: "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$", minLength: 1, maxLength: 128, default: fallback });

export const schema = Type.Object({
  header: Type.Optional(Type.String({ default: "authorization" })),
  query: Type.Optional(Type.String({ default: "jwt" })),
  cookie: Type.Optional(Type.String({ default: "jwt" })),
  hide_credentials: Type.Optional(Type.Boolean({ default: false })),
  key_claim_name: Type.Optional(Type.String({ minLength: 1, default: "key" })),
  store_in_ctx: Type.Optional(Type.Boolean({ default: false })),
  realm: Type.Optional(Realm("jwt")),
  anonymous_consumer: Type.Optional(Type.String({ minLength: 1 })),
  claims_to_verify: Type.Optional(
    Type.Array(Type.Unsafe<TimeClaim>({ type: "string", enum: ["exp", "nbf"] }), { uniqueItems: true }),
  ),
});
export type JwtAuthConfig = Static<typeof schema>;

const BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

/**
 * APISIX puts its cross-field rules in check_schema; Weir's Admin API runs a plugin's check() only for
 * route configs, so they are stated in the schema: HS algorithms need `secret` (base64 when
 * base64_secret), the others `public_key`.
 */
export const consumerSchema = Type.Object(
  {
    key: Type.String({ minLength: 1 }),
    secret: Type.Optional(Type.String({ minLength: 1 })),
    public_key: Type.Optional(Type.String({ minLength: 1 })),
    algorithm: Type.Optional(Type.Unsafe<JwsAlgorithm>({ type: "string", enum: JWS_ALGORITHMS, default: "HS256" })),
    // Lifetime of tokens APISIX itself signs; verification ignores it. Kept for config compatibility.
    exp: Type.Optional(Type.Integer({ minimum: 1, default: 86400 })),
    base64_secret: Type.Optional(Type.Boolean({ default: false })),
    lifetime_grace_period: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  },
  {
    allOf: [
      {
        if: { properties: { algorithm: { enum: HMAC_ALGORITHMS } } },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else keywords
        then: { required: ["secret"] },
        else: { required: ["public_key"] },
      },
      {
        if: { properties: { base64_secret: { const: true } }, required: ["base64_secret"] },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keywords
        then: { properties: { secret: { pattern: BASE64 } } },
      },
    ],
  },
);
export type JwtAuthConsumerConfig = Static<typeof consumerSchema>;

interface State {
  header: string;
  argVar: string;
  cookieVar: string;
  queryName: string;
  cookieName: string;
  hideCredentials: boolean;
  keyClaim: string;
  storeInCtx: boolean;
  anonymousConsumer: string | undefined;
  claims: readonly TimeClaim[] | undefined;
  challenge: Record<string, string>;
}

function compile(conf: JwtAuthConfig): State {
  const query = conf.query ?? "jwt";
  const cookie = conf.cookie ?? "jwt";
  return {
    header: conf.header ?? "authorization",
    argVar: `arg_${query}`,
    cookieVar: `cookie_${cookie}`,
    queryName: query,
    cookieName: cookie,
    hideCredentials: conf.hide_credentials === true,
    keyClaim: conf.key_claim_name ?? "key",
    storeInCtx: conf.store_in_ctx === true,
    anonymousConsumer: conf.anonymous_consumer,
    claims: conf.claims_to_verify,
    challenge: { "WWW-Authenticate": `Bearer realm="${conf.realm ?? "jwt"}"` },
  };
}

// ---- consumer keys ----------------------------------------------------------------------------------------

interface ConsumerKey {
  verifier: JwsVerifier | undefined;
  /** Why no verifier could be built (a key that does not fit the algorithm, say). */
  problem: string | undefined;
  leeway: number;
}

/** Verifiers by consumer config object: each config (one per snapshot) is compiled on first use only. */
const consumerKeys = new WeakMap<object, ConsumerKey>();

export function consumerKey(conf: Record<string, unknown>): ConsumerKey {
  let key = consumerKeys.get(conf);
  if (key === undefined) {
    key = buildConsumerKey(conf as JwtAuthConsumerConfig);
    consumerKeys.set(conf, key);
  }
  return key;
}

function buildConsumerKey(conf: JwtAuthConsumerConfig): ConsumerKey {
  const algorithm = conf.algorithm ?? "HS256";
  const leeway = conf.lifetime_grace_period ?? 0;
  const broken = (problem: string): ConsumerKey => ({ verifier: undefined, problem, leeway });
  if (isHmacAlgorithm(algorithm)) {
    if (typeof conf.secret !== "string" || conf.secret === "") return broken("missing secret");
    const secret = conf.base64_secret === true ? Buffer.from(conf.secret, "base64") : Buffer.from(conf.secret);
    return { verifier: hmacVerifier(algorithm, secret), problem: undefined, leeway };
  }
  if (typeof conf.public_key !== "string") return broken("missing public key");
  const built = publicKeyVerifier(algorithm, conf.public_key);
  return built.ok ? { verifier: built.value, problem: undefined, leeway } : broken(built.reason);
}

// ---- the request ------------------------------------------------------------------------------------------

function fetchToken(state: State, ctx: PluginContext): string | undefined {
  const header = ctx.getRequestHeader(state.header);
  if (header !== undefined) {
    if (state.hideCredentials) ctx.removeRequestHeader(state.header);
    const prefix = header.slice(0, 7);
    return prefix === "Bearer " || prefix === "bearer " ? header.slice(7) : header;
  }
  const arg = ctx.var(state.argVar);
  if (arg !== undefined) {
    if (state.hideCredentials) ctx.removeQueryArg(state.queryName);
    return arg;
  }
  const cookie = ctx.var(state.cookieVar);
  if (cookie !== undefined && state.hideCredentials) {
    const rest = withoutCookie(ctx.getRequestHeader("cookie") ?? "", state.cookieName);
    if (rest === "") ctx.removeRequestHeader("cookie");
    else ctx.setRequestHeader("cookie", rest);
  }
  return cookie;
}

/** Why the request is not authenticated (APISIX's 401 messages), or the credential it proved. */
function authenticate(state: State, ctx: PluginContext): string | undefined {
  const token = fetchToken(state, ctx);
  if (token === undefined) return "Missing JWT token in request";
  const decoded = decodeJwt(token);
  if (!decoded.ok) return "JWT token invalid";
  const jwt = decoded.value;
  const userKey = Object.hasOwn(jwt.payload, state.keyClaim) ? jwt.payload[state.keyClaim] : undefined;
  if (userKey === undefined || userKey === null || userKey === false) return "missing user key in JWT token";
  const match = typeof userKey === "string" ? ctx.findCredential(name, userKey) : undefined;
  if (match === undefined) return "Invalid user key in JWT token";
  const key = consumerKey(match.conf);
  if (key.verifier === undefined) return "failed to verify jwt";
  if (!verifySignature(jwt, key.verifier).ok) return "failed to verify jwt";
  const now = Math.floor(Date.now() / 1000);
  if (verifyTimeClaims(jwt.payload, { now, leeway: key.leeway, required: state.claims }) !== undefined) {
    return "failed to verify jwt";
  }
  if (!ctx.attachConsumer(match.username, match.credentialId)) return "Invalid user key in JWT token";
  // APISIX's ctx.jwt_auth_payload, for plugins that run later on this request.
  if (state.storeInCtx) ctx.pluginData.set(name, jwt.payload);
  return undefined;
}

function rewrite(state: State, ctx: PluginContext): Reply | undefined {
  const problem = authenticate(state, ctx);
  if (problem === undefined) return undefined;
  if (state.anonymousConsumer === undefined) {
    return { status: 401, body: { message: problem }, headers: state.challenge };
  }
  if (ctx.attachConsumer(state.anonymousConsumer)) return undefined;
  return { status: 401, body: { message: "Invalid user authorization" }, headers: state.challenge };
}

// ---- hiding credentials -----------------------------------------------------------------------------------

/** A Cookie header without the cookie `cookieName`, the others joined with "; " as APISIX rebuilds it. */
export function withoutCookie(header: string, cookieName: string): string {
  const kept: string[] = [];
  for (const part of header.split(";")) {
    const pair = part.trim();
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if ((eq === -1 ? pair : pair.slice(0, eq).trim()) !== cookieName) kept.push(pair);
  }
  return kept.join("; ");
}

export const jwtAuth: Plugin<JwtAuthConfig, State> = {
  name,
  priority,
  type: "auth",
  credentialKey: "key",
  encryptFields: ["secret"],
  schema,
  consumerSchema,
  compile,
  rewrite,
};
