import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { scanSamples } from "./prom-text.js";
import { type LoadSignals, readScrape, readSignals, readSlots } from "./signals.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

test("vLLM 0.10 scrape: queue, running, KV from kv_cache_usage_perc, prefix hit rate from the counters", () => {
  assert.deepEqual(readSignals(fixture("vllm.prom")), {
    dialect: "vllm",
    waiting: 3,
    running: 12,
    kvUsage: 0.4375,
    // First scrape: no previous reading, so the counters' lifetime ratio 25600 / 40960.
    prefixHitRate: 0.625,
    prefixQueries: 40960,
    prefixHits: 25600,
  });
});

test("vLLM: the prefix hit rate is the counters' change between two scrapes, not their lifetime ratio", () => {
  const first = readSignals(fixture("vllm.prom"));
  const later = fixture("vllm.prom")
    .replace(/^(vllm:prefix_cache_queries_total\{.*\}) 40960\.0$/m, "$1 45056.0")
    .replace(/^(vllm:prefix_cache_hits_total\{.*\}) 25600\.0$/m, "$1 28672.0");
  const second = readSignals(later, first);
  assert.equal(second.prefixHitRate, 3072 / 4096);
  assert.equal(second.prefixQueries, 45056);

  // No lookups in between: the last rate stands.
  assert.equal(readSignals(later, second).prefixHitRate, 0.75);

  // The counters went down (the server restarted): the new process's lifetime ratio.
  const restarted = later
    .replace(/^(vllm:prefix_cache_queries_total\{.*\}) 45056\.0$/m, "$1 100.0")
    .replace(/^(vllm:prefix_cache_hits_total\{.*\}) 28672\.0$/m, "$1 10.0");
  assert.equal(readSignals(restarted, second).prefixHitRate, 0.1);
});

test("vLLM: the deprecated gpu_prefix_cache counters beside their replacements are not counted twice", () => {
  const s = readSignals(fixture("vllm.prom"));
  // vllm.prom carries both vllm:gpu_prefix_cache_queries_total and vllm:prefix_cache_queries_total (40960 each).
  assert.equal(s.prefixQueries, 40960);
});

test("vLLM data parallel: queues summed over engines, KV usage averaged", () => {
  const text = [
    'vllm:num_requests_running{engine="0",model_name="m"} 4.0',
    'vllm:num_requests_running{engine="1",model_name="m"} 6.0',
    'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
    'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0',
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
    'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6',
    'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 300.0',
    'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 100.0',
    'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 100.0',
    'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 0.0',
  ].join("\n");
  const s = readSignals(text);
  assert.equal(s.running, 10);
  assert.equal(s.waiting, 3);
  assert.ok(Math.abs(s.kvUsage! - 0.4) < 1e-12);
  assert.equal(s.prefixQueries, 400);
  assert.equal(s.prefixHitRate, 0.25);
});

test("vLLM V0 engine: gpu_cache_usage_perc and the gpu_prefix_cache_hit_rate gauge", () => {
  const text = [
    "# TYPE vllm:num_requests_waiting gauge",
    'vllm:num_requests_waiting{model_name="m"} 5.0',
    'vllm:num_requests_running{model_name="m"} 8.0',
    'vllm:num_requests_swapped{model_name="m"} 0.0',
    'vllm:gpu_cache_usage_perc{model_name="m"} 0.91',
    'vllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.33',
  ].join("\n");
  assert.deepEqual(readSignals(text), {
    dialect: "vllm",
    waiting: 5,
    running: 8,
    kvUsage: 0.91,
    prefixHitRate: 0.33,
  });
});

test("SGLang scrape: num_queue_reqs, num_running_reqs, token_usage and its own cache_hit_rate gauge", () => {
  assert.deepEqual(readSignals(fixture("sglang.prom")), {
    dialect: "sglang",
    waiting: 7,
    running: 24,
    kvUsage: 0.61,
    prefixHitRate: 0.4237,
  });
});

test("SGLang with DP attention: one series per rank, counts summed and ratios averaged", () => {
  const text = [
    'sglang:num_queue_reqs{dp_rank="0",engine_type="unified",model_name="m",tp_rank="0"} 3.0',
    'sglang:num_queue_reqs{dp_rank="1",engine_type="unified",model_name="m",tp_rank="1"} 11.0',
    'sglang:token_usage{dp_rank="0",engine_type="unified",model_name="m",tp_rank="0"} 0.5',
    'sglang:token_usage{dp_rank="1",engine_type="unified",model_name="m",tp_rank="1"} 0.7',
  ].join("\n");
  const s = readSignals(text);
  assert.equal(s.waiting, 14);
  assert.equal(s.running, undefined);
  assert.ok(Math.abs(s.kvUsage! - 0.6) < 1e-12);
});

