import { hostname } from "node:os";
import type { RequestState } from "../vars/request-vars.js";
import type { VarSource } from "../vars/var-source.js";
import { VERSION } from "../version.js";
import {
  type CounterSeries,
  DEFAULT_LATENCY_BUCKETS,
  DEFAULT_TOKEN_BUCKETS,
  type HistogramSeries,
  labelValue,
  type Metric,
  MetricRegistry,
  observe,
} from "./metrics.js";

/**
 * APISIX's prometheus exporter, metric for metric: names, help texts, label names and their order, and
 * buckets, so dashboards and alerts written for APISIX work on Weir. One registry per gateway instance, as
 * APISIX has one per worker: the gateway creates it and lends it to the prometheus plugin (through the
 * plugin scope) and to LLM calls; the plugin's log phase feeds it, the export server renders it.
 */
const BASE = ["route", "service", "consumer", "node", "request_type", "request_llm_model", "llm_model"];
const LLM_BASE = ["route_id", "service_id", "consumer", "node", "request_type", "request_llm_model", "llm_model"];

/**
 * The labels of each per-request metric, in order, as APISIX's metric_label_map: what the prometheus
 * plugin's metadata may switch off (`disabled_labels`) to bound cardinality.
 */
export const METRIC_LABELS: Readonly<Record<string, readonly string[]>> = {
  http_status: [
    "code",
    "route",
    "matched_uri",
    "matched_host",
    "service",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
    "response_source",
  ],
  http_latency: ["type", ...BASE],
  bandwidth: ["type", ...BASE],
  llm_latency: ["type", ...LLM_BASE],
  llm_prompt_tokens: LLM_BASE,
  llm_completion_tokens: LLM_BASE,
  llm_active_connections: [
    "route",
    "route_id",
    "matched_uri",
    "matched_host",
    "service",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
  ],
  llm_prompt_tokens_dist: LLM_BASE,
  llm_completion_tokens_dist: LLM_BASE,
};

/** Labels that make a series what it is (merging them would mix request and upstream latency). */
export const STRUCTURAL_LABELS: Readonly<Record<string, readonly string[]>> = {
  http_status: ["code"],
  http_latency: ["type"],
  bandwidth: ["type"],
  llm_latency: ["type"],
};

/** The prometheus plugin metadata's shape: `{ disabled_labels: { <metric>: [label, …] } }`. */
export interface MetricsMetadata {
  disabled_labels?: Record<string, string[]>;
}

/**
 * What the metrics read of one request: who it was for (route, service, consumer), when it started, the
 * variables that label and measure it, and the prometheus plugin metadata (`disabled_labels`) of the
 * config it ran with. The proxy's RequestContext and the PluginContext plugins see are both one.
 */
export interface MeteredRequest
  extends VarSource,
    Pick<RequestState, "startTime" | "routeId" | "serviceId" | "consumerName"> {
  pluginMetadata(name: string): unknown;
}

