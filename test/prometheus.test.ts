import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { type LlmSimulator, startLlmSimulator } from "../src/simulator/index.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";
import { deadPort, startUpstream, type TestUpstream } from "./helpers/upstream.js";

const SIM_KEY = "sk-sim-metrics-0123456789";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the exposition text strictly: every line is a HELP/TYPE comment or a sample, every sample's
 * family was declared with TYPE, so a malformed line fails the test instead of being skipped.
 */
function parseExposition(text: string): Sample[] {
  assert.ok(text.endsWith("\n"), "the exposition ends with a line feed");
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) {
      if (meta[1] === "TYPE") {
        assert.match(meta[3]!, /^(counter|gauge|histogram)$/, line);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|\+Inf)$/.exec(line);
    assert.ok(m !== null, `not a sample line: ${line}`);
    const name = m[1]!;
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(name) || types.get(family) === "histogram", `no TYPE for ${name}`);
    const labels: Record<string, string> = {};
    const pairs = m[2] ?? "";
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
    let consumed = 0;
    for (let p = pair.exec(pairs); p !== null; p = pair.exec(pairs)) {
      labels[p[1]!] = p[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      consumed = pair.lastIndex;
    }
    assert.equal(consumed, pairs.length, `malformed labels: ${line}`);
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return samples;
}

