import { ConfigError, type LoadedConfig, loadConfig } from "../config/load.js";
import { Gateway } from "../gateway.js";
import { pluginRegistry } from "../plugins/index.js";
import { VERSION } from "../version.js";

/** `weir start | version | config check | help`. */
const USAGE = `Usage: weir <command> [-c conf/config.yaml]

Commands:
  start           run the gateway (SIGTERM drains and exits, SIGHUP reloads the config file)
  version         print the version
  config check    validate the config file and exit
  llm-sim         run the OpenAI/Anthropic LLM simulator (weir llm-sim --help; docs/simulator.md)
  help            this text

Environment: WEIR_ADMIN_KEY, WEIR_PROXY_LISTEN, WEIR_ADMIN_LISTEN, WEIR_DATA_DIR, WEIR_CONFIG, and any key
as WEIR__SECTION__KEY (see conf/config.yaml).`;

const knownPlugins = [...pluginRegistry.keys()];

function configPath(args: string[]): string | undefined {
  const i = args.findIndex((a) => a === "-c" || a === "--config");
  if (i === -1) return undefined;
  const path = args[i + 1];
  if (path === undefined) throw new ConfigError(`${args[i]} needs a file path`);
  return path;
}

function fatal(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`weir: ${message}\n`);
  if (process.env.WEIR_DEBUG === "1" && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

async function start(args: string[]): Promise<void> {
  const path = configPath(args);
  const loaded: LoadedConfig = loadConfig({ path, knownPlugins });
  const { config } = loaded;
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const gateway = new Gateway(config, { log });
  await gateway.start();
  for (const a of gateway.proxyAddresses) log(`Weir ${VERSION} proxy listening on ${a.host}:${a.port}`);
  const admin = gateway.adminAddress;
  const control = gateway.controlAddress;
  const metrics = gateway.metricsAddress;
  if (metrics !== undefined) log(`metrics listening on ${metrics.host}:${metrics.port}${config.metrics.uri}`);
  if (control !== undefined) log(`Control API listening on ${control.host}:${control.port}`);
  if (admin !== undefined) log(`Admin API listening on ${admin.host}:${admin.port}`);
  log(`config store: ${config.store.provider} (data dir ${config.dataDir}), config file: ${loaded.source}`);
  if (loaded.generatedAdminKey !== undefined) {
    log(`generated admin key (shown once, kept in ${config.dataDir}/admin_key): ${loaded.generatedAdminKey}`);
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: draining in-flight requests`);
    gateway.stop().then(
      () => {
        log("stopped");
        process.exit(0);
      },
      (err: unknown) => fatal(err),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    try {
      const next = loadConfig({ path, knownPlugins });
      gateway.reload(next.config).then(
        () => log(`SIGHUP: reloaded ${next.source}`),
        (err: unknown) => log(`SIGHUP: reload failed, keeping the running config: ${(err as Error).message}`),
      );
    } catch (err) {
      log(`SIGHUP: reload failed, keeping the running config: ${(err as Error).message}`);
    }
  });
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start":
      return start(rest);
    case "version":
    case "--version":
    case "-v":
      process.stdout.write(`weir ${VERSION}\n`);
      return;
    case "llm-sim":
      // Loaded on demand: the tokenizer's tables are not needed to run the gateway.
      return (await import("../simulator/cli.js")).runLlmSim(rest);
    case "config":
      if (rest[0] !== "check") throw new ConfigError(`unknown config command "${rest[0] ?? ""}"; try "config check"`);
      {
        const loaded = loadConfig({ path: configPath(rest), readOnly: true, knownPlugins });
        process.stdout.write(`configuration OK (${loaded.source})\n`);
      }
      return;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new ConfigError(`unknown command "${command}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch(fatal);
