import type { AiProtocol, JsonObject } from "./protocols.js";

/** Raised when a request cannot be expressed in the target protocol; the message names the field. */
export class TranslationError extends Error {}

/** Turns one upstream stream into the client's protocol, an event at a time. */
export interface StreamTranslation {
  /** One upstream event (`data` undefined for `[DONE]` or non-JSON data); returns SSE text for the client. */
  event(type: string | undefined, data: JsonObject | undefined): string;
  /** The upstream stream ended; returns whatever closing events the client protocol still needs. */
  end(): string;
}

/** A bridge between a client protocol and a provider's protocol, both ways. */
export interface Translation {
  request(body: JsonObject): JsonObject;
  response(body: JsonObject): JsonObject;
  error(status: number, body: unknown): unknown;
  stream(clientWantsUsage: boolean): StreamTranslation;
}

const bridges = new Map<string, Translation>();

/** Registers a bridge; the translate/ modules do this for OpenAI chat <-> Anthropic messages. */
export function registerTranslation(client: AiProtocol, target: AiProtocol, t: Translation): void {
  bridges.set(`${client}>${target}`, t);
}

export function translationFor(client: AiProtocol, target: AiProtocol): Translation | undefined {
  return bridges.get(`${client}>${target}`);
}
