import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";
import { type CutReason, cutEvent, errorBody, ResponsesTrail } from "../ai/client-errors.js";
import { type CooldownReason, type InstanceCooldown, retryAfterSeconds } from "../ai/cooldown.js";
import { buildUpstreamBody } from "../ai/outgoing.js";
import type { AiInstance, AiRequest } from "../ai/plan.js";
import { isJsonObject, type JsonObject } from "../ai/protocols.js";
import { route } from "../ai/providers.js";
import { type SseEvent, SseParser } from "../ai/sse.js";
import { loadTokenizer, tokenizerReady } from "../ai/tokenizer.js";
import { type StreamTranslation, type Translation, TranslationError, translationFor } from "../ai/translation.js";
import { isHopByHopResponseHeader } from "../http/headers.js";
import { Attempt, AttemptAborted, type Failure, isTimeoutError } from "./attempt.js";
import type { RequestContext } from "./context.js";
import type { ResponseWriter } from "./response.js";
import { aiUpstreamHeaders, aiUpstreamPath } from "./upstream-headers.js";
// The OpenAI chat <-> Anthropic messages bridges register themselves on import.
import "../ai/translate/bridges.js";
import { UsageMeter } from "../ai/usage.js";
import { type GatewayMetrics, nodeOf } from "../observability/gateway-metrics.js";
import type { CounterSeries } from "../observability/metrics.js";

/** Error bodies are small; a provider that sends more than this in a 4xx/5xx is cut there. */
const MAX_ERROR_BODY = 1024 * 1024;
/** Events without a token held back before the first token, at most (then they go out regardless). */
const MAX_HELD_BYTES = 64 * 1024;
/** Non-streamed answers without max_response_bytes are still bounded: nothing legitimate is this big. */
const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

/**
 * One AI request: picks an instance, rewrites the request for its provider (model, credentials, protocol
 * translation, usage injection), streams the answer back event by event with back-pressure while
 * counting tokens, and falls back to the next instance on the statuses the plan names. A fallback only
 * happens before the first byte reached the client: the response head of a stream waits for its first
 * event, so even a stream that breaks before any token can still move to another instance.
 *
 * It runs on the attempt core (attempt.ts) like plain requests and tunnels: picking, health reports,
 * balancer hooks and the client leaving are the core's; what is here is the LLM exchange.
 */
export class LlmCall extends Attempt {
  private readonly ai: AiRequest;
  /** The gateway's registry this call's llm_active_connections series lives in. */
  private readonly metrics: GatewayMetrics;

  private instance: AiInstance | undefined = undefined;
  private translation: Translation | undefined = undefined;
  private preselected: AiInstance | undefined = undefined;
  private fallbacks = 0;

  private streamTimer: NodeJS.Timeout | undefined = undefined;

  private status = 0;
  private responseHeaders: string[] = [];
  private streaming = false;
  private parser: SseParser | undefined = undefined;
  private streamTx: StreamTranslation | undefined = undefined;
  private meter: UsageMeter | undefined = undefined;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private out: Buffer[] = [];
  private headSent = false;
  /** The llm_active_connections series this call counts on while it runs. */
  private activeSeries: CounterSeries | undefined = undefined;
  private ttft: number | undefined = undefined;
  private failureMessage = "AI instance unavailable";
  /** Responses streams only: what a `response.failed` for a cut needs. */
  private trail: ResponsesTrail | undefined = undefined;
  /** What the last pick saw of instances sitting out: how many, the soonest end, whether all for 429s. */
  private coolingCount = 0;
  private coolingUntil = 0;
  private coolingLimited = true;

  constructor(ctx: RequestContext, ai: AiRequest, writer: ResponseWriter, metrics: GatewayMetrics) {
    super(ctx, writer);
    this.ai = ai;
    this.metrics = metrics;
  }

  // ---- picking ------------------------------------------------------------------------------------------

