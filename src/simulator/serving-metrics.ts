import type { EngineConfig, EngineObserver, FinishReason, Sequence, ServingEngine } from "./engine.js";
import { cppNumber, Exposition, Histogram, type Labels } from "./exposition.js";

/**
 * GET /metrics computed from the serving model, named as the real servers name them. Names, types, HELP texts
 * and buckets were read from their sources: vLLM vllm/v1/metrics/loggers.py (PrometheusStatLogger), SGLang
 * python/sglang/srt/metrics/collector.py (SchedulerMetricsCollector, TokenizerMetricsCollector), llama.cpp
 * tools/server (the /metrics handler and server_slot::to_json).
 */
export type MetricsDialect = "vllm" | "sglang" | "llamacpp";
export const METRICS_DIALECTS: readonly MetricsDialect[] = ["vllm", "sglang", "llamacpp"];

export interface ServingMetrics extends EngineObserver {
  readonly contentType: string;
  render(engine: ServingEngine): string;
}

export function servingMetrics(dialect: MetricsDialect, config: EngineConfig, modelName: string): ServingMetrics {
  if (dialect === "sglang") return new SglangMetrics(modelName);
  if (dialect === "llamacpp") return new LlamacppMetrics();
  return new VllmMetrics(config, modelName);
}

const seconds = (ms: number) => ms / 1000;

/** vLLM's build_1_2_5_buckets(max_model_len): 1, 2, 5, 10, 20, 50, … up to the limit. */
function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let p = 1; p <= max; p *= 10) for (const m of [1, 2, 5]) if (m * p <= max) out.push(m * p);
  return out;
}

const VLLM_TTFT = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
const VLLM_ITL = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const VLLM_LATENCY = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
  7680.0,
];
const VLLM_ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** vLLM v1 (0.10+ names; gpu_cache_usage_perc is the name 0.9 deprecated, kept for older scrapers). */
class VllmMetrics implements ServingMetrics {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  // prometheus_client prints labels sorted: engine before model_name.
  private readonly labels: Labels;
  private readonly ttft = new Histogram(VLLM_TTFT);
  private readonly itl = new Histogram(VLLM_ITL);
  private readonly tpot = new Histogram(VLLM_ITL);
  private readonly e2e = new Histogram(VLLM_LATENCY);
  private readonly queue = new Histogram(VLLM_LATENCY);
  private readonly inference = new Histogram(VLLM_LATENCY);
  private readonly prefill = new Histogram(VLLM_LATENCY);
  private readonly decode = new Histogram(VLLM_LATENCY);
  private readonly promptTokens: Histogram;
  private readonly generationTokens: Histogram;
  private readonly iterationTokens = new Histogram(VLLM_ITERATION);

  constructor(
    private readonly config: EngineConfig,
    modelName: string,
  ) {
    this.labels = [
      ["engine", "0"],
      ["model_name", modelName],
    ];
    this.promptTokens = new Histogram(buckets125(config.kvCapacityTokens));
    this.generationTokens = new Histogram(buckets125(config.kvCapacityTokens));
  }

  admitted(): void {}

  firstToken(s: Sequence): void {
    this.ttft.observe(seconds(s.firstTokenAt - s.arrivedAt));
  }

  token(_s: Sequence, intervalMs: number): void {
    this.itl.observe(seconds(intervalMs));
  }

  step(_sequences: number, tokens: number): void {
    this.iterationTokens.observe(tokens);
  }

  finished(s: Sequence): void {
    // Observed for every request the engine scheduled, aborted ones included, as vLLM's finished_requests are.
    if (s.admittedAt < 0) return;
    const end = s.finishedAt;
    this.e2e.observe(seconds(end - s.arrivedAt));
    this.queue.observe(seconds(s.admittedAt - s.arrivedAt));
    this.inference.observe(seconds(end - s.admittedAt));
    if (s.firstTokenAt >= 0) {
      this.prefill.observe(seconds(s.firstTokenAt - s.admittedAt));
      this.decode.observe(seconds(end - s.firstTokenAt));
      if (s.generated > 1) this.tpot.observe(seconds((end - s.firstTokenAt) / (s.generated - 1)));
    }
    this.promptTokens.observe(s.prompt.tokens);
    this.generationTokens.observe(s.generated);
  }

