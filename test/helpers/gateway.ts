import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WeirConfig } from "../../src/config/types.js";
import { Gateway } from "../../src/gateway.js";
import type { Plugin } from "../../src/plugin-api/plugin.js";
import { pluginRegistry } from "../../src/plugins/index.js";
import type { ConfigStore } from "../../src/store/types.js";

export interface TestGateway {
  gateway: Gateway;
  proxyUrl: string;
  adminUrl: string;
  adminKey: string;
  viewerKey: string;
  dataDir: string;
  /** Calls the Admin API with the admin key; returns status and parsed JSON body. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** PUTs a resource and fails the test unless the Admin API took it (200 or 201). */
  put(path: string, body: unknown): Promise<{ status: number; body: any }>;
  /** Resolves once the data plane runs the config the store holds now. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestGatewayOptions {
  dataDir?: string;
  keepDataDir?: boolean;
  store?: ConfigStore;
  plugins?: string[];
  /** Extra plugins (test-only) offered next to the built-ins, all enabled. */
  extraPlugins?: Plugin[];
  /** Access log file (absolute path); off by default. */
  accessLog?: string;
  log?: (line: string) => void;
  /** data_encryption keyring; gateways sharing one etcd need the same to read each other's secrets. */
  keyring?: string[];
  /** plugin_attr.prometheus.metric_prefix; "apisix_" by default. */
  metricsPrefix?: string;
}

/** A real gateway on 127.0.0.1 with free ports and its own data dir, as a user would run it. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const registry = new Map(pluginRegistry);
  for (const p of options.extraPlugins ?? []) registry.set(p.name, p);
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "weir-test-"));
  const adminKey = randomBytes(16).toString("hex");
  const viewerKey = randomBytes(16).toString("hex");
  const config: WeirConfig = {
    dataDir,
    proxy: { listen: [{ host: "127.0.0.1", port: 0 }] },
    admin: {
      enabled: true,
      listen: { host: "127.0.0.1", port: 0 },
      keys: [
        { name: "admin", key: adminKey, role: "admin" },
        { name: "viewer", key: viewerKey, role: "viewer" },
      ],
      allow: [],
    },
    control: { enabled: true, listen: { host: "127.0.0.1", port: 0 } },
    metrics: {
      enabled: true,
      listen: { host: "127.0.0.1", port: 0 },
      uri: "/apisix/prometheus/metrics",
      prefix: options.metricsPrefix ?? "apisix_",
    },
    store: { provider: "embedded" },
    plugins: options.plugins ?? [...registry.keys()],
    accessLog: { path: options.accessLog ?? null },
    ...(options.keyring === undefined ? {} : { dataEncryption: { enabled: true, keyring: options.keyring } }),
    shutdownTimeoutMs: 5_000,
  };
  const logs: string[] = [];
  const gateway = new Gateway(config, { log: options.log ?? ((l) => logs.push(l)), store: options.store, registry });
  await gateway.start();
  const proxy = gateway.proxyAddresses[0]!;
  const admin = gateway.adminAddress!;
  const adminUrl = `http://127.0.0.1:${admin.port}`;
  const tg: TestGateway = {
    gateway,
    proxyUrl: `http://127.0.0.1:${proxy.port}`,
    adminUrl,
    adminKey,
    viewerKey,
    dataDir,
    async admin(method, path, body) {
      const res = await fetch(`${adminUrl}${path}`, {
        method,
        headers: { "X-API-KEY": adminKey, "content-type": "application/json" },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // non-JSON bodies are returned as text
      }
      await tg.settled();
      return { status: res.status, body: parsed };
    },
    async put(path, body) {
      const res = await tg.admin("PUT", path, body);
      assert.ok(res.status === 200 || res.status === 201, `PUT ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res;
    },
    async settled() {
      const sync = gateway.configSync;
      const target = gateway.configStore.revision();
      for (let i = 0; i < 200 && sync.current.revision < target; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setImmediate(r));
    },
    async stop() {
      await gateway.stop({ timeoutMs: 2_000 });
      if (!options.keepDataDir && options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return tg;
}
