import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { parse as parseYaml } from "yaml";
import type { AdminKey, EtcdTls, ListenAddress, WeirConfig } from "./types.js";
import { validateSchema } from "./validate.js";

/**
 * conf/config.yaml → WeirConfig. Precedence: built-in defaults < the file < environment variables.
 * Everything downstream reads only the normalized WeirConfig.
 */

const Listen = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Integer({ minimum: 0, maximum: 65535 }),
  Type.Object(
    { ip: Type.Optional(Type.String()), port: Type.Integer({ minimum: 0, maximum: 65535 }) },
    { additionalProperties: false },
  ),
]);

const FileSchema = Type.Object(
  {
    weir: Type.Optional(
      Type.Object(
        {
          node_listen: Type.Optional(Type.Union([Listen, Type.Array(Listen, { minItems: 1 })])),
          data_dir: Type.Optional(Type.String({ minLength: 1 })),
          access_log: Type.Optional(Type.String({ minLength: 1 })),
          graceful_shutdown_timeout: Type.Optional(Type.Number({ minimum: 0 })),
          enable_control: Type.Optional(Type.Boolean()),
          control: Type.Optional(Listen),
          data_encryption: Type.Optional(
            Type.Object(
              {
                enable_encrypt_fields: Type.Optional(Type.Boolean()),
                keyring: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String({ minLength: 1 }))])),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    plugin_attr: Type.Optional(
      Type.Object(
        {
          prometheus: Type.Optional(
            Type.Object(
              {
                export_uri: Type.Optional(Type.String({ minLength: 1, pattern: "^/" })),
                metric_prefix: Type.Optional(Type.String({ pattern: "^[a-zA-Z_:][a-zA-Z0-9_:]*$" })),
                enable_export_server: Type.Optional(Type.Boolean()),
                export_addr: Type.Optional(Listen),
              },
              { additionalProperties: false },
            ),
          ),
        },
        // Other plugins' attributes (APISIX keeps them all here) are not read by Weir yet.
        { additionalProperties: true },
      ),
    ),
    deployment: Type.Optional(
      Type.Object(
        {
          role: Type.Optional(Type.Literal("traditional")),
          role_traditional: Type.Optional(
            Type.Object(
              { config_provider: Type.Optional(Type.Union([Type.Literal("embedded"), Type.Literal("etcd")])) },
              { additionalProperties: false },
            ),
          ),
          admin: Type.Optional(
            Type.Object(
              {
                enable_admin: Type.Optional(Type.Boolean()),
                admin_listen: Type.Optional(Listen),
                admin_key: Type.Optional(
                  Type.Union([
                    Type.Null(),
                    Type.Array(
                      Type.Object(
                        {
                          name: Type.String({ minLength: 1 }),
                          key: Type.String({ minLength: 1 }),
                          role: Type.Union([Type.Literal("admin"), Type.Literal("viewer")]),
                        },
                        { additionalProperties: false },
                      ),
                    ),
                  ]),
                ),
                allow_admin: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String())])),
              },
              { additionalProperties: false },
            ),
          ),
          etcd: Type.Optional(
            Type.Object(
              {
                host: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
                prefix: Type.Optional(Type.String({ pattern: "^/" })),
                timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
                user: Type.Optional(Type.String()),
                password: Type.Optional(Type.String()),
                tls: Type.Optional(
                  Type.Object(
                    {
                      cert: Type.Optional(Type.String({ minLength: 1 })),
                      key: Type.Optional(Type.String({ minLength: 1 })),
                      verify: Type.Optional(Type.Boolean()),
                      sni: Type.Optional(Type.String({ minLength: 1 })),
                      // Weir's: APISIX takes the CA from apisix.ssl.ssl_trusted_certificate.
                      trusted_ca: Type.Optional(Type.String({ minLength: 1 })),
                    },
                    { additionalProperties: false },
                  ),
                ),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    plugins: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  },
  { additionalProperties: false },
);
type FileConfig = Static<typeof FileSchema>;

export interface LoadOptions {
  /** config.yaml path; default WEIR_CONFIG, then conf/config.yaml under cwd (absent file = defaults). */
  path?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** `config check` must not create files: with this set, a missing admin key is not generated. */
  readOnly?: boolean;
  /**
   * Names of the plugins this build ships: the default of `plugins:` and what it is checked against. The
   * caller passes them (the CLI, from the plugin registry) so config/ stays a leaf that loads no plugin.
   */
  knownPlugins: readonly string[];
}

export interface LoadedConfig {
  config: WeirConfig;
  /** Set only on the start that generated the admin key, so it is printed exactly once. */
  generatedAdminKey?: string;
  /** The file the config came from, or "defaults". */
  source: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const MIN_KEY_LENGTH = 16;

export function loadConfig(options: LoadOptions): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicit = options.path ?? env.WEIR_CONFIG;
  const path = resolve(cwd, explicit ?? "conf/config.yaml");
  let file: Record<string, unknown> = {};
  let source = "defaults";
  if (existsSync(path)) {
    const text = substituteEnv(readFileSync(path, "utf8"), env, path);
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`${path}: invalid YAML: ${(err as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed)) throw new ConfigError(`${path}: must be a YAML mapping`);
      file = parsed as Record<string, unknown>;
    }
    source = path;
  } else if (explicit !== undefined) {
    throw new ConfigError(`${path}: no such config file`);
  }

  applyGenericEnv(file, env);
  const err = validateSchema(FileSchema, file);
  if (err !== undefined)
    throw new ConfigError(`${source === "defaults" ? "config" : source}: ${err.replace(/^property /, "key ")}`);
  const fc = file as FileConfig;

  const dataDir = resolve(cwd, env.WEIR_DATA_DIR ?? fc.weir?.data_dir ?? "./data");
  const proxyListen = env.WEIR_PROXY_LISTEN
    ? env.WEIR_PROXY_LISTEN.split(",").map((s) => parseListen(s.trim(), "WEIR_PROXY_LISTEN", "0.0.0.0"))
    : toArray(fc.weir?.node_listen ?? "0.0.0.0:9080").map((l) => parseListen(l, "weir.node_listen", "0.0.0.0"));
  const adminListen = parseListen(
    env.WEIR_ADMIN_LISTEN ?? fc.deployment?.admin?.admin_listen ?? "127.0.0.1:9180",
    env.WEIR_ADMIN_LISTEN ? "WEIR_ADMIN_LISTEN" : "deployment.admin.admin_listen",
    "127.0.0.1",
  );

  const controlListen = parseListen(
    env.WEIR_CONTROL_LISTEN ?? fc.weir?.control ?? "127.0.0.1:9090",
    env.WEIR_CONTROL_LISTEN ? "WEIR_CONTROL_LISTEN" : "weir.control",
    "127.0.0.1",
  );

  const prometheusAttr = fc.plugin_attr?.prometheus;
  const metricsListen = parseListen(
    env.WEIR_METRICS_LISTEN ?? prometheusAttr?.export_addr ?? "127.0.0.1:9091",
    env.WEIR_METRICS_LISTEN ? "WEIR_METRICS_LISTEN" : "plugin_attr.prometheus.export_addr",
    "127.0.0.1",
  );

  const keys: AdminKey[] = [];
  if (env.WEIR_ADMIN_KEY) keys.push({ name: "admin", key: env.WEIR_ADMIN_KEY, role: "admin" });
  else for (const k of fc.deployment?.admin?.admin_key ?? []) keys.push(k);
  if (env.WEIR_VIEWER_KEY) keys.push({ name: "viewer", key: env.WEIR_VIEWER_KEY, role: "viewer" });
  for (const k of keys) {
    if (k.key.length < MIN_KEY_LENGTH) {
      throw new ConfigError(
        `admin key "${k.name}" is shorter than ${MIN_KEY_LENGTH} characters; use a long random key`,
      );
    }
    if (k.key === "edd1c9f034335f136f87ad84b625c8f1") {
      throw new ConfigError(`admin key "${k.name}" is APISIX's well-known default key; use your own`);
    }
  }

  const provider = env.WEIR_CONFIG_PROVIDER ?? fc.deployment?.role_traditional?.config_provider ?? "embedded";
  if (provider !== "embedded" && provider !== "etcd") {
    throw new ConfigError(`WEIR_CONFIG_PROVIDER must be "embedded" or "etcd", got "${provider}"`);
  }
  const etcd = fc.deployment?.etcd;
  const store: WeirConfig["store"] =
    provider === "etcd"
      ? {
          provider: "etcd",
          hosts: env.WEIR_ETCD_HOSTS
            ? env.WEIR_ETCD_HOSTS.split(",").map((h) => h.trim())
            : (etcd?.host ?? ["http://127.0.0.1:2379"]),
          prefix: etcd?.prefix ?? "/apisix",
          timeoutMs: (etcd?.timeout ?? 30) * 1000,
          user: etcd?.user,
          password: etcd?.password,
          tls: etcd?.tls === undefined ? undefined : readEtcdTls(etcd.tls, cwd),
        }
      : { provider: "embedded" };

  const known = options.knownPlugins;
  const plugins = fc.plugins ?? [...known];
  const unknown = plugins.filter((p) => !known.includes(p));
  if (unknown.length > 0) {
    throw new ConfigError(`unknown plugin(s) in plugins: ${unknown.join(", ")}; known: ${known.join(", ")}`);
  }

  const accessLogSetting = env.WEIR_ACCESS_LOG ?? fc.weir?.access_log ?? "logs/access.log";
  const accessLog =
    accessLogSetting === "off" ? null : accessLogSetting === "stdout" ? "stdout" : resolve(dataDir, accessLogSetting);

  let generatedAdminKey: string | undefined;
  if (!options.readOnly && (keys.length === 0 || !keys.some((k) => k.role === "admin"))) {
    const { key, generated } = ensureGeneratedKey(dataDir);
    keys.unshift({ name: "admin", key, role: "admin" });
    if (generated) generatedAdminKey = key;
  }

  // APISIX's default: only loopback may call the Admin API.
  const allow =
    fc.deployment?.admin?.allow_admin === undefined ? ["127.0.0.0/24", "::1/128"] : fc.deployment.admin.allow_admin;
  return {
    config: {
      dataDir,
      proxy: { listen: proxyListen },
      admin: {
        enabled: fc.deployment?.admin?.enable_admin ?? true,
        listen: adminListen,
        keys,
        allow: allow ?? [],
      },
      control: { enabled: fc.weir?.enable_control ?? true, listen: controlListen },
      metrics: {
        enabled: prometheusAttr?.enable_export_server ?? true,
        listen: metricsListen,
        uri: prometheusAttr?.export_uri ?? "/apisix/prometheus/metrics",
        prefix: prometheusAttr?.metric_prefix ?? "apisix_",
      },
      store,
      plugins,
      accessLog: { path: accessLog },
      shutdownTimeoutMs: (fc.weir?.graceful_shutdown_timeout ?? 10) * 1000,
      dataEncryption: {
        enabled: fc.weir?.data_encryption?.enable_encrypt_fields ?? true,
        keyring: fc.weir?.data_encryption?.keyring ?? [],
      },
    },
    generatedAdminKey,
    source,
  };
}

/** The admin key lives in <data_dir>/admin_key (0600) so restarts keep it; it is created only once. */
function ensureGeneratedKey(dataDir: string): { key: string; generated: boolean } {
  const file = join(dataDir, "admin_key");
  if (existsSync(file)) {
    const key = readFileSync(file, "utf8").trim();
    if (key.length >= MIN_KEY_LENGTH) return { key, generated: false };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(24).toString("base64url");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { key, generated: true };
}

/** APISIX's `${{VAR}}` and `${{VAR:=default}}` inside config.yaml. */
function substituteEnv(text: string, env: NodeJS.ProcessEnv, path: string): string {
  return text
    .split("\n")
    .map((line) => (line.trimStart().startsWith("#") ? line : substituteLine(line, env, path)))
    .join("\n");
}

function substituteLine(line: string, env: NodeJS.ProcessEnv, path: string): string {
  return line.replace(
    /\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?))?\s*\}\}/g,
    (_m, name: string, def?: string) => {
      const value = env[name];
      if (value !== undefined) return value;
      if (def !== undefined) return def;
      throw new ConfigError(`${path}: environment variable ${name} is not set and has no default`);
    },
  );
}

