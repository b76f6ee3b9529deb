import { type Static, Type } from "@sinclair/typebox";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, Reply } from "../plugin-api/plugin.js";
import {
  DEFAULT_MAX_BODY,
  detectProtocol,
  isObject,
  type JsonObject,
  readJsonBody,
  replaceJsonBody,
  unreadableBody,
} from "./ai/chat-body.js";

/**
 * ai-prompt-decorator: wraps the client's conversation in configured messages, `prepend` before it and
 * `append` after it, so every request carries the same instructions. Works on OpenAI chat bodies and on
 * Anthropic Messages bodies, where system prompts belong in `system` rather than in `messages`.
 */
export const name = "ai-prompt-decorator";
export const priority = 1070;

type Role = "system" | "user" | "assistant";

const Prompts = Type.Array(
  Type.Object({
    role: Type.Unsafe<Role>({ type: "string", enum: ["system", "user", "assistant"] }),
    content: Type.String({ minLength: 1 }),
  }),
);

export const schema = Type.Object(
  {
    max_req_body_size: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MAX_BODY })),
    prepend: Type.Optional(Prompts),
    append: Type.Optional(Prompts),
  },
  { anyOf: [{ required: ["prepend"] }, { required: ["append"] }, { required: ["append", "prepend"] }] },
);
export type AiPromptDecoratorConfig = Static<typeof schema>;

interface Prompt {
  role: Role;
  content: string;
}

interface State {
  maxBodySize: number;
  prepend: Prompt[];
  append: Prompt[];
}

function compile(conf: AiPromptDecoratorConfig): State {
  const copy = (prompts: Prompt[] | undefined) => (prompts ?? []).map(({ role, content }) => ({ role, content }));
  return {
    maxBodySize: conf.max_req_body_size ?? DEFAULT_MAX_BODY,
    prepend: copy(conf.prepend),
    append: copy(conf.append),
  };
}

async function rewrite(state: State, ctx: PluginContext): Promise<Reply | undefined> {
  const read = await readJsonBody(ctx, state.maxBodySize);
  if (!read.ok) return unreadableBody(read);
  const body = read.value;
  if (!isObject(body)) return undefined;
  const protocol = detectProtocol(body, ctx.var("uri") ?? ctx.path);
  if (protocol === "anthropic-messages") decorateAnthropic(state, body);
  // A body that is not a chat request is left as it is; an empty object gets a conversation, as in APISIX.
  else if (protocol === "openai-chat" || Object.keys(body).length === 0) decorateChat(state, body);
  else return undefined;
  replaceJsonBody(ctx, body);
  return undefined;
}

export const aiPromptDecorator: Plugin<AiPromptDecoratorConfig, State> = { name, priority, schema, compile, rewrite };

// Messages are copied per request: the body is shared with later plugins, which may change it in place.
const fresh = (prompts: Prompt[]): JsonObject[] => prompts.map(({ role, content }) => ({ role, content }));

function decorateChat(state: State, body: JsonObject): void {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  body.messages = [...fresh(state.prepend), ...messages, ...fresh(state.append)];
}

/**
 * Anthropic's API takes no "system" role in `messages`; those prompts join `system` instead, before (prepend)
 * or after (append) what the client sent there, as text blocks if the client used blocks.
 */
function decorateAnthropic(state: State, body: JsonObject): void {
  const isSystem = (p: Prompt) => p.role === "system";
  const before = state.prepend.filter(isSystem).map((p) => p.content);
  const after = state.append.filter(isSystem).map((p) => p.content);
  if (before.length > 0 || after.length > 0) body.system = joinSystem(before, body.system, after);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const notSystem = (prompts: Prompt[]) => fresh(prompts.filter((p) => !isSystem(p)));
  body.messages = [...notSystem(state.prepend), ...messages, ...notSystem(state.append)];
}

function joinSystem(before: string[], system: unknown, after: string[]): unknown {
  if (Array.isArray(system)) {
    const block = (text: string) => ({ type: "text", text });
    return [...before.map(block), ...system, ...after.map(block)];
  }
  const own = typeof system === "string" && system !== "" ? [system] : [];
  return [...before, ...own, ...after].join("\n");
}
