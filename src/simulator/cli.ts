import { type EngineConfig, engineConfig } from "./engine.js";
import { type ServingOptions, type SimulatorOptions, startLlmSimulator } from "./server.js";
import { METRICS_DIALECTS, type MetricsDialect } from "./serving-metrics.js";

export const LLM_SIM_USAGE =
  "weir llm-sim [--port 8001] [--host 127.0.0.1] [--ttft-ms 200] [--itl-ms 20] [--api-key K] [--name N] [--tokens 32]\n" +
  "  serving model (any of these turns it on): [--serving] [--slots 16] [--kv-capacity-tokens 65536]\n" +
  "  [--block-tokens 16] [--prefix-cache-blocks 4096] [--max-batched-tokens 2048] [--prefill-ms-per-token 0.05]\n" +
  "  [--decode-ms-per-token 10] [--batch-growth 0.04] [--slowdown 1] [--jitter 0] [--seed 1]\n" +
  "  [--metrics-dialect vllm|sglang|llamacpp] [--served-model-name M]";

const NUMBER_FLAGS = {
  "--port": "port",
  "--ttft-ms": "ttftMs",
  "--itl-ms": "interTokenMs",
  "--tokens": "answerTokens",
} as const;
const STRING_FLAGS = { "--host": "host", "--api-key": "apiKey", "--name": "name" } as const;
/** Serving-model flags and the EngineConfig field each sets; `true`: a whole number. */
const SERVING_FLAGS: Record<string, [keyof EngineConfig, boolean]> = {
  "--slots": ["slots", true],
  "--kv-capacity-tokens": ["kvCapacityTokens", true],
  "--block-tokens": ["blockTokens", true],
  "--prefix-cache-blocks": ["prefixCacheBlocks", true],
  "--max-batched-tokens": ["maxBatchedTokens", true],
  "--prefill-ms-per-token": ["prefillMsPerToken", false],
  "--decode-ms-per-token": ["decodeMsPerToken", false],
  "--batch-growth": ["batchGrowth", false],
  "--slowdown": ["slowdown", false],
  "--jitter": ["jitter", false],
  "--seed": ["seed", true],
};

/** Parses `--flag value` and `--flag=value`; throws with the flag's name when one is wrong. */
export function parseLlmSimArgs(args: readonly string[]): SimulatorOptions {
  const o: SimulatorOptions = { host: "127.0.0.1", port: 8001, ttftMs: 200, interTokenMs: 20 };
  let serving: ServingOptions | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--serving") {
      serving ??= {};
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const known =
      flag in NUMBER_FLAGS ||
      flag in STRING_FLAGS ||
      flag in SERVING_FLAGS ||
      flag === "--metrics-dialect" ||
      flag === "--served-model-name";
    if (!known) throw new Error(`llm-sim: unknown option "${flag}"\n${LLM_SIM_USAGE}`);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === "") throw new Error(`llm-sim: ${flag} needs a value`);
    if (flag in NUMBER_FLAGS) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`llm-sim: ${flag} must be a whole number, got "${value}"`);
      o[NUMBER_FLAGS[flag as keyof typeof NUMBER_FLAGS]] = n;
    } else if (flag in STRING_FLAGS) {
      o[STRING_FLAGS[flag as keyof typeof STRING_FLAGS]] = value;
    } else if (flag === "--metrics-dialect") {
      if (!METRICS_DIALECTS.includes(value as MetricsDialect)) {
        throw new Error(`llm-sim: --metrics-dialect must be one of ${METRICS_DIALECTS.join(", ")}, got "${value}"`);
      }
      serving = { ...serving, metricsDialect: value as MetricsDialect };
    } else if (flag === "--served-model-name") {
      serving = { ...serving, servedModelName: value };
    } else {
      const [field, whole] = SERVING_FLAGS[flag]!;
      const n = Number(value);
      if (!Number.isFinite(n) || (whole && !Number.isInteger(n))) {
        throw new Error(`llm-sim: ${flag} must be ${whole ? "a whole number" : "a number"}, got "${value}"`);
      }
      serving = { ...serving, [field]: n };
    }
  }
  if (serving !== undefined) {
    try {
      engineConfig(serving);
    } catch (err) {
      throw new Error(`llm-sim: ${(err as Error).message}`);
    }
    o.serving = serving;
  }
  return o;
}

/** `weir llm-sim`: runs the simulator until SIGINT or SIGTERM. */
export async function runLlmSim(args: readonly string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`Usage: ${LLM_SIM_USAGE}\n`);
    return;
  }
  const options = parseLlmSimArgs(args);
  const sim = await startLlmSimulator(options);
  const timing =
    options.serving === undefined
      ? `ttft ${options.ttftMs} ms, itl ${options.interTokenMs} ms`
      : `serving model: ${describe(engineConfig(options.serving))}, /metrics in ${options.serving.metricsDialect ?? "vllm"} names`;
  process.stderr.write(
    `LLM simulator ${sim.name} listening on ${sim.url} (${timing}` +
      `${options.apiKey !== undefined ? ", API key required" : ""})\n`,
  );
  const stop = () => {
    sim.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

function describe(c: EngineConfig): string {
  return (
    `${c.slots} slots, KV ${c.kvCapacityTokens} tokens, prefix cache ${c.prefixCacheBlocks}×${c.blockTokens} tokens, ` +
    `prefill ${c.prefillMsPerToken} ms/token, decode ${c.decodeMsPerToken} ms/token + ${c.batchGrowth}/sequence` +
    `${c.slowdown !== 1 ? `, slowdown ×${c.slowdown}` : ""}${c.jitter > 0 ? `, jitter ±${c.jitter} seed ${c.seed}` : ""}`
  );
}
