import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import {
  DEFAULT_MAX_BODY,
  isObject,
  type JsonObject,
  readJsonBody,
  replaceJsonBody,
  unreadableBody,
} from "./ai/chat-body.js";

/**
 * ai-prompt-template: the client names a configured request template (`template_name`) and sends only its
 * variables; the template, with `{{var}}` filled from the client's body, becomes the body sent upstream.
 * Templates are compiled once into literal text and variable paths. Values are inserted into the parsed
 * template and the result serialized as JSON, so a value can never end its string or add fields.
 */
export const name = "ai-prompt-template";
export const priority = 1071;

const Prompt = Type.Object({
  role: Type.Unsafe<"system" | "user" | "assistant">({ type: "string", enum: ["system", "user", "assistant"] }),
  content: Type.String({ minLength: 1 }),
});

export const schema = Type.Object({
  max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MAX_BODY })),
  templates: Type.Array(
    Type.Object({
      name: Type.String({ minLength: 1 }),
      template: Type.Object({
        model: Type.Optional(Type.String({ minLength: 1 })),
        messages: Type.Optional(Type.Array(Prompt, { minItems: 1 })),
      }),
    }),
    { minItems: 1 },
  ),
});
export type AiPromptTemplateConfig = Static<typeof schema>;

/** A template value: JSON as configured, with every string that holds `{{…}}` turned into parts. */
type Node =
  | { kind: "value"; value: string | number | boolean | null }
  | { kind: "text"; parts: (string | string[])[] }
  | { kind: "array"; items: Node[] }
  | { kind: "object"; entries: [string, Node][] };

interface State {
  maxBodySize: number;
  templates: Map<string, Node>;
}

const PLACEHOLDER = /\{\{(.*?)\}\}/gs;
const VARIABLE_PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

const MISSING_NAME: Reply = { status: 400, body: { message: "template name is missing in request." } };

function check(conf: AiPromptTemplateConfig): string | undefined {
  for (let i = 0; i < conf.templates.length; i++) {
    const compiled = compileNode(conf.templates[i]!.template, `templates[${i}].template`);
    if (typeof compiled === "string") return compiled;
  }
  return undefined;
}

function compile(conf: AiPromptTemplateConfig): State {
  const templates = new Map<string, Node>();
  for (let i = 0; i < conf.templates.length; i++) {
    const { name: templateName, template } = conf.templates[i]!;
    const node = compileNode(template, `templates[${i}].template`);
    if (typeof node === "string") throw new Error(node);
    // The first template of a name wins, as APISIX's lookup walks the list in order.
    if (!templates.has(templateName)) templates.set(templateName, node);
  }
  return { maxBodySize: conf.max_req_body_size ?? DEFAULT_MAX_BODY, templates };
}

async function rewrite(state: State, ctx: PluginContext): Promise<Reply | undefined> {
  const read = await readJsonBody(ctx, state.maxBodySize);
  if (!read.ok) return unreadableBody(read);
  const vars = read.value;
  if (!isObject(vars)) return MISSING_NAME;
  const templateName = vars.template_name;
  if (templateName === undefined || templateName === null || templateName === false) return MISSING_NAME;
  const template = typeof templateName === "string" ? state.templates.get(templateName) : undefined;
  if (template === undefined) {
    return { status: 400, body: { message: `template: ${display(templateName)} not configured.` } };
  }
  replaceJsonBody(ctx, render(template, vars));
  return undefined;
}

export const aiPromptTemplate: Plugin<AiPromptTemplateConfig, State> = {
  name,
  priority,
  schema,
  check,
  compile,
  rewrite,
};

// ---- templates --------------------------------------------------------------------------------------------

function compileNode(value: unknown, path: string): Node | string {
  if (typeof value === "string") return compileText(value, path);
  if (Array.isArray(value)) {
    const items: Node[] = [];
    for (let i = 0; i < value.length; i++) {
      const item = compileNode(value[i], `${path}[${i}]`);
      if (typeof item === "string") return item;
      items.push(item);
    }
    return { kind: "array", items };
  }
  if (isObject(value)) {
    const entries: [string, Node][] = [];
    for (const [key, v] of Object.entries(value)) {
      const item = compileNode(v, `${path}.${key}`);
      if (typeof item === "string") return item;
      entries.push([key, item]);
    }
    return { kind: "object", entries };
  }
  return { kind: "value", value: value as number | boolean | null };
}

/**
 * `{{ name }}` and `{{ a.b }}` read the client's body. APISIX hands the template to lua-resty-template, where
 * `{{…}}` is any Lua expression; Weir evaluates no code, so any other expression is refused here rather
 * than sent to the model as literal braces.
 */
function compileText(text: string, path: string): Node | string {
  const parts: (string | string[])[] = [];
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const expr = m[1]!.trim();
    if (!VARIABLE_PATH.test(expr)) {
      return `property "${path}" validation failed: unsupported template expression "${m[0]}": only {{name}} and {{name.field}} are supported`;
    }
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(expr.split("."));
    last = m.index + m[0].length;
  }
  if (parts.length === 0) return { kind: "value", value: text };
  if (last < text.length) parts.push(text.slice(last));
  return { kind: "text", parts };
}

/** Builds fresh arrays and objects on every request: later plugins may change the body in place. */
function render(node: Node, vars: JsonObject): unknown {
  switch (node.kind) {
    case "value":
      return node.value;
    case "text": {
      let out = "";
      for (const part of node.parts) out += typeof part === "string" ? part : variable(vars, part);
      return out;
    }
    case "array":
      return node.items.map((item) => render(item, vars));
    case "object": {
      // No prototype: a template key "__proto__" stays a plain field.
      const out: JsonObject = Object.create(null);
      for (const [key, item] of node.entries) out[key] = render(item, vars);
      return out;
    }
  }
}

/** A missing variable is empty, as in lua-resty-template; only the body's own fields are visible. */
function variable(vars: JsonObject, path: readonly string[]): string {
  let cur: unknown = vars;
  for (const key of path) {
    if (!isObject(cur) || !Object.hasOwn(cur, key)) return "";
    cur = cur[key];
  }
  if (cur === null || cur === undefined) return "";
  return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
}

function display(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}
