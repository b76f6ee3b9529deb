import { type Static, Type } from "@sinclair/typebox";
import {
  bodyDigest,
  decodeBase64,
  HMAC_ALGORITHMS,
  type HmacAlgorithm,
  hmacSign,
  isHmacAlgorithm,
  parseHttpDate,
  parseSignatureHeader,
  type SignatureParams,
  safeEqual,
  signingString,
} from "../auth/hmac.js";
import type { CredentialMatch, PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * hmac-auth: identifies the consumer from an HTTP signature (`Authorization: Signature keyId=…`). The
 * keyId names a consumer credential whose secret_key must reproduce the signature over APISIX's signing
 * string; the Date header must be within clock_skew; with validate_request_body the body must match the
 * Digest header. The body is read only in that last case.
 */
export const name = "hmac-auth";
export const priority = 2530;

const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

export const schema = Type.Object({
  allowed_algorithms: Type.Optional(
    Type.Array(Type.Unsafe<HmacAlgorithm>({ type: "string", enum: HMAC_ALGORITHMS }), {
      minItems: 1,
      default: [...HMAC_ALGORITHMS],
    }),
  ),
  clock_skew: Type.Optional(Type.Integer({ minimum: 1, default: 300 })),
  signed_headers: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { default: ["date"] })),
  validate_request_body: Type.Optional(Type.Boolean({ default: false })),
  max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MAX_BODY })),
  hide_credentials: Type.Optional(Type.Boolean({ default: false })),
  realm: Type.Optional(
    Type.String({ pattern: "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$", minLength: 1, maxLength: 128, default: "hmac" }),
  ),
  anonymous_consumer: Type.Optional(Type.String({ minLength: 1 })),
});
export type HmacAuthConfig = Static<typeof schema>;

export const consumerSchema = Type.Object({
  key_id: Type.String({ minLength: 1, maxLength: 256 }),
  secret_key: Type.String({ minLength: 1, maxLength: 256 }),
});

interface State {
  allowed: ReadonlySet<string>;
  clockSkew: number;
  signedHeaders: readonly string[];
  validateBody: boolean;
  maxBody: number;
  hideCredentials: boolean;
  anonymousConsumer: string | undefined;
  challenge: Record<string, string>;
}

function compile(conf: HmacAuthConfig): State {
  return {
    allowed: new Set(conf.allowed_algorithms ?? HMAC_ALGORITHMS),
    clockSkew: conf.clock_skew ?? 300,
    signedHeaders: conf.signed_headers ?? ["date"],
    validateBody: conf.validate_request_body === true,
    maxBody: conf.max_req_body_size ?? DEFAULT_MAX_BODY,
    hideCredentials: conf.hide_credentials === true,
    anonymousConsumer: conf.anonymous_consumer,
    challenge: { "WWW-Authenticate": `hmac realm="${conf.realm ?? "hmac"}"` },
  };
}

/** Why a request is refused; `status` replaces 401 (413 for an oversized body). */
interface Refusal {
  message: string;
  status?: number;
}

const UNVALIDATED = "client request can't be validated";

/** APISIX's order of checks: consumer, algorithm, clock skew, required headers, signature, then body. */
function verify(state: State, ctx: PluginContext, params: SignatureParams): CredentialMatch | undefined {
  if (params.keyId === undefined || params.signature === undefined || params.algorithm === undefined) return;
  const match = ctx.findCredential(name, params.keyId);
  if (match === undefined) return;
  const algorithm = params.algorithm;
  if (!state.allowed.has(algorithm) || !isHmacAlgorithm(algorithm)) return;

  const date = ctx.getRequestHeader("date");
  const time = date === undefined ? undefined : parseHttpDate(date);
  if (time === undefined || Math.abs(Date.now() / 1000 - time) > state.clockSkew) return;

  const listed = params.headers ?? [];
  for (const required of state.signedHeaders) if (!listed.includes(required)) return;

  const secret = match.conf.secret_key;
  const signature = decodeBase64(params.signature);
  if (typeof secret !== "string" || signature === undefined) return;
  const request = {
    method: ctx.method,
    requestUri: ctx.var("request_uri") ?? "/",
    header: (h: string) => ctx.getRequestHeader(h),
  };
  const expected = hmacSign(algorithm, secret, signingString(params.keyId, params.headers, request));
  return safeEqual(expected, signature) ? match : undefined;
}

async function checkBody(state: State, ctx: PluginContext): Promise<Refusal | undefined> {
  const digest = ctx.getRequestHeader("digest");
  if (digest === undefined) return { message: UNVALIDATED };
  const tooLarge = (size: number | string) => ({
    message: `request size ${size} is greater than the maximum size ${state.maxBody} allowed`,
    status: 413,
  });
  // A declared length over the limit is refused before a byte of the body is buffered.
  const declared = Number(ctx.getRequestHeader("content-length"));
  if (declared > state.maxBody) return tooLarge(declared);
  let body: Buffer;
  try {
    body = await ctx.readBody();
  } catch {
    // The proxy's own buffering limit (below max_req_body_size) was hit while reading.
    return tooLarge("unknown");
  }
  if (body.length > state.maxBody) return tooLarge(body.length);
  return safeEqual(Buffer.from(bodyDigest(body)), Buffer.from(digest)) ? undefined : { message: UNVALIDATED };
}

function refuse(state: State, ctx: PluginContext, refusal: Refusal): Reply | undefined {
  if (refusal.status !== undefined) return { status: refusal.status, body: { message: refusal.message } };
  if (state.anonymousConsumer === undefined) {
    return { status: 401, body: { message: refusal.message }, headers: state.challenge };
  }
  if (ctx.attachConsumer(state.anonymousConsumer)) return accepted(state, ctx);
  return { status: 401, body: { message: "Invalid user authorization" }, headers: state.challenge };
}

function accepted(state: State, ctx: PluginContext): undefined {
  if (state.hideCredentials) ctx.removeRequestHeader("authorization");
  return undefined;
}

function rewrite(state: State, ctx: PluginContext): Reply | undefined | Promise<Reply | undefined> {
  const params = parseSignatureHeader(ctx.getRequestHeader("authorization"));
  // Problems with the header itself are named to the client, as APISIX does; the rest are not.
  if (typeof params === "string") return refuse(state, ctx, { message: `${UNVALIDATED}: ${params}` });
  const match = verify(state, ctx, params);
  if (match === undefined) return refuse(state, ctx, { message: UNVALIDATED });
  if (!state.validateBody) return attach(state, ctx, match);
  return checkBody(state, ctx).then((refusal) =>
    refusal === undefined ? attach(state, ctx, match) : refuse(state, ctx, refusal),
  );
}

function attach(state: State, ctx: PluginContext, match: CredentialMatch): Reply | undefined {
  if (!ctx.attachConsumer(match.username, match.credentialId)) return refuse(state, ctx, { message: UNVALIDATED });
  return accepted(state, ctx);
}

export const hmacAuth: Plugin<HmacAuthConfig, State> = {
  name,
  priority,
  type: "auth",
  credentialKey: "key_id",
  encryptFields: ["secret_key"],
  schema,
  consumerSchema,
  compile,
  rewrite,
};
