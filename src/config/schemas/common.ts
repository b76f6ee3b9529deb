import { type TSchema, Type } from "@sinclair/typebox";

/** APISIX's id rule (schema_def.id_schema): a string of [a-zA-Z0-9-_.] up to 64 chars, or a positive integer. */
export const IdSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-zA-Z0-9-_.]+$" }),
  Type.Integer({ minimum: 1 }),
]);

export const LabelsSchema = Type.Record(
  Type.String({ pattern: "^\\S+$" }),
  Type.String({ minLength: 1, maxLength: 256, pattern: "^\\S+$" }),
);

export const NameSchema = Type.String({ minLength: 1, maxLength: 100 });
export const DescSchema = Type.String({ maxLength: 256 });
export const TimestampSchema = Type.Integer({ minimum: 1 });

/** Plugin configs are validated against each plugin's own schema, so at resource level they are open objects. */
export const PluginsSchema = Type.Record(Type.String(), Type.Object({}, { additionalProperties: true }));

export const TimeoutSchema = Type.Object(
  {
    connect: Type.Number({ exclusiveMinimum: 0 }),
    send: Type.Number({ exclusiveMinimum: 0 }),
    read: Type.Number({ exclusiveMinimum: 0 }),
  },
  { required: ["connect", "send", "read"], additionalProperties: false },
);

export function optional<T extends TSchema>(schema: T) {
  return Type.Optional(schema);
}
