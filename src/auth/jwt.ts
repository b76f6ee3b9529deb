import {
  constants,
  createHmac,
  createPublicKey,
  type KeyObject,
  sign as signBytes,
  timingSafeEqual,
  verify as verifyBytes,
} from "node:crypto";

/**
 * Compact JWS (RFC 7515) as JWTs (RFC 7519) use it: decoding, signature verification with node:crypto and
 * the `exp`/`nbf` checks APISIX's jwt-auth makes. The algorithm a token is checked with always comes from
 * the verifier (the consumer's config); a token only states its `alg`, and a mismatch is a refusal, which
 * closes `alg: none` and the HS256-with-the-RSA-public-key confusion.
 */

export const JWS_ALGORITHMS = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "ES256",
  "ES384",
  "ES512",
  "PS256",
  "PS384",
  "PS512",
  "EdDSA",
] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

export const HMAC_ALGORITHMS: readonly JwsAlgorithm[] = ["HS256", "HS384", "HS512"];

/** Longest token accepted: far above any real JWT, well below what would make decoding a cost. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

export interface Jwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** `base64url(header) "." base64url(payload)`, the bytes the signature covers. */
  signingInput: string;
  signature: Buffer;
}

export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

// ---- base64url --------------------------------------------------------------------------------------------

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64URL_VALUES = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Unpadded base64url (RFC 7515 §2) and nothing else. Buffer.from(s, "base64url") skips foreign characters
 * and ignores stray bits; accepting that would give one token many spellings, so those are refused here.
 */
