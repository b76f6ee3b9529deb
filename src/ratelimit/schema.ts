import { Type } from "@sinclair/typebox";

/** APISIX 3.16+: a positive integer, or a string resolved per request from variables (`$http_x_quota`). */
export const IntegerOrVariable = Type.Unsafe<number | string>({
  oneOf: [{ type: "integer", exclusiveMinimum: 0 }, { type: "string" }],
});

/** `rules` of limit-count and ai-rate-limiting: budgets keyed by variable combinations (APISIX 3.x). */
export const RulesSchema = Type.Array(
  Type.Object({
    count: IntegerOrVariable,
    time_window: IntegerOrVariable,
    key: Type.String(),
    header_prefix: Type.Optional(Type.String()),
  }),
);
