import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { fetchBody } from "./helpers/http.js";

describe("upstream fields: https with tls.verify, and what Weir refuses", () => {
  let gw: TestGateway;
  let server: Server;
  let port: number;
  const dir = mkdtempSync(join(tmpdir(), "weir-tls-"));
  before(async () => {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    server = createServer(
      { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
      (_req, res) => res.end('{"node":"tls"}'),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    gw = await startTestGateway();
  });
  after(async () => {
    await gw.stop();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("https upstreams verify the certificate unless tls.verify is false", async () => {
    const upstream = (verify?: boolean) => ({
      scheme: "https",
      retries: 0,
      nodes: [{ host: "127.0.0.1", port, weight: 1 }],
      ...(verify === undefined ? {} : { tls: { verify } }),
    });
    await gw.admin("PUT", "/apisix/admin/routes/tls-strict", { uri: "/strict", upstream: upstream() });
    await gw.admin("PUT", "/apisix/admin/routes/tls-lax", { uri: "/lax", upstream: upstream(false) });
    assert.equal((await fetchBody(`${gw.proxyUrl}/strict`)).status, 502, "self-signed certificate refused");
    const lax = await fetchBody(`${gw.proxyUrl}/lax`);
    assert.equal(lax.status, 200);
    assert.equal(lax.body.node, "tls");
  });

  test("unsupported upstream fields are refused with a clear message, not silently ignored", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ service_name: "llm", discovery_type: "dns" }, /service discovery is not supported/],
      [{ scheme: "grpc", nodes: [] }, /gRPC upstreams are not supported/],
      [{ nodes: [], tls: { client_cert_id: "1" } }, /SSL objects are not supported/],
      [{ nodes: [], tls: { client_cert: "x".repeat(200) } }, /client_cert and client_key go together/],
    ];
    for (const [body, pattern] of cases) {
      const res = await gw.admin("PUT", "/apisix/admin/upstreams/refused", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.error_msg, pattern);
    }
  });
});
