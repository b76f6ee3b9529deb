import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Reply } from "./delivery.js";
import type { RequestPlan } from "./faults.js";
import type { ServingView } from "./serving-usage.js";

/** Ids that look like the real ones: a per-instance random stem and a counter keep them unique and cheap. */
export class IdSource {
  private counter = 0;
  private readonly stem = Math.random().toString(36).slice(2, 10);

  next(prefix: string): string {
    this.counter++;
    return `${prefix}${this.stem}${this.counter.toString(36).padStart(8, "0")}`;
  }
}

/** What a handler gets for one request. */
export interface Exchange {
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (an object; handlers check its fields). */
  body: Record<string, unknown>;
  plan: RequestPlan;
  ids: IdSource;
  models: readonly string[];
  /** Seconds since the epoch, as both APIs stamp answers. */
  now: number;
  /** null unless the serving model is on; then handlers attach a ServingRequest and write usage markers. */
  serving: ServingView | null;
}

export type Handler = (ex: Exchange) => Reply;

/** The parts of a provider's API that do not depend on the endpoint: auth, error format, common headers. */
export interface Provider {
  /** undefined when the request may pass. */
  authenticate(headers: IncomingHttpHeaders, apiKey: string): Reply | undefined;
  /** An error answer in this provider's format; `message` overrides the provider's usual wording. */
  error(status: number, message?: string, retryAfterS?: number): Reply;
  /** Headers every answer from this provider carries. */
  headers(ids: IdSource): OutgoingHttpHeaders;
}

/** Strings from `stop`/`stop_sequences`, which may be one string or a list. */
export function stopList(v: unknown): string[] {
  if (typeof v === "string") return [v];
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
}
