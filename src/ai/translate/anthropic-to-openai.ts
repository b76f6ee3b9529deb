/**
 * Anthropic messages → OpenAI chat completions: the answer of Claude bound for an OpenAI client, and the
 * request of an Anthropic client bound for an OpenAI-compatible model.
 */
import { isRecord, TranslationError } from "./errors.js";
import { anthropicUsageToOpenAI, stopReasonToFinishReason, stringifyToolInput, unixSeconds } from "./mapping.js";
import type {
  AnthropicMessage,
  AnthropicMessagesRequest,
  OpenAIChatCompletion,
  OpenAIChatMessage,
  OpenAIChatRequest,
  OpenAIContentPart,
  OpenAIFunctionTool,
  OpenAIResponseMessage,
  OpenAITextPart,
  OpenAIToolCall,
  OpenAIToolChoice,
} from "./types.js";

/** Claude's answer as the chat.completion an OpenAI client expects; `model` is the name that client asked for. */
export function messagesResponseToChat(msg: AnthropicMessage, model?: string): OpenAIChatCompletion {
  let text = "";
  let reasoning = "";
  let toolCalls: OpenAIToolCall[] | undefined;
  for (const block of msg.content ?? []) {
    if (block.type === "text" && typeof block.text === "string") text += block.text;
    else if (block.type === "thinking" && typeof block.thinking === "string") reasoning += block.thinking;
    else if (block.type === "tool_use") {
      toolCalls ??= [];
      toolCalls.push({
        id: String(block.id),
        type: "function",
        function: { name: String(block.name), arguments: stringifyToolInput(block.input) },
      });
    }
    // redacted_thinking and server-tool blocks have no OpenAI counterpart.
  }
  const message: OpenAIResponseMessage = {
    role: "assistant",
    content: text.length > 0 || !toolCalls ? text : null,
    refusal: null,
  };
  if (toolCalls) message.tool_calls = toolCalls;
  if (reasoning.length > 0) message.reasoning_content = reasoning;
  return {
    id: msg.id,
    object: "chat.completion",
    created: unixSeconds(),
    model: model ?? msg.model,
    choices: [{ index: 0, message, finish_reason: stopReasonToFinishReason(msg.stop_reason), logprobs: null }],
    usage: anthropicUsageToOpenAI(msg.usage),
  };
}

export interface MessagesRequestOptions {
  /**
   * OpenAI's reasoning models take only max_completion_tokens; most other OpenAI-compatible servers know only
   * max_tokens, hence the default.
   */
  maxTokensField?: "max_tokens" | "max_completion_tokens";
}

/** Fields that change what the model does and that Chat Completions cannot carry. */
const unsupportedWhenSet: readonly string[] = ["mcp_servers", "container"];

export function messagesRequestToChat(
  body: AnthropicMessagesRequest,
  opts: MessagesRequestOptions = {},
): OpenAIChatRequest | TranslationError {
  if (!isRecord(body)) return new TranslationError("body", "must be a JSON object");
  if (typeof body.model !== "string") return new TranslationError("model", "must be a string");
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1)
    return new TranslationError("max_tokens", "must be a positive integer");
  for (const field of unsupportedWhenSet) {
    if (body[field] != null) return new TranslationError(field, "is not supported by OpenAI-compatible models");
  }

  const messages: OpenAIChatMessage[] = [];
  const system = systemText(body.system);
  if (system instanceof TranslationError) return system;
  if (system.length > 0) messages.push({ role: "system", content: system });

  if (!Array.isArray(body.messages) || body.messages.length === 0)
    return new TranslationError("messages", "must be a non-empty array");
  for (let i = 0; i < body.messages.length; i++) {
    const error = appendMessage(messages, body.messages[i], `messages[${i}]`);
    if (error) return error;
  }

  const out: OpenAIChatRequest = { model: body.model, messages };
  out[opts.maxTokensField ?? "max_tokens"] = body.max_tokens;
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length > 0) out.stop = body.stop_sequences;
  if (typeof body.temperature === "number") out.temperature = body.temperature;
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  // Not OpenAI's, but vLLM, Ollama and llama.cpp honour it; OpenAI itself rejects it with a 400 the client sees.
  if (typeof body.top_k === "number") out.top_k = body.top_k;
  if (body.stream === true) {
    out.stream = true;
    // Without it OpenAI sends no usage at all, and the Anthropic client's message_delta needs output_tokens.
    out.stream_options = { include_usage: true };
  }
  const userId = body.metadata?.user_id;
  if (typeof userId === "string" && userId.length > 0) out.user = userId;

  const tools = convertTools(body);
  if (tools instanceof TranslationError) return tools;
  if (tools) {
    out.tools = tools;
    const choice = body.tool_choice;
    if (choice != null) {
      const mapped = toolChoice(choice);
      if (mapped instanceof TranslationError) return mapped;
      out.tool_choice = mapped;
      if ("disable_parallel_tool_use" in choice && choice.disable_parallel_tool_use === true)
        out.parallel_tool_calls = false;
    }
  }
  return out;
}

