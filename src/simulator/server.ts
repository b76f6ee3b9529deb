import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import * as anthropic from "./anthropic.js";
import { type AbortedResponse, Deliveries, type Reply, type Timing } from "./delivery.js";
import { type Behaviour, BehaviourControl, DEFAULT_ANSWER_TOKENS, planRequest } from "./faults.js";
import { openai } from "./openai.js";
import { chatCompletions } from "./openai-chat.js";
import { completions, embeddings, getModel, listModels } from "./openai-misc.js";
import { responses } from "./openai-responses.js";
import { type Exchange, type Handler, IdSource, type Provider } from "./provider.js";
import { type Served, ServingModel, type ServingOptions } from "./serving.js";

export interface SimulatorOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  ttftMs?: number;
  interTokenMs?: number;
  /** When set, every API request must carry it (Bearer for OpenAI paths, x-api-key for Anthropic). */
  apiKey?: string;
  /** Sent back in `x-sim-instance`, so a test can tell which instance answered. */
  name?: string;
  /** Listed by GET /v1/models; any model name is accepted regardless. */
  models?: string[];
  /** Answer length in tokens when the request does not cap it lower (default 32). */
  answerTokens?: number;
  /** Recorded requests kept (the most recent ones); default 10000. */
  maxRecorded?: number;
  /**
   * Turns the serving model on: slots, a queue, a prefix cache and KV capacity decide each answer's timing,
   * usage reports cached tokens, and GET /metrics answers (docs/simulator.md, "Serving model").
   */
  serving?: ServingOptions;
}

export interface RecordedRequest {
  method: string;
  /** Path with query. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The JSON body, or the raw text when it was not JSON, or undefined for requests without a body. */
  body: unknown;
  at: number;
}

export type { AbortedResponse, Behaviour, ServingOptions };

export interface LlmSimulator {
  url: string;
  port: number;
  name: string;
  requests: RecordedRequest[];
  /** Responses the client abandoned before the end, with the token frames sent before it left. */
  aborted: AbortedResponse[];
  /** Behaviour for the next requests (all of them, or `times` of them) until reset(). */
  behave(b: Partial<Behaviour>): void;
  /** Back to the options' behaviour; forgets recorded requests and aborts. */
  reset(): void;
  /** Answers still being generated or held open. */
  readonly inFlight: number;
  close(): Promise<void>;
}

const DEFAULT_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-5"];
const MAX_BODY_BYTES = 32 * 1024 * 1024;
// Longer than typical client pools' idle timeouts, so the client, not the simulator, ends idle connections.
const KEEP_ALIVE_MS = 65_000;

interface Route {
  provider: Provider;
  handler: Handler;
}

const ROUTES = new Map<string, Route>([
  ["POST /v1/chat/completions", { provider: openai, handler: chatCompletions }],
  ["POST /v1/completions", { provider: openai, handler: completions }],
  ["POST /v1/embeddings", { provider: openai, handler: embeddings }],
  ["POST /v1/responses", { provider: openai, handler: responses }],
  ["GET /v1/models", { provider: openai, handler: listModels }],
  ["POST /v1/messages", { provider: anthropic.anthropic, handler: anthropic.messages }],
  ["POST /v1/messages/count_tokens", { provider: anthropic.anthropic, handler: anthropic.countMessageTokens }],
]);
const IMMEDIATE: Timing = { ttftMs: 0, interTokenMs: 0, breakAfter: null };
const ANTHROPIC_MODELS: Route = { provider: anthropic.anthropic, handler: anthropic.listModels };
const MODEL_BY_ID: Route = { provider: openai, handler: getModel };

function route(method: string, path: string, headers: IncomingHttpHeaders): Route | undefined {
  if (method === "GET" && path === "/v1/models" && headers["anthropic-version"] !== undefined) return ANTHROPIC_MODELS;
  const r = ROUTES.get(`${method} ${path}`);
  if (r !== undefined) return r;
  if (method === "GET" && path.startsWith("/v1/models/") && path.length > "/v1/models/".length) return MODEL_BY_ID;
  return undefined;
}

class Simulator implements LlmSimulator {
  url = "";
  port = 0;
  name = "";
  readonly requests: RecordedRequest[] = [];
  readonly aborted: AbortedResponse[] = [];
  private readonly server: Server;
  private readonly deliveries: Deliveries;
  private readonly control: BehaviourControl;
  private readonly ids = new IdSource();
  private readonly models: readonly string[];
  private readonly maxRecorded: number;
  private readonly serving: ServingModel | null;

  constructor(private readonly options: SimulatorOptions) {
    this.deliveries = new Deliveries(this.aborted);
    this.control = new BehaviourControl({
      ttftMs: options.ttftMs ?? 0,
      interTokenMs: options.interTokenMs ?? 0,
      fail: null,
      usage: "include",
      tokens: options.answerTokens ?? DEFAULT_ANSWER_TOKENS,
      retryAfterS: 1,
      times: null,
    });
    this.models = options.models ?? DEFAULT_MODELS;
    this.maxRecorded = options.maxRecorded ?? 10_000;
    this.serving =
      options.serving === undefined
        ? null
        : new ServingModel(options.serving, this.models[0] ?? "model", this.deliveries);
    this.server = createServer(this.onRequest);
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
  }

