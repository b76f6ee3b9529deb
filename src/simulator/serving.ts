import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from "node:http";
import {
  type Deliveries,
  hangUp,
  type InFlight,
  type JsonReply,
  type Reply,
  SSE_HEADERS,
  type StreamReply,
  writeJson,
} from "./delivery.js";
import { type EngineConfig, engineConfig, REAL_CLOCK, type Sequence, ServingEngine } from "./engine.js";
import {
  llamacppSlots,
  METRICS_DIALECTS,
  type MetricsDialect,
  type ServingMetrics,
  servingMetrics,
} from "./serving-metrics.js";
import { fillUsage, type ServingRequest, type ServingView, type UsageFacts } from "./serving-usage.js";

/** SimulatorOptions.serving: turns the serving model on (docs/simulator.md, "Serving model"). */
export interface ServingOptions extends Partial<EngineConfig> {
  /** Which server's /metrics names to speak; default "vllm". */
  metricsDialect?: MetricsDialect;
  /** The model_name label (vLLM's --served-model-name); default: the first of the simulator's models. */
  servedModelName?: string;
}

/** A reply a handler marked for the serving model. */
export type Served<R extends Reply = Reply> = R & { serving: ServingRequest };

/** The engine, its metrics, and the deliveries that take their timing from it. */
export class ServingModel {
  readonly engine: ServingEngine;
  /** What handlers see in Exchange.serving. */
  readonly view: ServingView;
  private readonly dialect: MetricsDialect;
  private readonly metrics: ServingMetrics;

  constructor(
    options: ServingOptions,
    defaultModel: string,
    readonly deliveries: Deliveries,
  ) {
    const config = engineConfig(options);
    const dialect = options.metricsDialect ?? "vllm";
    if (!METRICS_DIALECTS.includes(dialect)) {
      throw new TypeError(`serving model: metricsDialect must be one of ${METRICS_DIALECTS.join(", ")}`);
    }
    this.dialect = dialect;
    this.metrics = servingMetrics(dialect, config, options.servedModelName ?? defaultModel);
    this.engine = new ServingEngine(config, REAL_CLOCK, this.metrics);
    this.view = { blockTokens: config.blockTokens, timings: dialect === "llamacpp" };
  }

  /** The 400's message for an answer that could never fit in the KV cache; undefined when it fits. */
  refusal(reply: Reply): string | undefined {
    if (reply.serving === undefined) return undefined;
    return this.engine.refusal(reply.serving.prompt.tokens, outputTokens(reply));
  }

  /**
   * GET /metrics, and GET /slots in the llamacpp dialect. False when the path is not one of them here.
   * llama-server guards both with its API key; vLLM and SGLang guard only their API paths.
   */
  answerStats(path: string, headers: IncomingHttpHeaders, res: ServerResponse, apiKey: string | undefined): boolean {
    const llama = this.dialect === "llamacpp";
    if (path !== "/metrics" && !(llama && path === "/slots")) return false;
    if (llama && apiKey !== undefined && headers.authorization !== `Bearer ${apiKey}`) {
      const body = JSON.stringify({ error: { code: 401, message: "Invalid API Key", type: "authentication_error" } });
      res.writeHead(401, { "content-type": "application/json; charset=utf-8" });
      res.end(body);
      return true;
    }
    if (path === "/slots") {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(llamacppSlots(this.engine)));
      return true;
    }
    const headersOut: OutgoingHttpHeaders = { "content-type": this.metrics.contentType };
    if (llama) headersOut["process-start-time-unix"] = String(Math.floor(STARTED_AT / 1000));
    res.writeHead(200, headersOut);
    res.end(this.metrics.render(this.engine));
    return true;
  }

  /** Delivers an answer whose first token and inter-token times come from the engine. */
  send(
    res: ServerResponse,
    path: string,
    reply: Served<Reply>,
    headers: OutgoingHttpHeaders,
    breakAfter: number | null,
  ): void {
    if (reply.kind === "stream") {
      this.deliveries.track(new ServedStream(res, path, reply, breakAfter, this)).start(headers);
    } else if (breakAfter !== null) {
      // broken-stream on a whole answer cuts it at once, with or without the engine; the engine never saw it.
      const body = fillUsage(reply.body, NOT_SERVED(reply.serving));
      this.deliveries.send(res, path, { ...reply, body }, headers, { ttftMs: 0, interTokenMs: 0, breakAfter });
    } else {
      this.deliveries.track(new ServedJson(res, path, reply, headers, this)).start();
    }
  }

  close(): void {
    this.engine.close();
  }
}

const STARTED_AT = Date.now();

const NOT_SERVED = (r: ServingRequest): UsageFacts => ({
  promptTokens: r.prompt.tokens,
  cachedTokens: 0,
  prefillMs: 0,
  decodeMs: 0,
  generated: 0,
});