export class GatewayMetrics {
  readonly registry = new MetricRegistry();
  readonly connections = this.registry.gauge("nginx_http_current_connections", "Number of HTTP connections", ["state"]);
  readonly requests = this.registry.gauge(
    "http_requests_total",
    "The total number of client requests since APISIX started",
  );
  readonly etcdReachable = this.registry.gauge(
    "etcd_reachable",
    "Config server etcd reachable from APISIX, 0 is unreachable",
  );
  readonly etcdModifyIndexes = this.registry.gauge("etcd_modify_indexes", "Etcd modify index for APISIX keys", ["key"]);
  readonly nodeInfo = this.registry.gauge("node_info", "Info of APISIX node", ["hostname", "version"]);
  readonly upstreamStatus = this.registry.gauge("upstream_status", "Upstream status from health check", [
    "name",
    "ip",
    "port",
  ]);
  readonly status = this.registry.counter(
    "http_status",
    "HTTP status codes per service in APISIX",
    METRIC_LABELS.http_status,
  );
  readonly latency = this.registry.histogram(
    "http_latency",
    "HTTP request latency in milliseconds per service in APISIX",
    ["type", ...BASE],
    DEFAULT_LATENCY_BUCKETS,
  );
  readonly bandwidth = this.registry.counter("bandwidth", "Total bandwidth in bytes consumed per service in APISIX", [
    "type",
    ...BASE,
  ]);
  readonly llmLatency = this.registry.histogram(
    "llm_latency",
    "LLM request latency in milliseconds",
    ["type", ...LLM_BASE],
    DEFAULT_LATENCY_BUCKETS,
  );
  readonly llmPromptTokens = this.registry.counter("llm_prompt_tokens", "LLM service consumed prompt tokens", LLM_BASE);
  readonly llmCompletionTokens = this.registry.counter(
    "llm_completion_tokens",
    "LLM service consumed completion tokens",
    LLM_BASE,
  );
  readonly llmActiveConnections = this.registry.gauge(
    "llm_active_connections",
    "Number of active connections to LLM service",
    METRIC_LABELS.llm_active_connections,
  );
  readonly llmPromptTokensDist = this.registry.histogram(
    "llm_prompt_tokens_dist",
    "LLM prompt tokens distribution per request",
    LLM_BASE,
    DEFAULT_TOKEN_BUCKETS,
  );
  readonly llmCompletionTokensDist = this.registry.histogram(
    "llm_completion_tokens_dist",
    "LLM completion tokens distribution per request",
    LLM_BASE,
    DEFAULT_TOKEN_BUCKETS,
  );
  // Weir's own, beside APISIX's LLM metrics: what ai-proxy's failover did, per route and instance.
  readonly llmStreamCuts = this.registry.counter(
    "llm_stream_cuts",
    "LLM streams cut after their response started (the client got an error event, not a clean end)",
    ["route_id", "service_id", "instance", "reason"],
  );
  readonly llmInstanceCooldowns = this.registry.counter(
    "llm_instance_cooldowns",
    "Times an AI instance started sitting out (Retry-After on a 429/503, or failures in a row)",
    ["route_id", "service_id", "instance", "reason"],
  );

  /** The series one label set updates, found with one lookup per request instead of one per metric. */
  private readonly bundles = new Map<string, Bundle>();
  /** The metadata the masks were built from, and per metric the label positions it switches off. */
  private metadata: unknown;
  private masks = new Map<string, number[]>();

  /** Follows the plugin metadata: when it changes, series are looked up afresh under the new masks. */
  private applyMetadata(metadata: unknown): void {
    if (metadata === this.metadata) return;
    this.metadata = metadata;
    this.masks = new Map();
    const disabled = (metadata as MetricsMetadata | undefined)?.disabled_labels ?? {};
    for (const [metric, labels] of Object.entries(disabled)) {
      const names = METRIC_LABELS[metric];
      if (names === undefined) continue;
      const positions = labels.map((l) => names.indexOf(l)).filter((i) => i >= 0);
      if (positions.length > 0) this.masks.set(metric, positions);
    }
    this.bundles.clear();
  }

  /** APISIX's get_enabled_label_values_for_metric: a disabled label is sent as "". */
  private masked(metric: string, values: string[]): string[] {
    const mask = this.masks.get(metric);
    if (mask === undefined) return values;
    const out = values.slice();
    for (const i of mask) out[i] = "";
    return out;
  }

  /** The prometheus plugin's log phase: APISIX's http_log. `preferName` labels routes and services by name. */
  record(ctx: MeteredRequest, preferName: boolean): void {
    this.applyMetadata(ctx.pluginMetadata("prometheus"));
    const routeId = ctx.routeId ?? "";
    const serviceId = ctx.serviceId ?? "";
    const route = preferName ? (ctx.var("route_name") ?? routeId) : routeId;
    const service = preferName && serviceId !== "" ? (ctx.var("service_name") ?? serviceId) : serviceId;
    const consumer = ctx.consumerName ?? "";
    const node = nodeOf(ctx.var("upstream_addr"));
    const requestType = ctx.var("request_type") ?? "traditional_http";
    const requestModel = labelValue(ctx.var("request_llm_model"));
    const model = labelValue(ctx.var("llm_model"));
    const key = `${route}\u0000${service}\u0000${consumer}\u0000${node}\u0000${requestType}\u0000${requestModel}\u0000${model}`;
    let bundle = this.bundles.get(key);
    if (bundle === undefined) {
      bundle = this.bundle([route, service, consumer, node, requestType, requestModel, model]);
      this.bundles.set(key, bundle);
    }

