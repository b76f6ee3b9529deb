import { Type } from "@sinclair/typebox";
import type { Plugin } from "../../src/plugin-api/plugin.js";

/**
 * A test-only auth plugin, "test-auth": the consumer named in `x-test-user` (its consumer config is
 * `{ user }`). It attaches consumers through the mechanism every real auth plugin uses, without a real
 * credential check, so tests of merging and consumer-keyed limits need no keys or tokens.
 * `optional`: a request without the header passes with no consumer instead of a 401.
 */
export function headerAuth(options: { optional?: boolean } = {}): Plugin {
  return {
    name: "test-auth",
    priority: 2500,
    type: "auth",
    schema: Type.Object({}),
    consumerSchema: Type.Object({ user: Type.String() }),
    rewrite(_state, ctx) {
      const user = ctx.getRequestHeader("x-test-user");
      if (user === undefined && options.optional === true) return undefined;
      if (user === undefined || !ctx.attachConsumer(user)) return { status: 401, body: { message: "Invalid user" } };
      return undefined;
    },
  };
}
