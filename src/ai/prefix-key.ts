import { hash32 } from "../upstream/chash.js";
import { type AiProtocol, isJsonObject, type JsonObject } from "./protocols.js";

/**
 * The `llm_prompt_prefix` request variable: a key for the part of a prompt that stays the same across a
 * conversation's turns, so `chash` on it (with `bounded_load`) sends every turn to the replica whose prefix
 * cache already holds it. A model server caches the prompt's leading tokens (vLLM's and SGLang's prefix
 * caches, llama.cpp's slot cache); turn N+1 repeats turn N's prompt and appends to it.
 *
 * The head is what every turn of one conversation starts with and what tells two conversations apart: the
 * system prompt (or instructions), the tools, and the first user message; later messages are what changes.
 * Conversations that share a system prompt but not a first message are different keys, so they spread
 * over the fleet and each replica still caches the shared system prompt on its first visit. The head is
 * capped at MAX_HEAD_CHARS so a huge first message costs a bounded hash.
 */
const MAX_HEAD_CHARS = 16_384;

export function promptPrefixKey(protocol: AiProtocol, body: JsonObject): string | undefined {
  const parts: unknown[] = [];
  switch (protocol) {
    case "openai-chat": {
      const messages = body.messages;
      if (!Array.isArray(messages)) return undefined;
      // Leading system/developer messages, then the first user message.
      for (const m of messages) {
        if (!isJsonObject(m)) break;
        parts.push(m.role, m.content);
        if (m.role === "user") break;
      }
      break;
    }
    case "anthropic-messages": {
      parts.push(body.system);
      const first = Array.isArray(body.messages) ? body.messages[0] : undefined;
      if (isJsonObject(first)) parts.push(first.role, first.content);
      break;
    }
    case "openai-responses": {
      parts.push(body.instructions);
      const input = body.input;
      parts.push(Array.isArray(input) ? input[0] : input);
      break;
    }
    default:
      return undefined;
  }
  if (body.tools !== undefined) parts.push(body.tools);
  let head = JSON.stringify(parts);
  if (head.length > MAX_HEAD_CHARS) head = head.slice(0, MAX_HEAD_CHARS);
  // Two 32-bit hashes (of the head, and of it salted) make an accidental match between two conversations
  // a one-in-2^64 event; a match would only cost a cache miss anyway.
  return hash32(head).toString(16).padStart(8, "0") + hash32(`~${head}`).toString(16).padStart(8, "0");
}
