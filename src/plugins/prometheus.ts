import { type Static, Type } from "@sinclair/typebox";
import { gatewayMetrics } from "../observability/gateway-metrics.js";
import type { PluginContext } from "./context.js";
import type { Plugin } from "./types.js";

/**
 * prometheus: counts the requests of the routes (or global rules) it is configured on into APISIX's
 * metrics: status codes, latency (request, upstream, gateway), bandwidth, and for AI routes tokens, time to
 * first token and LLM latency. The export server (`plugin_attr.prometheus.export_addr`, 127.0.0.1:9091 by
 * default) serves them at `/apisix/prometheus/metrics`. As in APISIX it runs once per request even when a
 * global rule and the route both carry it: the route's config wins (run_policy prefer_route).
 */
export const name = "prometheus";
export const priority = 500;

export const schema = Type.Object({
  prefer_name: Type.Optional(Type.Boolean({ default: false })),
});
export type PrometheusConfig = Static<typeof schema>;

interface State {
  preferName: boolean;
}

function compile(conf: PrometheusConfig): State {
  return { preferName: conf.prefer_name === true };
}

function log(state: State, ctx: PluginContext): void {
  gatewayMetrics.record(ctx, state.preferName);
}

export const prometheus: Plugin<PrometheusConfig, State> = {
  name,
  priority,
  version: "0.2",
  schema,
  runPolicy: "prefer_route",
  compile,
  log,
};