/** WEIR__DEPLOYMENT__ADMIN__ADMIN_LISTEN__PORT=9190 sets deployment.admin.admin_listen.port. */
function applyGenericEnv(file: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("WEIR__") || raw === undefined) continue;
    const path = name
      .slice(6)
      .toLowerCase()
      .split("__")
      .filter((p) => p !== "");
    if (path.length === 0) continue;
    let value: unknown;
    try {
      value = parseYaml(raw);
    } catch {
      value = raw;
    }
    let cur = file;
    for (let i = 0; i < path.length - 1; i++) {
      const next = cur[path[i]!];
      if (next === null || typeof next !== "object" || Array.isArray(next)) cur[path[i]!] = {};
      cur = cur[path[i]!] as Record<string, unknown>;
    }
    cur[path[path.length - 1]!] = value;
  }
}

function toArray<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

/** "host:port", "[v6]:port", "port" or {ip, port}. */
export function parseListen(value: unknown, where: string, defaultHost: string): ListenAddress {
  if (typeof value === "number") return { host: defaultHost, port: checkPort(value, where) };
  if (typeof value === "object" && value !== null) {
    const v = value as { ip?: string; port: number };
    return { host: v.ip ?? defaultHost, port: checkPort(v.port, where) };
  }
  const s = String(value);
  if (/^\d+$/.test(s)) return { host: defaultHost, port: checkPort(Number(s), where) };
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([^:\s]+):(\d+)$/.exec(s);
  if (m === null) throw new ConfigError(`${where}: "${s}" is not a listen address (expected host:port)`);
  return { host: m[1]!, port: checkPort(Number(m[2]), where) };
}

function checkPort(port: number, where: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(`${where}: port ${port} is out of range`);
  return port;
}

/** `deployment.etcd.tls`: the files it names, read now so a wrong path is a config error at start. */
function readEtcdTls(
  tls: { cert?: string; key?: string; verify?: boolean; sni?: string; trusted_ca?: string },
  cwd: string,
): EtcdTls {
  const read = (field: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(resolve(cwd, path), "utf8");
    } catch (err) {
      throw new ConfigError(`deployment.etcd.tls.${field}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new ConfigError("deployment.etcd.tls: cert and key go together");
  return {
    cert: read("cert", tls.cert),
    key: read("key", tls.key),
    ca: read("trusted_ca", tls.trusted_ca),
    verify: tls.verify ?? true,
    sni: tls.sni,
  };
}
