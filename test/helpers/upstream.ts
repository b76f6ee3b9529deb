import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { freePort } from "./ports.js";

export interface EchoedRequest {
  node: string;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface TestUpstream {
  name: string;
  port: number;
  server: Server;
  /** Requests this node received, in order. */
  received: EchoedRequest[];
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/**
 * A real HTTP server on 127.0.0.1 standing in for a model server: by default it answers 200 with JSON
 * describing the request it got (which node, method, url, headers, body).
 */
export async function startUpstream(name: string, handler?: UpstreamHandler): Promise<TestUpstream> {
  const received: EchoedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const echoed: EchoedRequest = { node: name, method: req.method!, url: req.url!, headers: req.headers, body };
      received.push(echoed);
      if (handler !== undefined) {
        handler(req, res, body);
        return;
      }
      const payload = JSON.stringify(echoed);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    server,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on, for a refused connection. */
export const deadPort = freePort;
