/**
 * An answer the gateway gives instead of proxying. Errors are values: a plugin that rejects a request
 * returns a Reply from rewrite/access/before_proxy; it does not throw. It lives in this leaf so every room
 * that produces one (plugins, the AI plan's budget refusals) shares the shape without importing upward.
 */
export interface Reply {
  status: number;
  /** Objects are sent as JSON; strings and buffers as they are. */
  body?: string | Buffer | Record<string, unknown>;
  headers?: Record<string, string>;
}

export type PhaseResult = Reply | undefined | void;
export type MaybeAsync<T> = T | Promise<T>;
