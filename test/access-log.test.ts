import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startTestGateway } from "./helpers/gateway.js";
import { startUpstream } from "./helpers/upstream.js";

test("every request leaves one access-log line with status, upstream address and upstream status", async () => {
  const up = await startUpstream("logged");
  const dataDir = mkdtempSync(join(tmpdir(), "weir-log-"));
  const logFile = join(dataDir, "logs", "access.log");
  const logged = await startTestGateway({ dataDir, accessLog: logFile });
  try {
    await logged.admin("PUT", "/apisix/admin/routes/log", {
      uri: "/log",
      upstream: { nodes: [{ host: "127.0.0.1", port: up.port, weight: 1 }] },
    });
    assert.equal((await fetch(`${logged.proxyUrl}/log?x=1`, { headers: { "user-agent": "log-test" } })).status, 200);
    assert.equal((await fetch(`${logged.proxyUrl}/missing`)).status, 404);
  } finally {
    await logged.stop();
    await up.close();
  }
  const lines = readFileSync(logFile, "utf8").trim().split("\n");
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(lines.length, 2);
  assert.match(
    lines[0]!,
    /^127\.0\.0\.1 - - \[.+\] 127\.0\.0\.1:\d+ "GET \/log\?x=1 HTTP\/1\.1" 200 \d+ [\d.]+ "-" "log-test" 127\.0\.0\.1:\d+ 200 [\d.]+ "\/log\?x=1"$/,
  );
  assert.match(lines[1]!, /"GET \/missing HTTP\/1\.1" 404 .* - - - "\/missing"$/);
});
