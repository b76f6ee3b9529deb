import { randomBytes, randomUUID } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "./context.js";
import type { Plugin } from "./types.js";

/**
 * request-id: gives every request an id (kept if the client sent one), forwards it upstream and returns it
 * to the client, so one id ties the access log, the upstream's logs and the client's report together.
 */
export const name = "request-id";
export const priority = 12015;

const DEFAULT_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

export const schema = Type.Object(
  {
    header_name: Type.Optional(Type.String({ minLength: 1, default: "X-Request-Id" })),
    include_in_response: Type.Optional(Type.Boolean({ default: true })),
    algorithm: Type.Optional(
      Type.Union([Type.Literal("uuid"), Type.Literal("nanoid"), Type.Literal("range_id")], { default: "uuid" }),
    ),
    range_id: Type.Optional(
      Type.Object(
        {
          char_set: Type.Optional(Type.String({ minLength: 6, default: DEFAULT_CHARSET })),
          length: Type.Optional(Type.Integer({ minimum: 6, default: 16 })),
        },
        { default: {} },
      ),
    ),
  },
  { additionalProperties: false },
);
export type RequestIdConfig = Static<typeof schema>;

interface State {
  header: string;
  includeInResponse: boolean;
  generate: () => string;
}

const NANOID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

function randomString(alphabet: string, length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

function compile(conf: RequestIdConfig): State {
  const algorithm = conf.algorithm ?? "uuid";
  const charset = conf.range_id?.char_set ?? DEFAULT_CHARSET;
  const length = conf.range_id?.length ?? 16;
  return {
    header: conf.header_name ?? "X-Request-Id",
    includeInResponse: conf.include_in_response !== false,
    generate:
      algorithm === "nanoid"
        ? () => randomString(NANOID_ALPHABET, 21)
        : algorithm === "range_id"
          ? () => randomString(charset, length)
          : () => randomUUID(),
  };
}

function rewrite(state: State, ctx: PluginContext): undefined {
  let id = ctx.getRequestHeader(state.header);
  if (id === undefined || id === "") {
    id = state.generate();
    ctx.setRequestHeader(state.header, id);
  }
  ctx.pluginData.set(name, id);
  ctx.setVar("request_id", id);
  return undefined;
}

function header_filter(state: State, ctx: PluginContext): void {
  if (!state.includeInResponse) return;
  const id = ctx.pluginData.get(name) as string | undefined;
  if (id !== undefined) ctx.setResponseHeader(state.header, id);
}

export const requestId: Plugin<RequestIdConfig, State> = { name, priority, schema, compile, rewrite, header_filter };
