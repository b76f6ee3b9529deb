import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** `node` arguments that run the CLI from source. */
export const CLI = ["--import", "tsx", "src/cli/main.ts"];

/**
 * `weir start` as a separate process, as a user runs it: its own data dir, every listener on a free port
 * (read back from its startup lines), `extraEnv` on top. For tests that need a second gateway instance
 * that shares nothing with the test process but what it is configured to share (Redis).
 */
export interface Running {
  child: ChildProcess;
  output: () => string;
  proxy: string;
  admin: string;
  key: string;
  exited: Promise<number | null>;
  /** SIGTERM and wait for the exit (the data dir goes with it). */
  stop(): Promise<void>;
}

export async function startWeir(extraEnv: Record<string, string> = {}, args: string[] = []): Promise<Running> {
  const dataDir = mkdtempSync(join(tmpdir(), "weir-cli-"));
  const key = "cli-test-key-0123456789";
  const child = spawn(process.execPath, [...CLI, "start", ...args], {
    env: {
      ...process.env,
      WEIR_DATA_DIR: dataDir,
      // port 0 and the bound ports read back from the startup lines: a port probed free and handed over
      // can be taken by a parallel test before the child binds it
      WEIR_PROXY_LISTEN: "127.0.0.1:0",
      WEIR_ADMIN_LISTEN: "127.0.0.1:0",
      WEIR_CONTROL_LISTEN: "127.0.0.1:0",
      WEIR_METRICS_LISTEN: "127.0.0.1:0",
      WEIR_ADMIN_KEY: key,
      WEIR_ACCESS_LOG: "off",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (code) => {
      rmSync(dataDir, { recursive: true, force: true });
      r(code);
    }),
  );
  for (let i = 0; i < 150 && !out.includes("Admin API listening"); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(out, /Admin API listening/, out);
  const proxyPort = /proxy listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  const adminPort = /Admin API listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  assert.ok(proxyPort !== undefined && adminPort !== undefined, out);
  return {
    child,
    output: () => out,
    proxy: `http://127.0.0.1:${proxyPort}`,
    admin: `http://127.0.0.1:${adminPort}`,
    key,
    exited,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
