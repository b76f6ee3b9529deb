import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Secrets at rest: the plugin fields a plugin lists in `encryptFields` are stored as AES-256-GCM
 * ciphertext. APISIX uses AES-128/256-CBC with the raw keyring string as key; Weir uses GCM because it
 * authenticates (a flipped byte fails instead of decrypting to garbage, and a wrong key is detected, which
 * is what makes "try every keyring entry" safe) and derives the 32-byte key with SHA-256 so a keyring entry
 * of any length works. Ciphertext carries a prefix, so values stored in clear earlier still read as-is.
 */
export const CIPHER_PREFIX = "$weir-gcm$";
/** What a viewer-role Admin API key sees instead of a secret. */
export const MASK = "******";

const IV_BYTES = 12;
const TAG_BYTES = 16;

export class Keyring {
  private readonly keys: Buffer[];

  /** `entries[0]` encrypts; every entry is tried to decrypt, so rotation keeps old data readable. */
  constructor(entries: readonly string[]) {
    if (entries.length === 0) throw new Error("data_encryption keyring is empty");
    this.keys = entries.map((e) => createHash("sha256").update(e, "utf8").digest());
  }

  encrypt(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.keys[0]!, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return CIPHER_PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64");
  }

  /** Plain values pass through; ciphertext no keyring entry opens throws. */
  decrypt(value: string): string {
    if (!isCiphertext(value)) return value;
    const raw = Buffer.from(value.slice(CIPHER_PREFIX.length), "base64");
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error("malformed ciphertext");
    const iv = raw.subarray(0, IV_BYTES);
    const tag = raw.subarray(raw.length - TAG_BYTES);
    const body = raw.subarray(IV_BYTES, raw.length - TAG_BYTES);
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, iv);
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
      } catch {
        // authentication failed: not this key
      }
    }
    throw new Error("no keyring entry decrypts this value (was the key removed from data_encryption.keyring?)");
  }
}

export function isCiphertext(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(CIPHER_PREFIX);
}

/**
 * The keyring from config, or one generated once into `<dataDir>/data_encryption_key` (0600, as the
 * generated admin key), so a default install still keeps secrets out of the store in clear.
 */
export function loadKeyring(keyring: readonly string[] | undefined, dataDir: string): Keyring {
  if (keyring !== undefined && keyring.length > 0) return new Keyring(keyring);
  const file = join(dataDir, "data_encryption_key");
  if (existsSync(file)) {
    const key = readFileSync(file, "utf8").trim();
    if (key.length > 0) return new Keyring([key]);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString("base64url");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return new Keyring([key]);
}

// ---- field paths --------------------------------------------------------------------------------------------

type Conf = Record<string, unknown>;
const isObject = (v: unknown): v is Conf => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Replaces every string at one of `paths` ("key", "auth.header.*") with `fn(value)`, in place. `*` matches
 * every key of the object at its level. Missing paths and non-string leaves are left alone.
 */
export function mapFields(conf: Conf, paths: readonly string[], fn: (value: string) => string): void {
  for (const path of paths) visit(conf, path.split("."), 0, fn);
}

function visit(node: Conf, parts: readonly string[], at: number, fn: (value: string) => string): void {
  const part = parts[at]!;
  const last = at === parts.length - 1;
  for (const key of part === "*" ? Object.keys(node) : [part]) {
    if (!Object.hasOwn(node, key)) continue;
    const value = node[key];
    if (last) {
      if (typeof value === "string") node[key] = fn(value);
    } else if (value !== null && typeof value === "object") {
      // Arrays too: "instances.*.auth.header.*" walks every element of `instances`.
      visit(value as Conf, parts, at + 1, fn);
    }
  }
}

/**
 * What secrets handling reads from a plugin: the dotted paths of its secret fields. plugin-api's Plugin has
 * the field, so every plugin is one; spelling it here keeps config/ a leaf that knows no plugin type.
 */
export interface PluginSecretFields {
  encryptFields?: readonly string[];
}

/**
 * Applies `fn` to the secret fields of every plugin config in a resource's `plugins` map, in place.
 * Plugins the registry does not know (or that declare no secrets) are untouched.
 */
export function mapPluginSecrets(
  plugins: unknown,
  registry: ReadonlyMap<string, PluginSecretFields>,
  fn: (value: string) => string,
): void {
  if (!isObject(plugins)) return;
  for (const [name, conf] of Object.entries(plugins)) {
    const fields = registry.get(name)?.encryptFields;
    if (fields !== undefined && fields.length > 0 && isObject(conf)) mapFields(conf, fields, fn);
  }
}

// ---- $env:// references -------------------------------------------------------------------------------------

const ENV_PREFIX = "$env://";

export function isEnvRef(value: string): boolean {
  return value.length > ENV_PREFIX.length && value.slice(0, ENV_PREFIX.length).toLowerCase() === ENV_PREFIX;
}

/**
 * `$env://NAME` is the variable's value; `$env://NAME/sub` reads key `sub` of the variable's JSON object, as
 * APISIX's env secret does (the prefix is case-insensitive there too). Throws naming the variable when it is
 * missing, so the caller can treat the config as invalid.
 */
export function resolveEnvRef(ref: string, env: NodeJS.ProcessEnv = process.env): string {
  const path = ref.slice(ENV_PREFIX.length);
  const slash = path.indexOf("/");
  const name = slash === -1 ? path : path.slice(0, slash);
  const value = env[name];
  if (value === undefined) throw new Error(`environment variable ${name} (from ${ref}) is not set`);
  if (slash === -1) return value;
  const subKey = path.slice(slash + 1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new Error(`environment variable ${name} (from ${ref}) is not a JSON object`);
  }
  const sub = isObject(parsed) ? parsed[subKey] : undefined;
  if (sub === undefined || sub === null) throw new Error(`environment variable ${name} has no key "${subKey}"`);
  return typeof sub === "string" ? sub : JSON.stringify(sub);
}

/**
 * A copy of `value` with every `$env://` string replaced by what it names, or `value` itself when it holds
 * none (the common case allocates nothing). Throws on the first missing variable.
 */
export function resolveEnvRefs<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  if (typeof value === "string") return (isEnvRef(value) ? resolveEnvRef(value, env) : value) as T;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const next = resolveEnvRefs(value[i], env);
      if (next !== value[i]) (out ??= [...value])[i] = next;
    }
    return (out ?? value) as T;
  }
  if (isObject(value)) {
    let out: Conf | undefined;
    for (const [k, v] of Object.entries(value)) {
      const next = resolveEnvRefs(v, env);
      if (next !== v) (out ??= { ...value })[k] = next;
    }
    return (out ?? value) as T;
  }
  return value;
}

