export type { AbortedResponse } from "./delivery.js";
export type { EngineConfig } from "./engine.js";
export type { Behaviour, FailSpec } from "./faults.js";
export {
  type LlmSimulator,
  type RecordedRequest,
  type ServingOptions,
  type SimulatorOptions,
  startLlmSimulator,
} from "./server.js";
export type { MetricsDialect } from "./serving-metrics.js";
