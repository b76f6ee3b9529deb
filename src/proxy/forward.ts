import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { isHopByHopResponseHeader } from "../http/headers.js";
import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import { BodyTooLargeError, type RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";
import { upstreamRequestHeaders } from "./upstream-headers.js";

/** Why an attempt failed, as the client and the retry logic see it. */
enum Failure {
  Connect = 502,
  Timeout = 504,
}

class SendTimeoutError extends Error {
  readonly code = "WEIR_SEND_TIMEOUT";
}

class RetryableStatusError extends Error {
  readonly code = "WEIR_RETRY_STATUS";
}

/** Bodies up to this size are kept in memory when retry_on statuses may need to replay them. */
const MAX_REPLAY_BODY = 1024 * 1024;

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

class ClientGoneError extends Error {
  readonly code = "WEIR_CLIENT_GONE";
}

/**
 * One proxied request: picks nodes, dispatches to their pools, retries connect errors and timeouts on
 * untried nodes (APISIX's proxy_next_upstream error timeout), and streams the answer to the client with
 * back-pressure. It is undici's dispatch handler itself (the callback API undici uses internally), so a
 * request costs this object and no promise chain.
 */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  private readonly ctx: RequestContext;
  private readonly upstream: CompiledUpstream;
  private readonly writer: ResponseWriter;
  private node: CompiledNode | undefined = undefined;
  private tried: Set<string> | undefined = undefined;
  private abortAttempt: ((err?: Error) => void) | undefined = undefined;
  private resumeUpstream: (() => void) | undefined = undefined;
  private attemptStart = 0;
  private firstAttemptStart = 0;
  private headers: string[] | undefined = undefined;
  private headersForNode: CompiledNode | undefined = undefined;
  private readonly hasBody: boolean;
  private sendTimer: NodeJS.Timeout | undefined = undefined;
  private responseStarted = false;
  private finished = false;

  constructor(ctx: RequestContext, upstream: CompiledUpstream, writer: ResponseWriter) {
    this.ctx = ctx;
    this.upstream = upstream;
    this.writer = writer;
    const h = ctx.req.headers;
    this.hasBody =
      ctx.body !== undefined ||
      h["transfer-encoding"] !== undefined ||
      (h["content-length"] !== undefined && h["content-length"] !== "0");
    ctx.res.once("close", this.onClientClose);
  }

  start(): void {
    this.firstAttemptStart = performance.now();
    if (this.needsReplayableBody()) {
      // Retrying after an upstream answered means sending the body again: keep a copy, but only when the
      // config asks for such retries and the body is small.
      this.ctx.readBody().then(
        () => this.attempt(),
        () => this.writer.error(this.ctx, 413, "request body too large to keep for retries"),
      );
      return;
    }
    this.attempt();
  }

  private needsReplayableBody(): boolean {
    const up = this.upstream;
    if (up.retryOnStatuses === undefined || !this.hasBody || this.ctx.body !== undefined || up.retries === 0)
      return false;
    if (!IDEMPOTENT.has(this.ctx.upstreamMethod) && !up.retryNonIdempotent) return false;
    const length = Number(this.ctx.req.headers["content-length"] ?? Number.NaN);
    return length <= MAX_REPLAY_BODY;
  }

  private attempt(): void {
    const ctx = this.ctx;
    const node = this.upstream.balancer.pick(ctx, this.excluded()) as CompiledNode | undefined;
    if (node === undefined) {
      if (ctx.attempts === 0) this.writer.error(ctx, 503, "no valid upstream node");
      else this.writer.error(ctx, this.lastFailure, "all upstream nodes failed");
      return;
    }
    this.node = node;
    ctx.attempts++;
    ctx.upstreamAddr = node.key;
    this.upstream.balancer.onAttemptStart?.(node);
    this.attemptStart = performance.now();
    if (this.headers === undefined || (this.upstream.passHost === "node" && this.headersForNode !== node)) {
      this.headers = upstreamRequestHeaders(ctx, this.upstream, node, false);
      this.headersForNode = node;
    }
    const readTimeout = this.upstream.readTimeoutMs;
    const cap = ctx.maxBodySize;
    const body =
      ctx.body !== undefined
        ? ctx.body
        : !this.hasBody
          ? null
          : cap !== undefined && cap > 0
            ? Readable.from(capped(ctx, cap), { objectMode: false })
            : ctx.req;
    try {
      node.pool.dispatch(
        {
          path: ctx.upstreamUri,
          method: ctx.upstreamMethod as Dispatcher.HttpMethod,
          headers: this.headers,
          body,
          headersTimeout: readTimeout,
          bodyTimeout: readTimeout,
          // We decide about retries ourselves; undici must not replay a request on its own.
          idempotent: false,
        },
        this,
      );
    } catch (err) {
      this.onError(err as Error);
      return;
    }
    if (this.hasBody && ctx.body === undefined) {
      this.sendTimer = setTimeout(this.onSendTimeout, this.upstream.sendTimeoutMs);
      this.sendTimer.unref();
    }
  }

  /**
   * Nodes the balancer must skip: those already tried and, while some node is still healthy, the
   * unhealthy ones. When every node is unhealthy all are used (APISIX's rule). Allocates only while a
   * node is unhealthy.
   */
  private excluded(): ReadonlySet<string> | undefined {
    const health = this.upstream.health;
    if (health === undefined || health.unhealthy.size === 0 || health.unhealthy.size >= this.upstream.nodes.length) {
      return this.tried;
    }
    const out = new Set(health.unhealthy);
    if (this.tried !== undefined) for (const k of this.tried) out.add(k);
    return out;
  }

  // ---- undici handler callbacks ---------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    this.abortAttempt = abort;
    if (this.finished) abort(new ClientGoneError("client closed the connection"));
  }

  onBodySent(): void {
    this.sendTimer?.refresh();
  }

  onRequestSent(): void {
    this.clearSendTimer();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx interim responses are not relayed
    this.clearSendTimer();
    const ctx = this.ctx;
    (ctx.upstreamStatuses ??= []).push(statusCode);
    this.upstream.health?.report(this.node!.key, { kind: "status", status: statusCode });
    if (this.upstream.retryOnStatuses?.has(statusCode) && this.canRetryAfterAnswer()) {
      // Drop this answer and try the next node; undici reports the abort through onError.
      this.retryingStatus = true;
      this.abortAttempt?.(new RetryableStatusError(`upstream answered ${statusCode}`));
      return false;
    }
    this.resumeUpstream = resume;
    this.responseStarted = true;
    ctx.upstreamHeaderTime = performance.now() - ctx.startTime;
    ctx.status = statusCode;
    ctx.responseHeaders = responseHeadersOf(rawHeaders);
    this.writer.head(ctx);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ok = this.writer.data(this.ctx, chunk);
    if (!ok) this.ctx.res.once("drain", this.onDrain);
    return ok;
  }

  onComplete(): void {
    this.finished = true;
    const now = performance.now();
    this.ctx.upstreamEndTime = now - this.ctx.startTime;
    this.upstream.balancer.onAttemptEnd?.(this.node!, now - this.attemptStart, false);
    this.ctx.res.off("close", this.onClientClose);
    this.writer.end(this.ctx);
  }

  onError(err: Error): void {
    this.clearSendTimer();
    const ctx = this.ctx;
    const node = this.node;
    if (err instanceof BodyTooLargeError) {
      // The client's fault, not the node's: no health report, no retry.
      if (node !== undefined) this.upstream.balancer.onAttemptEnd?.(node, performance.now() - this.attemptStart, false);
      if (this.finished) return;
      this.finished = true;
      ctx.res.off("close", this.onClientClose);
      ctx.req.resume(); // discard the rest, as readBody does, so the connection can carry the 413
      if (this.responseStarted) this.writer.abort(ctx, err);
      else this.writer.error(ctx, 413, err.message);
      return;
    }
    if (node !== undefined) {
      this.upstream.balancer.onAttemptEnd?.(node, performance.now() - this.attemptStart, true);
    }
    if (this.finished) return; // the client went away; nothing to answer
    if (this.retryingStatus) {
      this.retryingStatus = false;
      if (node !== undefined) (this.tried ??= new Set()).add(node.key);
      this.attempt();
      return;
    }
    if (this.responseStarted) {
      // The upstream died mid-response: end this one client response, nothing else.
      this.finished = true;
      ctx.res.off("close", this.onClientClose);
      this.writer.abort(ctx, err);
      return;
    }
    const failure = classify(err);
    this.lastFailure = failure;
    if (node !== undefined)
      this.upstream.health?.report(node.key, { kind: failure === Failure.Timeout ? "timeout" : "tcp" });
    (ctx.upstreamStatuses ??= []).push(failure);
    const wanted = failure === Failure.Timeout ? this.upstream.retryOnTimeout : this.upstream.retryOnError;
    if (wanted && this.canRetry()) {
      if (node !== undefined) (this.tried ??= new Set()).add(node.key);
      this.attempt();
      return;
    }
    this.finished = true;
    ctx.res.off("close", this.onClientClose);
    this.writer.error(ctx, failure, failure === Failure.Timeout ? "upstream timed out" : "upstream unavailable");
  }

  private lastFailure: Failure = Failure.Connect;
  private retryingStatus = false;

  /**
   * After an upstream answered, the request was processed there: repeating it is only safe for
   * idempotent methods, unless the upstream config explicitly allows it (retry_non_idempotent).
   */
  private canRetryAfterAnswer(): boolean {
    if (!IDEMPOTENT.has(this.ctx.upstreamMethod) && !this.upstream.retryNonIdempotent) return false;
    return this.canRetry();
  }

  private canRetry(): boolean {
    const ctx = this.ctx;
    if (ctx.attempts > this.upstream.retries) return false;
    const budget = this.upstream.retryTimeoutMs;
    if (budget > 0 && performance.now() - this.firstAttemptStart >= budget) return false;
    // A streamed body that was already (partly) sent cannot be replayed.
    if (this.hasBody && ctx.body === undefined && ctx.req.readableDidRead) return false;
    return true;
  }

  private readonly onDrain = (): void => {
    this.resumeUpstream?.();
  };

  private readonly onSendTimeout = (): void => {
    this.sendTimer = undefined;
    this.abortAttempt?.(new SendTimeoutError("timed out sending the request body upstream"));
  };

  /** The client closed before the response finished: cancel the upstream request at once. */
  private readonly onClientClose = (): void => {
    if (this.finished) return;
    this.finished = true;
    this.clearSendTimer();
    this.abortAttempt?.(new ClientGoneError("client closed the connection"));
    this.writer.clientGone(this.ctx);
  };

  private clearSendTimer(): void {
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
  }
}

/**
 * The streamed request body, counted against a per-request cap (client-control): past it the iterator
 * throws, undici aborts the upstream request and reports the error to onError. Nothing is buffered.
 */
async function* capped(ctx: RequestContext, limit: number): AsyncGenerator<Buffer> {
  let size = 0;
  // destroyOnReturn false: destroying the request would take the client socket, and the 413, with it.
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLargeError(limit);
    yield chunk;
  }
}

function classify(err: Error): Failure {
  return isTimeoutError(err) ? Failure.Timeout : Failure.Connect;
}

/** Whether a failed upstream attempt timed out (connect, headers, body, send) rather than broke. */
export function isTimeoutError(err: Error): boolean {
  const code = (err as { code?: string }).code;
  return (
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "WEIR_SEND_TIMEOUT" ||
    code === "ETIMEDOUT"
  );
}

/** Upstream headers as a flat string list, without hop-by-hop fields and the upstream's Server header. */
function responseHeadersOf(raw: Buffer[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString("latin1");
    if (isHopByHopResponseHeader(name)) continue;
    if (name.length === 6 && name.toLowerCase() === "server") continue;
    out.push(name, raw[i + 1]!.toString("latin1"));
  }
  return out;
}
