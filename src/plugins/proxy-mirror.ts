import { type Static, Type } from "@sinclair/typebox";
import { Pool } from "undici";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin } from "../plugin-api/plugin.js";

/**
 * proxy-mirror: sends a copy of (a sample of) requests to a shadow service, e.g. a new model build, and
 * ignores its answers. The copy leaves in the background: the primary request never waits for it, and a
 * slow or dead mirror costs the client nothing. A request with a body is buffered once so both can get it.
 */
export const name = "proxy-mirror";
export const priority = 1010;

export const schema = Type.Object({
  host: Type.String({ pattern: "^https?://[^/?#\\s]+$" }),
  path: Type.Optional(Type.String({ pattern: "^/[^?&]+$" })),
  path_concat_mode: Type.Optional(
    Type.Unsafe<"replace" | "prefix">({ type: "string", enum: ["replace", "prefix"], default: "replace" }),
  ),
  sample_ratio: Type.Optional(Type.Number({ minimum: 0.00001, maximum: 1, default: 1 })),
});
export type ProxyMirrorConfig = Static<typeof schema>;

interface State {
  pool: Pool;
  path: string | undefined;
  prefix: boolean;
  ratio: number;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "upgrade",
  "proxy-connection",
  "expect",
]);

function compile(conf: ProxyMirrorConfig): State {
  return {
    pool: new Pool(conf.host, { connections: 64, headersTimeout: 60_000, bodyTimeout: 60_000 }),
    path: conf.path,
    prefix: conf.path_concat_mode === "prefix",
    ratio: conf.sample_ratio ?? 1,
  };
}

function mirrorPath(state: State, ctx: PluginContext): string {
  const original = ctx.req.url ?? "/";
  if (state.path === undefined) return original;
  if (state.prefix) return state.path + original;
  return ctx.query === "" ? state.path : `${state.path}?${ctx.query}`;
}

function send(state: State, ctx: PluginContext, body: Buffer | null): void {
  const raw = ctx.req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === "content-length") continue;
    headers.push(raw[i]!, raw[i + 1]!);
  }
  if (body !== null) headers.push("content-length", String(body.length));
  try {
    state.pool.dispatch({ path: mirrorPath(state, ctx), method: ctx.method as "GET", headers, body }, DISCARD);
  } catch {
    // the mirror's failures are not the client's problem
  }
}

/** The mirror's answer is read and dropped (undici's callback API; the pool-only module has no request()). */
const DISCARD = {
  onConnect() {},
  onHeaders: () => true,
  onData: () => true,
  onComplete() {},
  onError() {},
};

function access(state: State, ctx: PluginContext): Promise<undefined> | undefined {
  if (state.ratio < 1 && Math.random() >= state.ratio) return undefined;
  const h = ctx.req.headers;
  const hasBody =
    h["transfer-encoding"] !== undefined || (h["content-length"] !== undefined && h["content-length"] !== "0");
  if (!hasBody) {
    send(state, ctx, null);
    return undefined;
  }
  return ctx.readBody().then((body) => {
    send(state, ctx, body);
    return undefined;
  });
}

function destroy(state: State): void {
  state.pool.close().catch(() => undefined);
}

export const proxyMirror: Plugin<ProxyMirrorConfig, State> = { name, priority, schema, compile, destroy, access };
