import { scanSamples } from "./prom-text.js";

/**
 * Load signals of one model server, read from its Prometheus scrape: how many requests wait, how many run,
 * how full its KV cache is and how often its prefix cache hits. Each dialect below maps the series a real
 * server exposes onto those four; a server that exposes none of them reads as `dialect: undefined`.
 */
export type MetricsDialect = "vllm" | "sglang" | "llamacpp" | "trtllm";

export interface LoadSignals {
  /** Which server the scrape looked like; undefined = none of the known series. */
  readonly dialect: MetricsDialect | undefined;
  /** Requests queued at the server, not yet scheduled. */
  readonly waiting: number | undefined;
  /** Requests the server is running now. */
  readonly running: number | undefined;
  /** KV cache in use, 0..1. */
  readonly kvUsage: number | undefined;
  /**
   * Prefix-cache hit rate, 0..1: from the change of the server's cumulative counters since `previous`
   * where it exposes them (the rate over the last scrape interval; their lifetime ratio on the first
   * scrape or after a counter reset), else the server's own gauge.
   */
  readonly prefixHitRate: number | undefined;
  /** The raw cumulative counters behind prefixHitRate, when the server exposes them. */
  readonly prefixQueries?: number;
  readonly prefixHits?: number;
}

/**
 * The series of one server. Each role lists alternatives in order of preference: the first one present
 * in a scrape is used, so a deprecated name is read only from servers too old for its replacement (a
 * server that exposes both would otherwise be counted twice).
 */
interface Dialect {
  readonly dialect: MetricsDialect;
  /** What every name of the dialect starts with; lets the scan skip other lines without slicing them. */
  readonly prefix: string;
  readonly waiting: readonly string[];
  readonly running: readonly string[];
  readonly kvUsage: readonly string[];
  /** The server's own hit-rate gauge, used when it exposes no counters. */
  readonly hitRate: readonly string[];
  /** Cumulative prefix-cache counters: hits, and either all lookups (`queries`) or the `misses`. */
  readonly hits: readonly string[];
  readonly queries: readonly string[];
  readonly misses: readonly string[];
}

const DIALECTS: readonly Dialect[] = [
  {
    // vllm/v1/metrics/loggers.py (PrometheusStatLogger). prometheus_client appends `_total` to Counter
    // names, so vllm:prefix_cache_queries is exposed as vllm:prefix_cache_queries_total. vLLM 0.9-0.10
    // also expose the deprecated vllm:gpu_cache_usage_perc and vllm:gpu_prefix_cache_{queries,hits}
    // beside their replacements (0.11 hides them); the V0 engine (vllm/engine/metrics.py) had only
    // gpu_cache_usage_perc and the vllm:gpu_prefix_cache_hit_rate gauge.
    dialect: "vllm",
    prefix: "vllm:",
    waiting: ["vllm:num_requests_waiting"],
    running: ["vllm:num_requests_running"],
    kvUsage: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    hitRate: ["vllm:gpu_prefix_cache_hit_rate"],
    hits: ["vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"],
    queries: ["vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"],
    misses: [],
  },
  {
    // python/sglang/srt/metrics/collector.py (SchedulerMetricsCollector): gauges written by the scheduler
    // of each DP rank (attention TP rank 0). token_usage is used KV tokens / max_total_num_tokens.
    dialect: "sglang",
    prefix: "sglang:",
    waiting: ["sglang:num_queue_reqs"],
    running: ["sglang:num_running_reqs"],
    kvUsage: ["sglang:token_usage"],
    hitRate: ["sglang:cache_hit_rate"],
    hits: [],
    queries: [],
    misses: [],
  },
  {
    // llama.cpp tools/server, server_task_result_metrics::to_metrics() (needs `--metrics`):
    // requests_deferred are tasks queued for a free slot, requests_processing the busy slots.
    // kv_cache_usage_ratio was removed in ggml-org/llama.cpp#13660 and is read only from older builds.
    // Builds that export prompt_tokens_cached_total count cached prompt tokens there and leave them
    // out of prompt_tokens_total, so the two add up to the prompt tokens looked up.
    dialect: "llamacpp",
    prefix: "llamacpp:",
    waiting: ["llamacpp:requests_deferred"],
    running: ["llamacpp:requests_processing"],
    kvUsage: ["llamacpp:kv_cache_usage_ratio"],
    hitRate: [],
    hits: ["llamacpp:prompt_tokens_cached_total"],
    queries: [],
    misses: ["llamacpp:prompt_tokens_total"],
  },
  {
    // tensorrt_llm/metrics/collector.py (MetricsCollector), served by trtllm-serve at
    // /prometheus/metrics (its /metrics answers JSON iteration stats). KV reuse is counted in blocks.
    dialect: "trtllm",
    prefix: "trtllm_",
    waiting: ["trtllm_num_requests_waiting"],
    running: ["trtllm_num_requests_running"],
    kvUsage: ["trtllm_kv_cache_utilization"],
    hitRate: ["trtllm_kv_cache_hit_rate"],
    hits: ["trtllm_kv_cache_reused_blocks_total"],
    queries: [],
    misses: ["trtllm_kv_cache_missed_blocks_total"],
  },
];

