import { Type } from "@sinclair/typebox";
import { ResourceMetaFields } from "../config/schemas/common.js";
import { isEnvRef, type PluginSecrets, resolveEnvRef } from "../config/secrets.js";
import { validatePlugins, validateSchema } from "../config/validate.js";
import type { Plugin } from "../plugin-api/plugin.js";
import { resourceKey, resourcePrefix } from "../store/keys.js";
import { CompareFailedError, type ConfigStore, type StoreEntry } from "../store/types.js";
import type { CheckEnv } from "./checks.js";
import type { AdminContext } from "./context.js";
import { listAnswer } from "./list.js";
import { type Answer, envelope, fail, KEY_NOT_FOUND } from "./reply.js";
import { revealedEnvelope } from "./secret-view.js";

/** schema_def.credential: one auth plugin's config, owned by a consumer. */
export const CredentialSchema = Type.Object(
  {
    ...ResourceMetaFields,
    plugins: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: "object", maxProperties: 1 })),
  },
  { additionalProperties: false },
);

type Conf = Record<string, unknown>;
const isObject = (v: unknown): v is Conf => v !== null && typeof v === "object" && !Array.isArray(v);
const now = () => Math.floor(Date.now() / 1000);
const CAS_ATTEMPTS = 5;

export interface CredentialsEnv extends CheckEnv {
  secrets?: PluginSecrets;
}

/** Where credentials live: `/apisix/consumers/<username>/credentials/<id>`, as in APISIX 3.x. */
export const credentialKey = (username: string, id: string) =>
  resourceKey("consumers", `${username}/credentials/${id}`);
export const credentialsPrefix = (username: string) => `${resourcePrefix("consumers")}${username}/credentials/`;

/**
 * `/apisix/admin/consumers/<username>/credentials[/<id>]` (APISIX's admin/credentials.lua): GET one or the
 * list, PUT, DELETE. APISIX refuses POST and PATCH on credentials; so does Weir.
 */
export class CredentialsApi {
  constructor(private readonly env: CredentialsEnv) {}

  async handle(ctx: AdminContext): Promise<Answer> {
    const username = ctx.id!;
    const id = ctx.subPath[1];
    if (ctx.subPath.length > 2) fail(404, "404 Route Not Found");
    switch (ctx.method) {
      case "GET":
        return this.get(ctx, username, id);
      case "PUT":
        return this.put(ctx, username, id);
      case "DELETE":
        return this.delete(username, id);
      default:
        return fail(405, `not supported \`${ctx.method}\` method for credential`);
    }
  }

  private async get(ctx: AdminContext, username: string, id: string | undefined): Promise<Answer> {
    const reveal = (e: StoreEntry) => revealedEnvelope(e, ctx.role, this.env.secrets);
    if (id === undefined) {
      const prefix = credentialsPrefix(username);
      const { entries } = await this.env.store.list(prefix);
      const direct = entries.filter((e) => !e.key.slice(prefix.length).includes("/"));
      return { status: 200, body: listAnswer(direct, ctx.query, [], reveal) };
    }
    const entry = await this.env.store.get(credentialKey(username, id));
    return entry === undefined ? KEY_NOT_FOUND : { status: 200, body: reveal(entry) };
  }

