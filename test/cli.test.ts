import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { startUpstream } from "./helpers/upstream.js";
import { CLI, startWeir } from "./helpers/weir-process.js";

const run = promisify(execFile);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("weir command line", () => {
  test("version prints the package version", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "version"]);
    assert.match(stdout, /^weir \d+\.\d+\.\d+/);
  });

  test("config check accepts the shipped config and names the bad key in a broken one", async () => {
    const ok = await run(process.execPath, [...CLI, "config", "check"]);
    assert.match(ok.stdout, /configuration OK/);
    const dir = mkdtempSync(join(tmpdir(), "weir-cli-conf-"));
    dirs.push(dir);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "deployment:\n  admin:\n    admin_listen: { port: -1 }\n");
    await assert.rejects(
      run(process.execPath, [...CLI, "config", "check", "-c", bad]),
      (err: { code: number; stderr: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, /admin_listen/);
        assert.doesNotMatch(err.stderr, /\n\s+at /, "no stack trace");
        return true;
      },
    );
  });

  test("a port in use is one clear line and exit code 1", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const dataDir = mkdtempSync(join(tmpdir(), "weir-cli-"));
      dirs.push(dataDir);
      await assert.rejects(
        run(process.execPath, [...CLI, "start"], {
          env: {
            ...process.env,
            WEIR_DATA_DIR: dataDir,
            WEIR_PROXY_LISTEN: `127.0.0.1:${port}`,
            WEIR_ADMIN_LISTEN: "127.0.0.1:0",
            WEIR_CONTROL_LISTEN: "127.0.0.1:0",
            WEIR_METRICS_LISTEN: "127.0.0.1:0",
            WEIR_ADMIN_KEY: "cli-test-key-0123456789",
          },
          timeout: 20_000,
        }),
        (err: { code: number; stderr: string }) => {
          assert.equal(err.code, 1);
          assert.match(err.stderr, /EADDRINUSE/);
          return true;
        },
      );
    } finally {
      blocker.close();
    }
  });

  test("SIGTERM lets an in-flight request finish, then exits 0", async () => {
    const slow = await startUpstream("slow", (_req, res) => setTimeout(() => res.end("finished"), 800));
    const weir = await startWeir();
    try {
      const put = await fetch(`${weir.admin}/apisix/admin/routes/slow`, {
        method: "PUT",
        headers: { "X-API-KEY": weir.key },
        body: JSON.stringify({
          uri: "/slow",
          upstream: { nodes: [{ host: "127.0.0.1", port: slow.port, weight: 1 }] },
        }),
      });
      assert.equal(put.status, 201);
      await new Promise((r) => setTimeout(r, 100));
      const inFlight = fetch(`${weir.proxy}/slow`).then(async (r) => [r.status, await r.text()] as const);
      await new Promise((r) => setTimeout(r, 200));
      weir.child.kill("SIGTERM");
      assert.deepEqual(await inFlight, [200, "finished"]);
      assert.equal(await weir.exited, 0, weir.output());
      await assert.rejects(fetch(`${weir.proxy}/slow`), "no longer accepting");
    } finally {
      weir.child.kill("SIGKILL");
      await slow.close();
    }
  });

  test("SIGHUP reloads config.yaml: a new admin key works without a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weir-cli-hup-"));
    dirs.push(dir);
    const conf = join(dir, "config.yaml");
    const oldKey = "old-admin-key-0123456789";
    const newKey = "new-admin-key-0123456789";
    const write = (key: string) =>
      writeFileSync(conf, `deployment:\n  admin:\n    admin_key: [{ name: admin, key: "${key}", role: admin }]\n`);
    write(oldKey);
    const weir = await startWeir({ WEIR_ADMIN_KEY: "" }, ["-c", conf]);
    try {
      const get = (key: string) => fetch(`${weir.admin}/apisix/admin/routes`, { headers: { "X-API-KEY": key } });
      assert.equal((await get(oldKey)).status, 200);
      write(newKey);
      weir.child.kill("SIGHUP");
      for (let i = 0; i < 50 && !weir.output().includes("reloaded"); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await get(newKey)).status, 200);
      assert.equal((await get(oldKey)).status, 401);
      // a broken file on SIGHUP keeps the running config
      writeFileSync(conf, "deployment: [this is not valid\n");
      weir.child.kill("SIGHUP");
      for (let i = 0; i < 50 && !weir.output().includes("reload failed"); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(weir.output(), /reload failed/);
      assert.equal((await get(newKey)).status, 200);
    } finally {
      weir.child.kill("SIGTERM");
      await weir.exited;
    }
  });
});