function systemText(system: unknown): string | TranslationError {
  if (system == null) return "";
  if (typeof system === "string") return system;
  if (!Array.isArray(system)) return new TranslationError("system", "must be a string or an array of text blocks");
  const texts: string[] = [];
  for (let i = 0; i < system.length; i++) {
    const block: unknown = system[i];
    if (!isRecord(block) || block.type !== "text" || typeof block.text !== "string")
      return new TranslationError(`system[${i}]`, "must be a text block");
    texts.push(block.text);
  }
  return texts.join("\n\n");
}

function appendMessage(out: OpenAIChatMessage[], message: unknown, path: string): TranslationError | undefined {
  if (!isRecord(message)) return new TranslationError(path, "must be an object");
  const { role, content } = message;
  if (role !== "user" && role !== "assistant")
    return new TranslationError(`${path}.role`, `unsupported role ${JSON.stringify(role)}`);
  if (typeof content === "string") {
    out.push({ role, content });
    return undefined;
  }
  if (!Array.isArray(content)) return new TranslationError(`${path}.content`, "must be a string or an array");
  return role === "user" ? appendUser(out, content, `${path}.content`) : appendAssistant(out, content, path);
}

/**
 * OpenAI carries each tool result as its own `tool` message right after the assistant's tool calls, so a
 * user turn splits into its tool results first and then whatever else the user said.
 */
function appendUser(out: OpenAIChatMessage[], blocks: unknown[], path: string): TranslationError | undefined {
  const parts: OpenAIContentPart[] = [];
  for (let j = 0; j < blocks.length; j++) {
    const block: unknown = blocks[j];
    const blockPath = `${path}[${j}]`;
    if (!isRecord(block)) return new TranslationError(blockPath, "must be an object");
    if (block.type === "tool_result") {
      const result = toolMessage(block, blockPath);
      if (result instanceof TranslationError) return result;
      out.push(result);
      continue;
    }
    const part = contentPart(block, blockPath);
    if (part instanceof TranslationError) return part;
    if (part) parts.push(part);
  }
  if (parts.length === 1 && parts[0]!.type === "text") out.push({ role: "user", content: parts[0]!.text });
  else if (parts.length > 0) out.push({ role: "user", content: parts });
  return undefined;
}

function contentPart(block: Record<string, any>, path: string): OpenAIContentPart | undefined | TranslationError {
  switch (block.type) {
    case "text":
      if (typeof block.text !== "string") return new TranslationError(`${path}.text`, "must be a string");
      return { type: "text", text: block.text };
    case "image": {
      const url = sourceUrl(block.source, `${path}.source`);
      if (url instanceof TranslationError) return url;
      return { type: "image_url", image_url: { url } };
    }
    case "document": {
      const source = block.source;
      if (isRecord(source) && source.type === "text" && typeof source.data === "string")
        return { type: "text", text: source.data };
      if (!isRecord(source) || source.type !== "base64")
        return new TranslationError(`${path}.source.type`, "only base64 and text documents are supported");
      const url = sourceUrl(source, `${path}.source`);
      if (url instanceof TranslationError) return url;
      const filename = typeof block.title === "string" && block.title.length > 0 ? block.title : "document.pdf";
      return { type: "file", file: { filename, file_data: url } };
    }
    case "thinking":
    case "redacted_thinking":
      return undefined;
    default:
      return new TranslationError(`${path}.type`, `${JSON.stringify(block.type)} is not supported`);
  }
}