// ---- what the snapshot and the Admin API use ---------------------------------------------------------------

/**
 * One process's view of secrets: the keyring (undefined when `enable_encrypt_fields` is off) and the
 * plugin registry that says which fields are secret.
 */
export class PluginSecrets {
  constructor(
    readonly keyring: Keyring | undefined,
    private readonly registry: ReadonlyMap<string, PluginSecretFields>,
  ) {}

  /** Before a write: encrypts the secret fields of `plugins` in place (not `$env://` references). */
  encrypt(plugins: unknown): void {
    const keyring = this.keyring;
    if (keyring === undefined) return;
    mapPluginSecrets(plugins, this.registry, (v) => (isCiphertext(v) || isEnvRef(v) ? v : keyring.encrypt(v)));
  }

  /** For admin reads and before merging a PATCH: decrypts in place; undecryptable values stay as stored. */
  decrypt(plugins: unknown): void {
    mapPluginSecrets(plugins, this.registry, (v) => this.tryDecrypt(v));
  }

  /** For viewer reads: every secret field, encrypted or not, becomes MASK. */
  mask(plugins: unknown): void {
    mapPluginSecrets(plugins, this.registry, () => MASK);
  }

  /**
   * The config one plugin runs with: secret fields decrypted and `$env://` references resolved, as a new
   * object when anything changed. Throws (naming the field or variable) when a value cannot be recovered.
   */
  prepare(plugin: PluginSecretFields, conf: Conf): Conf {
    let out = conf;
    const fields = plugin.encryptFields;
    if (fields !== undefined && fields.length > 0) {
      out = structuredClone(conf);
      mapFields(out, fields, (v) => (this.keyring === undefined ? plainOrThrow(v) : this.keyring.decrypt(v)));
    }
    return resolveEnvRefs(out);
  }

  private tryDecrypt(value: string): string {
    if (!isCiphertext(value) || this.keyring === undefined) return value;
    try {
      return this.keyring.decrypt(value);
    } catch {
      return value;
    }
  }
}

function plainOrThrow(value: string): string {
  if (isCiphertext(value)) throw new Error("an encrypted field cannot be read: data_encryption is disabled");
  return value;
}