export function decodeBase64url(text: string): Buffer | undefined {
  if (!BASE64URL.test(text)) return undefined;
  const rest = text.length % 4;
  if (rest === 1) return undefined;
  if (rest !== 0) {
    const last = BASE64URL_VALUES.indexOf(text[text.length - 1]!);
    // The final character carries 4 (rest 2) or 2 (rest 3) bits that are padding and must be zero.
    if ((last & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  return Buffer.from(text, "base64url");
}

export function encodeBase64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

// ---- decoding ---------------------------------------------------------------------------------------------

function parseObject(part: string): Record<string, unknown> | undefined {
  const bytes = decodeBase64url(part);
  if (bytes === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** Splits and decodes a compact JWS. Nothing is trusted yet: the signature is not checked here. */
export function decodeJwt(token: string): Result<Jwt> {
  if (token.length > MAX_TOKEN_LENGTH) return fail(`token longer than ${MAX_TOKEN_LENGTH} characters`);
  const first = token.indexOf(".");
  const second = first === -1 ? -1 : token.indexOf(".", first + 1);
  if (second === -1 || token.indexOf(".", second + 1) !== -1) return fail("invalid jwt string");
  const header = parseObject(token.slice(0, first));
  if (header === undefined) return fail("invalid header");
  const payload = parseObject(token.slice(first + 1, second));
  if (payload === undefined) return fail("invalid payload");
  const signature = decodeBase64url(token.slice(second + 1));
  if (signature === undefined) return fail("invalid signature encoding");
  if (typeof header.alg !== "string") return fail("missing alg in header");
  // RFC 7515 §4.1.11: extensions marked critical that we do not implement (all of them) must be refused.
  if (header.crit !== undefined) return fail("unsupported critical header parameters");
  return { ok: true, value: { header, payload, signingInput: token.slice(0, second), signature } };
}

// ---- verification -----------------------------------------------------------------------------------------

/** Checks signatures of one algorithm with one key; built once per consumer config. */
export interface JwsVerifier {
  readonly algorithm: JwsAlgorithm;
  verify(signingInput: string, signature: Buffer): boolean;
}

const HASH: Record<JwsAlgorithm, string | null> = {
  HS256: "sha256",
  HS384: "sha384",
  HS512: "sha512",
  RS256: "sha256",
  RS384: "sha384",
  RS512: "sha512",
  ES256: "sha256",
  ES384: "sha384",
  ES512: "sha512",
  PS256: "sha256",
  PS384: "sha384",
  PS512: "sha512",
  EdDSA: null,
};

/** RFC 7518 §3.4: the curve each ES algorithm is defined on, and the size of its raw r‖s signature. */
const EC_CURVES: Partial<Record<JwsAlgorithm, { curve: string; signatureBytes: number }>> = {
  ES256: { curve: "prime256v1", signatureBytes: 64 },
  ES384: { curve: "secp384r1", signatureBytes: 96 },
  ES512: { curve: "secp521r1", signatureBytes: 132 },
};

export function isHmacAlgorithm(algorithm: JwsAlgorithm): boolean {
  return algorithm.startsWith("HS");
}

export function hmacVerifier(algorithm: JwsAlgorithm, secret: Buffer): JwsVerifier {
  const hash = HASH[algorithm]!;
  return {
    algorithm,
    verify(signingInput, signature) {
      const expected = createHmac(hash, secret).update(signingInput).digest();
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    },
  };
}

/**
 * A verifier for an asymmetric algorithm from a PEM public key (a private key or certificate also works:
 * the public half is taken). The key must fit the algorithm: RSA for RS/PS, the algorithm's own curve for
 * ES, Ed25519/Ed448 for EdDSA. Otherwise the reason is returned.
 */
export function publicKeyVerifier(algorithm: JwsAlgorithm, pem: string): Result<JwsVerifier> {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    return fail(`invalid public key: ${(err as Error).message}`);
  }
  const type = key.asymmetricKeyType;
  const hash = HASH[algorithm];
  const family = algorithm.slice(0, 2);
  if (family === "RS" || family === "PS") {
    if (type !== "rsa" && !(family === "PS" && type === "rsa-pss")) return fail(`${algorithm} needs an RSA key`);
    const options =
      family === "RS"
        ? { key }
        : // RSA_PSS_SALTLEN_AUTO as APISIX (OpenSSL's default when verifying): signers differ in salt length.
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO };
    return { ok: true, value: asymmetric(algorithm, hash, options) };
  }
  const ec = EC_CURVES[algorithm];
  if (ec !== undefined) {
    if (type !== "ec" || key.asymmetricKeyDetails?.namedCurve !== ec.curve) {
      return fail(`${algorithm} needs an EC key on ${ec.curve}`);
    }
    // JOSE signatures are raw r‖s (IEEE P1363), not the DER sequence OpenSSL produces by default.
    const verifier = asymmetric(algorithm, hash, { key, dsaEncoding: "ieee-p1363" as const });
    return {
      ok: true,
      value: {
        algorithm,
        verify: (input, signature) => signature.length === ec.signatureBytes && verifier.verify(input, signature),
      },
    };
  }
  if (algorithm === "EdDSA") {
    if (type !== "ed25519" && type !== "ed448") return fail("EdDSA needs an Ed25519 or Ed448 key");
    return { ok: true, value: asymmetric(algorithm, null, { key }) };
  }
  return fail(`${algorithm} is not an asymmetric algorithm`);
}

function asymmetric(algorithm: JwsAlgorithm, hash: string | null, key: Parameters<typeof verifyBytes>[2]): JwsVerifier {
  return {
    algorithm,
    verify(signingInput, signature) {
      try {
        return verifyBytes(hash, Buffer.from(signingInput), key, signature);
      } catch {
        // Malformed signatures (wrong length for the modulus, bad encoding) are refusals, not errors.
        return false;
      }
    },
  };
}

/** Verifies `jwt` with `verifier`; the token's own `alg` must name the verifier's algorithm. */
export function verifySignature(jwt: Jwt, verifier: JwsVerifier): Result<true> {
  if (jwt.header.alg !== verifier.algorithm) return fail(`algorithm mismatch, expected ${verifier.algorithm}`);
  if (!verifier.verify(jwt.signingInput, jwt.signature)) return fail("signature mismatch");
  return { ok: true, value: true };
}

// ---- claims -----------------------------------------------------------------------------------------------

export type TimeClaim = "exp" | "nbf";

export interface ClaimOptions {
  /** Current time, seconds since the epoch. */
  now: number;
  /** Seconds of clock skew tolerated on both claims (APISIX's lifetime_grace_period). */
  leeway: number;
  /**
   * APISIX's claims_to_verify. Unset or empty: exp and nbf are checked when present. Listed: those claims
   * must be present and valid.
   */
  required?: readonly TimeClaim[];
}

const DEFAULT_CLAIMS: readonly TimeClaim[] = ["nbf", "exp"];

/** The reason the token's time claims make it unusable now, or undefined when they are fine. */
export function verifyTimeClaims(payload: Record<string, unknown>, options: ClaimOptions): string | undefined {
  const required = options.required !== undefined && options.required.length > 0;
  for (const name of required ? options.required! : DEFAULT_CLAIMS) {
    const value = Object.hasOwn(payload, name) ? payload[name] : undefined;
    if (value === undefined || value === null) {
      if (required) return `claim ${name} is missing`;
      continue;
    }
    if (typeof value !== "number" || !Number.isFinite(value)) return `claim ${name} is not a number`;
    if (name === "exp" && !(value > options.now - options.leeway)) {
      return `'exp' claim expired at ${httpDate(value)}`;
    }
    // RFC 7519 §4.1.5: usable from nbf on (APISIX refuses nbf == now; equality is accepted here).
    if (name === "nbf" && !(value <= options.now + options.leeway)) {
      return `'nbf' claim not valid until ${httpDate(value)}`;
    }
  }
  return undefined;
}

function httpDate(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toUTCString();
}

// ---- signing (tests, tools) -------------------------------------------------------------------------------

/**
 * Produces a compact JWS. `key` is the HMAC secret for HS algorithms and a PEM private key (or KeyObject)
 * otherwise. `header` defaults to {typ: "JWT", alg}; a given header is used as is, so tests can forge one.
 */
export function signJwt(
  algorithm: JwsAlgorithm,
  key: string | Buffer | KeyObject,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = { typ: "JWT", alg: algorithm },
): string {
  const signingInput = `${encodeBase64url(JSON.stringify(header))}.${encodeBase64url(JSON.stringify(payload))}`;
  const hash = HASH[algorithm];
  let signature: Buffer;
  if (isHmacAlgorithm(algorithm)) {
    signature = createHmac(hash!, key as string | Buffer)
      .update(signingInput)
      .digest();
  } else if (algorithm.startsWith("PS")) {
    signature = signBytes(hash, Buffer.from(signingInput), {
      key: key as string,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
    });
  } else if (algorithm.startsWith("ES")) {
    signature = signBytes(hash, Buffer.from(signingInput), { key: key as string, dsaEncoding: "ieee-p1363" });
  } else {
    signature = signBytes(hash, Buffer.from(signingInput), key as string);
  }
  return `${signingInput}.${encodeBase64url(signature)}`;
}
