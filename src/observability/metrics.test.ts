import assert from "node:assert/strict";
import { test } from "node:test";
import { labelValue, MetricRegistry } from "./metrics.js";

test("counters, gauges and histograms render in the text exposition format", () => {
  const r = new MetricRegistry();
  const status = r.counter("http_status", "HTTP status codes", ["code", "route"]);
  const up = r.gauge("up", "Up");
  const lat = r.histogram("latency", "Latency in ms", ["type"], [1, 10]);
  r.counter("unused", "never touched");
  status.inc(["200", "r1"]);
  status.inc(["200", "r1"], 2);
  status.inc(["502", 'a "quoted"\\route\nx']);
  up.set([], 1);
  lat.observe(["request"], 0.5);
  lat.observe(["request"], 1);
  lat.observe(["request"], 7.25);
  lat.observe(["request"], 100);
  r.prefix = "weir_";
  assert.equal(
    r.render(),
    [
      "# HELP weir_http_status HTTP status codes",
      "# TYPE weir_http_status counter",
      'weir_http_status{code="200",route="r1"} 3',
      'weir_http_status{code="502",route="a \\"quoted\\"\\\\route\\nx"} 1',
      "# HELP weir_up Up",
      "# TYPE weir_up gauge",
      "weir_up 1",
      "# HELP weir_latency Latency in ms",
      "# TYPE weir_latency histogram",
      'weir_latency_bucket{type="request",le="1"} 2',
      'weir_latency_bucket{type="request",le="10"} 3',
      'weir_latency_bucket{type="request",le="+Inf"} 4',
      'weir_latency_sum{type="request"} 108.75',
      'weir_latency_count{type="request"} 4',
      "",
    ].join("\n"),
  );
});

test("a wrong number of label values is a programming error, not a silent series", () => {
  const r = new MetricRegistry();
  const c = r.counter("c", "c", ["a", "b"]);
  assert.throws(() => c.inc(["only-one"]), /1 label values for 2 labels/);
});

test("label values from requests are cut to 128 characters and cannot carry the key separator", () => {
  assert.equal(labelValue(undefined), "");
  assert.equal(labelValue("x".repeat(500)).length, 128);
  assert.equal(labelValue("gpt\u0000-4o"), "gpt-4o");
});
