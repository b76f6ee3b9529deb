import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import type { RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";
import { upstreamRequestHeaders } from "./upstream-headers.js";

/**
 * A WebSocket (or any HTTP Upgrade) request on a route with `enable_websocket`: connect to a node, replay
 * the handshake with the gateway's headers, then splice the two sockets. Until the upstream connection
 * exists the client still gets ordinary HTTP errors (and retries on other nodes, as for plain requests);
 * after that bytes flow both ways untouched, with back-pressure from pipe().
 */
export class WebSocketTunnel {
  private tried: Set<string> | undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly upstream: CompiledUpstream,
    private readonly writer: ResponseWriter,
    private readonly head: Buffer,
  ) {}

  start(): void {
    const ctx = this.ctx;
    const node = this.upstream.balancer.pick(ctx, this.tried) as CompiledNode | undefined;
    if (node === undefined) {
      this.writer.error(
        ctx,
        ctx.attempts === 0 ? 503 : 502,
        ctx.attempts === 0 ? "no valid upstream node" : "all upstream nodes failed",
      );
      return;
    }
    ctx.attempts++;
    ctx.upstreamAddr = node.key;
    const upstreamSocket: Socket =
      this.upstream.scheme === "https"
        ? tlsConnect({ host: node.host, port: node.port, servername: node.host })
        : netConnect(node.port, node.host);
    upstreamSocket.setTimeout(this.upstream.connectTimeoutMs, () =>
      upstreamSocket.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
    );
    let connected = false;
    upstreamSocket.once(this.upstream.scheme === "https" ? "secureConnect" : "connect", () => {
      connected = true;
      upstreamSocket.setTimeout(0);
      this.splice(node, upstreamSocket);
    });
    upstreamSocket.once("error", (err: NodeJS.ErrnoException) => {
      if (connected) return;
      (ctx.upstreamStatuses ??= []).push(err.code === "ETIMEDOUT" ? 504 : 502);
      if (ctx.attempts <= this.upstream.retries && !ctx.res.destroyed) {
        (this.tried ??= new Set()).add(node.key);
        this.start();
      } else {
        this.writer.error(ctx, err.code === "ETIMEDOUT" ? 504 : 502, "upstream unavailable");
      }
    });
  }

  private splice(node: CompiledNode, upstreamSocket: Socket): void {
    const ctx = this.ctx;
    const client = ctx.req.socket;
    if (client.destroyed) {
      upstreamSocket.destroy();
      return;
    }
    const headers = upstreamRequestHeaders(ctx, this.upstream, node, true);
    let head = `${ctx.upstreamMethod} ${ctx.upstreamUri} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    upstreamSocket.write(`${head}\r\n`);
    if (this.head.length > 0) upstreamSocket.write(this.head);
    ctx.res.detachSocket(client);
    ctx.status = 101;
    upstreamSocket.pipe(client);
    client.pipe(upstreamSocket);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      client.destroy();
      upstreamSocket.destroy();
      this.writer.tunnelClosed(ctx);
    };
    client.once("close", close);
    upstreamSocket.once("close", close);
    client.on("error", close);
    upstreamSocket.on("error", close);
  }
}
