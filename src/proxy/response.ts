import { STATUS_CODES } from "node:http";
import type { Reply } from "../plugin-api/plugin.js";
import type { PluginEntry, RequestPhases } from "../snapshot/plugin-chain.js";
import { applyHeaderOps, type RequestContext } from "./context.js";

export type AccessLogger = (ctx: RequestContext) => void;

const JSON_TYPE = "application/json";

/**
 * Everything that goes back to the client: the response head (after header_filter plugins and header
 * operations), body chunks (through body_filter plugins), the end, and the log phase once it is over.
 * Upstream answers, plugin Replies and gateway errors all leave through here, so every plugin sees every
 * response the same way.
 */
export class ResponseWriter {
  private readonly serverHeader: string;
  private readonly accessLog: AccessLogger | undefined;
  private readonly onPluginError: (phase: string, name: string, err: unknown) => void;

  constructor(options: {
    serverHeader: string;
    accessLog?: AccessLogger;
    onPluginError: (phase: string, name: string, err: unknown) => void;
  }) {
    this.serverHeader = options.serverHeader;
    this.accessLog = options.accessLog;
    this.onPluginError = options.onPluginError;
  }

  /** Writes the head of an upstream response; ctx.status and ctx.responseHeaders are set. */
  head(ctx: RequestContext): void {
    const phases = phasesOf(ctx);
    if (phases.headerFilter.length > 0) this.runHeaderFilters(ctx, phases.headerFilter);
    let headers = ctx.responseHeaders!;
    if (ctx.responseHeaderOps !== undefined) headers = applyHeaderOps(headers, ctx.responseHeaderOps);
    if (phases.bodyFilter.length > 0) headers = withoutContentLength(headers);
    headers.push("server", this.serverHeader);
    // Every attempt is listed on errors (APISIX) and also whenever a retry happened (Weir).
    if ((ctx.status >= 500 || ctx.attempts > 1) && ctx.upstreamStatuses !== undefined) {
      headers.push("x-apisix-upstream-status", ctx.upstreamStatuses.join(", "));
    }
    ctx.res.writeHead(ctx.status, headers);
  }

  /** Returns false when the client socket is full; the caller pauses the upstream until 'drain'. */
  data(ctx: RequestContext, chunk: Buffer): boolean {
    const filters = phasesOf(ctx).bodyFilter;
    if (filters.length > 0) chunk = this.runBodyFilters(ctx, filters, chunk, false);
    ctx.bytesSent += chunk.length;
    if (chunk.length === 0) return true;
    return ctx.res.write(chunk);
  }

  /**
   * Sends what was written so far now. node:http corks the socket on a response's first write and
   * uncorks on the next tick, so without this a first token written mid-chunk would wait until the whole
   * chunk (a burst of events from a fast model server) was parsed and counted.
   */
  flush(ctx: RequestContext): void {
    ctx.res.uncork();
  }

  end(ctx: RequestContext): void {
    const filters = phasesOf(ctx).bodyFilter;
    if (filters.length > 0) {
      const last = this.runBodyFilters(ctx, filters, EMPTY, true);
      ctx.bytesSent += last.length;
      ctx.res.end(last.length > 0 ? last : undefined);
    } else {
      ctx.res.end();
    }
    this.log(ctx);
  }

  /** A plugin answered instead of the upstream. */
  reply(ctx: RequestContext, reply: Reply): void {
    if (ctx.res.headersSent || ctx.res.destroyed) return;
    let body: Buffer | string | undefined;
    let type: string | undefined;
    if (reply.body === undefined) {
      // A bare rejection (limit-req without rejected_msg…) still gets APISIX's JSON error shape.
      if (reply.status >= 400) {
        body = `{"error_msg":${JSON.stringify(STATUS_CODES[reply.status] ?? "error")}}\n`;
        type = JSON_TYPE;
      }
    } else if (typeof reply.body === "string" || Buffer.isBuffer(reply.body)) body = reply.body;
    else {
      body = JSON.stringify(reply.body);
      type = JSON_TYPE;
    }
    const headers: string[] = [];
    if (type !== undefined) headers.push("content-type", type);
    if (reply.headers !== undefined) {
      for (const name of Object.keys(reply.headers)) headers.push(name, reply.headers[name]!);
    }
    this.send(ctx, reply.status, headers, body);
  }

  /** The gateway itself answers with an error: `{"error_msg": message}` as APISIX's JSON errors. */
  error(ctx: RequestContext, status: number, message: string): void {
    if (ctx.res.headersSent || ctx.res.destroyed) {
      this.abort(ctx, new Error(message));
      return;
    }
    this.send(ctx, status, ["content-type", JSON_TYPE], `{"error_msg":${JSON.stringify(message)}}\n`);
  }

  /** The upstream failed after the head went out: cut this one response so the client sees it broke. */
  abort(ctx: RequestContext, _err: Error): void {
    ctx.res.destroy();
    this.log(ctx);
  }

  /** The client disconnected first; nginx logs such requests as 499. */
  clientGone(ctx: RequestContext): void {
    if (!ctx.res.headersSent) ctx.status = 499;
    this.log(ctx);
  }

  /** A WebSocket tunnel ended: only the log phase is left to run. */
  tunnelClosed(ctx: RequestContext): void {
    this.log(ctx);
  }

  private send(ctx: RequestContext, status: number, headers: string[], body: Buffer | string | undefined): void {
    ctx.status = status;
    ctx.responseHeaders = headers;
    const filters = phasesOf(ctx).bodyFilter;
    if (filters.length === 0 && body !== undefined) {
      headers.push("content-length", String(Buffer.byteLength(body)));
    }
    this.head(ctx);
    if (body !== undefined && ctx.method !== "HEAD")
      this.data(ctx, typeof body === "string" ? Buffer.from(body) : body);
    this.end(ctx);
  }

  private runHeaderFilters(ctx: RequestContext, filters: readonly PluginEntry[]): void {
    for (const e of filters) {
      if (e.filter !== undefined && !e.filter(ctx)) continue;
      try {
        e.plugin.header_filter!(e.state, ctx);
      } catch (err) {
        this.onPluginError("header_filter", e.name, err);
      }
    }
  }

  private runBodyFilters(ctx: RequestContext, filters: readonly PluginEntry[], chunk: Buffer, eof: boolean): Buffer {
    for (const e of filters) {
      if (e.filter !== undefined && !e.filter(ctx)) continue;
      try {
        chunk = e.plugin.body_filter!(e.state, ctx, chunk, eof);
      } catch (err) {
        this.onPluginError("body_filter", e.name, err);
      }
    }
    return chunk;
  }

  private log(ctx: RequestContext): void {
    const plugins = phasesOf(ctx).log;
    for (const e of plugins) {
      if (e.filter !== undefined && !e.filter(ctx)) continue;
      try {
        e.plugin.log!(e.state, ctx);
      } catch (err) {
        this.onPluginError("log", e.name, err);
      }
    }
    this.accessLog?.(ctx);
  }
}

const EMPTY = Buffer.alloc(0);

function phasesOf(ctx: RequestContext): RequestPhases {
  return ctx.phases;
}

function withoutContentLength(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === "content-length") continue;
    out.push(name, headers[i + 1]!);
  }
  return out;
}
