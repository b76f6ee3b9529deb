/**
 * APISIX's etcd key layout: `<prefix>/<resource>/<id>`, prefix `/apisix` by default. Every store and
 * every reader of the store builds keys here so the layout stays exactly APISIX's.
 */
export const DEFAULT_PREFIX = "/apisix";

export const RESOURCE_TYPES = [
  "routes",
  "services",
  "upstreams",
  "consumers",
  "consumer_groups",
  "global_rules",
  "plugin_configs",
  "plugin_metadata",
  "ssls",
  "secrets",
  "protos",
  "stream_routes",
] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

export function resourcePrefix(type: ResourceType, prefix = DEFAULT_PREFIX): string {
  return `${prefix}/${type}/`;
}

export function resourceKey(type: ResourceType, id: string, prefix = DEFAULT_PREFIX): string {
  return `${prefix}/${type}/${id}`;
}

/** Splits `/apisix/routes/1` into its resource type and id; undefined for keys outside the layout. */
export function parseResourceKey(key: string, prefix = DEFAULT_PREFIX): { type: ResourceType; id: string } | undefined {
  if (!key.startsWith(`${prefix}/`)) return undefined;
  const rest = key.slice(prefix.length + 1);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const type = rest.slice(0, slash) as ResourceType;
  if (!(RESOURCE_TYPES as readonly string[]).includes(type)) return undefined;
  const id = rest.slice(slash + 1);
  if (id === "") return undefined;
  return { type, id };
}
