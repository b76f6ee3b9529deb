import { type ResourceType, resourceKey, resourcePrefix } from "../store/keys.js";
import type { ConfigStore, StoreEntry } from "../store/types.js";
import type { ResourceDef } from "./resources.js";

type Conf = Record<string, unknown>;

/** The direct children of a resource type (a consumer's credentials live below it and are not consumers). */
export async function listResources(store: ConfigStore, type: ResourceType): Promise<StoreEntry[]> {
  const prefix = resourcePrefix(type);
  const { entries } = await store.list(prefix);
  return entries.filter((e) => !e.key.slice(prefix.length).includes("/"));
}

/** APISIX's check_conf reference checks: every id the resource names must exist. */
export async function checkReferences(store: ConfigStore, def: ResourceDef, conf: Conf): Promise<string | undefined> {
  for (const ref of def.references) {
    const id = conf[ref.field];
    if (id === undefined) continue;
    if ((await store.get(resourceKey(ref.target, String(id)))) === undefined) {
      return `failed to fetch ${ref.name} info by ${ref.name} id [${String(id)}], response code: 404`;
    }
  }
  return undefined;
}

const idOf = (e: StoreEntry) => {
  const v = e.value as { id?: unknown; username?: unknown };
  return String(v.id ?? v.username ?? e.key.slice(e.key.lastIndexOf("/") + 1));
};

/** traffic-split's weighted_upstreams may name upstreams by id; APISIX counts those as users too. */
function trafficSplitUses(plugins: unknown, upstreamId: string): boolean {
  const rules = (plugins as { "traffic-split"?: { rules?: unknown } } | undefined)?.["traffic-split"]?.rules;
  if (!Array.isArray(rules)) return false;
  return rules.some(
    (rule) =>
      Array.isArray(rule?.weighted_upstreams) &&
      rule.weighted_upstreams.some(
        (wu: { upstream_id?: unknown } | null) =>
          wu?.upstream_id !== undefined && String(wu.upstream_id) === upstreamId,
      ),
  );
}

/** Who may point at an upstream: [type, APISIX's name in the message, only through traffic-split]. */
const UPSTREAM_USERS: readonly [ResourceType, string, boolean][] = [
  ["routes", "route", false],
  ["services", "service", false],
  ["plugin_configs", "plugin_config", true],
  ["consumers", "consumer", true],
  ["consumer_groups", "consumer_group", true],
  ["global_rules", "global_rules", true],
];

/** One-field references checked on delete: [referenced type, user type, field, message start, user name]. */
const FIELD_USERS: readonly [ResourceType, ResourceType, string, string, string][] = [
  ["services", "routes", "service_id", "can not delete this service directly", "route"],
  ["plugin_configs", "routes", "plugin_config_id", "can not delete this plugin config", "route"],
  ["consumer_groups", "consumers", "group_id", "can not delete this consumer group", "consumer"],
];

/**
 * APISIX's delete_checker: the message of the first resource still using `type`/`id`, or undefined when
 * the delete may go ahead. Skipped by `?force=true`.
 */
export async function deleteBlocker(store: ConfigStore, type: ResourceType, id: string): Promise<string | undefined> {
  if (type === "upstreams") {
    for (const [userType, name, pluginOnly] of UPSTREAM_USERS) {
      for (const entry of await listResources(store, userType)) {
        const value = entry.value as Conf;
        if (trafficSplitUses(value.plugins, id)) {
          return `can not delete this upstream, plugin in ${name} [${idOf(entry)}] is still using it now`;
        }
        if (!pluginOnly && value.upstream_id !== undefined && String(value.upstream_id) === id) {
          return `can not delete this upstream, ${name} [${idOf(entry)}] is still using it now`;
        }
      }
    }
    return undefined;
  }
  for (const [target, userType, field, message, name] of FIELD_USERS) {
    if (target !== type) continue;
    for (const entry of await listResources(store, userType)) {
      const ref = (entry.value as Conf)[field];
      if (ref !== undefined && String(ref) === id) return `${message}, ${name} [${idOf(entry)}] is still using it now`;
    }
  }
  return undefined;
}
