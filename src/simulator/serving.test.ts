import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { parseLlmSimArgs } from "./cli.js";
import { type LlmSimulator, type ServingOptions, startLlmSimulator } from "./index.js";

const started: LlmSimulator[] = [];
after(() => Promise.all(started.map((s) => s.close())));

async function serve(serving: ServingOptions, apiKey?: string): Promise<LlmSimulator> {
  const sim = await startLlmSimulator({ serving, apiKey, models: ["sim-model"] });
  started.push(sim);
  return sim;
}

// Small enough that tests are quick, large enough that queueing is visible on a loaded machine.
const FAST: ServingOptions = { decodeMsPerToken: 2, prefillMsPerToken: 0.01, batchGrowth: 0 };

const LONG_SYSTEM = "You are a careful assistant for questions about European rivers and their tributaries. ".repeat(
  40,
);

function post(
  sim: LlmSimulator,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) {
  const extra: Record<string, string> = path === "/v1/messages" ? { "anthropic-version": "2023-06-01" } : {};
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...extra, ...headers },
    body: JSON.stringify(body),
    signal,
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reading of the text exposition format: every family has HELP then TYPE, every sample belongs to the
 * family announced last, label syntax and numbers parse, histogram buckets are cumulative and end at +Inf.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  let family = "";
  let help = "";
  let lastBucket = -1;
  for (const line of text.slice(0, -1).split("\n")) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m !== null) {
      help = m[1]!;
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (m !== null) {
      assert.equal(m[1], help, `TYPE ${m[1]} follows its HELP`);
      assert.ok(!types.has(m[1]!), `${m[1]} is announced once`);
      family = m[1]!;
      types.set(family, m[2]!);
      lastBucket = -1;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, raw] = m;
    const type = types.get(family);
    const suffixes = type === "histogram" ? ["_bucket", "_count", "_sum"] : [""];
    assert.ok(
      suffixes.some((s) => name === family + s),
      `${name} belongs to the family announced last (${family})`,
    );
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      for (const pair of labelText.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(,|$)/g) ?? []) {
        const eq = pair.indexOf("=");
        labels[pair.slice(0, eq)] = pair.slice(eq + 2, pair.endsWith(",") ? -2 : -1);
      }
      assert.equal(
        Object.entries(labels)
          .map(([k, v]) => `${k}="${v}"`)
          .join(","),
        labelText,
        `labels parse: ${labelText}`,
      );
    }
    const value = raw === "+Inf" ? Number.POSITIVE_INFINITY : Number(raw);
    assert.ok(!Number.isNaN(value), `${line}: the value is a number`);
    if (name!.endsWith("_bucket")) {
      assert.ok(value >= lastBucket, `${name} buckets are cumulative`);
      lastBucket = labels.le === "+Inf" ? -1 : value;
    }
    if (name!.endsWith("_count") && type === "histogram") {
      const inf = samples.filter((s) => s.name === `${family}_bucket` && s.labels.le === "+Inf").at(-1);
      assert.equal(inf?.value, value, `${family}: the +Inf bucket equals the count`);
    }
    samples.push({ name: name!, labels, value });
  }
  return { types, samples };
}

