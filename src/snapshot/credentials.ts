import type { CredentialMatch } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";

/** One place an auth plugin's consumer config lives: a consumer's own `plugins`, or one of its credentials. */
export interface CredentialSource {
  username: string;
  credentialId: string | undefined;
  plugins: Readonly<Record<string, unknown>>;
}

/** Auth plugin name → identifying value → match. Built once per snapshot; requests only look up. */
export type CredentialIndex = ReadonlyMap<string, ReadonlyMap<string, CredentialMatch>>;

/**
 * Indexes every auth plugin config that carries the plugin's `credentialKey`. `prepare` turns the stored
 * conf into the one plugins see (secrets decrypted, `$env://` resolved) or returns undefined to drop it.
 * A value claimed twice (written straight into the store: the Admin API rejects it) keeps the first
 * source in a stable order and logs the other, so which consumer a key names never depends on timing.
 */
export function buildCredentialIndex(
  sources: Iterable<CredentialSource>,
  registry: ReadonlyMap<string, Plugin>,
  prepare: (plugin: Plugin, conf: Record<string, unknown>, where: string) => Record<string, unknown> | undefined,
  log: (msg: string) => void,
): CredentialIndex {
  const index = new Map<string, Map<string, CredentialMatch>>();
  const ordered = [...sources].sort((a, b) => compare(sourceName(a), sourceName(b)));
  for (const source of ordered) {
    for (const [name, raw] of Object.entries(source.plugins)) {
      const plugin = registry.get(name);
      if (plugin?.type !== "auth" || plugin.credentialKey === undefined) continue;
      if (raw === null || typeof raw !== "object") continue;
      const where = sourceName(source);
      const conf = prepare(plugin, raw as Record<string, unknown>, where);
      if (conf === undefined) continue;
      const key = conf[plugin.credentialKey];
      if (typeof key !== "string" || key === "") continue;
      let byKey = index.get(name);
      if (byKey === undefined) index.set(name, (byKey = new Map()));
      const taken = byKey.get(key);
      if (taken !== undefined) {
        log(`${where}: ${name} ${plugin.credentialKey} already used by consumer ${taken.username}; ignored`);
        continue;
      }
      byKey.set(key, { username: source.username, credentialId: source.credentialId, conf });
    }
  }
  return index;
}

export function sourceName(source: CredentialSource): string {
  return source.credentialId === undefined
    ? `consumer ${source.username}`
    : `consumer ${source.username} credential ${source.credentialId}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
