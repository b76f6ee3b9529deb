import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
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

/** PEM files of a test CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export function makeCerts(dir: string): TestCerts {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  ssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=weir-test-ca",
    "-keyout",
    f("ca-key.pem"),
    "-out",
    f("ca.pem"),
  );
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), ext);
    ssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      f(`${name}-key.pem`),
      "-out",
      f(`${name}.csr`),
    );
    ssl(
      "x509",
      "-req",
      "-in",
      f(`${name}.csr`),
      "-CA",
      f("ca.pem"),
      "-CAkey",
      f("ca-key.pem"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      f(`${name}.ext`),
      "-out",
      f(`${name}.pem`),
    );
  };
  // clientAuth too: etcd's own gateway dials its gRPC port with the server certificate.
  issue("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  issue("client", "weir", "extendedKeyUsage=clientAuth\n");
  return {
    ca: f("ca.pem"),
    serverCert: f("server.pem"),
    serverKey: f("server-key.pem"),
    clientCert: f("client.pem"),
    clientKey: f("client-key.pem"),
  };
}

/** `tls`: serve https and require client certificates signed by the test CA (etcd's --client-cert-auth). */
export async function startEtcd(options: { tls?: TestCerts; args?: string[] } = {}): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), "weir-etcd-"));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const tls = options.tls;
  const url = `${tls === undefined ? "http" : "https"}://127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  const call = async (path: string, body: unknown) => {
    if (tls === undefined) {
      const res = await fetch(`${url}${path}`, { method: "POST", body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
      return res.json();
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${url}${path}`,
        {
          method: "POST",
          ca: readFileSync(tls.ca),
          cert: readFileSync(tls.clientCert),
          key: readFileSync(tls.clientKey),
        },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () =>
            res.statusCode === 200
              ? resolve(JSON.parse(text))
              : reject(new Error(`etcd ${path}: ${res.statusCode} ${text}`)),
          );
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
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
        ...(options.args ?? []),
        ...(tls === undefined
          ? []
          : [
              "--cert-file",
              tls.serverCert,
              "--key-file",
              tls.serverKey,
              "--client-cert-auth",
              "--trusted-ca-file",
              tls.ca,
            ]),
      ],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await call("/v3/kv/range", { key: Buffer.from("/").toString("base64") });
        return;
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null) {
          child.kill("SIGKILL");
          throw new Error(`etcd did not start: ${err}`);
        }
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
