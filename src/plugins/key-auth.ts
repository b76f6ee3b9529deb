import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { PhaseResult, Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * key-auth: identifies the consumer by an API key sent in a header (default `apikey`) or, failing that, a
 * query argument. Keys come from consumers' and credentials' `key-auth.key`, looked up in the snapshot's
 * credential index (one map lookup); they are encrypted at rest.
 */
export const name = "key-auth";
export const priority = 2500;

/** APISIX's realm: printable ASCII without `"` and `\`, so it can sit in a quoted header parameter. */
const realm = (fallback: string) =>
  Type.String({ pattern: "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$", minLength: 1, maxLength: 128, default: fallback });

export const schema = Type.Object({
  header: Type.Optional(Type.String({ default: "apikey" })),
  query: Type.Optional(Type.String({ default: "apikey" })),
  realm: Type.Optional(realm("key")),
  hide_credentials: Type.Optional(Type.Boolean({ default: false })),
  anonymous_consumer: Type.Optional(Type.String({ minLength: 1 })),
});
export type KeyAuthConfig = Static<typeof schema>;

export const consumerSchema = Type.Object({ key: Type.String() });

interface State {
  header: string;
  query: string;
  hide: boolean;
  anonymous: string | undefined;
  challenge: Record<string, string>;
}

function compile(conf: KeyAuthConfig): State {
  return {
    header: conf.header ?? "apikey",
    query: conf.query ?? "apikey",
    hide: conf.hide_credentials === true,
    anonymous: conf.anonymous_consumer,
    challenge: { "WWW-Authenticate": `apikey realm="${conf.realm ?? "key"}"` },
  };
}

function reject(state: State, message: string): Reply {
  return { status: 401, body: { message }, headers: state.challenge };
}

function rewrite(state: State, ctx: PluginContext): PhaseResult {
  let key = ctx.getRequestHeader(state.header);
  let fromHeader = true;
  if (key === undefined) {
    key = ctx.var(`arg_${state.query}`);
    fromHeader = false;
  }
  const match = key === undefined ? undefined : ctx.findCredential(name, key);
  if (match !== undefined && ctx.attachConsumer(match.username, match.credentialId)) {
    if (state.hide) {
      if (fromHeader) ctx.removeRequestHeader(state.header);
      else ctx.removeQueryArg(state.query);
    }
    return undefined;
  }
  const failure = key === undefined ? "Missing API key in request" : "Invalid API key in request";
  if (state.anonymous === undefined) return reject(state, failure);
  // An invalid key must not reach the upstream on the anonymous path either; it may be in both places.
  if (state.hide) {
    ctx.removeRequestHeader(state.header);
    ctx.removeQueryArg(state.query);
  }
  if (!ctx.attachConsumer(state.anonymous)) return reject(state, "Invalid user authorization");
  return undefined;
}

export const keyAuth: Plugin<KeyAuthConfig, State> = {
  name,
  priority,
  version: "0.1",
  type: "auth",
  schema,
  consumerSchema,
  credentialKey: "key",
  encryptFields: ["key"],
  compile,
  rewrite,
};