async function scrape(sim: LlmSimulator, headers: Record<string, string> = {}) {
  const res = await fetch(`${sim.url}/metrics`, { headers });
  assert.equal(res.status, 200);
  return { contentType: res.headers.get("content-type"), ...parseExposition(await res.text()) };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const chat = (content: string, extra: object = {}) => ({
  model: "sim-model",
  messages: [
    { role: "system", content: LONG_SYSTEM },
    { role: "user", content },
  ],
  ...extra,
});

describe("the serving model over HTTP", () => {
  test("vLLM /metrics parse and show requests running and waiting while a burst is served", async () => {
    const sim = await serve({ ...FAST, slots: 2, decodeMsPerToken: 15 });
    const streams = [0, 1, 2, 3, 4].map((i) =>
      post(sim, "/v1/chat/completions", chat(`question ${i}`, { stream: true }), { "x-sim-tokens": "30" }).then((r) =>
        r.text(),
      ),
    );
    let seen = { running: 0, waiting: 0 };
    await until(async () => {
      const { samples } = await scrape(sim);
      seen = {
        running: value(samples, "vllm:num_requests_running")!,
        waiting: value(samples, "vllm:num_requests_waiting")!,
      };
      return seen.running === 2 && seen.waiting === 3;
    }, "2 running and 3 waiting");
    const bodies = await Promise.all(streams);
    for (const b of bodies) assert.ok(b.endsWith("data: [DONE]\n\n"));
    const { types, samples, contentType } = await scrape(sim);
    assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
    const labels = { engine: "0", model_name: "sim-model" };
    assert.equal(value(samples, "vllm:num_requests_running", labels), 0);
    assert.equal(value(samples, "vllm:num_requests_waiting", labels), 0);
    assert.equal(value(samples, "vllm:kv_cache_usage_perc", labels), 0);
    assert.equal(value(samples, "vllm:generation_tokens_total", labels), 150);
    assert.equal(value(samples, "vllm:request_success_total", { ...labels, finished_reason: "stop" }), 5);
    assert.equal(value(samples, "vllm:time_to_first_token_seconds_count", labels), 5);
    assert.equal(value(samples, "vllm:inter_token_latency_seconds_count", labels), 145);
    assert.equal(value(samples, "vllm:request_queue_time_seconds_count", labels), 5);
    for (const [name, type] of [
      ["vllm:num_requests_running", "gauge"],
      ["vllm:num_requests_waiting", "gauge"],
      ["vllm:kv_cache_usage_perc", "gauge"],
      ["vllm:gpu_cache_usage_perc", "gauge"],
      ["vllm:prefix_cache_queries_total", "counter"],
      ["vllm:prefix_cache_hits_total", "counter"],
      ["vllm:prompt_tokens_total", "counter"],
      ["vllm:generation_tokens_total", "counter"],
      ["vllm:num_preemptions_total", "counter"],
      ["vllm:request_success_total", "counter"],
      ["vllm:time_to_first_token_seconds", "histogram"],
      ["vllm:inter_token_latency_seconds", "histogram"],
      ["vllm:e2e_request_latency_seconds", "histogram"],
      ["vllm:request_queue_time_seconds", "histogram"],
      ["vllm:request_prefill_time_seconds", "histogram"],
      ["vllm:request_decode_time_seconds", "histogram"],
    ]) {
      assert.equal(types.get(name!), type, name);
    }
    // The 4 system-prompt blocks shared by all five prompts were prefilled once.
    assert.ok(value(samples, "vllm:prefix_cache_hits_total")! > 0);
  });

  test("with one slot the second stream's first token comes after the first stream ends", async () => {
    const sim = await serve({ ...FAST, slots: 1, decodeMsPerToken: 5 });
    const firstByteAt = async (content: string) => {
      const res = await post(sim, "/v1/chat/completions", chat(content, { stream: true }), { "x-sim-tokens": "20" });
      const reader = res.body!.getReader();
      let text = "";
      let firstAt = 0;
      for (;;) {
        const { done, value: chunk } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(chunk);
        if (firstAt === 0 && text.includes('"content":"')) firstAt = performance.now();
      }
      return { firstAt, endAt: performance.now() };
    };
    const [a, b] = await Promise.all([firstByteAt("first"), firstByteAt("second")]);
    const [early, late] = a.firstAt < b.firstAt ? [a, b] : [b, a];
    assert.ok(late.firstAt >= early.endAt - 5, "the queued request starts after the running one ends");
  });

  test("a repeated long prompt reports cached tokens in every API's usage", async () => {
    const sim = await serve({ ...FAST });
    const oaiUsage = async () => (await (await post(sim, "/v1/chat/completions", chat("hi"))).json()).usage;
    const cold = await oaiUsage();
    assert.equal(cold.prompt_tokens_details.cached_tokens, 0);
    const warm = await oaiUsage();
    assert.equal(warm.prompt_tokens, cold.prompt_tokens);
    assert.equal(warm.prompt_tokens_details.cached_tokens, Math.floor((warm.prompt_tokens - 1) / 16) * 16);

    const streamed = await (
      await post(sim, "/v1/chat/completions", chat("hi", { stream: true, stream_options: { include_usage: true } }))
    ).text();
    const usageLine = streamed.split("\n\n").find((e) => e.includes('"choices":[]'))!;
    assert.equal(
      JSON.parse(usageLine.slice(6)).usage.prompt_tokens_details.cached_tokens,
      warm.prompt_tokens_details.cached_tokens,
    );

    const responses = async () =>
      (await (await post(sim, "/v1/responses", { model: "m", instructions: LONG_SYSTEM, input: "hi" })).json()).usage;
    assert.equal((await responses()).input_tokens_details.cached_tokens, 0);
    const r = await responses();
    assert.ok(r.input_tokens_details.cached_tokens > 0);
    assert.ok(r.input_tokens_details.cached_tokens < r.input_tokens);

    const anthropic = async (stream: boolean) => {
      const res = await post(sim, "/v1/messages", {
        model: "c",
        max_tokens: 8,
        // Framed like the chat prompts above, the same system text would hit their blocks.
        system: `Claude. ${LONG_SYSTEM}`,
        messages: [{ role: "user", content: "hi" }],
        stream,
      });
      if (!stream) return (await res.json()).usage;
      const start = (await res.text()).split("\n\n")[0]!.split("\n")[1]!.slice(6);
      return JSON.parse(start).message.usage;
    };
    const a0 = await anthropic(false);
    assert.equal(a0.cache_read_input_tokens, 0);
    const a1 = await anthropic(false);
    const a2 = await anthropic(true);
    // Anthropic's input_tokens excludes cache reads: the two add up to the prompt.
    assert.ok(a1.cache_read_input_tokens > 0);
    assert.equal(a1.input_tokens + a1.cache_read_input_tokens, a0.input_tokens);
    assert.deepEqual([a2.input_tokens, a2.cache_read_input_tokens], [a1.input_tokens, a1.cache_read_input_tokens]);
    const legacy = async () =>
      (await (await post(sim, "/v1/completions", { model: "m", prompt: LONG_SYSTEM })).json()).usage;
    await legacy();
    assert.ok((await legacy()).prompt_tokens_details.cached_tokens > 0);
  });

  test("a client that leaves frees its slot at once; the next request is served", async () => {
    const sim = await serve({ ...FAST, slots: 1, decodeMsPerToken: 20 });
    const controller = new AbortController();
    const res = await post(
      sim,
      "/v1/chat/completions",
      chat("long", { stream: true }),
      { "x-sim-tokens": "500" },
      controller.signal,
    );
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await until(async () => sim.aborted.length === 1, "the abort");
    const { samples } = await scrape(sim);
    assert.equal(value(samples, "vllm:num_requests_running"), 0);
    assert.equal(value(samples, "vllm:request_success_total", { finished_reason: "abort" }), 1);
    const next = await post(sim, "/v1/chat/completions", chat("short"), { "x-sim-tokens": "2" });
    assert.equal((await next.json()).usage.completion_tokens, 2);
    assert.equal(sim.inFlight, 0);
    assert.ok(sim.aborted[0]!.tokensSent < 500);
  });

  test("faults and fixed-timing headers still work with the model on; oversize prompts get a 400", async () => {
    const sim = await serve({ ...FAST, kvCapacityTokens: 2048 });
    const failed = await post(sim, "/v1/chat/completions", chat("x"), { "x-sim-fail": "429" });
    assert.equal(failed.status, 429);
    const cut = await post(sim, "/v1/chat/completions", chat("x", { stream: true }), {
      "x-sim-fail": "broken-stream:3",
    });
    const text = await cut.text().catch((e: Error) => e.message);
    assert.ok(!text.includes("[DONE]"));
    const fixed = await post(sim, "/v1/chat/completions", chat("fixed"), { "x-sim-ttft-ms": "0" });
    assert.equal((await fixed.json()).usage.prompt_tokens_details.cached_tokens, 0, "the engine does not serve it");
    const huge = await post(sim, "/v1/chat/completions", chat("x".repeat(1)), { "x-sim-tokens": "5000" });
    assert.equal(huge.status, 400);
    assert.match((await huge.json()).error.message, /maximum context length is 2048 tokens/);
    const { samples } = await scrape(sim);
    assert.equal(value(samples, "vllm:num_requests_running"), 0);
  });

  test("SGLang names: scheduler gauges with their labels, tokenizer counters and histograms", async () => {
    const sim = await serve({ ...FAST, metricsDialect: "sglang" });
    await (await post(sim, "/v1/chat/completions", chat("a"))).json();
    await (await post(sim, "/v1/chat/completions", chat("b"))).json();
    const { types, samples } = await scrape(sim);
    const scheduler = { engine_type: "unified", model_name: "sim-model", pp_rank: "0", tp_rank: "0" };
    assert.equal(value(samples, "sglang:num_running_reqs", scheduler), 0);
    assert.equal(value(samples, "sglang:num_queue_reqs", scheduler), 0);
    assert.equal(value(samples, "sglang:token_usage", scheduler), 0);
    assert.equal(value(samples, "sglang:max_total_num_tokens", scheduler), 65536);
    const rate = value(samples, "sglang:cache_hit_rate", scheduler)!;
    assert.ok(rate > 0 && rate < 1, `the second prompt's batch hit the cache: ${rate}`);
    assert.equal(value(samples, "sglang:num_requests_total", { model_name: "sim-model" }), 2);
    assert.ok(value(samples, "sglang:cached_tokens_total")! > 0);
    assert.equal(types.get("sglang:time_to_first_token_seconds"), "histogram");
    assert.equal(types.get("sglang:gen_throughput"), "gauge");
    assert.equal(value(samples, "sglang:time_to_first_token_seconds_count"), 2);
  });

  test("llama.cpp names, its /slots, its timings, and both behind the API key", async () => {
    const sim = await serve({ ...FAST, slots: 2, metricsDialect: "llamacpp" }, "k");
    const auth = { authorization: "Bearer k" };
    assert.equal((await fetch(`${sim.url}/metrics`)).status, 401);
    const body = await (await post(sim, "/v1/chat/completions", chat("a"), auth)).json();
    assert.equal(body.timings.cache_n, 0);
    assert.equal(body.timings.prompt_n, body.usage.prompt_tokens);
    assert.equal(body.timings.predicted_n, body.usage.completion_tokens);
    const streamed = await (await post(sim, "/v1/chat/completions", chat("a", { stream: true }), auth)).text();
    const finish = streamed.split("\n\n").find((e) => e.includes('"finish_reason":"stop"'))!;
    const timings = JSON.parse(finish.slice(6)).timings;
    assert.ok(timings.cache_n > 0, "the repeated prompt hit the cache");
    const { types, samples, contentType } = await scrape(sim, auth);
    assert.equal(contentType, "text/plain; version=0.0.4");
    for (const s of samples) assert.deepEqual(s.labels, {}, "llama.cpp labels nothing");
    assert.equal(value(samples, "llamacpp:requests_processing"), 0);
    assert.equal(value(samples, "llamacpp:requests_deferred"), 0);
    assert.equal(value(samples, "llamacpp:tokens_predicted_total"), 64);
    assert.equal(types.get("llamacpp:prompt_tokens_total"), "counter");
    assert.equal(types.get("llamacpp:kv_cache_usage_ratio"), "gauge");
    assert.equal(types.get("llamacpp:n_busy_slots_per_decode"), "counter");
    const slots = await (await fetch(`${sim.url}/slots`, { headers: auth })).json();
    assert.equal(slots.length, 2);
    const used = slots.find((s: { id_task?: number }) => s.id_task !== undefined);
    assert.equal(used.is_processing, false);
    assert.equal(used.n_ctx, 32768);
    assert.deepEqual(Object.keys(used.next_token[0]), ["has_next_token", "has_new_line", "n_remain", "n_decoded"]);
    assert.equal(used.next_token[0].n_remain, 0);
  });

  test("without the serving model there is no /metrics, as before", async () => {
    const sim = await startLlmSimulator();
    started.push(sim);
    assert.equal((await fetch(`${sim.url}/metrics`)).status, 404);
    const usage = (await (await post(sim, "/v1/chat/completions", chat("a"))).json()).usage;
    assert.equal(usage.prompt_tokens_details.cached_tokens, 0);
  });
});

describe("serving model odds and ends", () => {
  test("weir llm-sim's serving flags turn the model on and name a wrong value", () => {
    assert.equal(parseLlmSimArgs([]).serving, undefined);
    assert.deepEqual(parseLlmSimArgs(["--serving"]).serving, {});
    assert.deepEqual(
      parseLlmSimArgs(["--slots", "4", "--slowdown=3", "--prefill-ms-per-token", "0.1", "--metrics-dialect", "sglang"])
        .serving,
      { slots: 4, slowdown: 3, prefillMsPerToken: 0.1, metricsDialect: "sglang" },
    );
    assert.throws(() => parseLlmSimArgs(["--slots", "1.5"]), /--slots must be a whole number/);
    assert.throws(() => parseLlmSimArgs(["--metrics-dialect", "tgi"]), /--metrics-dialect must be one of/);
    assert.throws(() => parseLlmSimArgs(["--slowdown", "0"]), /slowdown must be a number > 0/);
  });
});
