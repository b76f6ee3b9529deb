import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import { compileVars, type VarsPredicate } from "../router/vars.js";
import { compileVarTemplate, type VarTemplate } from "../vars/template.js";

/**
 * fault-injection: delay and/or abort a share of requests, to rehearse how clients and fallbacks behave
 * when a model server is slow or failing. `vars` (a list of expressions, any may match) narrows which
 * requests are hit; `percentage` samples them.
 */
export const name = "fault-injection";
export const priority = 11000;

const Percentage = Type.Integer({ minimum: 0, maximum: 100 });

export const schema = Type.Object(
  {
    abort: Type.Optional(
      Type.Object({
        http_status: Type.Integer({ minimum: 200, maximum: 599 }),
        body: Type.Optional(Type.String({ minLength: 0 })),
        headers: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String())),
        percentage: Type.Optional(Percentage),
        vars: Type.Optional(Type.Array(Type.Array(Type.Unknown()))),
      }),
    ),
    delay: Type.Optional(
      Type.Object({
        duration: Type.Number({ exclusiveMinimum: 0 }),
        percentage: Type.Optional(Percentage),
        vars: Type.Optional(Type.Array(Type.Array(Type.Unknown()))),
      }),
    ),
  },
  { minProperties: 1 },
);
export type FaultInjectionConfig = Static<typeof schema>;

interface Fault {
  percentage: number | undefined;
  vars: VarsPredicate[] | undefined;
}

interface State {
  delay: (Fault & { ms: number }) | undefined;
  abort:
    | (Fault & { status: number; body: VarTemplate | undefined; headers: Record<string, string> | undefined })
    | undefined;
}

function check(conf: FaultInjectionConfig): string | undefined {
  for (const [field, part] of [
    ["abort", conf.abort],
    ["delay", conf.delay],
  ] as const) {
    for (const [i, expr] of (part?.vars ?? []).entries()) {
      try {
        compileVars(expr);
      } catch (err) {
        return `property "${field}.vars[${i}]" validation failed: ${(err as Error).message}`;
      }
    }
  }
  return undefined;
}

function compile(conf: FaultInjectionConfig): State {
  const vars = (list: unknown[][] | undefined) => (list === undefined ? undefined : list.map((e) => compileVars(e)));
  return {
    delay:
      conf.delay === undefined
        ? undefined
        : { ms: conf.delay.duration * 1000, percentage: conf.delay.percentage, vars: vars(conf.delay.vars) },
    abort:
      conf.abort === undefined
        ? undefined
        : {
            status: conf.abort.http_status,
            body: conf.abort.body === undefined ? undefined : compileVarTemplate(conf.abort.body),
            headers: conf.abort.headers,
            percentage: conf.abort.percentage,
            vars: vars(conf.abort.vars),
          },
  };
}

function applies(fault: Fault, ctx: PluginContext): boolean {
  if (fault.vars !== undefined && !fault.vars.some((match) => match(ctx))) return false;
  return fault.percentage === undefined || Math.floor(Math.random() * 100) < fault.percentage;
}

function abortReply(state: State, ctx: PluginContext): Reply | undefined {
  const abort = state.abort;
  if (abort === undefined || !applies(abort, ctx)) return undefined;
  return { status: abort.status, body: abort.body?.render(ctx) ?? "", headers: abort.headers };
}

function rewrite(state: State, ctx: PluginContext): Reply | Promise<Reply | undefined> | undefined {
  const delay = state.delay;
  if (delay !== undefined && applies(delay, ctx)) {
    return new Promise((resolve) => setTimeout(() => resolve(abortReply(state, ctx)), delay.ms));
  }
  return abortReply(state, ctx);
}

export const faultInjection: Plugin<FaultInjectionConfig, State> = { name, priority, schema, check, compile, rewrite };
