import type { PluginSecrets } from "../config/secrets.js";
import type { AdminRole } from "../config/types.js";
import type { StoreEntry } from "../store/types.js";
import { envelope } from "./reply.js";

/**
 * What an Admin API read shows of a stored resource: secret plugin fields decrypted for an admin key,
 * masked for a viewer key. The stored value is shared with the data plane, so it is copied first.
 */
export function revealedEnvelope(entry: StoreEntry, role: AdminRole | undefined, secrets: PluginSecrets | undefined) {
  const out = envelope(entry);
  const plugins = (entry.value as { plugins?: unknown } | null)?.plugins;
  if (secrets === undefined || plugins === undefined) return out;
  const value = structuredClone(entry.value) as { plugins?: unknown };
  if (role === "admin") secrets.decrypt(value.plugins);
  else secrets.mask(value.plugins);
  return { ...out, value };
}
