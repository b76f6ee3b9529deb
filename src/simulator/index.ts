export type { AbortedResponse } from "./delivery.js";
export type { Behaviour, FailSpec } from "./faults.js";
export { type LlmSimulator, type RecordedRequest, type SimulatorOptions, startLlmSimulator } from "./server.js";
