/**
 * Registers the two OpenAI chat <-> Anthropic messages bridges with the AI call path; importing this module
 * is what makes them available. Everything protocol-specific lives in the pure modules beside it.
 */
import type { JsonObject } from "../protocols.js";
import { formatSse } from "../sse.js";
import { registerTranslation, type StreamTranslation, type Translation, TranslationError } from "../translation.js";
import { messagesRequestToChat, messagesResponseToChat } from "./anthropic-to-openai.js";
import { anthropicErrorToOpenAI, TranslationError as FieldError, openaiErrorToAnthropic } from "./errors.js";
import { chatRequestToMessages, chatResponseToMessages } from "./openai-to-anthropic.js";
import { AnthropicStreamToChat } from "./stream-anthropic-to-openai.js";
import { ChatStreamToMessages } from "./stream-openai-to-anthropic.js";
import type { AnthropicMessage, AnthropicStreamEvent, OpenAIChatChunk, OpenAIChatCompletion } from "./types.js";

const DONE = "data: [DONE]\n\n";

function unwrap<T>(out: T | FieldError): T {
  if (out instanceof FieldError) throw new TranslationError(`${out.field}: ${out.message}`);
  return out;
}

class ChatFromMessagesStream implements StreamTranslation {
  private readonly tx: AnthropicStreamToChat;
  private doneSent = false;

  constructor(includeUsage: boolean) {
    this.tx = new AnthropicStreamToChat({ includeUsage });
  }

  event(_type: string | undefined, data: JsonObject | undefined): string {
    if (data === undefined || this.doneSent) return "";
    return this.serialise(this.tx.push(data as unknown as AnthropicStreamEvent));
  }

  end(): string {
    return this.doneSent ? "" : this.serialise(this.tx.end());
  }

  private serialise(items: readonly unknown[]): string {
    let text = "";
    for (const item of items) text += formatSse(JSON.stringify(item));
    if (this.tx.finished && !this.doneSent) {
      this.doneSent = true;
      text += DONE;
    }
    return text;
  }
}

class MessagesFromChatStream implements StreamTranslation {
  private readonly tx = new ChatStreamToMessages();

  /** `[DONE]` arrives as undefined data; the closing events wait for end(), which comes right after. */
  event(_type: string | undefined, data: JsonObject | undefined): string {
    return data === undefined ? "" : this.serialise(this.tx.push(data as unknown as OpenAIChatChunk));
  }

  end(): string {
    return this.serialise(this.tx.end());
  }

  private serialise(events: readonly AnthropicStreamEvent[]): string {
    let text = "";
    for (const event of events) text += formatSse(JSON.stringify(event), event.type);
    return text;
  }
}

export const openaiClientToAnthropic: Translation = {
  request: (body) => unwrap(chatRequestToMessages(body as never)) as unknown as JsonObject,
  response: (body) => messagesResponseToChat(body as unknown as AnthropicMessage) as unknown as JsonObject,
  error: (status, body) => anthropicErrorToOpenAI(status, body).body,
  stream: (clientWantsUsage) => new ChatFromMessagesStream(clientWantsUsage),
};

export const anthropicClientToOpenAI: Translation = {
  request: (body) => unwrap(messagesRequestToChat(body as never)) as unknown as JsonObject,
  response: (body) => chatResponseToMessages(body as unknown as OpenAIChatCompletion) as unknown as JsonObject,
  error: (status, body) => openaiErrorToAnthropic(status, body).body,
  stream: () => new MessagesFromChatStream(),
};

registerTranslation("openai-chat", "anthropic-messages", openaiClientToAnthropic);
registerTranslation("anthropic-messages", "openai-chat", anthropicClientToOpenAI);