    const code = ctx.var("status") ?? "";
    const source = ctx.var("response_source") ?? "apisix";
    const uri = ctx.var("matched_uri") ?? "";
    const host = ctx.var("matched_host") ?? "";
    const statusKey = `${code}\u0000${source}\u0000${uri}\u0000${host}`;
    let status = bundle.statuses.get(statusKey);
    if (status === undefined) {
      status = this.series(this.status, undefined, [
        code,
        route,
        uri,
        host,
        service,
        consumer,
        node,
        requestType,
        requestModel,
        model,
        source,
      ]);
      bundle.statuses.set(statusKey, status);
    }
    status.value++;

    const total = performance.now() - ctx.startTime;
    const upstreamSeconds = ctx.var("upstream_response_time");
    const upstream = upstreamSeconds === undefined ? undefined : Number(upstreamSeconds) * 1000;
    const buckets = this.latency.buckets;
    observe(bundle.latencyRequest, buckets, total);
    // Created on first use: a route whose upstream never answered has no upstream latency series at all.
    if (upstream !== undefined)
      observe((bundle.latencyUpstream ??= this.series(this.latency, "upstream", bundle.labels)), buckets, upstream);
    observe(bundle.latencyApisix, buckets, upstream === undefined ? total : Math.max(0, total - upstream));
    bundle.ingress.value += Number(ctx.var("request_length") ?? 0);
    bundle.egress.value += Number(ctx.var("bytes_sent") ?? 0);

    if (requestType === "ai_chat" || requestType === "ai_stream") this.recordLlm(ctx, bundle, upstream);
  }

  private recordLlm(ctx: MeteredRequest, bundle: Bundle, upstreamMs: number | undefined): void {
    const llm = (bundle.llm ??= this.llmBundle(bundle.labels));
    const ttft = Number(ctx.var("llm_time_to_first_token") ?? 0);
    // As APISIX: error answers carry a time too, but llm_latency measures served responses only.
    if (ttft > 0 && Number(ctx.var("status") ?? 0) < 400) {
      observe(llm.latencyTotal, this.llmLatency.buckets, upstreamMs ?? ttft);
      if (ctx.var("request_type") === "ai_stream")
        observe(
          (llm.latencyTtft ??= this.series(this.llmLatency, "ttft", bundle.labels)),
          this.llmLatency.buckets,
          ttft,
        );
    }
    const prompt = Number(ctx.var("llm_prompt_tokens") ?? 0);
    const completion = Number(ctx.var("llm_completion_tokens") ?? 0);
    if (prompt > 0) llm.prompt.value += prompt;
    if (completion > 0) llm.completion.value += completion;
    observe(llm.promptDist, this.llmPromptTokensDist.buckets, prompt);
    observe(llm.completionDist, this.llmCompletionTokensDist.buckets, completion);
  }

  /**
   * One LLM call in flight (APISIX increments when ai-proxy sends, decrements at the end). The caller keeps
   * the series and hands it back to llmCallEnded, so the end lands on the series the start counted on even
   * when the model name is only known from the answer.
   */
  llmCallStarted(ctx: MeteredRequest, node: string): CounterSeries {
    this.applyMetadata(ctx.pluginMetadata("prometheus"));
    const series = this.llmActiveConnections.get(
      this.masked("llm_active_connections", [
        ctx.var("route_name") ?? "",
        ctx.routeId ?? "",
        ctx.var("matched_uri") ?? "",
        ctx.var("matched_host") ?? "",
        ctx.var("service_name") ?? "",
        ctx.serviceId ?? "",
        ctx.consumerName ?? "",
        node,
        ctx.var("request_type") ?? "",
        labelValue(ctx.var("request_llm_model")),
        "",
      ]),
    );
    series.value++;
    return series;
  }

  llmCallEnded(series: CounterSeries): void {
    series.value--;
  }

  /** An LLM stream was cut after its head went out (`reason` as the llm_stream_cut variable). */
  streamCut(ctx: MeteredRequest, instance: string, reason: string): void {
    this.llmStreamCuts.inc([ctx.routeId ?? "", ctx.serviceId ?? "", instance, reason]);
  }