  render(engine: ServingEngine): string {
    const x = new Exposition();
    const l = this.labels;
    const t = engine.totals;
    x.metric(
      "vllm:num_requests_running",
      "gauge",
      "Number of requests in model execution batches.",
      engine.numRunning,
      l,
    );
    x.metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", engine.numWaiting, l);
    x.metric(
      "vllm:gpu_cache_usage_perc",
      "gauge",
      "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
      engine.kvUsage,
      l,
    );
    x.metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", engine.kvUsage, l);
    x.metric(
      "vllm:prefix_cache_queries_total",
      "counter",
      "Prefix cache queries, in terms of number of queried tokens.",
      t.prefixQueries,
      l,
    );
    x.metric(
      "vllm:prefix_cache_hits_total",
      "counter",
      "Prefix cache hits, in terms of number of cached tokens.",
      t.prefixHits,
      l,
    );
    x.metric(
      "vllm:num_preemptions_total",
      "counter",
      "Cumulative number of preemption from the engine.",
      t.preemptions,
      l,
    );
    x.metric("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", t.promptTokens, l);
    x.metric(
      "vllm:generation_tokens_total",
      "counter",
      "Number of generation tokens processed.",
      t.generationTokens,
      l,
    );
    x.header("vllm:request_success_total", "counter", "Count of successfully processed requests.");
    for (const reason of ["stop", "length", "abort"] as const) {
      x.sample("vllm:request_success_total", [l[0]!, ["finished_reason", reason], l[1]!], t.finished[reason]);
    }
    x.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", this.promptTokens, l);
    x.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", this.generationTokens, l);
    x.histogram(
      "vllm:iteration_tokens_total",
      "Histogram of number of tokens per engine_step.",
      this.iterationTokens,
      l,
    );
    x.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.ttft, l);
    x.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", this.itl, l);
    x.histogram(
      "vllm:request_time_per_output_token_seconds",
      "Histogram of time_per_output_token_seconds per request.",
      this.tpot,
      l,
    );
    x.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", this.e2e, l);
    x.histogram(
      "vllm:request_queue_time_seconds",
      "Histogram of time spent in WAITING phase for request.",
      this.queue,
      l,
    );
    x.histogram(
      "vllm:request_inference_time_seconds",
      "Histogram of time spent in RUNNING phase for request.",
      this.inference,
      l,
    );
    x.histogram(
      "vllm:request_prefill_time_seconds",
      "Histogram of time spent in PREFILL phase for request.",
      this.prefill,
      l,
    );
    x.histogram(
      "vllm:request_decode_time_seconds",
      "Histogram of time spent in DECODE phase for request.",
      this.decode,
      l,
    );
    const c = this.config;
    x.metric("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig", 1, [
      ["block_size", String(c.blockTokens)],
      ["enable_prefix_caching", c.prefixCacheBlocks > 0 ? "True" : "False"],
      ["engine", "0"],
      ["num_gpu_blocks", String(Math.floor(c.kvCapacityTokens / c.blockTokens))],
    ]);
    return x.text();
  }
}

const SGLANG_TTFT = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400];
const SGLANG_E2E = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400];
const SGLANG_ITL = [
  0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0,
  2.0, 4.0, 6.0, 8.0,
];

