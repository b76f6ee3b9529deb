import { createServer } from "node:net";

/**
 * A loopback port nothing listens on right now (bound, then released). For servers that must be told a
 * port (redis-server, etcd) and for a refused connection. Another process may take it in between; callers
 * that can listen on port 0 themselves should.
 */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
