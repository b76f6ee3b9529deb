import type { SchemaResourceType } from "../config/validate.js";
import type { ResourceType } from "../store/keys.js";

/** A field holding the id of another resource, checked on write as APISIX's check_conf does. */
export interface Reference {
  field: string;
  target: ResourceType;
  /** APISIX's name for the target in "failed to fetch <name> info by <name> id [...]". */
  name: string;
}

export type Method = "get" | "put" | "post" | "patch" | "delete";

/**
 * One stored resource type of the Admin API: what APISIX's apisix/admin/<type>.lua module declares about it.
 * The checks themselves live in checks.ts and references.ts; this table is the data they read.
 */
export interface ResourceDef {
  type: SchemaResourceType;
  /** APISIX's `kind`, used in messages: "route", "plugin config", "consumer group". */
  kind: string;
  /** consumers are keyed by username and have no id (APISIX's no_id_res). */
  idField: "id" | "username";
  /** Answered 405 "not supported `POST` method for <kind>". */
  unsupported: readonly Method[];
  references: readonly Reference[];
  /** Which plugin schema `plugins` entries are checked against. */
  pluginKind: "route" | "consumer";
  /** `?filter=k%3Dv` fields the list supports (APISIX 3.13+). */
  listFilterFields: readonly string[];
}

const UPSTREAM: Reference = { field: "upstream_id", target: "upstreams", name: "upstream" };

const DEFS: ResourceDef[] = [
  {
    type: "routes",
    kind: "route",
    idField: "id",
    unsupported: [],
    references: [
      UPSTREAM,
      { field: "service_id", target: "services", name: "service" },
      { field: "plugin_config_id", target: "plugin_configs", name: "plugin config" },
    ],
    pluginKind: "route",
    listFilterFields: ["service_id", "upstream_id"],
  },
  {
    type: "services",
    kind: "service",
    idField: "id",
    unsupported: [],
    references: [UPSTREAM],
    pluginKind: "route",
    listFilterFields: [],
  },
  {
    type: "upstreams",
    kind: "upstream",
    idField: "id",
    unsupported: [],
    references: [],
    pluginKind: "route",
    listFilterFields: [],
  },
  {
    type: "consumers",
    kind: "consumer",
    idField: "username",
    // APISIX also refuses PATCH on consumers; Weir merges them like every other resource (a superset that no
    // APISIX script can trip over).
    unsupported: ["post"],
    references: [{ field: "group_id", target: "consumer_groups", name: "consumer group" }],
    pluginKind: "consumer",
    listFilterFields: [],
  },
  {
    type: "consumer_groups",
    kind: "consumer group",
    idField: "id",
    unsupported: ["post"],
    references: [],
    pluginKind: "route",
    listFilterFields: [],
  },
  {
    type: "global_rules",
    kind: "global rule",
    idField: "id",
    unsupported: ["post"],
    references: [],
    pluginKind: "route",
    listFilterFields: [],
  },
  {
    type: "plugin_configs",
    kind: "plugin config",
    idField: "id",
    unsupported: ["post"],
    references: [],
    pluginKind: "route",
    listFilterFields: [],
  },
];

export const RESOURCES: ReadonlyMap<string, ResourceDef> = new Map(DEFS.map((d) => [d.type, d]));