  /** An AI instance started a sit-out (`reason`: rate_limited, overloaded, failures). */
  instanceCooldown(ctx: MeteredRequest, instance: string, reason: string): void {
    this.llmInstanceCooldowns.inc([ctx.routeId ?? "", ctx.serviceId ?? "", instance, reason]);
  }

  /** Sets the gauges that describe the gateway now (node info, connections, requests, health), then renders. */
  render(snapshot: {
    connections: { active: number; accepted: number; handled: number; writing: number };
    requests: number;
    health: readonly { name: string; nodes: readonly { ip: string; port: number; healthy: boolean }[] }[];
    /** Only when etcd is the config store: whether it answered now, and the modify indexes (APISIX's). */
    etcd?: { reachable: boolean; indexes: Readonly<Record<string, number>> };
  }): string {
    if (snapshot.etcd !== undefined) {
      this.etcdReachable.set([], snapshot.etcd.reachable ? 1 : 0);
      for (const [key, index] of Object.entries(snapshot.etcd.indexes)) this.etcdModifyIndexes.set([key], index);
    }
    this.nodeInfo.set([hostname(), VERSION], 1);
    const c = snapshot.connections;
    this.connections.set(["active"], c.active);
    this.connections.set(["accepted"], c.accepted);
    this.connections.set(["handled"], c.handled);
    this.connections.set(["reading"], 0);
    this.connections.set(["writing"], c.writing);
    this.connections.set(["waiting"], Math.max(0, c.active - c.writing));
    this.requests.set([], snapshot.requests);
    // Rebuilt from the checkers every scrape: a deleted upstream's nodes must not linger.
    this.upstreamStatus.reset();
    for (const checker of snapshot.health)
      for (const n of checker.nodes) this.upstreamStatus.set([checker.name, n.ip, String(n.port)], n.healthy ? 1 : 0);
    return this.registry.render();
  }

  /** The series of `metric` for `labels`, after the leading `type` when given, with disabled labels blanked. */
  private series<S>(metric: Metric<S>, type: string | undefined, labels: string[]): S {
    return metric.get(this.masked(metric.name, type === undefined ? labels : [type, ...labels]));
  }

  private bundle(labels: string[]): Bundle {
    return {
      labels,
      statuses: new Map(),
      latencyRequest: this.series(this.latency, "request", labels),
      latencyUpstream: undefined,
      latencyApisix: this.series(this.latency, "apisix", labels),
      ingress: this.series(this.bandwidth, "ingress", labels),
      egress: this.series(this.bandwidth, "egress", labels),
      llm: undefined,
    };
  }

  private llmBundle(labels: string[]): LlmBundle {
    return {
      latencyTotal: this.series(this.llmLatency, "total", labels),
      latencyTtft: undefined,
      prompt: this.series(this.llmPromptTokens, undefined, labels),
      completion: this.series(this.llmCompletionTokens, undefined, labels),
      promptDist: this.series(this.llmPromptTokensDist, undefined, labels),
      completionDist: this.series(this.llmCompletionTokensDist, undefined, labels),
    };
  }
}

interface Bundle {
  readonly labels: string[];
  readonly statuses: Map<string, CounterSeries>;
  readonly latencyRequest: HistogramSeries;
  latencyUpstream: HistogramSeries | undefined;
  readonly latencyApisix: HistogramSeries;
  readonly ingress: CounterSeries;
  readonly egress: CounterSeries;
  llm: LlmBundle | undefined;
}

interface LlmBundle {
  readonly latencyTotal: HistogramSeries;
  latencyTtft: HistogramSeries | undefined;
  readonly prompt: CounterSeries;
  readonly completion: CounterSeries;
  readonly promptDist: HistogramSeries;
  readonly completionDist: HistogramSeries;
}

/** The upstream's IP from `upstream_addr` (`ip:port`, `[v6]:port`, or a list after retries: the last). */
export function nodeOf(addr: string | undefined): string {
  if (addr === undefined || addr === "") return "";
  const last = addr.includes(",") ? addr.slice(addr.lastIndexOf(",") + 1).trim() : addr;
  if (last.startsWith("[")) return last.slice(1, last.indexOf("]"));
  const colon = last.lastIndexOf(":");
  return colon === -1 ? last : last.slice(0, colon);
}
