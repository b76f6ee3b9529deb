import type { ServerResponse } from "node:http";
import type { StoreEntry } from "../store/types.js";
import { VERSION } from "../version.js";

/** What a handler answers: a status and a JSON body (undefined for APISIX's empty 200s). */
export interface Answer {
  status: number;
  body?: unknown;
}

/** Errors are values with a status; handlers throw them and the server turns them into `{error_msg}`. */
export class AdminError extends Error {
  readonly status: number;
  /** Extra fields APISIX puts next to error_msg (`description` on 401, `req_body` on bad JSON). */
  readonly extra: Record<string, unknown> | undefined;
  constructor(status: number, message: string, extra?: Record<string, unknown>) {
    super(message);
    this.name = "AdminError";
    this.status = status;
    this.extra = extra;
  }
}

export function fail(status: number, message: string, extra?: Record<string, unknown>): never {
  throw new AdminError(status, message, extra);
}

/** APISIX's v3 envelope. APISIX drops the indexes on writes; Weir keeps them on every answer (a superset). */
export function envelope(entry: StoreEntry) {
  return { key: entry.key, value: entry.value, createdIndex: entry.createRevision, modifiedIndex: entry.modRevision };
}

export const KEY_NOT_FOUND: Answer = { status: 404, body: { message: "Key not found" } };

const SERVER = `Weir/${VERSION}`;

export function send(res: ServerResponse, answer: Answer, headers: Record<string, string> = {}): void {
  const body = answer.body === undefined ? "" : `${JSON.stringify(answer.body)}\n`;
  res.writeHead(answer.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    server: SERVER,
    ...headers,
  });
  res.end(body);
}
