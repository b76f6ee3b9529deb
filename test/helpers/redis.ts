import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

/**
 * Real Redis servers from Debian's redis-server package, on loopback ports, for the rate-limit policies'
 * tests. The package is installed on first use, so a fresh machine needs nothing beforehand.
 */
export function ensureRedisInstalled(): void {
  if (spawnSync("sh", ["-c", "command -v redis-server && command -v redis-cli"]).status === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => spawnSync("apt-get", ["install", "-y", "-qq", "redis-server"], { env, stdio: "ignore" });
  if (install().status === 0) return;
  execFileSync("apt-get", ["update", "-qq"], { env, stdio: "ignore" });
  execFileSync("apt-get", ["install", "-y", "-qq", "redis-server"], { env, stdio: "ignore" });
}

/** One RESP command on a fresh connection; resolves with the raw reply. */
export function redisCommand(port: number, args: string[], password?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const encode = (parts: string[]) =>
      `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join("")}`;
    let out = "";
    let expected = password === undefined ? 1 : 2;
    socket.setTimeout(2000, () => socket.destroy(new Error("redis timed out")));
    socket.on("connect", () => {
      if (password !== undefined) socket.write(encode(["AUTH", password]));
      socket.write(encode(args));
    });
    socket.on("data", (d) => {
      out += d.toString();
      // Replies end with CRLF; count them roughly by top-level lines for simple commands.
      const lines = out.split("\r\n").filter((l) => /^[+\-:$*]/.test(l));
      if (lines.length >= expected && out.endsWith("\r\n")) {
        expected = Number.POSITIVE_INFINITY;
        socket.end();
        resolve(out);
      }
    });
    socket.on("error", reject);
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not come up`);
}

export interface RedisServer {
  readonly port: number;
  /** Kills the server (SIGKILL): clients see a dead Redis. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  close(): Promise<void>;
}

function spawnRedis(args: string[]): ChildProcess {
  return spawn("redis-server", args, { stdio: "ignore" });
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

/** A standalone server; `password` sets requirepass. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisServer> {
  ensureRedisInstalled();
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  if (options.password !== undefined) args.push("--requirepass", options.password);
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawnRedis(args);
    await waitFor(
      async () => (await redisCommand(port, ["PING"], options.password)).includes("PONG"),
      `redis on ${port}`,
    );
  };
  await start();
  return {
    port,
    stop: () => stopChild(child),
    start,
    close: () => stopChild(child),
  };
}

/** Three masters sharing the 16384 slots, made into a cluster with redis-cli. */
export async function startRedisCluster(): Promise<{ nodes: string[]; close(): Promise<void> }> {
  ensureRedisInstalled();
  const dir = mkdtempSync(join(tmpdir(), "weir-redis-cluster-"));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children = ports.map((port) =>
    spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--dir",
        dir,
      ],
      { stdio: "ignore" },
    ),
  );
  for (const port of ports) await waitFor(async () => (await redisCommand(port, ["PING"])).includes("PONG"), "node");
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  execFileSync("redis-cli", ["--cluster", "create", ...nodes, "--cluster-replicas", "0", "--cluster-yes"], {
    stdio: "ignore",
  });
  for (const port of ports)
    await waitFor(
      async () => (await redisCommand(port, ["CLUSTER", "INFO"])).includes("cluster_state:ok"),
      "cluster state",
    );
  return {
    nodes,
    async close() {
      await Promise.all(children.map((c) => stopChild(c)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A master and one Sentinel watching it under `name`. */
export async function startRedisSentinel(
  name: string,
): Promise<{ sentinel: { host: string; port: number }; masterPort: number; close(): Promise<void> }> {
  const master = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "weir-redis-sentinel-"));
  const port = await freePort();
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\n`,
  );
  const child = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
  await waitFor(
    async () => (await redisCommand(port, ["SENTINEL", "get-master-addr-by-name", name])).includes(String(master.port)),
    "sentinel",
  );
  return {
    sentinel: { host: "127.0.0.1", port },
    masterPort: master.port,
    async close() {
      await stopChild(child);
      await master.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
