import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "undici";
import { makeCerts } from "./helpers/etcd.js";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";
import { deadPort } from "./helpers/upstream.js";

/** A real WebSocket echo server (RFC 6455 handshake and text frames), standing in for a realtime model API. */
async function startEchoServer(
  tls?: Parameters<typeof createHttpsServer>[0],
): Promise<{ server: Server; port: number; seen: string[]; plain: string[] }> {
  const seen: string[] = [];
  const plain: string[] = [];
  const refuse = (req: { url?: string }, res: { writeHead(s: number): { end(): void } }) => {
    plain.push(req.url ?? "");
    res.writeHead(426).end();
  };
  const server: Server = tls === undefined ? createServer(refuse) : createHttpsServer(tls, refuse);
  server.on("upgrade", (req, socket: Socket) => {
    seen.push(`${req.url} ${req.headers["x-forwarded-for"]}`);
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on("data", (frame: Buffer) => {
      const opcode = frame[0]! & 0x0f;
      if (opcode === 0x8) {
        socket.end(Buffer.from([0x88, 0x00]));
        return;
      }
      const len = frame[1]! & 0x7f; // test messages are short
      const mask = frame.subarray(2, 6);
      const payload = Buffer.from(frame.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
      const reply = Buffer.from(`echo: ${payload.toString()}`);
      socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]));
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port, seen, plain };
}

describe("WebSocket routes (enable_websocket)", () => {
  let gw: TestGateway;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  before(async () => {
    gw = await startTestGateway();
    echo = await startEchoServer();
  });
  after(async () => {
    await gw.stop();
    echo.server.closeAllConnections();
    echo.server.close();
  });

  const talk = (url: string) =>
    new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send("hello model");
      ws.onmessage = (e) => {
        resolve(String(e.data));
        ws.close();
      };
      ws.onerror = () => reject(new Error("websocket failed"));
    });

  test("a route with enable_websocket tunnels the connection, with plugins and forwarding headers applied", async () => {
    const put = await gw.admin("PUT", "/apisix/admin/routes/ws", {
      uri: "/realtime",
      enable_websocket: true,
      plugins: { "proxy-rewrite": { uri: "/v1/realtime" } },
      upstream: { nodes: [{ host: "127.0.0.1", port: echo.port, weight: 1 }] },
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const ws = gw.proxyUrl.replace("http", "ws");
    assert.equal(await talk(`${ws}/realtime`), "echo: hello model");
    assert.deepEqual(echo.seen, ["/v1/realtime 127.0.0.1"]);
    // the gateway keeps serving plain HTTP afterwards
    assert.equal((await fetch(`${gw.proxyUrl}/nothing`)).status, 404);
  });

  test("without enable_websocket the upgrade is refused with a clear error", async () => {
    await gw.admin("PUT", "/apisix/admin/routes/plain", {
      uri: "/plain",
      upstream: { nodes: [{ host: "127.0.0.1", port: echo.port, weight: 1 }] },
    });
    await assert.rejects(talk(`${gw.proxyUrl.replace("http", "ws")}/plain`));
  });
  test("attack: an upstream that answers an upgrade with 200 gets no tunnel; a second request on the socket never reaches it", async () => {
    const seen: string[] = [];
    // An upstream that answers the handshake as a plain request and keeps the connection open (as a
    // node:http server without an upgrade handler may): splicing on that would hand the client a raw
    // channel to it past every route rule.
    const plain = createNetServer((socket) => {
      let buffered = "";
      socket.on("data", (d) => {
        buffered += d;
        for (let end = buffered.indexOf("\r\n\r\n"); end !== -1; end = buffered.indexOf("\r\n\r\n")) {
          seen.push(buffered.slice(0, end).split(" ")[1] ?? "");
          buffered = buffered.slice(end + 4);
          socket.write("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nplain answer");
        }
      });
      socket.on("error", () => undefined);
    });
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    try {
      await gw.put("/apisix/admin/routes/wsopen", {
        uri: "/wsopen/*",
        enable_websocket: true,
        upstream: { nodes: [{ host: "127.0.0.1", port: (plain.address() as AddressInfo).port, weight: 1 }] },
      });
      const socket = connect(Number(new URL(gw.proxyUrl).port), "127.0.0.1");
      let received = "";
      socket.on("data", (d) => (received += d));
      const closed = new Promise<void>((r) => socket.once("close", () => r()));
      socket.write(
        "GET /wsopen/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
          "GET /wsadmin/secret HTTP/1.1\r\nHost: a\r\n\r\n",
      );
      await closed;
      assert.match(received, /^HTTP\/1\.1 200/);
      assert.match(received, /plain answer/);
      assert.equal(received.match(/HTTP\/1\.1/g)?.length, 1, "one answer, then the connection closes");
      assert.deepEqual(seen, ["/wsopen/x"]);
    } finally {
      plain.close();
    }
  });

  test("a node that health checks marked unhealthy gets no upgrade", async () => {
    const dead = await deadPort();
    await gw.put("/apisix/admin/routes/ws-health", {
      uri: "/ws-health",
      enable_websocket: true,
      upstream: {
        retries: 0,
        nodes: [
          { host: "127.0.0.1", port: dead, weight: 1 },
          { host: "127.0.0.1", port: echo.port, weight: 1 },
        ],
        checks: {
          active: { type: "tcp", healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, tcp_failures: 1 } },
        },
      },
    });
    const checker = () => [...gw.gateway.configSync.health.all()].find((c) => c.name.includes("ws-health"));
    const deadline = Date.now() + 6_000;
    while (
      checker()
        ?.status()
        .nodes.find((n) => n.port === dead)?.status !== "unhealthy"
    ) {
      assert.ok(Date.now() < deadline, "the dead node is marked unhealthy");
      await new Promise((r) => setTimeout(r, 50));
    }
    const ws = gw.proxyUrl.replace("http", "ws");
    // With retries 0, every upgrade that went to the dead node would fail: none may.
    for (let i = 0; i < 6; i++) assert.equal(await talk(`${ws}/ws-health`), "echo: hello model");
  });

  test("least_conn counts an open tunnel: requests go to the other node while it is open", async () => {
    const other = await startEchoServer();
    try {
      await gw.put("/apisix/admin/routes/ws-lc", {
        uri: "/ws-lc",
        enable_websocket: true,
        upstream: {
          type: "least_conn",
          nodes: [
            { host: "127.0.0.1", port: echo.port, weight: 1 },
            { host: "127.0.0.1", port: other.port, weight: 1 },
          ],
        },
      });
      const ws = new WebSocket(`${gw.proxyUrl.replace("http", "ws")}/ws-lc`);
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error("websocket failed"));
      });
      const [busy, idle] = echo.seen.some((s) => s.startsWith("/ws-lc")) ? [echo, other] : [other, echo];
      // The open tunnel counts as a connection on its node, so every plain request goes to the other one.
      for (let i = 0; i < 4; i++) assert.equal((await fetch(`${gw.proxyUrl}/ws-lc`)).status, 426);
      assert.equal(busy.plain.length, 0, "no request went to the node holding the tunnel");
      assert.equal(idle.plain.length, 4);
      ws.close();
    } finally {
      other.server.closeAllConnections();
      other.server.close();
    }
  });

  test("wss upstreams: the certificate is verified unless tls.verify is false, and the client certificate is sent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weir-wss-"));
    const certs = makeCerts(dir);
    const pem = (p: string) => readFileSync(p, "utf8");
    const secure = await startEchoServer({
      key: pem(certs.serverKey),
      cert: pem(certs.serverCert),
      ca: pem(certs.ca),
      requestCert: true,
      rejectUnauthorized: true,
    });
    try {
      const route = (id: string, tls: Record<string, unknown> | undefined) =>
        gw.put(`/apisix/admin/routes/${id}`, {
          uri: `/${id}`,
          enable_websocket: true,
          upstream: {
            scheme: "https",
            retries: 0,
            nodes: [{ host: "127.0.0.1", port: secure.port, weight: 1 }],
            ...(tls === undefined ? {} : { tls }),
          },
        });
      const client = { client_cert: pem(certs.clientCert), client_key: pem(certs.clientKey) };
      await route("wss-verified", client);
      await route("wss-no-client-cert", { verify: false });
      await route("wss-lax", { verify: false, ...client });
      const ws = gw.proxyUrl.replace("http", "ws");
      // The server's certificate is signed by a CA the gateway does not trust.
      await assert.rejects(talk(`${ws}/wss-verified`));
      await assert.rejects(talk(`${ws}/wss-no-client-cert`));
      assert.equal(await talk(`${ws}/wss-lax`), "echo: hello model");
    } finally {
      secure.server.closeAllConnections();
      secure.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
