import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "./context.js";
import type { Plugin, Reply } from "./types.js";
import { compileVarTemplate, type VarTemplate } from "./vars-template.js";

/**
 * limit-conn: concurrent requests per key (resty.limit.conn). Up to `conn` run at once; the next `burst`
 * are delayed by default_conn_delay per `conn` ahead of them; beyond that, rejected. Counted per gateway
 * instance; a request leaves in the log phase, which runs on every way a request can end.
 */
export const name = "limit-conn";
export const priority = 1003;

export const schema = Type.Object({
  conn: Type.Integer({ exclusiveMinimum: 0 }),
  burst: Type.Integer({ minimum: 0 }),
  default_conn_delay: Type.Number({ exclusiveMinimum: 0 }),
  only_use_default_delay: Type.Optional(Type.Boolean({ default: false })),
  key: Type.String(),
  key_type: Type.Optional(
    Type.Unsafe<"var" | "var_combination">({ type: "string", enum: ["var", "var_combination"], default: "var" }),
  ),
  policy: Type.Optional(Type.Unsafe<"local">({ type: "string", enum: ["local"], default: "local" })),
  rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
  rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
  allow_degradation: Type.Optional(Type.Boolean({ default: false })),
});
export type LimitConnConfig = Static<typeof schema>;

interface State {
  max: number;
  burst: number;
  unitDelayMs: number;
  onlyDefaultDelay: boolean;
  keyVar: string;
  keyTemplate: VarTemplate | undefined;
  active: Map<string, number>;
  rejection: Reply;
}

function compile(conf: LimitConnConfig): State {
  return {
    max: conf.conn,
    burst: conf.burst,
    unitDelayMs: conf.default_conn_delay * 1000,
    onlyDefaultDelay: conf.only_use_default_delay === true,
    keyVar: conf.key,
    keyTemplate: conf.key_type === "var_combination" ? compileVarTemplate(conf.key) : undefined,
    active: new Map(),
    rejection: {
      status: conf.rejected_code ?? 503,
      body: conf.rejected_msg === undefined ? undefined : { error_msg: conf.rejected_msg },
    },
  };
}

function keyOf(state: State, ctx: PluginContext): string {
  const key = state.keyTemplate !== undefined ? state.keyTemplate.renderIfResolved(ctx) : ctx.var(state.keyVar);
  return key === undefined || key === "" ? ctx.remoteAddr : key;
}

function access(state: State, ctx: PluginContext): Reply | Promise<undefined> | undefined {
  const key = keyOf(state, ctx);
  const conn = (state.active.get(key) ?? 0) + 1;
  if (conn > state.max + state.burst) return state.rejection;
  state.active.set(key, conn);
  // Keyed by instance: a global rule and a route may both run limit-conn on one request.
  let held = ctx.pluginData.get(name) as Map<State, string> | undefined;
  if (held === undefined) ctx.pluginData.set(name, (held = new Map()));
  held.set(state, key);
  if (conn <= state.max) return undefined;
  // resty.limit.conn: excess requests wait one unit per full `conn` ahead of them.
  const delay = state.onlyDefaultDelay ? state.unitDelayMs : state.unitDelayMs * Math.floor((conn - 1) / state.max);
  return new Promise((resolve) => setTimeout(resolve, delay, undefined));
}

function log(state: State, ctx: PluginContext): void {
  const key = (ctx.pluginData.get(name) as Map<State, string> | undefined)?.get(state);
  if (key === undefined) return;
  const left = (state.active.get(key) ?? 1) - 1;
  if (left <= 0) state.active.delete(key);
  else state.active.set(key, left);
}

export const limitConn: Plugin<LimitConnConfig, State> = { name, priority, schema, compile, access, log };
