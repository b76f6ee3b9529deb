import type { IncomingHttpHeaders } from "node:http";
import type { Duplex } from "node:stream";
import type { Dispatcher } from "undici";
import type { Balancer, UpstreamNode } from "../upstream/balancer.js";
import type { CompiledNode, CompiledUpstream } from "../upstream/upstream.js";
import { BodyTooLargeError, type RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";

/** Why the gateway itself ended an attempt; undici hands the reason back through onResponseError. */
export class AttemptAborted extends Error {
  constructor(
    readonly reason: "client" | "retry" | "send-timeout" | "stream-duration" | "response-bytes",
    message: string,
  ) {
    super(message);
  }
}

/** A failed attempt as the client and the retry rules see it: nginx's 502 for errors, 504 for timeouts. */
export interface Failure {
  readonly status: number;
  readonly timeout: boolean;
}

const CONNECT_FAILURE: Failure = { status: 502, timeout: false };
const TIMEOUT_FAILURE: Failure = { status: 504, timeout: true };

/**
 * The one attempt loop every way of talking upstream goes through (plain streaming, LLM SSE, WebSocket
 * tunnels): pick a target with the exclusion rules (tried, unhealthy while a healthy one is left), count
 * the attempt, tell the balancer it started and ended (least_conn, ewma), report what the node did to the
 * health checker, dispatch on the node's pooled connections, retry where the consumer's policy allows,
 * cancel the upstream when the client leaves, and finish exactly once. What to do with the bytes is the
 * consumer's: the subclasses implement the hooks below and nothing of the loop.
 *
 * It is undici's dispatch handler itself (the onRequestStart/onResponse* API), so an attempt costs this
 * object and no promise chain.
 */
export abstract class Attempt implements Dispatcher.DispatchHandler {
  protected readonly ctx: RequestContext;
  protected readonly writer: ResponseWriter;
  /** Where the current attempt goes. */
  protected upstream: CompiledUpstream | undefined = undefined;
  protected node: CompiledNode | undefined = undefined;
  /** What the balancer picked (the node, or an AI plan's instance) and which balancer picked it. */
  private picked: UpstreamNode | undefined = undefined;
  private pickedBy: Balancer | undefined = undefined;
  /** Keys of the picks already tried (node keys, or instance names). */
  protected tried: Set<string> | undefined = undefined;
  protected controller: Dispatcher.DispatchController | undefined = undefined;
  protected attemptStart = 0;
  protected firstAttemptStart = 0;
  /** The client's answer is settled (sent, cut, or the client left): nothing more goes to it. */
  protected finished = false;
  /** The current attempt's answer was accepted (its status and headers reached the consumer). */
  protected responseStarted = false;
  /** The last failure, for the answer when no target is left. */
  protected lastFailure: Failure = CONNECT_FAILURE;
  private retrying = false;
  private running = false;

  constructor(ctx: RequestContext, writer: ResponseWriter) {
    this.ctx = ctx;
    this.writer = writer;
    ctx.res.once("close", this.onClientClose);
  }

  // ---- what a consumer implements ------------------------------------------------------------------------

  /**
   * Picks the next target (through `target()`) and returns the request to send it, or undefined after
   * answering the client itself (nothing left to try, a request it cannot build).
   */
  protected abstract next(): Dispatcher.DispatchOptions | undefined;
  /** Whether an answer with this status is dropped for another attempt (retry_on, fallback statuses). */
  protected abstract retryOnStatus(status: number): boolean;
  /** Whether a transport failure before any answer moves on to another target. */
  protected abstract retryOnFailure(failure: Failure, err: Error): boolean;
  /** The upstream's answer starts; `headers` as a flat [name, value, …] list in wire order and case. */
  protected abstract onHead(status: number, headers: string[]): void;
  /** A body chunk; false when the client is full (the core pauses the upstream until 'drain'). */
  protected abstract onBody(chunk: Buffer): boolean;
  /** The upstream's answer is complete. */
  protected abstract onEnd(): void;
  /** The attempt failed after its answer started (a cut stream, a limit hit mid-answer). */
  protected abstract onBroken(err: Error): void;
  /** No attempt is left: answer the client with the failure. */
  protected abstract onGiveUp(failure: Failure, err: Error): void;
  /** The client left before its answer was complete. */
  protected abstract onClientGone(): void;
  /** An upgrade the upstream accepted with 101 (tunnels only; others never ask for one). */
  protected openTunnel(_socket: Duplex, _headers: string[]): void {
    throw new Error("unexpected upgrade");
  }
  /** The target answered `status` (before the retry decision): what it says about the target itself. */
  protected answered(_status: number, _headers: IncomingHttpHeaders): void {}
  /** The request was handed to the pool: timers that run per attempt start here. */
  protected dispatched(): void {}
  /** The attempt is over, whichever way: timers stop here. */
  protected attemptOver(): void {}

  // ---- the loop ---------------------------------------------------------------------------------------------

  start(): void {
    this.firstAttemptStart = performance.now();
    this.attempt();
  }

  /** Records the target of the attempt `next()` is building. */
  protected target(balancer: Balancer, picked: UpstreamNode, upstream: CompiledUpstream, node: CompiledNode): void {
    this.pickedBy = balancer;
    this.picked = picked;
    this.upstream = upstream;
    this.node = node;
  }

  protected attempt(): void {
    const opts = this.next();
    if (opts === undefined) return;
    const ctx = this.ctx;
    const node = this.node!;
    ctx.attempts++;
    ctx.upstreamAddr = node.key;
    this.responseStarted = false;
    this.controller = undefined;
    this.running = true;
    this.pickedBy!.onAttemptStart?.(this.picked!);
    this.attemptStart = performance.now();
    try {
      node.pool.dispatch(opts, this);
    } catch (err) {
      this.onResponseError(undefined, err as Error);
      return;
    }
    this.dispatched();
  }

  /**
   * Nodes of `upstream` the balancer must skip: those already tried and, while some node is still healthy,
   * the unhealthy ones. When every node is unhealthy all are used (APISIX's rule). Allocates only while a
   * node is unhealthy.
   */
  protected excludedNodes(upstream: CompiledUpstream): ReadonlySet<string> | undefined {
    const health = upstream.health;
    if (health === undefined || health.unhealthy.size === 0 || health.unhealthy.size >= upstream.nodes.length) {
      return this.tried;
    }
    const out = new Set(health.unhealthy);
    if (this.tried !== undefined) for (const k of this.tried) out.add(k);
    return out;
  }

  /** Whether another attempt fits the upstream's budget: `retries` and `retry_timeout`. */
  protected withinRetryBudget(upstream: CompiledUpstream): boolean {
    if (this.ctx.attempts > upstream.retries) return false;
    const budget = upstream.retryTimeoutMs;
    return budget <= 0 || performance.now() - this.firstAttemptStart < budget;
  }

  /** The attempt's end for the balancer, once per attempt whatever ended it. */
  private endAttempt(failed: boolean): void {
    if (!this.running) return;
    this.running = false;
    this.attemptOver();
    this.pickedBy!.onAttemptEnd?.(this.picked!, performance.now() - this.attemptStart, failed);
  }

  /**
   * The LLM answer's first token arrived (ewma over AI instances learns time to first token). A buffered
   * answer reports it once complete, after its attempt ended, so this does not require a running attempt.
   */
  protected firstToken(): void {
    this.pickedBy?.onFirstToken?.(this.picked!, performance.now() - this.attemptStart);
  }

  /** Ends a tunnel's attempt when the tunnel closes (least_conn counts a tunnel while it is open). */
  protected tunnelEnded(): void {
    this.endAttempt(false);
  }

  private tryNext(): void {
    (this.tried ??= new Set()).add(this.picked!.key);
    this.attempt();
  }

  /** Settles the client's answer once; false when it already was. */
  protected settle(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.ctx.res.off("close", this.onClientClose);
    return true;
  }

  // ---- undici's handler API ----------------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.finished) controller.abort(new AttemptAborted("client", "client closed the connection"));
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    (this.ctx.upstreamStatuses ??= []).push(statusCode);
    this.upstream!.health?.report(this.node!.key, { kind: "status", status: statusCode });
    this.responseStarted = true;
    this.openTunnel(socket, headerLines(controller, headers));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx interim responses are not relayed
    const ctx = this.ctx;
    (ctx.upstreamStatuses ??= []).push(statusCode);
    this.upstream!.health?.report(this.node!.key, { kind: "status", status: statusCode });
    this.answered(statusCode, headers);
    if (!this.finished && this.retryOnStatus(statusCode)) {
      // Drop this answer and try the next target; undici reports the abort through onResponseError.
      this.retrying = true;
      controller.abort(new AttemptAborted("retry", `upstream answered ${statusCode}`));
      return;
    }
    if (ctx.upstreamHeaderTime === 0) ctx.upstreamHeaderTime = performance.now() - ctx.startTime;
    this.responseStarted = true;
    this.onHead(statusCode, headerLines(controller, headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    if (!this.onBody(chunk) && !controller.aborted) {
      controller.pause();
      this.ctx.res.once("drain", this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.endAttempt(false);
    this.ctx.upstreamEndTime = performance.now() - this.ctx.startTime;
    if (!this.finished) this.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // The client's body broke a cap: its fault, not the node's (no health report, no retry).
    const clientFault = err instanceof BodyTooLargeError;
    this.endAttempt(!clientFault);
    if (this.finished) return; // the client went away; nothing to answer
    if (this.retrying) {
      this.retrying = false;
      this.tryNext();
      return;
    }
    if (clientFault) {
      this.ctx.req.resume(); // discard the rest, as readBody does, so the connection can carry the 413
      if (this.responseStarted) this.onBroken(err);
      else {
        this.settle();
        this.writer.error(this.ctx, 413, err.message);
      }
      return;
    }
    if (this.responseStarted) {
      this.onBroken(err);
      return;
    }
    const failure = failureOf(err);
    this.lastFailure = failure;
    this.upstream?.health?.report(this.node!.key, { kind: failure.timeout ? "timeout" : "tcp" });
    (this.ctx.upstreamStatuses ??= []).push(failure.status);
    if (this.retryOnFailure(failure, err)) {
      this.tryNext();
      return;
    }
    this.onGiveUp(failure, err);
  }

  /** A failure the consumer found after the answer started, judged like a transport failure. */
  protected failureAfterStart(err: Error): Failure {
    return failureOf(err);
  }

  protected readonly onDrain = (): void => {
    this.controller?.resume();
  };

  /** The client closed before the response finished: cancel the upstream request at once. */
  private readonly onClientClose = (): void => {
    if (this.finished) return;
    this.finished = true;
    this.controller?.abort(new AttemptAborted("client", "client closed the connection"));
    this.attemptOver();
    this.onClientGone();
  };
}

function failureOf(err: Error): Failure {
  return isTimeoutError(err) ? TIMEOUT_FAILURE : CONNECT_FAILURE;
}

/** Whether a failed upstream attempt timed out (connect, headers, body, send) rather than broke. */
export function isTimeoutError(err: Error): boolean {
  if (err instanceof AttemptAborted) return err.reason === "send-timeout" || err.reason === "stream-duration";
  const code = (err as { code?: unknown }).code;
  return (
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "ETIMEDOUT"
  );
}

/**
 * The answer's header lines as a flat [name, value, …] list in wire order and case. undici keeps them raw
 * on the controller beside the parsed object it passes; the object is the fallback for a dispatcher that
 * does not.
 */
function headerLines(controller: Dispatcher.DispatchController, parsed: IncomingHttpHeaders): string[] {
  const raw = controller.rawHeaders;
  const out: string[] = [];
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i]!;
      out.push(typeof v === "string" ? v : v.toString("latin1"));
    }
    return out;
  }
  for (const name of Object.keys(parsed)) {
    const v = parsed[name];
    if (Array.isArray(v)) for (const one of v) out.push(name, one);
    else if (v !== undefined) out.push(name, v);
  }
  return out;
}
