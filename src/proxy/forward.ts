import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { relayedResponseHeaders } from "../http/headers.js";
import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import { Attempt, AttemptAborted, type Failure } from "./attempt.js";
import { BodyTooLargeError, type RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";
import { upstreamRequestHeaders } from "./upstream-headers.js";

/**
 * Request bodies up to this size are read whole before the upstream is contacted, as nginx's
 * proxy_request_buffering (on by default, and in APISIX) does: the upstream gets the request in one write,
 * a retry can replay it, and the gateway pays for one buffer instead of a stream pumped chunk by chunk.
 * Larger or chunked bodies stream through with back-pressure, as before.
 */
const BUFFERED_BODY = 1024 * 1024;

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

/**
 * A plain proxied request on the attempt core: retries connect errors and timeouts on untried nodes
 * (APISIX's proxy_next_upstream error timeout) and the statuses of `retry_on`, and streams the answer to
 * the client with back-pressure.
 */
export class UpstreamCall extends Attempt {
  private readonly route: CompiledUpstream;
  private headers: string[] | undefined = undefined;
  private headersForNode: CompiledNode | undefined = undefined;
  private readonly hasBody: boolean;
  private sendTimer: NodeJS.Timeout | undefined = undefined;

  constructor(ctx: RequestContext, upstream: CompiledUpstream, writer: ResponseWriter) {
    super(ctx, writer);
    this.route = upstream;
    const h = ctx.req.headers;
    this.hasBody =
      ctx.body !== undefined ||
      h["transfer-encoding"] !== undefined ||
      (h["content-length"] !== undefined && h["content-length"] !== "0");
  }

  override start(): void {
    const ctx = this.ctx;
    if (this.hasBody && ctx.body === undefined && h1Length(ctx) <= BUFFERED_BODY) {
      ctx.readBody().then(
        () => super.start(),
        (err: unknown) => {
          if (!this.settle()) return;
          if (err instanceof BodyTooLargeError) this.writer.error(ctx, 413, err.message);
          else this.writer.clientGone(ctx);
        },
      );
      return;
    }
    super.start();
  }

  protected next(): Dispatcher.DispatchOptions | undefined {
    const ctx = this.ctx;
    const up = this.route;
    const node = up.balancer.pick(ctx, this.excludedNodes(up));
    if (node === undefined) {
      if (!this.settle()) return undefined;
      if (ctx.attempts === 0) this.writer.error(ctx, 503, "no valid upstream node");
      else this.writer.error(ctx, this.lastFailure.status, "all upstream nodes failed");
      return undefined;
    }
    this.target(up.balancer, node, up, node);
    if (this.headers === undefined || (up.passHost === "node" && this.headersForNode !== node)) {
      this.headers = upstreamRequestHeaders(ctx, up, node, false);
      this.headersForNode = node;
    }
    const readTimeout = up.readTimeoutMs;
    return {
      path: ctx.upstreamUri,
      method: ctx.upstreamMethod as Dispatcher.HttpMethod,
      headers: this.headers,
      body: ctx.body !== undefined ? ctx.body : this.hasBody ? this.streamedBody() : null,
      headersTimeout: readTimeout,
      bodyTimeout: readTimeout,
      // We decide about retries ourselves; undici must not replay a request on its own.
      idempotent: false,
    };
  }

  /**
   * A body too large to buffer, pulled chunk by chunk as the upstream socket drains. nginx's
   * proxy_send_timeout runs between two writes: here between two chunks the upstream took; the client's
   * max_body_size (client-control) is counted on the way. Nothing is buffered.
   */
  private streamedBody(): Readable {
    const cap = this.ctx.maxBodySize;
    return Readable.from(sendBody(this, this.ctx.req, cap !== undefined && cap > 0 ? cap : Number.POSITIVE_INFINITY), {
      objectMode: false,
    });
  }

  /** Called by sendBody for each chunk handed to undici (and once when the body is done, with `done`). */
  bodyProgress(done: boolean): void {
    if (done) this.clearSendTimer();
    else if (this.sendTimer === undefined) {
      this.sendTimer = setTimeout(this.onSendTimeout, this.route.sendTimeoutMs);
      this.sendTimer.unref();
    } else this.sendTimer.refresh();
  }

  protected retryOnStatus(status: number): boolean {
    const up = this.route;
    // After an upstream answered, the request was processed there: repeating it is only safe for
    // idempotent methods, unless the upstream config explicitly allows it (retry_non_idempotent).
    if (up.retryOnStatuses === undefined || !up.retryOnStatuses.has(status)) return false;
    if (!IDEMPOTENT.has(this.ctx.upstreamMethod) && !up.retryNonIdempotent) return false;
    return this.canRetry();
  }

  protected retryOnFailure(failure: Failure): boolean {
    const wanted = failure.timeout ? this.route.retryOnTimeout : this.route.retryOnError;
    return wanted && this.canRetry();
  }

  private canRetry(): boolean {
    if (!this.withinRetryBudget(this.route)) return false;
    // A streamed body that was already (partly) sent cannot be replayed.
    return !(this.hasBody && this.ctx.body === undefined && this.ctx.req.readableDidRead);
  }

  protected onHead(status: number, headers: string[]): void {
    this.clearSendTimer();
    const ctx = this.ctx;
    ctx.status = status;
    ctx.responseHeaders = relayedResponseHeaders(headers);
    this.writer.head(ctx);
  }

  protected onBody(chunk: Buffer): boolean {
    return this.writer.data(this.ctx, chunk);
  }

  protected onEnd(): void {
    if (!this.settle()) return;
    this.writer.end(this.ctx);
  }

  protected onBroken(err: Error): void {
    // The upstream died mid-response: end this one client response, nothing else.
    if (!this.settle()) return;
    this.writer.abort(this.ctx, err);
  }

  protected onGiveUp(failure: Failure): void {
    if (!this.settle()) return;
    this.writer.error(this.ctx, failure.status, failure.timeout ? "upstream timed out" : "upstream unavailable");
  }

  protected onClientGone(): void {
    this.writer.clientGone(this.ctx);
  }

  protected override attemptOver(): void {
    this.clearSendTimer();
  }

  private readonly onSendTimeout = (): void => {
    this.sendTimer = undefined;
    this.controller?.abort(new AttemptAborted("send-timeout", "timed out sending the request body upstream"));
  };

  private clearSendTimer(): void {
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
  }
}

/** The declared body length; Infinity for chunked bodies (they stream). */
function h1Length(ctx: RequestContext): number {
  const h = ctx.req.headers;
  if (h["transfer-encoding"] !== undefined) return Number.POSITIVE_INFINITY;
  const n = Number(h["content-length"]);
  return Number.isFinite(n) ? n : Number.POSITIVE_INFINITY;
}

async function* sendBody(call: UpstreamCall, req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let size = 0;
  // destroyOnReturn false: destroying the request would take the client socket, and the 413, with it.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLargeError(limit);
    call.bodyProgress(false);
    yield chunk;
  }
  call.bodyProgress(true);
}
