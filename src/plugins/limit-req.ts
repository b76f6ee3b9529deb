import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "./context.js";
import { compileTemplate, type Template, templateVariables } from "./template.js";
import type { Plugin, PluginScope, Reply } from "./types.js";

/**
 * limit-req: APISIX's leaky bucket (lua-resty-limit-traffic's resty.limit.req). A request arriving while the
 * bucket holds `excess` requests is delayed by excess/rate seconds; past `burst` it is rejected. Counters
 * are per plugin instance, i.e. per route config revision, as APISIX keys them by conf version.
 */
export const name = "limit-req";
export const priority = 1001;

export const schema = Type.Object(
  {
    rate: Type.Number({ exclusiveMinimum: 0 }),
    burst: Type.Number({ minimum: 0 }),
    key: Type.String({ minLength: 1 }),
    key_type: Type.Optional(Type.Union([Type.Literal("var"), Type.Literal("var_combination")], { default: "var" })),
    // redis and redis-cluster arrive with the shared-counter work; until then only "local" is accepted.
    policy: Type.Optional(Type.Literal("local", { default: "local" })),
    rejected_code: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, default: 503 })),
    rejected_msg: Type.Optional(Type.String({ minLength: 1 })),
    nodelay: Type.Optional(Type.Boolean({ default: false })),
    allow_degradation: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type LimitReqConfig = Static<typeof schema>;

/** The bucket store seam: a Redis policy implements the same call later. */
export interface LeakyBucketStore {
  /** Returns the delay in ms for this request, or -1 when it must be rejected. `now` in ms. */
  incoming(key: string, now: number): number;
}

interface BucketRecord {
  excess: number;
  last: number;
}

/** In-process buckets; excess is kept in 1/1000 request units exactly as resty.limit.req does. */
export class LocalLeakyBuckets implements LeakyBucketStore {
  private readonly rate: number;
  private readonly burst: number;
  readonly records = new Map<string, BucketRecord>();

  constructor(rate: number, burst: number) {
    this.rate = rate * 1000;
    this.burst = burst * 1000;
  }

  incoming(key: string, now: number): number {
    const rec = this.records.get(key);
    let excess = 0;
    if (rec !== undefined) {
      const elapsed = Math.abs(now - rec.last);
      excess = Math.max(rec.excess - (this.rate * elapsed) / 1000 + 1000, 0);
      if (excess > this.burst) return -1;
      rec.excess = excess;
      rec.last = now;
    } else {
      this.records.set(key, { excess: 0, last: now });
    }
    return (excess / this.rate) * 1000;
  }

  /** Drops buckets that have fully drained: they are indistinguishable from absent ones. */
  sweep(now: number): void {
    for (const [key, rec] of this.records) {
      if (rec.excess - (this.rate * (now - rec.last)) / 1000 <= 0) this.records.delete(key);
    }
  }
}

interface State {
  conf: LimitReqConfig;
  buckets: LocalLeakyBuckets;
  keyTemplate: Template | undefined;
  keyVars: string[];
  rejection: Reply;
  sweeper: NodeJS.Timeout;
}

const SWEEP_INTERVAL_MS = 10_000;
const STATUS_TEXT: Record<number, string> = { 503: "Service Temporarily Unavailable", 429: "Too Many Requests" };

function compile(conf: LimitReqConfig, _scope: PluginScope): State {
  const buckets = new LocalLeakyBuckets(conf.rate, conf.burst);
  const sweeper = setInterval(() => buckets.sweep(performance.now()), SWEEP_INTERVAL_MS);
  sweeper.unref();
  const code = conf.rejected_code ?? 503;
  return {
    conf,
    buckets,
    keyTemplate: conf.key_type === "var_combination" ? compileTemplate(conf.key) : undefined,
    keyVars: conf.key_type === "var_combination" ? templateVariables(conf.key) : [],
    rejection: {
      status: code,
      body: { error_msg: conf.rejected_msg ?? STATUS_TEXT[code] ?? "request rejected by limit-req" },
    },
    sweeper,
  };
}

function keyOf(state: State, ctx: PluginContext): string {
  if (state.keyTemplate !== undefined) {
    // APISIX falls back to the client address when none of the combined variables resolved.
    if (state.keyVars.length === 0 || state.keyVars.some((v) => ctx.var(v))) return state.keyTemplate(ctx);
    return ctx.remoteAddr;
  }
  const value = ctx.var(state.conf.key);
  return value === undefined || value === "" ? ctx.remoteAddr : value;
}

function access(state: State, ctx: PluginContext): Reply | Promise<undefined> | undefined {
  const delayMs = state.buckets.incoming(keyOf(state, ctx), performance.now());
  if (delayMs < 0) return state.rejection;
  if (delayMs >= 1 && state.conf.nodelay !== true) {
    return new Promise((resolve) => setTimeout(resolve, delayMs, undefined));
  }
  return undefined;
}

function destroy(state: State): void {
  clearInterval(state.sweeper);
}

export const limitReq: Plugin<LimitReqConfig, State> = { name, priority, schema, compile, destroy, access };
