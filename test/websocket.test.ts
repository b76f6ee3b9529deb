import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "undici";
import { startTestGateway, type TestGateway } from "./helpers/gateway.js";

/** A real WebSocket echo server (RFC 6455 handshake and text frames), standing in for a realtime model API. */
async function startEchoServer(): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((_req, res) => res.writeHead(426).end());
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
  return { server, port: (server.address() as AddressInfo).port, seen };
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
});