  /**
   * The next instance: the balancer's choice among instances that speak (or can be translated to) the
   * client's protocol, are not tried yet, not ruled out by rate limits, not sitting out, and healthy while
   * any is. The sit-out check reads one field per instance and no clock while none sits out.
   */
  private pick(): AiInstance | undefined {
    const plan = this.ai.plan;
    let excluded: Set<string> | undefined = this.tried === undefined ? undefined : new Set(this.tried);
    const skip = plan.fallback?.rateLimiting === true ? this.ai.skip : undefined;
    let unhealthy: string[] | undefined;
    let usable = 0;
    let now = 0;
    this.coolingCount = 0;
    for (const inst of plan.instances) {
      if (excluded?.has(inst.name)) continue;
      if (route(inst.provider, this.ai.protocol) === undefined || skip?.has(inst.name)) {
        (excluded ??= new Set()).add(inst.name);
        continue;
      }
      const cooldown = inst.cooldown;
      if (cooldown.until !== 0 && cooldown.coolingAt(now === 0 ? (now = performance.now()) : now)) {
        (excluded ??= new Set()).add(inst.name);
        this.noteCooling(cooldown);
        continue;
      }
      const health = inst.upstream.upstream.health;
      if (health !== undefined && health.unhealthy.size > 0) (unhealthy ??= []).push(inst.name);
      else usable++;
    }
    // Unhealthy instances are left out while a healthy one remains (APISIX's rule for upstream nodes).
    if (unhealthy !== undefined && usable > 0) for (const name of unhealthy) (excluded ??= new Set()).add(name);
    return plan.balancer.pick(this.ctx, excluded);
  }

  private noteCooling(cooldown: InstanceCooldown): void {
    if (this.coolingCount === 0) {
      this.coolingUntil = cooldown.until;
      this.coolingLimited = true;
    } else if (cooldown.until < this.coolingUntil) this.coolingUntil = cooldown.until;
    this.coolingCount++;
    if (cooldown.reason !== "rate_limited") this.coolingLimited = false;
  }

  /**
   * Every instance that could serve sits out: answer without asking any, in the client's dialect, with
   * Retry-After at the soonest end. 429 when they all sit out for rate limits (the client should slow
   * down), 503 otherwise (the pool is overloaded or failing).
   */
  private answerCooling(): void {
    const status = this.coolingLimited ? 429 : 503;
    const retryAfter = retryAfterSeconds(this.coolingUntil, performance.now());
    const message = this.coolingLimited
      ? `every AI instance is rate limited; retry after ${retryAfter} s`
      : `every AI instance is cooling down; retry after ${retryAfter} s`;
    this.writer.reply(this.ctx, {
      status,
      body: errorBody(this.ai.protocol, status, message),
      headers: { "retry-after": retryAfter },
    });
  }

  /** A sit-out of the current instance started: count it, per route and instance. */
  private sitOutStarted(reason: CooldownReason | undefined): void {
    if (reason !== undefined) this.metrics.instanceCooldown(this.ctx, this.instance!.name, reason);
  }

  // ---- attempts -----------------------------------------------------------------------------------------

