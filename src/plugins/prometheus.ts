import { type Static, Type } from "@sinclair/typebox";
import { METRIC_LABELS, STRUCTURAL_LABELS } from "../observability/gateway-metrics.js";
import type { PluginContext } from "../plugin-api/context.js";
import type { Plugin, PluginScope, RequestMetrics } from "../plugin-api/plugin.js";

/**
 * prometheus: counts the requests of the routes (or global rules) it is configured on into APISIX's
 * metrics: status codes, latency (request, upstream, gateway), bandwidth, and for AI routes tokens, time to
 * first token and LLM latency. The export server (`plugin_attr.prometheus.export_addr`, 127.0.0.1:9091 by
 * default) serves them at `/apisix/prometheus/metrics`. As in APISIX it runs once per request even when a
 * global rule and the route both carry it: the route's config wins (run_policy prefer_route). The metrics
 * are the compiling gateway's (its scope's), so two gateways in one process count apart.
 */
export const name = "prometheus";
export const priority = 500;

export const schema = Type.Object({
  prefer_name: Type.Optional(Type.Boolean({ default: false })),
});
export type PrometheusConfig = Static<typeof schema>;

/**
 * `/apisix/admin/plugin_metadata/prometheus`: `disabled_labels` sends the listed labels of a metric as ""
 * (for example `request_llm_model`, which clients choose), bounding cardinality. A metric's structural
 * label (`code`, `type`) cannot be disabled.
 */
export const metadataSchema = Type.Object({
  disabled_labels: Type.Optional(
    Type.Object(
      Object.fromEntries(
        Object.entries(METRIC_LABELS).map(([metric, labels]) => [
          metric,
          Type.Optional(
            Type.Array(
              Type.Unsafe<string>({
                type: "string",
                enum: labels.filter((l) => !(STRUCTURAL_LABELS[metric] ?? []).includes(l)),
              }),
            ),
          ),
        ]),
      ),
      { additionalProperties: false },
    ),
  ),
});

interface State {
  preferName: boolean;
  metrics: RequestMetrics;
}

function compile(conf: PrometheusConfig, scope: PluginScope): State {
  // Without a gateway's registry there is nothing to count into: a compile failure, so 503, not silence.
  if (scope.metrics === undefined) throw new Error("the gateway's metrics are not available here");
  return { preferName: conf.prefer_name === true, metrics: scope.metrics };
}

function log(state: State, ctx: PluginContext): void {
  state.metrics.record(ctx, state.preferName);
}

export const prometheus: Plugin<PrometheusConfig, State> = {
  name,
  priority,
  version: "0.2",
  schema,
  metadataSchema,
  runPolicy: "prefer_route",
  compile,
  log,
};