const WANTED: ReadonlySet<string> = new Set(
  DIALECTS.flatMap((d) => [
    ...d.waiting,
    ...d.running,
    ...d.kvUsage,
    ...d.hitRate,
    ...d.hits,
    ...d.queries,
    ...d.misses,
  ]),
);
const PREFIXES = DIALECTS.map((d) => d.prefix);

/** Sum and count of one series over its label sets. */
interface Total {
  sum: number;
  n: number;
}

export interface Scrape {
  readonly signals: LoadSignals;
  /** Sample lines in the body, known or not, and lines that were neither samples nor comments. */
  readonly samples: number;
  readonly invalid: number;
}

/**
 * Reads one scrape's Prometheus text into signals. A server running several engines or models exposes
 * one series per label set (vLLM `engine="0"`, `engine="1"` under data parallelism; SGLang one per DP
 * rank or priority): counts and counters are summed over them, ratios (KV usage, hit-rate gauges)
 * averaged. `previous`, the last good reading of the same server, gives the counter deltas. Pure.
 */
export function readScrape(text: string, previous?: LoadSignals): Scrape {
  const totals = new Map<string, Total>();
  const { samples, invalid } = scanSamples(
    text,
    WANTED,
    (name, value) => {
      // NaN and ±Inf say nothing about load (prometheus_client writes NaN for a gauge never set).
      if (!Number.isFinite(value)) return;
      const t = totals.get(name);
      if (t === undefined) totals.set(name, { sum: value, n: 1 });
      else {
        t.sum += value;
        t.n++;
      }
    },
    PREFIXES,
  );
  const d = totals.size === 0 ? undefined : DIALECTS.find((x) => x.prefix === firstKey(totals));
  if (d === undefined) return { signals: NO_SIGNALS, samples, invalid };

  const sum = (names: readonly string[]) => {
    for (const name of names) {
      const t = totals.get(name);
      if (t !== undefined) return t.sum;
    }
    return undefined;
  };
  const mean = (names: readonly string[]) => {
    for (const name of names) {
      const t = totals.get(name);
      if (t !== undefined) return t.sum / t.n;
    }
    return undefined;
  };
  const hits = sum(d.hits);
  const misses = sum(d.misses);
  const queries = sum(d.queries) ?? (hits !== undefined && misses !== undefined ? hits + misses : undefined);
  const counters = hits !== undefined && queries !== undefined;
  const prior = previous?.dialect === d.dialect ? previous : undefined;
  const signals: LoadSignals = {
    dialect: d.dialect,
    waiting: nonNegative(sum(d.waiting)),
    running: nonNegative(sum(d.running)),
    kvUsage: unit(mean(d.kvUsage)),
    prefixHitRate: counters ? counterRate(queries, hits, prior) : unit(mean(d.hitRate)),
    ...(counters ? { prefixQueries: queries, prefixHits: hits } : {}),
  };
  return { signals, samples, invalid };
}

/** readScrape's signals alone. */
export function readSignals(text: string, previous?: LoadSignals): LoadSignals {
  return readScrape(text, previous).signals;
}

const NO_SIGNALS: LoadSignals = {
  dialect: undefined,
  waiting: undefined,
  running: undefined,
  kvUsage: undefined,
  prefixHitRate: undefined,
};

/** The dialect prefix of the first series found; every wanted name starts with exactly one prefix. */
function firstKey(totals: Map<string, Total>): string | undefined {
  for (const name of totals.keys()) return PREFIXES.find((p) => name.startsWith(p));
  return undefined;
}

function counterRate(queries: number, hits: number, prior: LoadSignals | undefined): number | undefined {
  const pq = prior?.prefixQueries;
  const ph = prior?.prefixHits;
  if (pq !== undefined && ph !== undefined) {
    const dq = queries - pq;
    const dh = hits - ph;
    if (dq > 0 && dh >= 0) return unit(dh / dq);
    // No lookups since the last scrape: the rate the server last showed still stands.
    if (dq === 0 && dh === 0 && prior?.prefixHitRate !== undefined) return prior.prefixHitRate;
    // Otherwise the counters went down: the server restarted, and its lifetime ratio is all there is.
  }
  return queries > 0 ? unit(hits / queries) : undefined;
}

function nonNegative(x: number | undefined): number | undefined {
  return x === undefined ? undefined : Math.max(0, x);
}

function unit(x: number | undefined): number | undefined {
  return x === undefined ? undefined : Math.min(1, Math.max(0, x));
}

/**
 * llama.cpp's `/slots` JSON (tools/server, on by default, unlike `/metrics` which needs `--metrics`): one
 * object per slot, `is_processing` while the slot serves a task. It says how many run but not how many
 * wait. Undefined when the body is not that array.
 */
export function readSlots(text: string): LoadSignals | undefined {
  let slots: unknown;
  try {
    slots = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(slots)) return undefined;
  let running = 0;
  for (const slot of slots) {
    const processing = (slot as { is_processing?: unknown } | null)?.is_processing;
    if (typeof processing !== "boolean") return undefined;
    if (processing) running++;
  }
  return { dialect: "llamacpp", waiting: undefined, running, kvUsage: undefined, prefixHitRate: undefined };
}
