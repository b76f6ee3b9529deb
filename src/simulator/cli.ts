import { type SimulatorOptions, startLlmSimulator } from "./server.js";

export const LLM_SIM_USAGE =
  "weir llm-sim [--port 8001] [--host 127.0.0.1] [--ttft-ms 200] [--itl-ms 20] [--api-key K] [--name N] [--tokens 32]";

const NUMBER_FLAGS = {
  "--port": "port",
  "--ttft-ms": "ttftMs",
  "--itl-ms": "interTokenMs",
  "--tokens": "answerTokens",
} as const;
const STRING_FLAGS = { "--host": "host", "--api-key": "apiKey", "--name": "name" } as const;

/** Parses `--flag value` and `--flag=value`; throws with the flag's name when one is wrong. */
export function parseLlmSimArgs(args: readonly string[]): SimulatorOptions {
  const o: SimulatorOptions = { host: "127.0.0.1", port: 8001, ttftMs: 200, interTokenMs: 20 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (!(flag in NUMBER_FLAGS) && !(flag in STRING_FLAGS))
      throw new Error(`llm-sim: unknown option "${flag}"\n${LLM_SIM_USAGE}`);
    if (value === undefined || value === "") throw new Error(`llm-sim: ${flag} needs a value`);
    if (flag in NUMBER_FLAGS) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`llm-sim: ${flag} must be a whole number, got "${value}"`);
      o[NUMBER_FLAGS[flag as keyof typeof NUMBER_FLAGS]] = n;
    } else {
      o[STRING_FLAGS[flag as keyof typeof STRING_FLAGS]] = value;
    }
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
  process.stderr.write(
    `LLM simulator ${sim.name} listening on ${sim.url} (ttft ${options.ttftMs} ms, itl ${options.interTokenMs} ms` +
      `${options.apiKey !== undefined ? ", API key required" : ""})\n`,
  );
  const stop = () => {
    sim.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