  protected next(): Dispatcher.DispatchOptions | undefined {
    const ctx = this.ctx;
    const inst = this.preselected ?? this.pick();
    this.preselected = undefined;
    if (inst === undefined) {
      if (!this.settle()) return undefined;
      if (ctx.attempts === 0) {
        const noneSpeaks = this.ai.plan.instances.every((i) => route(i.provider, this.ai.protocol) === undefined);
        if (noneSpeaks) {
          const provider = this.ai.plan.instances[0]?.provider.name ?? "";
          this.writer.error(ctx, 400, `provider ${provider} does not support the ${this.ai.protocol} protocol`);
        } else if (this.coolingCount > 0) this.answerCooling();
        else this.writer.error(ctx, 503, "no AI instance is available");
      } else this.account(undefined, () => this.writer.error(ctx, this.lastFailure.status, this.failureMessage));
      return undefined;
    }
    const limited = this.ai.skip?.get(inst.name);
    if (limited !== undefined && this.ai.plan.fallback?.rateLimiting !== true) {
      if (this.settle()) this.writer.reply(ctx, limited);
      return undefined;
    }
    const bridge = route(inst.provider, this.ai.protocol)!;
    const upstream = inst.upstream.upstream;
    const node = upstream.nodes[0]!;
    this.instance = inst;
    this.translation = bridge.translate ? translationFor(this.ai.protocol, bridge.target) : undefined;
    if (bridge.translate && this.translation === undefined) {
      if (this.settle()) this.writer.error(ctx, 400, `no translation from ${this.ai.protocol} to ${bridge.target}`);
      return undefined;
    }
    let body: Buffer;
    try {
      body = buildUpstreamBody(this.ai, inst, bridge.target, bridge.capability, this.translation);
    } catch (err) {
      if (!(err instanceof TranslationError)) throw err;
      if (this.settle()) this.writer.error(ctx, 400, err.message);
      return undefined;
    }
    this.target(this.ai.plan.balancer, inst, upstream, node);
    this.meter = new UsageMeter(bridge.target);
    this.status = 0;
    this.chunks = [];
    this.bufferedBytes = 0;
    this.parser = undefined;
    this.streamTx = undefined;
    ctx.setVar("ai_instance", inst.name);
    this.activeSeries ??= this.metrics.llmCallStarted(ctx, nodeOf(node.key));
    const timeout = this.ai.plan.timeoutMs;
    return {
      path: aiUpstreamPath(ctx, inst, bridge.capability),
      method: "POST",
      headers: aiUpstreamHeaders(ctx, inst, node, body.length),
      body,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      idempotent: false,
    };
  }

  protected override dispatched(): void {
    const limit = this.ai.plan.maxStreamDurationMs;
    if (this.ai.stream && limit !== undefined) {
      this.streamTimer = setTimeout(this.onStreamDeadline, limit);
      this.streamTimer.unref();
    }
  }

  protected override attemptOver(): void {
    if (this.streamTimer !== undefined) {
      clearTimeout(this.streamTimer);
      this.streamTimer = undefined;
    }
  }

  /** Whether a failed attempt (status, or 502/504 for transport errors) may move to another instance. */
  private mayFallBack(status: number): boolean {
    const policy = this.ai.plan.fallback;
    if (policy === undefined || this.headSent) return false;
    const matches =
      (status === 429 && policy.http429) || (status >= 500 && policy.http5xx) || policy.statuses.has(status);
    if (!matches || this.fallbacks >= policy.maxRetries) return false;
    if (performance.now() - this.attemptStart > policy.withinMs) return false;
    (this.tried ??= new Set()).add(this.instance!.name);
    this.preselected = this.pick();
    if (this.preselected === undefined) return false;
    this.fallbacks++;
    return true;
  }

  protected override answered(status: number, headers: IncomingHttpHeaders): void {
    this.sitOutStarted(this.instance!.cooldown.answered(status, headers, this.ai.plan.cooldown, performance.now()));
  }

  /** The instance failed (unreachable, timed out, broke its stream): one more towards its sit-out. */
  private instanceFailed(): void {
    this.sitOutStarted(this.instance!.cooldown.failed(this.ai.plan.cooldown, performance.now()));
  }

  protected retryOnStatus(status: number): boolean {
    if (status < 400 || !this.mayFallBack(status)) return false;
    this.lastFailure = { status, timeout: false };
    this.failureMessage = `AI instance ${this.instance!.name} answered ${status}`;
    return true;
  }

  protected retryOnFailure(failure: Failure, err: Error): boolean {
    const name = this.instance?.name;
    this.failureMessage = failure.timeout ? `AI instance ${name} timed out` : `AI instance ${name} is unreachable`;
    if (this.instance !== undefined && !(err instanceof AttemptAborted)) this.instanceFailed();
    return !(err instanceof AttemptAborted) && this.mayFallBack(failure.status);
  }

