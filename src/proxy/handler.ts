import { type IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { GatewayMetrics } from "../observability/gateway-metrics.js";
import type { MaybeAsync, PhaseResult, Reply } from "../plugin-api/plugin.js";
import type { PhaseStep } from "../snapshot/plugin-chain.js";
import type { Snapshot } from "../snapshot/snapshot.js";
import { BodyTooLargeError, RequestContext } from "./context.js";
import { UpstreamCall } from "./forward.js";
import { LlmCall } from "./llm-call.js";
import type { ResponseWriter } from "./response.js";
import { WebSocketTunnel } from "./websocket.js";

export interface SnapshotSource {
  readonly current: Snapshot;
}

/**
 * The request lifecycle, in one place: route → rewrite → access → before_proxy → upstream → header_filter
 * → body_filter → log. Plugin phases run synchronously while they return plain values and switch to a
 * promise continuation only when one returns a promise, so routes whose plugins never wait pay nothing
 * for async support.
 */
export class ProxyHandler {
  private readonly snapshots: SnapshotSource;
  private readonly writer: ResponseWriter;
  private readonly onPluginError: (phase: string, name: string, err: unknown) => void;
  /** The owning gateway's metrics, for the LLM calls' llm_active_connections. */
  private readonly metrics: GatewayMetrics;
  inFlight = 0;
  /** Client requests since start (the metrics' http_requests_total). */
  requestsTotal = 0;

  constructor(
    snapshots: SnapshotSource,
    writer: ResponseWriter,
    onPluginError: (phase: string, name: string, err: unknown) => void,
    metrics: GatewayMetrics,
  ) {
    this.snapshots = snapshots;
    this.writer = writer;
    this.onPluginError = onPluginError;
    this.metrics = metrics;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.inFlight++;
    this.requestsTotal++;
    res.once("close", this.onResponseClose);
    const ctx = new RequestContext(req, res, this.snapshots.current);
    if (ctx.snapshot.router.needsBody && hasJsonBody(req)) {
      ctx.readBody().then(
        () => this.route(ctx),
        (err: unknown) => this.bodyFailed(ctx, err),
      );
      return;
    }
    this.route(ctx);
  };

  /** HTTP Upgrade requests (WebSocket): same routing and plugins, then a tunnel instead of a request. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.requestsTotal++;
    const res = new ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    // An answer other than the tunnel (404, a plugin's rejection) ends the connection.
    res.once("finish", () => socket.end());
    socket.on("error", () => socket.destroy());
    const ctx = new RequestContext(req, res, this.snapshots.current);
    ctx.upgradeHead = head;
    this.route(ctx);
  };

  private readonly onResponseClose = (): void => {
    this.inFlight--;
  };

  private route(ctx: RequestContext): void {
    const match = ctx.snapshot.router.match(ctx, ctx);
    if (match !== undefined) {
      ctx.route = match.payload;
      ctx.uriParams = match.params;
      ctx.phases = match.payload.phases;
    }
    if (ctx.phases.preProxy.length === 0) this.afterPlugins(ctx);
    else this.runSteps(ctx, 0);
  }

  /**
   * Runs ctx.phases.preProxy from `index`; a Reply ends the request, a promise suspends the loop until it
   * settles. Right after the route's rewrite steps, a consumer identified by an auth plugin switches the
   * request to the merged consumer phases (APISIX's merge_consumer_route + rewrite_in_consumer).
   */
  private runSteps(ctx: RequestContext, index: number): void {
    let steps = ctx.phases.preProxy;
    for (let i = index; i <= steps.length; i++) {
      if (i === ctx.phases.consumerMergeAt && ctx.consumer !== undefined && ctx.route !== undefined) {
        ctx.phases = ctx.snapshot.consumerPhases(ctx.route, ctx.consumer);
        steps = ctx.phases.preProxy;
        i = -1;
        continue;
      }
      if (i === steps.length) break;
      const step = steps[i]!;
      const e = step.entry;
      if (e.filter !== undefined && !e.filter(ctx)) continue;
      let result: MaybeAsync<PhaseResult>;
      try {
        result = e.plugin[step.phase]!(e.state, ctx);
      } catch (err) {
        this.pluginFailed(ctx, step, err);
        return;
      }
      if (result === undefined) continue;
      if (result instanceof Promise) {
        const next = i + 1;
        result.then(
          (r) => {
            if (r !== undefined) this.answer(ctx, step, r);
            else if (!ctx.res.destroyed) this.runSteps(ctx, next);
            else this.writer.clientGone(ctx);
          },
          (err: unknown) => this.pluginFailed(ctx, step, err),
        );
        return;
      }
      this.answer(ctx, step, result);
      return;
    }
    this.afterPlugins(ctx);
  }

  private afterPlugins(ctx: RequestContext): void {
    if (ctx.route === undefined) this.notFound(ctx);
    else this.proxy(ctx);
  }

  private answer(ctx: RequestContext, step: PhaseStep, reply: Reply): void {
    const body = step.entry.errorResponse;
    this.writer.reply(ctx, body === undefined || reply.status < 400 ? reply : { ...reply, body });
  }

  private proxy(ctx: RequestContext): void {
    if (ctx.aiRequest !== undefined) {
      new LlmCall(ctx, ctx.aiRequest, this.writer, this.metrics).start();
      return;
    }
    const route = ctx.route!;
    const override = ctx.upstreamOverride;
    const upstream =
      override === undefined
        ? route.upstream
        : override.kind === "compiled"
          ? override.upstream
          : ctx.snapshot.upstreams.get(override.id);
    if (upstream === undefined) {
      const why =
        override?.kind === "id"
          ? `failed to find upstream by id: ${override.id}`
          : (route.upstreamError ?? "missing upstream configuration in Route or Service");
      this.writer.error(ctx, 503, why);
      return;
    }
    if (upstream.nodes.length === 0) {
      this.writer.error(ctx, 503, "no valid upstream node");
      return;
    }
    if (ctx.upgradeHead !== undefined) {
      if (!route.enableWebsocket) {
        this.writer.error(ctx, 400, "websocket is not enabled on this route (enable_websocket)");
        return;
      }
      new WebSocketTunnel(ctx, upstream, this.writer, ctx.upgradeHead).start();
      return;
    }
    new UpstreamCall(ctx, upstream, this.writer).start();
  }

  private notFound(ctx: RequestContext): void {
    this.writer.error(ctx, 404, "404 Route Not Found");
  }

  private pluginFailed(ctx: RequestContext, step: PhaseStep, err: unknown): void {
    if (err instanceof BodyTooLargeError) {
      this.writer.error(ctx, 413, err.message);
      return;
    }
    this.onPluginError(step.phase, step.entry.name, err);
    this.writer.error(ctx, 500, "internal error in plugin " + step.entry.name);
  }

  private bodyFailed(ctx: RequestContext, err: unknown): void {
    if (err instanceof BodyTooLargeError) this.writer.error(ctx, 413, err.message);
    else this.writer.error(ctx, 400, "failed to read request body");
  }
}

function hasJsonBody(req: IncomingMessage): boolean {
  const type = req.headers["content-type"];
  if (type === undefined || !type.includes("json")) return false;
  return req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] ?? "0") !== "0";
}
