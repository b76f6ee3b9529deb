import type {
  ConsumerConfig,
  ConsumerGroupConfig,
  GlobalRuleConfig,
  PluginConfigConfig,
  ServiceConfig,
} from "../config/schemas/others.js";
import type { RouteConfig } from "../config/schemas/route.js";
import type { UpstreamConfig } from "../config/schemas/upstream.js";
import type { ResourceType } from "../store/keys.js";
import type { StoreEntry } from "../store/types.js";

/** The store's resources as the data plane knows them: resource type → id → entry. */
export type ResourceTables = ReadonlyMap<ResourceType, ReadonlyMap<string, StoreEntry>>;

/**
 * schema_def.credential. Its schema lives with the Admin API (admin/credentials.ts), which snapshot/ does
 * not import; the snapshot reads only a credential's `plugins`.
 */
export interface CredentialConfig {
  readonly plugins?: Readonly<Record<string, unknown>>;
}

/** What a snapshot compiles from each table, typed by the Admin API schema of the resource. */
interface StoredConfigs {
  routes: RouteConfig;
  services: ServiceConfig;
  upstreams: UpstreamConfig;
  /** Consumers only: their credentials, stored under the same prefix, come from consumerTable. */
  consumers: ConsumerConfig;
  consumer_groups: ConsumerGroupConfig;
  global_rules: GlobalRuleConfig;
  plugin_configs: PluginConfigConfig;
  /** Checked against each plugin's metadataSchema by the Admin API; plugins read it as they please. */
  plugin_metadata: unknown;
}

const NO_ENTRIES: ReadonlyMap<string, StoreEntry> = new Map();

/**
 * The one place stored JSON gets its schema's type. The Admin API validates every value it writes, but
 * config written straight into etcd (another tool, a restore) never met it, so the type is a promise the
 * compile must not lean on blindly. What protects each use instead:
 * - every plugin config (route, service, plugin_config, global rule, consumer, group) is validated again
 *   against its plugin's schema when its instance is compiled (PluginInstanceCache) and every credential
 *   when it is indexed (prepareCredential); a bad one answers 503 or is dropped, it never runs unchecked;
 * - each route and each stored upstream compiles inside its own try, so a malformed one is skipped with a
 *   log line and the rest of the config still applies;
 * - anything that still throws fails the whole compile, and ConfigSync keeps serving the last good snapshot.
 */
function typed<V>(entries: ReadonlyMap<string, StoreEntry> | undefined): ReadonlyMap<string, StoreEntry<V>> {
  return (entries ?? NO_ENTRIES) as ReadonlyMap<string, StoreEntry<V>>;
}

/** The stored resources of one type, typed by their schema (empty when the store has none). */
export function tableOf<T extends keyof StoredConfigs>(
  tables: ResourceTables,
  type: T,
): ReadonlyMap<string, StoreEntry<StoredConfigs[T]>> {
  return typed<StoredConfigs[T]>(tables.get(type));
}

/**
 * The consumers table holds consumers under `consumers/<username>` and, as APISIX 3.x does, their
 * credentials under `consumers/<username>/credentials/<id>`. Split apart here so each gets its own type;
 * credentials come grouped by username.
 */
export function consumerTable(tables: ResourceTables): {
  consumers: ReadonlyMap<string, StoreEntry<ConsumerConfig>>;
  credentials: ReadonlyMap<string, ReadonlyMap<string, StoreEntry<CredentialConfig>>>;
} {
  const all = tables.get("consumers") ?? NO_ENTRIES;
  const consumers = new Map<string, StoreEntry>();
  const credentials = new Map<string, Map<string, StoreEntry>>();
  for (const [id, entry] of all) {
    const credential = parseCredentialId(id);
    if (credential === undefined) {
      consumers.set(id, entry);
      continue;
    }
    let owned = credentials.get(credential.username);
    if (owned === undefined) credentials.set(credential.username, (owned = new Map()));
    owned.set(credential.credentialId, entry);
  }
  const byUsername = new Map<string, ReadonlyMap<string, StoreEntry<CredentialConfig>>>();
  for (const [username, owned] of credentials) byUsername.set(username, typed<CredentialConfig>(owned));
  return { consumers: typed<ConsumerConfig>(consumers), credentials: byUsername };
}

/** `alice/credentials/c1` → { username: "alice", credentialId: "c1" }; undefined for a plain username. */
function parseCredentialId(id: string): { username: string; credentialId: string } | undefined {
  const at = id.indexOf("/credentials/");
  if (at <= 0) return undefined;
  const credentialId = id.slice(at + "/credentials/".length);
  if (credentialId === "" || credentialId.includes("/")) return undefined;
  return { username: id.slice(0, at), credentialId };
}