test("llama.cpp scrape: requests_deferred wait, requests_processing run; current builds expose no KV usage", () => {
  assert.deepEqual(readSignals(fixture("llamacpp.prom")), {
    dialect: "llamacpp",
    waiting: 1,
    running: 2,
    kvUsage: undefined,
    prefixHitRate: undefined,
  });
});

test("llama.cpp: kv_cache_usage_ratio of older builds, prompt_tokens_cached_total where exported", () => {
  const old = "llamacpp:requests_processing 1\nllamacpp:requests_deferred 0\nllamacpp:kv_cache_usage_ratio 0.25\n";
  assert.equal(readSignals(old).kvUsage, 0.25);
  const cached = "llamacpp:prompt_tokens_total 300\nllamacpp:prompt_tokens_cached_total 100\n";
  const s = readSignals(cached);
  assert.equal(s.prefixQueries, 400);
  assert.equal(s.prefixHitRate, 0.25);
});

test("TensorRT-LLM scrape: waiting, running, kv_cache_utilization; hit rate from the reused/missed block counters", () => {
  assert.deepEqual(readSignals(fixture("trtllm.prom")), {
    dialect: "trtllm",
    waiting: 4,
    running: 9,
    kvUsage: 0.52,
    // 1250 reused of 1250 + 2750 blocks; the counters win over the per-iteration gauge (0.35).
    prefixHitRate: 0.3125,
    prefixQueries: 4000,
    prefixHits: 1250,
  });
});

test("a server without known series reads as dialect undefined; HTML is not Prometheus text at all", () => {
  const other = readScrape('# TYPE http_requests_total counter\nhttp_requests_total{code="200"} 1027\n');
  assert.equal(other.signals.dialect, undefined);
  assert.equal(other.samples, 1);
  const html = readScrape("<!DOCTYPE html>\n<html><body>Not Found</body></html>\n");
  assert.equal(html.samples, 0);
  assert.ok(html.invalid > 0);
  assert.equal(readScrape('{"stats": []}').samples, 0);
});

test("previous readings of another dialect give no counter deltas", () => {
  const sglang: LoadSignals = { ...readSignals(fixture("sglang.prom")), prefixQueries: 1, prefixHits: 1 };
  assert.equal(readSignals(fixture("vllm.prom"), sglang).prefixHitRate, 0.625);
});

test("exposition details: escaped quotes and braces in labels, NaN, +Inf, timestamps, CRLF, a bad line amid good ones", () => {
  const seen: [string, number][] = [];
  const text = [
    "# HELP vllm:num_requests_waiting Waiting, with a } and \\n in the help.",
    'vllm:num_requests_waiting{model_name="a \\"quoted\\" } {model, name=\\"x\\"}",engine="0"} 2.0 1765210112000',
    'vllm:num_requests_waiting{model_name="b\\\\"} 3e0',
    "vllm:num_requests_running NaN\r",
    "vllm:kv_cache_usage_perc +Inf",
    'vllm:kv_cache_usage_perc{engine="1"} -Inf',
    'vllm:num_requests_running{model_name="unterminated} 7',
    "vllm:num_requests_running{} not-a-number",
    "  vllm:num_requests_running\t5",
    "9starts_with_a_digit 1",
  ].join("\n");
  const wanted = new Set(["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"]);
  const r = scanSamples(text, wanted, (name, value) => seen.push([name, value]));
  assert.deepEqual(seen, [
    ["vllm:num_requests_waiting", 2],
    ["vllm:num_requests_waiting", 3],
    ["vllm:num_requests_running", Number.NaN],
    ["vllm:kv_cache_usage_perc", Number.POSITIVE_INFINITY],
    ["vllm:kv_cache_usage_perc", Number.NEGATIVE_INFINITY],
    ["vllm:num_requests_running", 5],
  ]);
  assert.deepEqual(r, { samples: 6, invalid: 3 });
  // NaN and infinities are no reading: the finite samples alone make the signals.
  assert.deepEqual(readSignals(text), {
    dialect: "vllm",
    waiting: 5,
    running: 5,
    kvUsage: undefined,
    prefixHitRate: undefined,
  });
});

test("llama.cpp /slots: slots with is_processing count as running; anything else is not a slots answer", () => {
  const slots = JSON.stringify([
    { id: 0, n_ctx: 4096, is_processing: true },
    { id: 1, n_ctx: 4096, is_processing: false },
    { id: 2, n_ctx: 4096, is_processing: true },
  ]);
  assert.deepEqual(readSlots(slots), {
    dialect: "llamacpp",
    waiting: undefined,
    running: 2,
    kvUsage: undefined,
    prefixHitRate: undefined,
  });
  assert.equal(readSlots('{"error":{"code":501,"message":"This server does not support slots endpoint."}}'), undefined);
  assert.equal(readSlots("[{}]"), undefined);
  assert.equal(readSlots("not json"), undefined);
});