/** SGLang's scheduler gauges (labelled as one unified engine, tp and pp rank 0) and tokenizer counters. */
class SglangMetrics implements ServingMetrics {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  private readonly scheduler: Labels;
  private readonly tokenizer: Labels;
  private readonly ttft = new Histogram(SGLANG_TTFT);
  private readonly itl = new Histogram(SGLANG_ITL);
  private readonly e2e = new Histogram(SGLANG_E2E);
  private cachedTokens = 0;
  private requests = 0;
  private aborted = 0;
  // SGLang's gen_throughput is tokens over the interval between its decode log lines; here, over about a second.
  private windowStart = -1;
  private windowTokens = 0;
  private throughput = 0;

  constructor(modelName: string) {
    this.scheduler = [
      ["engine_type", "unified"],
      ["model_name", modelName],
      ["pp_rank", "0"],
      ["tp_rank", "0"],
    ];
    this.tokenizer = [["model_name", modelName]];
  }

  admitted(s: Sequence): void {
    this.cachedTokens += s.cachedTokens;
  }

  firstToken(s: Sequence): void {
    this.ttft.observe(seconds(s.firstTokenAt - s.arrivedAt));
    this.count(s.firstTokenAt);
  }

  token(s: Sequence, intervalMs: number): void {
    this.itl.observe(seconds(intervalMs));
    this.count(s.lastTokenAt);
  }

  step(): void {}

  finished(s: Sequence, reason: FinishReason): void {
    this.requests++;
    if (reason === "abort") {
      this.aborted++;
      return;
    }
    this.e2e.observe(seconds(s.finishedAt - s.arrivedAt));
  }

  private count(now: number): void {
    if (this.windowStart < 0) this.windowStart = now;
    this.windowTokens++;
    const elapsed = now - this.windowStart;
    if (elapsed >= 1000) {
      this.throughput = (this.windowTokens * 1000) / elapsed;
      this.windowStart = now;
      this.windowTokens = 0;
    }
  }

  render(engine: ServingEngine): string {
    const x = new Exposition();
    const s = this.scheduler;
    const k = this.tokenizer;
    const t = engine.totals;
    x.metric("sglang:num_running_reqs", "gauge", "The number of running requests.", engine.numRunning, s);
    x.metric("sglang:num_used_tokens", "gauge", "The number of used tokens.", engine.kvUsedTokens, s);
    x.metric("sglang:token_usage", "gauge", "The token usage.", engine.kvUsage, s);
    x.metric("sglang:gen_throughput", "gauge", "The generation throughput (token/s).", this.throughput, s);
    x.metric("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", engine.numWaiting, s);
    x.metric("sglang:cache_hit_rate", "gauge", "The prefix cache hit rate.", engine.lastBatchHitRate, s);
    x.metric(
      "sglang:max_total_num_tokens",
      "gauge",
      "Maximum total number of tokens in the KV cache pool.",
      engine.config.kvCapacityTokens,
      s,
    );
    x.metric("sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.", t.promptTokens, k);
    x.metric(
      "sglang:generation_tokens_total",
      "counter",
      "Number of generation tokens processed.",
      t.generationTokens,
      k,
    );
    x.metric("sglang:cached_tokens_total", "counter", "Number of cached prompt tokens.", this.cachedTokens, k);
    x.metric("sglang:num_requests_total", "counter", "Number of requests processed.", this.requests, k);
    x.metric("sglang:num_aborted_requests_total", "counter", "Number of requests aborted.", this.aborted, k);
    x.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.ttft, k);
    x.histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", this.itl, k);
    x.histogram(
      "sglang:e2e_request_latency_seconds",
      "Histogram of End-to-end request latency in seconds",
      this.e2e,
      k,
    );
    return x.text();
  }
}

/**
 * llama.cpp's llama-server --metrics: no labels, counters then gauges, numbers as C++ prints doubles. The
 * throughput gauges cover the time since the previous scrape, as llama.cpp resets its bucket on every /metrics
 * call. kv_cache_usage_ratio and kv_cache_tokens are the names older builds exported (2025 builds dropped them);
 * they are kept because load-aware routers read them.
 */
