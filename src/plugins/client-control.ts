import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";

/**
 * client-control: a per-route cap on the request body (nginx's client_max_body_size, set per request as
 * APISIX does). A declared Content-Length over the cap is refused before anything is read; a chunked body
 * is counted while it streams upstream and cut with 413 the moment it passes the cap, so nothing is
 * buffered. 0 lifts the cap (a route can undo a global rule's).
 */
export const name = "client-control";
export const priority = 22000;

export const schema = Type.Object({
  max_body_size: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type ClientControlConfig = Static<typeof schema>;

interface State {
  maxBodySize: number | undefined;
}

const TOO_LARGE: Reply = { status: 413 };

function compile(conf: ClientControlConfig): State {
  return { maxBodySize: conf.max_body_size };
}

function rewrite(state: State, ctx: PluginContext): Reply | undefined {
  const max = state.maxBodySize;
  if (max === undefined) return undefined;
  const declared = ctx.req.headers["content-length"];
  if (max !== 0 && declared !== undefined && Number(declared) > max) return TOO_LARGE;
  ctx.maxBodySize = max;
  return undefined;
}

export const clientControl: Plugin<ClientControlConfig, State> = { name, priority, schema, compile, rewrite };
