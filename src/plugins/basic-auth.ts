import { createHash, timingSafeEqual } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { PhaseResult, Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * basic-auth: identifies the consumer by HTTP Basic credentials (RFC 7617). The username is looked up in
 * the snapshot's credential index; the password is compared in constant time. Passwords are encrypted at
 * rest.
 */
export const name = "basic-auth";
export const priority = 2520;

export const schema = Type.Object({
  hide_credentials: Type.Optional(Type.Boolean({ default: false })),
  realm: Type.Optional(
    Type.String({ pattern: "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$", minLength: 1, maxLength: 128, default: "basic" }),
  ),
  anonymous_consumer: Type.Optional(Type.String({ minLength: 1 })),
});
export type BasicAuthConfig = Static<typeof schema>;

export const consumerSchema = Type.Object({ username: Type.String(), password: Type.String() });

interface State {
  hide: boolean;
  anonymous: string | undefined;
  challenge: Record<string, string>;
}

function compile(conf: BasicAuthConfig): State {
  return {
    hide: conf.hide_credentials === true,
    anonymous: conf.anonymous_consumer,
    challenge: { "WWW-Authenticate": `Basic realm="${conf.realm ?? "basic"}"` },
  };
}

const BASIC = /^basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i;
const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
/** Stored passwords' digests, computed once per credential config (configs live as long as their snapshot). */
const storedDigests = new WeakMap<object, Buffer>();

function passwordMatches(conf: Record<string, unknown>, given: string): boolean {
  let stored = storedDigests.get(conf);
  if (stored === undefined) {
    if (typeof conf.password !== "string") return false;
    stored = digest(conf.password);
    storedDigests.set(conf, stored);
  }
  // Digests have one length whatever the passwords are, so neither content nor length shows in the timing.
  return timingSafeEqual(stored, digest(given));
}

type Outcome = { ok: true; username: string; credentialId: string | undefined } | { ok: false; message: string };

function authenticate(ctx: PluginContext): Outcome {
  const header = ctx.getRequestHeader("authorization");
  if (header === undefined) return { ok: false, message: "Missing authorization in request" };
  const m = BASIC.exec(header);
  if (m === null) return { ok: false, message: "Invalid authorization in request" };
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon === -1) return { ok: false, message: "Invalid authorization in request" };
  const match = ctx.findCredential(name, decoded.slice(0, colon));
  if (match === undefined || !passwordMatches(match.conf, decoded.slice(colon + 1))) {
    return { ok: false, message: "Invalid user authorization" };
  }
  return { ok: true, username: match.username, credentialId: match.credentialId };
}

function reject(state: State, message: string): Reply {
  return { status: 401, body: { message }, headers: state.challenge };
}

function rewrite(state: State, ctx: PluginContext): PhaseResult {
  const outcome = authenticate(ctx);
  if (outcome.ok && ctx.attachConsumer(outcome.username, outcome.credentialId)) {
    if (state.hide) ctx.removeRequestHeader("authorization");
    return undefined;
  }
  const message = outcome.ok ? "Invalid user authorization" : outcome.message;
  if (state.anonymous === undefined) return reject(state, message);
  if (!ctx.attachConsumer(state.anonymous)) return reject(state, "Invalid user authorization");
  if (state.hide) ctx.removeRequestHeader("authorization");
  return undefined;
}

export const basicAuth: Plugin<BasicAuthConfig, State> = {
  name,
  priority,
  version: "0.1",
  type: "auth",
  schema,
  consumerSchema,
  credentialKey: "username",
  encryptFields: ["password"],
  compile,
  rewrite,
};