class LlamacppMetrics implements ServingMetrics {
  readonly contentType = "text/plain; version=0.0.4";
  private bucketPromptTokens = 0;
  private bucketPromptMs = 0;
  private bucketPredicted = 0;
  private bucketPredictedMs = 0;

  admitted(): void {}
  firstToken(): void {}
  token(): void {}
  step(): void {}

  finished(s: Sequence): void {
    if (s.firstTokenAt < 0) return;
    this.bucketPromptTokens += s.prompt.tokens - s.cachedTokens;
    this.bucketPromptMs += s.firstTokenAt - s.admittedAt;
    this.bucketPredicted += s.generated;
    this.bucketPredictedMs += s.finishedAt - s.firstTokenAt;
  }

  render(engine: ServingEngine): string {
    const x = new Exposition(cppNumber);
    const t = engine.totals;
    const counters: [string, string, number][] = [
      ["prompt_tokens_total", "Number of prompt tokens processed.", t.computedPromptTokens],
      ["prompt_seconds_total", "Prompt process time", Math.floor(t.prefillMs) / 1e3],
      ["tokens_predicted_total", "Number of generation tokens processed.", t.generationTokens],
      ["tokens_predicted_seconds_total", "Predict process time", Math.floor(t.decodeMs) / 1e3],
      ["n_decode_total", "Total number of llama_decode() calls", t.steps],
      ["n_tokens_max", "Largest observed n_tokens.", t.maxStepTokens],
      [
        "n_busy_slots_per_decode",
        "Average number of busy slots per llama_decode() call",
        t.stepSequences / Math.max(t.steps, 1),
      ],
    ];
    for (const [name, help, value] of counters) x.metric(`llamacpp:${name}`, "counter", help, value);
    const perSecond = (n: number, ms: number) => (n > 0 && ms > 0 ? (1e3 / ms) * n : 0);
    const gauges: [string, string, number][] = [
      [
        "prompt_tokens_seconds",
        "Average prompt throughput in tokens/s.",
        perSecond(this.bucketPromptTokens, this.bucketPromptMs),
      ],
      [
        "predicted_tokens_seconds",
        "Average generation throughput in tokens/s.",
        perSecond(this.bucketPredicted, this.bucketPredictedMs),
      ],
      ["kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", engine.kvUsage],
      ["kv_cache_tokens", "KV-cache tokens.", engine.kvUsedTokens],
      ["requests_processing", "Number of requests processing.", engine.numRunning],
      ["requests_deferred", "Number of requests deferred.", engine.numWaiting],
    ];
    for (const [name, help, value] of gauges) x.metric(`llamacpp:${name}`, "gauge", help, value);
    this.bucketPromptTokens = this.bucketPromptMs = this.bucketPredicted = this.bucketPredictedMs = 0;
    return x.text();
  }
}

/**
 * GET /slots in llama.cpp's shape (server_slot::to_json with only_metrics): one entry per slot, `next_token` an
 * array of one object, as nlohmann::json builds it from double braces.
 */
export function llamacppSlots(engine: ServingEngine): object[] {
  const nCtx = Math.floor(engine.config.kvCapacityTokens / engine.config.slots);
  return engine.slotHistory.map((s, id) => {
    const slot: Record<string, unknown> = { id, n_ctx: nCtx, speculative: false, is_processing: false };
    if (s === undefined) return slot;
    const processing = s.state === "running" && s.slot === id;
    slot.is_processing = processing;
    slot.id_task = s.id;
    slot.n_prompt_tokens = s.prompt.tokens;
    slot.n_prompt_tokens_processed = s.prompt.tokens - s.cachedTokens;
    slot.n_prompt_tokens_cache = s.cachedTokens;
    slot.params = { n_predict: s.outputTokens };
    slot.next_token = [
      {
        has_next_token: processing,
        has_new_line: false,
        n_remain: s.outputTokens - s.generated,
        n_decoded: s.generated,
      },
    ];
    return slot;
  });
}