function sourceUrl(source: unknown, path: string): string | TranslationError {
  if (isRecord(source)) {
    if (source.type === "url" && typeof source.url === "string") return source.url;
    if (source.type === "base64" && typeof source.media_type === "string" && typeof source.data === "string")
      return `data:${source.media_type};base64,${source.data}`;
  }
  return new TranslationError(path, "must be a base64 or url source");
}

function toolMessage(block: Record<string, any>, path: string): OpenAIChatMessage | TranslationError {
  if (typeof block.tool_use_id !== "string") return new TranslationError(`${path}.tool_use_id`, "must be a string");
  let content: string | OpenAITextPart[];
  if (block.content == null || typeof block.content === "string") content = block.content ?? "";
  else if (Array.isArray(block.content)) {
    const texts: OpenAITextPart[] = [];
    for (let k = 0; k < block.content.length; k++) {
      const inner: unknown = block.content[k];
      // OpenAI's tool messages hold text only; dropping an image would leave the model answering blind.
      if (!isRecord(inner) || inner.type !== "text" || typeof inner.text !== "string")
        return new TranslationError(`${path}.content[${k}]`, "only text tool results are supported");
      texts.push({ type: "text", text: inner.text });
    }
    content = texts.length === 1 ? texts[0]!.text : texts;
  } else return new TranslationError(`${path}.content`, "must be a string or an array");
  // Chat Completions has no error flag on tool results; the model still has to learn the call failed.
  if (block.is_error === true) {
    if (typeof content === "string") content = `Error: ${content}`;
    else content = [{ type: "text", text: "Error:" }, ...content];
  }
  return { role: "tool", tool_call_id: block.tool_use_id, content };
}

function appendAssistant(out: OpenAIChatMessage[], blocks: unknown[], path: string): TranslationError | undefined {
  let text = "";
  let toolCalls: OpenAIToolCall[] | undefined;
  for (let j = 0; j < blocks.length; j++) {
    const block: unknown = blocks[j];
    const blockPath = `${path}.content[${j}]`;
    if (!isRecord(block)) return new TranslationError(blockPath, "must be an object");
    if (block.type === "text" && typeof block.text === "string") text += block.text;
    else if (block.type === "tool_use") {
      if (typeof block.id !== "string" || typeof block.name !== "string")
        return new TranslationError(blockPath, "tool_use needs a string id and name");
      toolCalls ??= [];
      toolCalls.push({
        id: block.id,
        type: "function",
        function: { name: block.name, arguments: stringifyToolInput(block.input) },
      });
    } else if (block.type !== "thinking" && block.type !== "redacted_thinking")
      return new TranslationError(`${blockPath}.type`, `${JSON.stringify(block.type)} is not supported`);
  }
  const message: OpenAIChatMessage = { role: "assistant", content: text.length > 0 || !toolCalls ? text : null };
  if (toolCalls) message.tool_calls = toolCalls;
  out.push(message);
  return undefined;
}

function convertTools(body: AnthropicMessagesRequest): OpenAIFunctionTool[] | undefined | TranslationError {
  if (body.tools == null) return undefined;
  if (!Array.isArray(body.tools)) return new TranslationError("tools", "must be an array");
  const tools: OpenAIFunctionTool[] = [];
  for (let i = 0; i < body.tools.length; i++) {
    const tool: unknown = body.tools[i];
    if (!isRecord(tool)) return new TranslationError(`tools[${i}]`, "must be an object");
    if (tool.type != null && tool.type !== "custom")
      return new TranslationError(`tools[${i}].type`, `server tool ${JSON.stringify(tool.type)} is not supported`);
    if (typeof tool.name !== "string") return new TranslationError(`tools[${i}].name`, "must be a string");
    if (!isRecord(tool.input_schema)) return new TranslationError(`tools[${i}].input_schema`, "must be an object");
    const fn: OpenAIFunctionTool["function"] = { name: tool.name, parameters: tool.input_schema };
    if (typeof tool.description === "string") fn.description = tool.description;
    tools.push({ type: "function", function: fn });
  }
  return tools.length > 0 ? tools : undefined;
}

function toolChoice(choice: unknown): OpenAIToolChoice | TranslationError {
  if (isRecord(choice)) {
    switch (choice.type) {
      case "auto":
        return "auto";
      case "any":
        return "required";
      case "none":
        return "none";
      case "tool":
        if (typeof choice.name === "string") return { type: "function", function: { name: choice.name } };
    }
  }
  return new TranslationError("tool_choice", "is not a supported tool choice");
}