  private async put(ctx: AdminContext, username: string, id: string | undefined): Promise<Answer> {
    const conf = ctx.body;
    if (id === undefined) fail(400, "missing credential id");
    if (conf === undefined) fail(400, "missing configurations");
    if (!isObject(conf)) fail(400, "invalid configuration: wrong type: expected object");
    if (conf.id !== undefined && String(conf.id) !== id) fail(400, "wrong credential id");
    conf.id = id;
    for (const field of ["create_time", "update_time"]) {
      if (conf[field] !== undefined && conf[field] !== null) fail(400, `the property is forbidden:  ${field}`);
    }
    const schemaErr = validateSchema(CredentialSchema, conf);
    if (schemaErr !== undefined) fail(400, `invalid configuration: ${schemaErr}`);
    if (conf.plugins !== undefined) {
      const err = validatePlugins(conf.plugins, this.env.plugins, "consumer", {
        enabled: this.env.enabledPlugins,
        validateVars: this.env.validateVars,
      });
      if (err !== undefined) fail(400, `invalid plugins configuration: ${err}`);
      for (const name of Object.keys(conf.plugins as Conf)) {
        if (this.env.plugins.get(name)?.type !== "auth") {
          fail(400, "only supports auth type plugins in consumer credential");
        }
      }
      const dup = await duplicateKey(this.env, conf.plugins as Conf, username, id);
      if (dup !== undefined) fail(400, dup);
    }
    if ((await this.env.store.get(resourceKey("consumers", username))) === undefined) {
      fail(404, "consumer not found");
    }
    this.env.secrets?.encrypt(conf.plugins);

    const key = credentialKey(username, id!);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const existing = await this.env.store.get(key);
      conf.create_time = (existing?.value as Conf | undefined)?.create_time ?? now();
      conf.update_time = now();
      try {
        const entry = await this.env.store.put(key, conf, { prevRevision: existing?.modRevision ?? 0 });
        return { status: existing === undefined ? 201 : 200, body: envelope(entry) };
      } catch (err) {
        if (!(err instanceof CompareFailedError)) throw err;
      }
    }
    return fail(503, "value changed before overwritten");
  }

  private async delete(username: string, id: string | undefined): Promise<Answer> {
    if (id === undefined) fail(400, "missing credential id");
    const key = credentialKey(username, id!);
    const removed = await this.env.store.delete(key);
    return removed === undefined ? KEY_NOT_FOUND : { status: 200, body: { deleted: "1", key } };
  }
}

/** Deletes a consumer's credentials with it, as APISIX's consumer DELETE does (etcd rmdir). */
export async function deleteCredentials(store: ConfigStore, username: string): Promise<void> {
  const { entries } = await store.list(credentialsPrefix(username));
  for (const entry of entries) await store.delete(entry.key);
}

/**
 * APISIX's check_duplicate_key: the message when an identifying value in `plugins` (key-auth `key`,
 * basic-auth `username` …) is already used by another consumer or credential, else undefined. A consumer
 * does not conflict with itself or its own credentials; a credential only with itself. `$env://` values
 * cannot be compared at write time and are skipped, as APISIX does. Stored values are decrypted to compare.
 */
export async function duplicateKey(
  env: CredentialsEnv,
  plugins: Conf,
  username: string,
  credentialId: string | undefined,
): Promise<string | undefined> {
  const wanted: [name: string, plugin: Plugin, value: string][] = [];
  for (const [name, conf] of Object.entries(plugins)) {
    const plugin = env.plugins.get(name);
    const field = plugin?.credentialKey;
    const value = field === undefined || !isObject(conf) ? undefined : conf[field];
    if (typeof value === "string" && !isEnvRef(value)) wanted.push([name, plugin!, value]);
  }
  if (wanted.length === 0) return undefined;

  const prefix = resourcePrefix("consumers");
  const { entries } = await env.store.list(prefix);
  for (const entry of entries) {
    const owner = ownerOf(entry.key.slice(prefix.length));
    if (owner === undefined) continue;
    const self =
      credentialId === undefined
        ? owner.username === username
        : owner.username === username && owner.credentialId === credentialId;
    if (self) continue;
    const stored = (entry.value as { plugins?: unknown } | null)?.plugins;
    if (!isObject(stored)) continue;
    for (const [name, plugin, value] of wanted) {
      const other = stored[name];
      if (!isObject(other)) continue;
      if (readable(env.secrets, other[plugin.credentialKey!]) !== value) continue;
      const desc =
        owner.credentialId === undefined
          ? `consumer: ${owner.username}`
          : `credential: ${owner.credentialId} of consumer: ${owner.username}`;
      return `duplicate ${plugin.credentialKey} of plugin ${name} found with ${desc}`;
    }
  }
  return undefined;
}

function ownerOf(rest: string): { username: string; credentialId: string | undefined } | undefined {
  const parts = rest.split("/");
  if (parts.length === 1) return { username: parts[0]!, credentialId: undefined };
  if (parts.length === 3 && parts[1] === "credentials") return { username: parts[0]!, credentialId: parts[2] };
  return undefined;
}

/** A stored identifying value as the data plane would match it; undefined when it cannot be read. */
function readable(secrets: PluginSecrets | undefined, value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  try {
    const plain = secrets?.keyring === undefined ? value : secrets.keyring.decrypt(value);
    return isEnvRef(plain) ? resolveEnvRef(plain) : plain;
  } catch {
    return undefined;
  }
}
