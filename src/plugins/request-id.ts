import { randomFillSync, randomUUID } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";

/**
 * request-id: gives every request an id (the client's own when it sent a non-empty one), forwards it
 * upstream and returns it to the client, so one id ties the access log, the upstream's logs and the
 * client's bug report together. The id is also `$apisix_request_id` for later plugins and the access log.
 */
export const name = "request-id";
export const priority = 12015;

// APISIX's default, typo included ("…GHIGK…": J is missing), so stored configs read back identically.
const DEFAULT_CHAR_SET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789";
const ALGORITHMS = ["uuid", "nanoid", "range_id", "ksuid", "uuidv7"] as const;

export const schema = Type.Object({
  header_name: Type.Optional(Type.String({ default: "X-Request-Id" })),
  include_in_response: Type.Optional(Type.Boolean({ default: true })),
  algorithm: Type.Optional(
    Type.Unsafe<(typeof ALGORITHMS)[number]>({ type: "string", enum: ALGORITHMS, default: "uuid" }),
  ),
  range_id: Type.Optional(
    Type.Object(
      {
        length: Type.Optional(Type.Integer({ minimum: 6, default: 16 })),
        // At least 6 characters so ids do not repeat too soon.
        char_set: Type.Optional(Type.String({ minLength: 6, default: DEFAULT_CHAR_SET })),
      },
      { default: { length: 16, char_set: DEFAULT_CHAR_SET } },
    ),
  ),
});
export type RequestIdConfig = Static<typeof schema>;

interface State {
  header: string;
  includeInResponse: boolean;
  /** pluginData key: per header name, as APISIX's `ctx["request-id-" .. header_name]`. */
  dataKey: string;
  generate: () => string;
}

function compile(conf: RequestIdConfig): State {
  const header = conf.header_name ?? "X-Request-Id";
  return {
    header,
    includeInResponse: conf.include_in_response !== false,
    dataKey: `${name}:${header.toLowerCase()}`,
    generate: generator(conf),
  };
}

function rewrite(state: State, ctx: PluginContext): undefined {
  let id = ctx.getRequestHeader(state.header);
  if (id === undefined || id === "") {
    id = state.generate();
    ctx.setRequestHeader(state.header, id);
  }
  if (state.includeInResponse) ctx.pluginData.set(state.dataKey, id);
  ctx.setVar("apisix_request_id", id);
  return undefined;
}

function header_filter(state: State, ctx: PluginContext): void {
  if (!state.includeInResponse) return;
  // An id the upstream already answered with wins, as in APISIX.
  const existing = ctx.getResponseHeader(state.header);
  if (existing !== undefined && existing !== "") return;
  const id = ctx.pluginData.get(state.dataKey);
  if (typeof id === "string") ctx.setResponseHeader(state.header, id);
}

export const requestId: Plugin<RequestIdConfig, State> = { name, priority, schema, compile, rewrite, header_filter };

// ---- id generators ----------------------------------------------------------------------------------------

function generator(conf: RequestIdConfig): () => string {
  switch (conf.algorithm ?? "uuid") {
    case "nanoid":
      return nanoid;
    case "range_id": {
      // Code points, not bytes (APISIX indexes bytes, which garbles non-ASCII sets).
      const chars = Array.from(conf.range_id?.char_set ?? DEFAULT_CHAR_SET);
      const length = conf.range_id?.length ?? 16;
      return () => rangeId(chars, length);
    }
    case "ksuid":
      return ksuid;
    case "uuidv7":
      return uuidv7;
    default:
      return () => randomUUID();
  }
}

// Random bytes come from one pooled buffer refilled in 4 KiB steps, so an id costs no allocation and no
// syscall of its own.
const POOL = Buffer.allocUnsafe(4096);
let poolOffset = POOL.length;

function randomByte(): number {
  if (poolOffset === POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  return POOL[poolOffset++]!;
}

// The standard nanoid alphabet: 64 characters, so 6 random bits pick one without bias.
const NANOID_ALPHABET = "-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

function nanoid(): string {
  let id = "";
  for (let i = 0; i < 21; i++) id += NANOID_ALPHABET[randomByte() & 63];
  return id;
}

/** Uniform picks from `chars` (rejection sampling on the smallest covering bit mask, no modulo bias). */
function rangeId(chars: readonly string[], length: number): string {
  const n = chars.length;
  const mask = n <= 1 ? 0 : 2 ** Math.ceil(Math.log2(n)) - 1;
  let id = "";
  for (let i = 0; i < length; i++) {
    let r: number;
    do r = mask <= 0xff ? randomByte() & mask : ((randomByte() << 8) | randomByte()) & mask;
    while (r >= n);
    id += chars[r];
  }
  return id;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KSUID_EPOCH = 1_400_000_000;
const ksuidWords = new Uint32Array(5);

/** Segment's KSUID: 4-byte seconds since 2014-05-13 + 16 random bytes, as 27 base62 characters. */
function ksuid(): string {
  const w = ksuidWords;
  w[0] = Math.floor(Date.now() / 1000) - KSUID_EPOCH;
  for (let i = 1; i < 5; i++)
    w[i] = ((randomByte() << 24) | (randomByte() << 16) | (randomByte() << 8) | randomByte()) >>> 0;
  let out = "";
  for (let digit = 0; digit < 27; digit++) {
    // Long division of the 160-bit big-endian number by 62; the remainder is the next digit (from the end).
    let rem = 0;
    for (let i = 0; i < 5; i++) {
      const cur = rem * 0x1_0000_0000 + w[i]!;
      w[i] = Math.floor(cur / 62);
      rem = cur % 62;
    }
    out = BASE62[rem] + out;
  }
  return out;
}

const HEX2: string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
const uuidBytes = new Uint8Array(16);

/** RFC 9562 UUIDv7: 48-bit Unix ms, version 7, 74 random bits, variant 10. */
function uuidv7(): string {
  const b = uuidBytes;
  const ms = Date.now();
  for (let i = 0; i < 6; i++) b[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  for (let i = 6; i < 16; i++) b[i] = randomByte();
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX2[b[i]!];
  }
  return s;
}
