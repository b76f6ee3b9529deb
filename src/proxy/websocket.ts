import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Dispatcher } from "undici";
import { relayedResponseHeaders } from "../http/headers.js";
import type { CompiledUpstream } from "../upstream/upstream.js";
import { Attempt, type Failure } from "./attempt.js";
import type { RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";
import { upstreamRequestHeaders } from "./upstream-headers.js";

/**
 * A WebSocket (or any HTTP Upgrade) request on a route with `enable_websocket`, on the attempt core: the
 * node is picked like any request's (unhealthy nodes skipped, least_conn counting the tunnel while it is
 * open), the handshake goes out on the node's pool (so the upstream's TLS verification and client
 * certificate apply), and only a `101` opens the tunnel. Any other answer is relayed as an ordinary
 * response and the connection closes, as nginx, Envoy and HAProxy do: a second request on the same client
 * socket never reaches the upstream past the route's rules. Connect errors retry on other nodes as for
 * plain requests; once spliced, bytes flow both ways untouched with back-pressure from pipe().
 */
export class WebSocketTunnel extends Attempt {
  private readonly route: CompiledUpstream;
  private readonly head: Buffer;

  constructor(ctx: RequestContext, upstream: CompiledUpstream, writer: ResponseWriter, head: Buffer) {
    super(ctx, writer);
    this.route = upstream;
    this.head = head;
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
    return {
      path: ctx.upstreamUri,
      method: ctx.upstreamMethod as Dispatcher.HttpMethod,
      // undici writes Connection/Upgrade itself from `upgrade`; the client's other headers go as for any request.
      headers: upstreamRequestHeaders(ctx, up, node, false),
      upgrade: ctx.req.headers.upgrade ?? "websocket",
      headersTimeout: up.readTimeoutMs,
      bodyTimeout: up.readTimeoutMs,
      idempotent: false,
    };
  }

  protected retryOnStatus(): boolean {
    return false;
  }

  protected retryOnFailure(failure: Failure): boolean {
    const wanted = failure.timeout ? this.route.retryOnTimeout : this.route.retryOnError;
    return wanted && this.withinRetryBudget(this.route);
  }

  protected override openTunnel(upstreamSocket: Duplex, headers: string[]): void {
    const ctx = this.ctx;
    const client = ctx.req.socket;
    if (!this.settle() || client.destroyed) {
      upstreamSocket.destroy();
      this.tunnelEnded();
      return;
    }
    let head = "HTTP/1.1 101 Switching Protocols\r\n";
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    ctx.res.detachSocket(client);
    ctx.status = 101;
    ctx.upstreamEndTime = performance.now() - ctx.startTime;
    client.write(`${head}\r\n`);
    if (this.head.length > 0) upstreamSocket.write(this.head);
    upstreamSocket.pipe(client);
    client.pipe(upstreamSocket);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      client.destroy();
      upstreamSocket.destroy();
      this.tunnelEnded();
      this.writer.tunnelClosed(ctx);
    };
    client.once("close", close);
    upstreamSocket.once("close", close);
    client.on("error", close);
    upstreamSocket.on("error", close);
    (upstreamSocket as Socket).setTimeout?.(0);
  }

  // A non-101 answer: relayed whole as an ordinary response; the upgrade handler closes the connection after.
  protected onHead(status: number, headers: string[]): void {
    const ctx = this.ctx;
    ctx.status = status;
    ctx.responseHeaders = relayedResponseHeaders(headers);
    this.writer.head(ctx);
  }

  protected onBody(chunk: Buffer): boolean {
    return this.writer.data(this.ctx, chunk);
  }

  protected onEnd(): void {
    if (this.settle()) this.writer.end(this.ctx);
  }

  protected onBroken(err: Error): void {
    if (this.settle()) this.writer.abort(this.ctx, err);
  }

  protected onGiveUp(failure: Failure): void {
    if (!this.settle()) return;
    this.writer.error(this.ctx, failure.status, failure.timeout ? "upstream timed out" : "upstream unavailable");
  }

  protected onClientGone(): void {
    this.writer.clientGone(this.ctx);
  }
}