describe("prometheus: APISIX's metrics on the export server", () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let sim: LlmSimulator;
  let metricsUrl: string;

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(metricsUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  };
  const find = (samples: Sample[], name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const value = (samples: Sample[], name: string, labels: Record<string, string>) => {
    const found = find(samples, name, labels);
    assert.equal(found.length, 1, `one ${name} series for ${JSON.stringify(labels)}, got ${found.length}`);
    return found[0]!.value;
  };
  const get = (path: string, headers: Record<string, string> = {}) => fetchBody(`${gw.proxyUrl}${path}`, { headers });

  before(async () => {
    up = await startUpstream("metrics", (req, res) => {
      res.writeHead(req.url?.startsWith("/counted/missing") ? 404 : 200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    sim = await startLlmSimulator({ name: "metrics-sim", apiKey: SIM_KEY, ttftMs: 5, interTokenMs: 2 });
    gw = await startTestGateway();
    metricsUrl = `http://127.0.0.1:${gw.gateway.metricsAddress!.port}/apisix/prometheus/metrics`;
    const upstream = { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] };
    await gw.put("/apisix/admin/routes/counted", { uri: "/counted/*", plugins: { prometheus: {} }, upstream });
    await gw.put("/apisix/admin/routes/uncounted", { uri: "/uncounted", upstream });
    await gw.put("/apisix/admin/routes/named", {
      uri: "/named",
      name: "chat-api",
      plugins: { prometheus: { prefer_name: true } },
      upstream,
    });
    await gw.put("/apisix/admin/consumers", { username: "jack", plugins: { "key-auth": { key: "jack-metrics-key" } } });
    await gw.put("/apisix/admin/routes/guarded", {
      uri: "/guarded",
      plugins: { "key-auth": {}, prometheus: {} },
      upstream,
    });
    await gw.put("/apisix/admin/routes/dead", {
      uri: "/dead",
      plugins: { prometheus: {} },
      upstream: { retries: 0, nodes: [{ host: "127.0.0.1", port: await deadPort(), weight: 1 }] },
    });
    await gw.put("/apisix/admin/routes/llm", {
      uri: "/llm/v1/chat/completions",
      plugins: {
        prometheus: {},
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${SIM_KEY}` } },
          options: { model: "gpt-4o-mini" },
          override: { endpoint: sim.url },
        },
      },
    });
  });

  after(async () => {
    await gw.stop();
    await up.close();
    await sim.close();
  });

  test("status codes, latency and bandwidth per route, with APISIX's labels; routes without the plugin are not counted", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get("/counted/a")).status, 200);
    assert.equal((await get("/counted/missing")).status, 404);
    assert.equal((await get("/uncounted")).status, 200);
    const s = await scrape();
    const base = { route: "counted", service: "", consumer: "", node: "127.0.0.1", request_type: "traditional_http" };
    assert.equal(
      value(s, "apisix_http_status", {
        ...base,
        code: "200",
        matched_uri: "/counted/*",
        matched_host: "",
        request_llm_model: "",
        llm_model: "",
        response_source: "upstream",
      }),
      3,
    );
    assert.equal(value(s, "apisix_http_status", { route: "counted", code: "404" }), 1);
    assert.equal(find(s, "apisix_http_status", { route: "uncounted" }).length, 0);
    for (const type of ["request", "upstream", "apisix"]) {
      assert.equal(value(s, "apisix_http_latency_count", { ...base, type }), 4, type);
      const buckets = find(s, "apisix_http_latency_bucket", { ...base, type });
      assert.equal(buckets.at(-1)!.labels.le, "+Inf");
      assert.equal(buckets.at(-1)!.value, 4);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, "cumulative");
    }
    assert.ok(value(s, "apisix_bandwidth", { ...base, type: "egress" }) >= 4 * '{"ok":true}'.length);
    assert.ok(value(s, "apisix_bandwidth", { ...base, type: "ingress" }) > 4 * "GET /counted/a HTTP/1.1".length);
    assert.ok(value(s, "apisix_http_requests_total", {}) >= 5);
    assert.equal(value(s, "apisix_node_info", {}), 1);
    assert.ok(value(s, "apisix_nginx_http_current_connections", { state: "accepted" }) >= 1);
    assert.ok(value(s, "apisix_nginx_http_current_connections", { state: "writing" }) >= 0);
  });

  test("prefer_name labels the route by its name; a global rule and the route count a request once, the route's way", async () => {
    await gw.put("/apisix/admin/global_rules/metrics", { plugins: { prometheus: {} } });
    try {
      assert.equal((await get("/named")).status, 200);
      assert.equal((await get("/uncounted")).status, 200);
      const s = await scrape();
      assert.equal(value(s, "apisix_http_status", { route: "chat-api", code: "200" }), 1);
      assert.equal(find(s, "apisix_http_status", { route: "named" }).length, 0, "not also under the id");
      // The global rule alone counts a route without the plugin.
      assert.equal(value(s, "apisix_http_status", { route: "uncounted", code: "200" }), 1);
    } finally {
      await gw.admin("DELETE", "/apisix/admin/global_rules/metrics");
    }
  });

  test("response_source tells a plugin's rejection (apisix) and an unreachable upstream (nginx) from real answers; consumers are labelled", async () => {
    assert.equal((await get("/guarded")).status, 401);
    assert.equal((await get("/guarded", { apikey: "jack-metrics-key" })).status, 200);
    assert.equal((await get("/dead")).status, 502);
    const s = await scrape();
    assert.equal(value(s, "apisix_http_status", { route: "guarded", code: "401", response_source: "apisix" }), 1);
    assert.equal(
      value(s, "apisix_http_status", { route: "guarded", code: "200", consumer: "jack", response_source: "upstream" }),
      1,
    );
    assert.equal(value(s, "apisix_http_status", { route: "dead", code: "502", response_source: "nginx" }), 1);
    assert.equal(find(s, "apisix_http_latency_count", { route: "dead", type: "upstream" }).length, 0);
  });

  test("LLM routes count tokens, time to first token and latency; active connections rise during a stream and fall after", async () => {
    const client = new OpenAI({ baseURL: `${gw.proxyUrl}/llm/v1`, apiKey: "unused", maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "count" }] });
    sim.behave({ interTokenMs: 30, tokens: 20, times: 1 });
    const stream = await client.chat.completions.create({
      model: "m",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "stream" }],
    });
    let during: Sample[] | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      during ??= await scrape();
      if (chunk.usage) usage = chunk.usage;
    }
    const active = { route_id: "llm", node: "127.0.0.1", request_type: "ai_stream", request_llm_model: "m" };
    assert.equal(value(during!, "apisix_llm_active_connections", active), 1);

    const s = await scrape();
    assert.equal(value(s, "apisix_llm_active_connections", active), 0);
    const chat = { route_id: "llm", request_type: "ai_chat", request_llm_model: "m", llm_model: "gpt-4o-mini" };
    const streamed = { ...chat, request_type: "ai_stream" };
    assert.equal(value(s, "apisix_llm_prompt_tokens", chat), answer.usage!.prompt_tokens);
    assert.equal(value(s, "apisix_llm_completion_tokens", chat), answer.usage!.completion_tokens);
    assert.equal(value(s, "apisix_llm_completion_tokens", streamed), usage!.completion_tokens);
    assert.equal(value(s, "apisix_llm_completion_tokens_dist_count", streamed), 1);
    assert.equal(value(s, "apisix_llm_latency_count", { ...chat, type: "total" }), 1);
    assert.equal(find(s, "apisix_llm_latency_count", { ...chat, type: "ttft" }).length, 0, "no ttft for non-streams");
    assert.equal(value(s, "apisix_llm_latency_count", { ...streamed, type: "ttft" }), 1);
    const ttft = value(s, "apisix_llm_latency_sum", { ...streamed, type: "ttft" });
    const total = value(s, "apisix_llm_latency_sum", { ...streamed, type: "total" });
    assert.ok(ttft > 0 && total > ttft + 200, `ttft ${ttft} ms, total ${total} ms for 20 tokens 30 ms apart`);
    assert.equal(value(s, "apisix_http_status", { route: "llm", code: "200", request_type: "ai_stream" }), 1);
  });

  test("upstream_status reports each health-checked node; the export server answers only its uri", async () => {
    await gw.put("/apisix/admin/upstreams/checked", {
      nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }],
      checks: { active: { http_path: "/health", healthy: { interval: 1, successes: 1 } } },
    });
    await gw.put("/apisix/admin/routes/checked", { uri: "/checked", upstream_id: "checked" });
    assert.equal((await get("/checked")).status, 200);
    let s: Sample[] = [];
    for (let i = 0; i < 100; i++) {
      s = await scrape();
      if (find(s, "apisix_upstream_status", { name: "/apisix/upstreams/checked" }).length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(
      value(s, "apisix_upstream_status", { name: "/apisix/upstreams/checked", ip: "127.0.0.1", port: String(up.port) }),
      1,
    );
    const other = await fetch(metricsUrl.replace("/apisix/prometheus/metrics", "/metrics"));
    assert.equal(other.status, 404);
  });

  test("plugin metadata disabled_labels sends the listed labels as empty; structural labels cannot be disabled", async () => {
    const meta = await gw.admin("PUT", "/apisix/admin/plugin_metadata/prometheus", {
      disabled_labels: { http_status: ["matched_uri", "node"], http_latency: ["route"] },
    });
    assert.equal(meta.status, 201, JSON.stringify(meta.body));
    try {
      assert.equal((await get("/counted/masked")).status, 200);
      const s = await scrape();
      const masked = find(s, "apisix_http_status", { route: "counted", code: "200", matched_uri: "", node: "" });
      assert.equal(masked.length, 1);
      assert.equal(masked[0]!.value, 1);
      assert.ok(find(s, "apisix_http_latency_count", { route: "", type: "request", node: "127.0.0.1" }).length > 0);
      const structural = await gw.admin("PUT", "/apisix/admin/plugin_metadata/prometheus", {
        disabled_labels: { http_status: ["code"] },
      });
      assert.equal(structural.status, 400);
      assert.match(structural.body.error_msg, /http_status/);
    } finally {
      await gw.admin("DELETE", "/apisix/admin/plugin_metadata/prometheus");
    }
  });

  test("bad plugin config is a 400 that names the field", async () => {
    const res = await gw.admin("PUT", "/apisix/admin/routes/bad-metrics", {
      uri: "/bad",
      plugins: { prometheus: { prefer_name: "yes" } },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error_msg, /prefer_name/);
  });
});

describe("prometheus: each gateway in a process keeps its own metrics", () => {
  let a: TestGateway;
  let b: TestGateway;
  let up: TestUpstream;
  let sim: LlmSimulator;

  const scrape = async (gw: TestGateway): Promise<Sample[]> => {
    const res = await fetch(`http://127.0.0.1:${gw.gateway.metricsAddress!.port}/apisix/prometheus/metrics`);
    assert.equal(res.status, 200);
    return parseExposition(await res.text());
  };
  const named = (samples: Sample[], name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

  before(async () => {
    up = await startUpstream("two-gateways");
    sim = await startLlmSimulator({ name: "two-gateways-sim", apiKey: SIM_KEY, ttftMs: 1, interTokenMs: 1 });
    // Different prefixes too: the prefix was a property of the one shared registry, so the last gateway
    // started renamed every other gateway's metrics.
    a = await startTestGateway();
    b = await startTestGateway({ metricsPrefix: "weir_" });
    // The same route id, uri and node on both: in one shared registry their series would be one.
    const route = {
      uri: "/shared/*",
      plugins: { prometheus: {} },
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    };
    await a.put("/apisix/admin/routes/shared", route);
    await b.put("/apisix/admin/routes/shared", route);
    await a.put("/apisix/admin/routes/llm", {
      uri: "/llm/v1/chat/completions",
      plugins: {
        prometheus: {},
        "ai-proxy": {
          provider: "openai-compatible",
          auth: { header: { Authorization: `Bearer ${SIM_KEY}` } },
          options: { model: "gpt-4o-mini" },
          override: { endpoint: sim.url },
        },
      },
    });
  });

  after(async () => {
    await a.stop();
    await b.stop();
    await up.close();
    await sim.close();
  });

  test("a request through one gateway shows in its /metrics only, under its own prefix", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await fetchBody(`${a.proxyUrl}/shared/a`)).status, 200);
    assert.equal((await fetchBody(`${b.proxyUrl}/shared/b`)).status, 200);
    const llm = await fetchBody(`${a.proxyUrl}/llm/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "count" }] }),
    });
    assert.equal(llm.status, 200, JSON.stringify(llm.body));

    const sa = await scrape(a);
    const sb = await scrape(b);
    const shared = { route: "shared", code: "200" };
    assert.deepEqual(
      named(sa, "apisix_http_status", shared).map((s) => s.value),
      [3],
    );
    assert.deepEqual(
      named(sb, "weir_http_status", shared).map((s) => s.value),
      [1],
    );
    assert.equal(sa.filter((s) => s.name.startsWith("weir_")).length, 0, "a keeps its own prefix");
    assert.equal(sb.filter((s) => s.name.startsWith("apisix_")).length, 0, "b keeps its own prefix");
    // The LLM call counted its tokens (prometheus plugin) and its connection (the call itself) in a only.
    assert.equal(named(sa, "apisix_llm_prompt_tokens", { route_id: "llm" }).length, 1);
    assert.deepEqual(
      named(sa, "apisix_llm_active_connections", { route_id: "llm" }).map((s) => s.value),
      [0],
    );
    assert.equal(named(sb, "weir_llm_prompt_tokens", {}).length, 0);
    assert.equal(named(sb, "weir_llm_active_connections", {}).length, 0);
    assert.equal(named(sb, "weir_http_status", { route: "llm" }).length, 0);
  });
});