  protected onGiveUp(failure: Failure): void {
    if (!this.settle()) return;
    this.account(undefined, () => this.writer.error(this.ctx, failure.status, this.failureMessage));
  }

  protected onHead(status: number, headers: string[]): void {
    this.status = status;
    let contentType = "";
    this.responseHeaders = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const lower = name.toLowerCase();
      if (lower === "content-type") contentType = headers[i + 1]!;
      if (isHopByHopResponseHeader(name) || DROPPED_RESPONSE_HEADERS.has(lower)) continue;
      this.responseHeaders.push(name, headers[i + 1]!);
    }
    this.streaming = status < 300 && contentType.includes("text/event-stream");
    if (this.streaming) {
      this.parser = new SseParser();
      this.streamTx = this.translation?.stream(this.ai.clientWantsUsage);
      this.trail = this.ai.protocol === "openai-responses" ? new ResponsesTrail() : undefined;
      this.responseHeaders.push("content-type", contentType, "cache-control", "no-cache");
    }
  }

  protected onBody(chunk: Buffer): boolean {
    const max = this.ai.plan.maxResponseBytes;
    this.bufferedBytes += chunk.length;
    if (max !== undefined && this.bufferedBytes > max) {
      this.controller?.abort(new AttemptAborted("response-bytes", `AI response exceeded ${max} bytes`));
      return true;
    }
    if (!this.streaming) {
      const cap = this.status >= 400 ? MAX_ERROR_BODY : (max ?? DEFAULT_MAX_BODY);
      if (this.bufferedBytes <= cap) this.chunks.push(chunk);
      return true;
    }
    this.parser!.push(chunk, this.onEvent);
    return this.flushOut();
  }

  protected onEnd(): void {
    if (!this.settle()) return;
    if (this.streaming) {
      this.parser!.flush(this.onEvent);
      if (this.streamTx !== undefined) {
        const tail = this.streamTx.end();
        if (tail !== "") this.out.push(Buffer.from(tail));
      }
      this.flushOut(true);
      if (!this.headSent) this.sendHead();
      this.account(undefined, () => this.writer.end(this.ctx));
      return;
    }
    this.deliverBuffered();
  }

  /** The answer started but broke (or hit a limit) before it was complete. */
  protected onBroken(err: Error): void {
    const aborted = err instanceof AttemptAborted ? err.reason : undefined;
    // Weir's own limits (max_stream_duration_ms, max_response_bytes) cut a working instance: no failure.
    // A 5xx whose body broke was counted as a failure when it answered.
    if (aborted === undefined && this.status < 500) this.instanceFailed();
    if (this.headSent) {
      // Tokens already reached the client: nothing can be retried, only this response cut.
      if (this.settle()) this.cut(err, aborted);
      return;
    }
    const failure = aborted === "response-bytes" ? { status: 502, timeout: false } : this.failureAfterStart(err);
    this.lastFailure = failure;
    this.failureMessage =
      aborted === "response-bytes"
        ? err.message
        : failure.timeout
          ? `AI instance ${this.instance?.name} timed out`
          : `AI instance ${this.instance?.name} broke the stream before any token`;
    if (aborted === undefined && this.mayFallBack(failure.status)) {
      this.attempt();
      return;
    }
    this.onGiveUp(failure);
  }

  /**
   * Ends a stream that broke after tokens went out with the client protocol's own error event, then ends
   * the response cleanly: the SDKs raise the error from the event (a reset socket would read as a network
   * fault, and a `[DONE]` or closing event as a whole answer). Marked in `llm_stream_cut` and counted, so
   * the log's 200 is not taken for a clean one.
   */
  private cut(err: Error, aborted: AttemptAborted["reason"] | undefined): void {
    const ctx = this.ctx;
    const name = this.instance!.name;
    const reason: CutReason =
      aborted === "stream-duration"
        ? "max_stream_duration"
        : aborted === "response-bytes"
          ? "max_response_bytes"
          : isTimeoutError(err)
            ? "upstream_timeout"
            : "upstream_broken";
    const message =
      aborted !== undefined
        ? err.message
        : reason === "upstream_timeout"
          ? `AI instance ${name} timed out mid-stream`
          : `AI instance ${name} broke the stream`;
    ctx.setVar("llm_stream_cut", reason);
    this.metrics.streamCut(ctx, name, reason);
    const event = cutEvent(this.ai.protocol, reason, message, this.trail);
    this.account(undefined, () => {
      if (event === undefined) {
        this.writer.abort(ctx, err);
        return;
      }
      // Events completed before the break still go first; a half-received one is dropped.
      this.out.push(Buffer.from(event));
      this.writer.data(ctx, Buffer.concat(this.out));
      this.out.length = 0;
      this.writer.end(ctx);
    });
  }

  protected onClientGone(): void {
    // The client left: the core cancelled the provider request so it stops generating (and billing).
    this.account(undefined, () => this.writer.clientGone(this.ctx));
  }

  // ---- streaming ----------------------------------------------------------------------------------------

  private readonly onEvent = (event: SseEvent): void => {
    const data = event.data;
    let parsed: JsonObject | undefined;
    if (data.charCodeAt(0) === 123 /* { */) {
      try {
        const v: unknown = JSON.parse(data);
        if (isJsonObject(v)) parsed = v;
      } catch {
        // Not JSON: forwarded as it came, not counted.
      }
    }
    if (this.trail !== undefined && parsed !== undefined) this.trail.see(parsed);
    let firstToken = false;
    if (this.meter!.onStreamEvent(event.event, parsed) && this.ttft === undefined) {
      this.ttft = performance.now() - this.ctx.startTime;
      firstToken = true;
      this.firstToken();
    }
    if (this.streamTx !== undefined) {
      const text = this.streamTx.event(event.event, parsed);
      if (text !== "") this.out.push(Buffer.from(text));
    } else if (!this.isUnaskedUsage(parsed)) {
      this.out.push(event.raw);
    }
    // The first token leaves at once, before the rest of its chunk is parsed: a provider that bursts a
    // whole answer into one chunk must not delay the first token by the cost of counting all the others.
    if (firstToken) {
      this.flushOut();
      this.writer.flush(this.ctx);
    }
  };

  /** Weir asked an OpenAI stream for a usage chunk the client did not ask for: that chunk stays here. */
  private isUnaskedUsage(parsed: JsonObject | undefined): boolean {
    return (
      !this.ai.clientWantsUsage &&
      parsed !== undefined &&
      parsed.usage !== undefined &&
      parsed.usage !== null &&
      Array.isArray(parsed.choices) &&
      parsed.choices.length === 0
    );
  }

  /**
   * Writes the events completed by the last chunk in one write; false when the client is full. Until the
   * first token, events that carry none (OpenAI's role chunk, Anthropic's message_start) wait, so a stream
   * that breaks before any token can still fall back to another instance.
   */
  private flushOut(final = false): boolean {
    const out = this.out;
    // Nothing new, but the first token may have been written mid-chunk and filled the socket.
    if (out.length === 0) return !this.ctx.res.writableNeedDrain;
    if (!this.headSent && !final && this.ttft === undefined && this.heldBytes(out) < MAX_HELD_BYTES) return true;
    if (!this.headSent) this.sendHead();
    const chunk = out.length === 1 ? out[0]! : Buffer.concat(out);
    out.length = 0;
    const ok = this.writer.data(this.ctx, chunk);
    if (!ok) this.ctx.res.once("drain", this.onDrain);
    return ok;
  }

  private heldBytes(out: Buffer[]): number {
    let n = 0;
    for (const b of out) n += b.length;
    return n;
  }

  private sendHead(): void {
    this.headSent = true;
    const ctx = this.ctx;
    ctx.status = this.status;
    this.responseHeaders.push("x-ai-instance", this.instance!.name);
    ctx.responseHeaders = this.responseHeaders;
    this.writer.head(ctx);
  }

  private readonly onStreamDeadline = (): void => {
    this.streamTimer = undefined;
    const limit = this.ai.plan.maxStreamDurationMs;
    this.controller?.abort(new AttemptAborted("stream-duration", `AI stream exceeded ${limit} ms`));
  };

  // ---- non-streamed answers -----------------------------------------------------------------------------

  private deliverBuffered(): void {
    const ctx = this.ctx;
    const raw = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    let payload = raw;
    let parsed: JsonObject | undefined;
    let answerText: string | undefined;
    try {
      const v: unknown = JSON.parse(raw.toString("utf8"));
      if (isJsonObject(v)) parsed = v;
    } catch {
      // A non-JSON answer is passed on untouched.
    }
    if (parsed !== undefined && this.status < 300) {
      this.meter!.onBody(parsed);
      if (this.meter!.usage === undefined) answerText = UsageMeter.bodyText(this.meter!.protocol, parsed);
      if (this.translation !== undefined) payload = Buffer.from(JSON.stringify(this.translation.response(parsed)));
    } else if (this.status >= 400 && this.translation !== undefined) {
      payload = Buffer.from(JSON.stringify(this.translation.error(this.status, parsed ?? raw.toString("utf8"))));
    }
    if (this.ttft === undefined) {
      this.ttft = performance.now() - ctx.startTime;
      if (this.status < 300) this.firstToken();
    }
    this.responseHeaders.push("content-length", String(payload.length));
    if (this.translation !== undefined) this.responseHeaders.push("content-type", "application/json");
    this.account(answerText, () => {
      this.sendHead();
      if (ctx.method !== "HEAD") this.writer.data(ctx, payload);
      this.writer.end(ctx);
    });
  }

  // ---- accounting ---------------------------------------------------------------------------------------

  /**
   * Sets the usage variables, then runs `then` (which ends the response and so the log phase). A tokenizer
   * estimate the first time one is needed waits for the tokenizer to load, once per process.
   */
  private account(answerText: string | undefined, then: () => void): void {
    if (this.activeSeries !== undefined) {
      this.metrics.llmCallEnded(this.activeSeries);
      this.activeSeries = undefined;
    }
    const meter = this.meter;
    if (meter === undefined || this.instance === undefined || this.status === 0 || this.status >= 400) {
      then();
      return;
    }
    if (meter.usage === undefined && !tokenizerReady()) {
      loadTokenizer().then(() => this.account(answerText, then));
      return;
    }
    const usage = meter.finalUsage(this.ai.body, answerText);
    const ctx = this.ctx;
    ctx.setVar("llm_prompt_tokens", String(usage.prompt));
    ctx.setVar("llm_completion_tokens", String(usage.completion));
    ctx.setVar("llm_total_tokens", String(usage.total));
    ctx.setVar("llm_cache_read_input_tokens", String(usage.cacheRead));
    ctx.setVar("llm_cache_creation_input_tokens", String(usage.cacheCreation));
    ctx.setVar("llm_reasoning_tokens", String(usage.reasoning));
    ctx.setVar("llm_usage_estimated", usage.estimated ? "true" : "false");
    ctx.setVar("llm_has_tool_calls", meter.toolCalls ? "true" : "false");
    if (this.ttft !== undefined) ctx.setVar("llm_time_to_first_token", String(Math.round(this.ttft)));
    const model = meter.model ?? this.instance.model ?? (this.ai.body.model as string | undefined);
    if (model !== undefined) ctx.setVar("llm_model", model);
    this.ai.result = { instance: this.instance.name, usage, model, timeToFirstTokenMs: this.ttft };
    then();
  }
}

/** Headers of the provider's answer that must not reach the client as they are. */
const DROPPED_RESPONSE_HEADERS = new Set(["server", "content-length", "content-encoding", "set-cookie"]);
