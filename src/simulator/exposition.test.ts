import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { cppNumber, Exposition, Histogram, pythonNumber } from "./exposition.js";

describe("the Prometheus text writer", () => {
  test("numbers print as prometheus_client and C++ print them", () => {
    assert.deepEqual([0, 3, 0.25, 1e-5, 2560, 1234567, Number.POSITIVE_INFINITY].map(pythonNumber), [
      "0.0",
      "3.0",
      "0.25",
      "1e-05",
      "2560.0",
      "1.234567e+06",
      "+Inf",
    ]);
    assert.deepEqual([0, 6886, 2903.63, 2.371514, 1234567, 0.00001234].map(cppNumber), [
      "0",
      "6886",
      "2903.63",
      "2.37151",
      "1.23457e+06",
      "1.234e-05",
    ]);
  });

  test("a histogram prints cumulative buckets with le among the sorted labels, then count and sum", () => {
    const h = new Histogram([0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);
    const x = new Exposition();
    x.histogram("x:latency_seconds", "Latency.", h, [
      ["engine", "0"],
      ["model_name", 'a"b'],
    ]);
    x.metric("x:up", "gauge", "Up.", 1);
    assert.equal(
      x.text(),
      [
        "# HELP x:latency_seconds Latency.",
        "# TYPE x:latency_seconds histogram",
        'x:latency_seconds_bucket{engine="0",le="0.1",model_name="a\\"b"} 2.0',
        'x:latency_seconds_bucket{engine="0",le="1.0",model_name="a\\"b"} 3.0',
        'x:latency_seconds_bucket{engine="0",le="+Inf",model_name="a\\"b"} 4.0',
        'x:latency_seconds_count{engine="0",model_name="a\\"b"} 4.0',
        'x:latency_seconds_sum{engine="0",model_name="a\\"b"} 3.65',
        "# HELP x:up Up.",
        "# TYPE x:up gauge",
        "x:up 1.0",
        "",
      ].join("\n"),
    );
  });
});
