import { type Static, type TSchema, Type } from "@sinclair/typebox";

/**
 * The building blocks of APISIX's schema_def.lua, shared by every resource schema. Each constant names the
 * definition it mirrors; constraints and defaults are APISIX's unless a comment says why not.
 */

/** A string enum as APISIX writes it (`{type: "string", enum: [...]}`), typed as the union of its values. */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values], ...options });
}

/**
 * Sets the JSON Schema `required` list explicitly. TypeBox derives `required` from non-optional properties;
 * APISIX requires `id` on some resources although the Admin API fills it in from the path, so the TS type
 * keeps it optional while the schema (and `GET /apisix/admin/schema/...`) says required, as APISIX's does.
 */
export function withRequired<T extends TSchema>(schema: T, required: readonly string[]): T {
  (schema as { required?: string[] }).required = [...required];
  return schema;
}

/** schema_def.id_schema: a string of [a-zA-Z0-9-_.] up to 64 chars, or a positive integer. */
export const IdSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-zA-Z0-9-_.]+$" }),
  Type.Integer({ minimum: 1 }),
]);

/** schema_def.host_def: a host name, IP, `[v6]`, or a leading-wildcard host. */
export const HOST_PATTERN = "^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$";
export const HostSchema = Type.String({ pattern: HOST_PATTERN });

const IPV4_SEG = "([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])";
const IPV4_DEF = [IPV4_SEG, IPV4_SEG, IPV4_SEG, IPV4_SEG].join("\\.");
// APISIX's own comment: false negatives for IPv6/CIDR (e.g. ":/8") are accepted; the router's parser is
// the second line of defence (the Admin API also runs it through validateIp when the gateway provides it).
const IPV6_DEF = "([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?";

/** schema_def.ip_def: IPv4, IPv4/CIDR, IPv6, IPv6/CIDR (formats are registered with Ajv in validate.ts). */
export const IP_DEF = [
  { title: "IPv4", type: "string", format: "ipv4" },
  { title: "IPv4/CIDR", type: "string", pattern: `^${IPV4_DEF}/([12]?[0-9]|3[0-2])$` },
  { title: "IPv6", type: "string", format: "ipv6" },
  { title: "IPv6/CIDR", type: "string", pattern: `^${IPV6_DEF}/[0-9]{1,3}$` },
];

/** schema_def.remote_addr_def. */
export const RemoteAddrSchema = Type.Unsafe<string>({ description: "client IP", type: "string", anyOf: IP_DEF });

/** schema_def.labels_def: any key, values are non-blank strings up to 256 characters. */
export const LabelsSchema = Type.Record(
  Type.String(),
  Type.String({ description: "value of label", minLength: 1, maxLength: 256, pattern: "^\\S+$" }),
  { description: "key/value pairs to specify attributes" },
);

/** schema_def.rule_name_def. */
export const NameSchema = Type.String({ minLength: 1, maxLength: 256 });
/** schema_def.desc_def. */
export const DescSchema = Type.String({ maxLength: 256 });
/** schema_def.timestamp_def (unix seconds; set by the Admin API). */
export const TimestampSchema = Type.Integer();

/** The fields every named resource carries; APISIX repeats them in each schema_def. */
export const ResourceMetaFields = {
  id: Type.Optional(IdSchema),
  name: Type.Optional(NameSchema),
  desc: Type.Optional(DescSchema),
  labels: Type.Optional(LabelsSchema),
  create_time: Type.Optional(TimestampSchema),
  update_time: Type.Optional(TimestampSchema),
};

const PluginsMap = Type.Record(Type.String(), Type.Object({}, { additionalProperties: true }));
/**
 * schema_def.plugins_schema is just `{type: "object"}`: each entry is checked against its plugin's own
 * schema (validatePlugins), which is also where a non-object entry gets APISIX's "invalid plugin conf" error.
 */
export const PluginsSchema = Type.Unsafe<Static<typeof PluginsMap>>({ type: "object" });

/** schema_def.timeout_def: seconds, all three required. */
export const TimeoutSchema = Type.Object(
  {
    connect: Type.Number({ exclusiveMinimum: 0 }),
    send: Type.Number({ exclusiveMinimum: 0 }),
    read: Type.Number({ exclusiveMinimum: 0 }),
  },
  { required: ["connect", "send", "read"] },
);

export const HTTP_METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "HEAD",
  "OPTIONS",
  "CONNECT",
  "TRACE",
  "PURGE",
] as const;

/** schema_def.method_schema. */
export const HttpMethodSchema = StringEnum(HTTP_METHODS, { description: "HTTP method" });

export function optional<T extends TSchema>(schema: T) {
  return Type.Optional(schema);
}