  async listen(): Promise<void> {
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.url = `http://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
    this.name = this.options.name ?? `llm-sim-${this.port}`;
  }

  get inFlight(): number {
    return this.deliveries.size;
  }

  behave(b: Partial<Behaviour>): void {
    this.control.behave(b);
  }

  reset(): void {
    this.control.reset();
    this.requests.length = 0;
    this.aborted.length = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.deliveries.cancelAll();
      this.serving?.close();
      this.server.closeAllConnections();
    });
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    if (path === "/health" || path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json", "x-sim-instance": this.name });
      res.end('{"status":"ok"}');
      return;
    }
    if (
      this.serving !== null &&
      method === "GET" &&
      this.serving.answerStats(path, req.headers, res, this.options.apiKey)
    )
      return;
    if (method !== "POST") {
      this.handle(req, res, method, path, url, undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on("end", () => {
      const raw = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8");
      this.handle(req, res, method, path, url, size > MAX_BODY_BYTES ? null : raw);
    });
  };

  /** `raw`: the body text; undefined for bodiless methods, null when it was too large. */
  private handle(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    url: string,
    raw: string | null | undefined,
  ): void {
    const headers = req.headers;
    let body: Record<string, unknown> | undefined = raw === undefined ? {} : undefined;
    if (typeof raw === "string") {
      try {
        const parsed: unknown = JSON.parse(raw);
        if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
          body = parsed as Record<string, unknown>;
      } catch {
        // answered below, in the provider's words
      }
    }
    this.record({ method, url, headers, body: body ?? raw ?? undefined, at: Date.now() });

    const r = route(method, path, headers);
    const provider = r?.provider ?? (headers["anthropic-version"] !== undefined ? anthropic.anthropic : openai);
    const outcome = this.answer(r, provider, method, path, headers, raw, body);
    if (outcome === "hold") this.deliveries.hold(res, path);
    else if (this.serving !== null && outcome.reply.serving !== undefined)
      this.serving.send(res, path, outcome.reply as Served, this.headersFor(provider), outcome.timing.breakAfter);
    else this.deliveries.send(res, path, outcome.reply, this.headersFor(provider), outcome.timing);
  }

  /** What to answer, in order: route, auth, x-sim-* plan, injected fault, body checks, the endpoint itself. */
  private answer(
    r: Route | undefined,
    provider: Provider,
    method: string,
    path: string,
    headers: IncomingHttpHeaders,
    raw: string | null | undefined,
    body: Record<string, unknown> | undefined,
  ): { reply: Reply; timing: Timing } | "hold" {
    const at = (reply: Reply, timing = IMMEDIATE) => ({ reply, timing });
    if (r === undefined) return at(provider.error(404, `Invalid URL (${method} ${path})`));
    if (this.options.apiKey !== undefined) {
      const denied = provider.authenticate(headers, this.options.apiKey);
      if (denied !== undefined) return at(denied);
    }
    const plan = planRequest(this.control.next(), headers);
    if (typeof plan === "string") return at(provider.error(400, plan));
    const fault = plan.fault;
    if (fault?.kind === "status") return at(provider.error(fault.status, undefined, plan.retryAfterS));
    if (fault?.kind === "timeout") return "hold";
    if (raw === null) return at(provider.error(413, `Request body exceeds ${MAX_BODY_BYTES} bytes.`));
    if (body === undefined) {
      const message =
        provider === openai
          ? "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
          : "There was an error parsing the body of your request: expected a JSON object.";
      return at(provider.error(400, message));
    }
    const now = Math.floor(Date.now() / 1000);
    // A request that names its own delays keeps them: the engine neither times it nor counts it.
    const serving = plan.fixedTiming ? null : (this.serving?.view ?? null);
    const ex: Exchange = { path, headers, body, plan, ids: this.ids, models: this.models, now, serving };
    const reply = r.handler(ex);
    const refusal = this.serving?.refusal(reply);
    if (refusal !== undefined) return at(provider.error(400, refusal));
    return at(reply, {
      ttftMs: plan.ttftMs,
      interTokenMs: plan.interTokenMs,
      breakAfter: fault?.kind === "broken-stream" ? fault.afterTokens : null,
    });
  }

  private headersFor(provider: Provider) {
    const h = provider.headers(this.ids);
    h["x-sim-instance"] = this.name;
    return h;
  }

  private record(r: RecordedRequest): void {
    // Trimming in halves keeps recording O(1) amortised during long benchmark runs.
    if (this.requests.length >= this.maxRecorded * 2) this.requests.splice(0, this.requests.length - this.maxRecorded);
    this.requests.push(r);
  }
}

/** Starts an OpenAI- and Anthropic-compatible LLM simulator (see docs/simulator.md). */
export async function startLlmSimulator(o: SimulatorOptions = {}): Promise<LlmSimulator> {
  const sim = new Simulator(o);
  await sim.listen();
  return sim;
}
