import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

/**
 * A real etcd (Debian's etcd-server) on loopback ports with its own data dir, for the etcd store's tests.
 * `npm test` installs the package when a selected test needs it (scripts/test.mjs).
 */
export interface EtcdServer {
  readonly url: string;
  /** Calls the JSON gateway, as `etcdctl` would, e.g. ("/v3/kv/compaction", {revision: "5"}). */
  call(path: string, body: unknown): Promise<any>;
  stop(): Promise<void>;
  /** Starts it again with the same data. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), "weir-etcd-"));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  const call = async (path: string, body: unknown) => {
    const res = await fetch(`${url}${path}`, { method: "POST", body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const start = async () => {
    child = spawn(
      "etcd",
      [
        "--data-dir",
        join(dir, "data"),
        "--name",
        "weir-test",
        "--listen-client-urls",
        url,
        "--advertise-client-urls",
        url,
        "--listen-peer-urls",
        `http://127.0.0.1:${peerPort}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peerPort}`,
        "--initial-cluster",
        `weir-test=http://127.0.0.1:${peerPort}`,
      ],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await call("/v3/kv/range", { key: Buffer.from("/").toString("base64") });
        return;
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`etcd did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const stop = async () => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    url,
    call,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