/** Decode steps an answer takes: one per streamed token event, or its completion tokens; at least one. */
function outputTokens(reply: Reply): number {
  return Math.max(1, reply.kind === "stream" ? reply.frames.length : reply.tokens);
}

function factsOf(s: Sequence): UsageFacts {
  const end = s.finishedAt >= 0 ? s.finishedAt : s.lastTokenAt;
  return {
    promptTokens: s.prompt.tokens,
    cachedTokens: s.cachedTokens,
    prefillMs: s.firstTokenAt >= 0 ? s.firstTokenAt - s.admittedAt : 0,
    decodeMs: s.firstTokenAt >= 0 ? Math.max(0, end - s.firstTokenAt) : 0,
    generated: s.generated,
  };
}

/**
 * A stream paced by the engine: each generated token writes its frame. Unlike the fixed-timing stream it does
 * not wait for `drain`: a real engine keeps decoding for a slow reader and its server buffers the output.
 */
class ServedStream implements InFlight {
  private seq: Sequence | undefined;
  private sent = 0;
  private over = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly path: string,
    private readonly reply: Served<StreamReply>,
    private readonly breakAfter: number | null,
    private readonly model: ServingModel,
  ) {}

  start(headers: OutgoingHttpHeaders): void {
    const { res, reply } = this;
    res.writeHead(200, { ...SSE_HEADERS, ...headers, ...reply.headers });
    // The status leaves at once, as real servers answer before prefill ends.
    res.flushHeaders();
    res.on("close", this.onClose);
    const seq = this.model.engine.submit(reply.serving.prompt, outputTokens(reply), reply.serving.finish, this);
    if (typeof seq === "string") this.cut("");
    else this.seq = seq;
  }

  onToken(index: number): void {
    if (this.over) return;
    const frames = this.reply.frames;
    let chunk = index === 0 ? fillUsage(this.reply.head, factsOf(this.seq!)) : "";
    const limit = this.breakAfter ?? frames.length;
    if (this.sent < frames.length && this.sent < limit) chunk += frames[this.sent++];
    if (this.breakAfter !== null && this.sent >= this.breakAfter) {
      this.cut(chunk);
      return;
    }
    if (chunk !== "") this.res.write(chunk);
  }

  onFinish(): void {
    if (this.over) return;
    this.over = true;
    this.res.off("close", this.onClose);
    this.model.deliveries.done(this);
    this.res.end(fillUsage(this.reply.tail, factsOf(this.seq!)));
  }

  /** The simulator is closing: not a client abort. */
  cancel(): void {
    this.over = true;
    this.res.off("close", this.onClose);
    if (this.seq !== undefined) this.model.engine.cancel(this.seq);
  }

  private cut(chunk: string): void {
    this.over = true;
    this.res.off("close", this.onClose);
    this.model.deliveries.done(this);
    if (this.seq !== undefined) this.model.engine.cancel(this.seq);
    if (chunk !== "") this.res.write(chunk);
    hangUp(this.res);
  }

  private readonly onClose = (): void => {
    if (this.over) return;
    this.over = true;
    if (this.seq !== undefined) this.model.engine.cancel(this.seq);
    this.model.deliveries.done(this);
    this.model.deliveries.abandoned({
      path: this.path,
      id: this.reply.id,
      stream: true,
      tokensSent: this.sent,
      tokensPlanned: this.reply.frames.length,
      fault: null,
    });
  };
}

/** A whole answer sent when the engine has generated its last token. */
class ServedJson implements InFlight {
  private seq: Sequence | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly path: string,
    private readonly reply: Served<JsonReply>,
    private readonly headers: OutgoingHttpHeaders,
    private readonly model: ServingModel,
  ) {}

  start(): void {
    this.res.on("close", this.onClose);
    const { reply } = this;
    const seq = this.model.engine.submit(reply.serving.prompt, outputTokens(reply), reply.serving.finish, this);
    if (typeof seq === "string") {
      this.res.off("close", this.onClose);
      this.model.deliveries.done(this);
      this.res.destroy();
    } else {
      this.seq = seq;
    }
  }

  onToken(): void {}

  onFinish(): void {
    this.res.off("close", this.onClose);
    this.model.deliveries.done(this);
    const body = fillUsage(this.reply.body, factsOf(this.seq!));
    writeJson(this.res, { ...this.reply, body }, this.headers);
  }

  cancel(): void {
    this.res.off("close", this.onClose);
    if (this.seq !== undefined) this.model.engine.cancel(this.seq);
  }

  private readonly onClose = (): void => {
    if (this.seq !== undefined) this.model.engine.cancel(this.seq);
    this.model.deliveries.done(this);
    this.model.deliveries.abandoned({
      path: this.path,
      id: this.reply.id ?? null,
      stream: false,
      tokensSent: 0,
      tokensPlanned: this.reply.tokens,
      fault: null,
    });
  };
}
