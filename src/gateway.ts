import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createAdminHandler } from "./admin/server.js";
import { loadKeyring, PluginSecrets } from "./config/secrets.js";
import type { ListenAddress, WeirConfig } from "./config/types.js";
import { createControlHandler } from "./control/server.js";
import { type AccessLog, createAccessLog } from "./observability/access-log.js";
import { createExportHandler } from "./observability/export-server.js";
import { GatewayMetrics } from "./observability/gateway-metrics.js";
import type { Plugin } from "./plugin-api/plugin.js";
import { pluginRegistry } from "./plugins/index.js";
import { ProxyHandler } from "./proxy/handler.js";
import { ResponseWriter } from "./proxy/response.js";
import { validateIp, validateVars } from "./router/index.js";
import { boundRegexBacktracking } from "./router/regex-limit.js";
import { ConfigSync } from "./snapshot/config-sync.js";
import { createStore, EtcdStore } from "./store/index.js";
import { RESOURCE_TYPES } from "./store/keys.js";
import type { ConfigStore } from "./store/types.js";
import { PoolManager } from "./upstream/pool.js";
import { VERSION } from "./version.js";

export interface GatewayOptions {
  log?: (line: string) => void;
  /** Use this store instead of the one config.store names (tests share one store between gateways). */
  store?: ConfigStore;
  /** The plugins to choose enabled ones from; defaults to every built-in (tests add test-only plugins). */
  registry?: ReadonlyMap<string, Plugin>;
}

/**
 * One Weir process: the config store, the snapshot that follows it, the data plane listeners and the
 * Admin API. Lower layers know nothing of this module; it only wires them together.
 */
export class Gateway {
  private config: WeirConfig;
  private readonly log: (line: string) => void;
  private readonly ownsStore: boolean;
  private readonly available: ReadonlyMap<string, Plugin>;
  private store: ConfigStore | undefined;
  private readonly pools = new PoolManager();
  /** This gateway's metrics registry: a second gateway in the same process counts into its own. */
  private readonly metrics = new GatewayMetrics();
  private sync: ConfigSync | undefined;
  private secrets: PluginSecrets | undefined;
  private handler: ProxyHandler | undefined;
  private accessLog: AccessLog | undefined;
  private proxyServers: Server[] = [];
  private adminServer: Server | undefined;
  private controlServer: Server | undefined;
  private metricsServer: Server | undefined;
  /** Data-plane connections for the metrics' nginx_http_current_connections. */
  private readonly connections = { active: 0, accepted: 0 };
  private adminHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  private stopping: Promise<void> | undefined;

  constructor(config: WeirConfig, options: GatewayOptions = {}) {
    this.config = config;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.store = options.store;
    this.ownsStore = options.store === undefined;
    this.available = options.registry ?? pluginRegistry;
    boundRegexBacktracking();
  }

  get proxyAddresses(): ListenAddress[] {
    return this.proxyServers.map((s) => toListen(s.address() as AddressInfo));
  }

  get metricsAddress(): ListenAddress | undefined {
    return this.metricsServer === undefined ? undefined : toListen(this.metricsServer.address() as AddressInfo);
  }

  get controlAddress(): ListenAddress | undefined {
    return this.controlServer === undefined ? undefined : toListen(this.controlServer.address() as AddressInfo);
  }

  get adminAddress(): ListenAddress | undefined {
    return this.adminServer === undefined ? undefined : toListen(this.adminServer.address() as AddressInfo);
  }

  /** The config store this gateway reads and the Admin API writes. */
  get configStore(): ConfigStore {
    if (this.store === undefined) throw new Error("gateway not started");
    return this.store;
  }

  /** The live config sync (tests wait for snapshots through it). */
  get configSync(): ConfigSync {
    if (this.sync === undefined) throw new Error("gateway not started");
    return this.sync;
  }

  async start(): Promise<void> {
    const config = this.config;
    const store = this.store ?? createStore(config.store, config.dataDir);
    this.store = store;
    if (this.ownsStore) await store.open();
    const registry = enabledPlugins(config.plugins, this.available);
    const encryption = config.dataEncryption ?? { enabled: true, keyring: [] };
    this.secrets = new PluginSecrets(
      encryption.enabled ? loadKeyring(encryption.keyring, config.dataDir) : undefined,
      registry,
    );
    this.sync = new ConfigSync({
      store,
      registry,
      pools: this.pools,
      log: this.log,
      secrets: this.secrets,
      metrics: this.metrics,
    });
    await this.sync.start();

    this.accessLog = createAccessLog(config.accessLog.path);
    const onPluginError = (phase: string, name: string, err: unknown) =>
      this.log(`plugin ${name} failed in ${phase}: ${(err as Error)?.stack ?? String(err)}`);
    const writer = new ResponseWriter({
      serverHeader: `Weir/${VERSION}`,
      accessLog: (ctx) => this.accessLog?.write(ctx),
      onPluginError,
    });
    this.handler = new ProxyHandler(this.sync, writer, onPluginError, this.metrics);

    for (const address of config.proxy.listen) {
      const server = createServer(
        {
          // nginx-like: long keep-alive so clients and load balancers reuse connections.
          keepAliveTimeout: 60_000,
          headersTimeout: 60_000,
          requestTimeout: 0,
          noDelay: true,
        },
        this.handler.handle,
      );
      server.on("upgrade", this.handler.upgrade);
      server.on("connection", this.countConnection);
      await listen(server, address);
      this.proxyServers.push(server);
    }

    if (config.metrics.enabled) {
      this.metrics.registry.prefix = config.metrics.prefix;
      const handler = this.handler;
      const sync = this.sync;
      this.metricsServer = createServer(
        createExportHandler(this.metrics, config.metrics.uri, {
          connections: () => ({
            active: this.connections.active,
            accepted: this.connections.accepted,
            handled: this.connections.accepted,
            writing: handler.inFlight,
          }),
          requests: () => handler.requestsTotal,
          checkers: () => sync.health.all(),
          etcd: store instanceof EtcdStore ? () => etcdStatus(store, sync) : undefined,
        }),
      );
      await listen(this.metricsServer, config.metrics.listen);
    }

    if (config.control.enabled) {
      this.controlServer = createServer(createControlHandler(this.sync));
      await listen(this.controlServer, config.control.listen);
    }

    if (config.admin.enabled) {
      this.adminHandler = this.buildAdminHandler(registry);
      this.adminServer = createServer((req, res) => this.adminHandler!(req, res));
      await listen(this.adminServer, config.admin.listen);
    }
  }

  private readonly countConnection = (socket: Socket): void => {
    this.connections.accepted++;
    this.connections.active++;
    socket.once("close", () => this.connections.active--);
  };

  private buildAdminHandler(registry: ReadonlyMap<string, Plugin>) {
    return createAdminHandler({
      store: this.store!,
      keys: this.config.admin.keys,
      allow: this.config.admin.allow,
      plugins: registry,
      secrets: this.secrets,
      enabledPlugins: [...registry.keys()],
      validateVars,
      validateIp,
    });
  }

  /** Applies a reloaded config.yaml: admin keys, allow list, access log. Listeners and store need a restart. */
  async reload(config: WeirConfig): Promise<void> {
    const old = this.config;
    if (JSON.stringify(old.proxy.listen) !== JSON.stringify(config.proxy.listen)) {
      this.log("proxy listen addresses changed: restart Weir to apply");
    }
    if (JSON.stringify(old.store) !== JSON.stringify(config.store) || old.dataDir !== config.dataDir) {
      this.log("config provider or data dir changed: restart Weir to apply");
    }
    if (JSON.stringify(old.plugins) !== JSON.stringify(config.plugins)) {
      this.log("enabled plugin list changed: restart Weir to apply");
    }
    this.config = { ...config, proxy: old.proxy, store: old.store, dataDir: old.dataDir, plugins: old.plugins };
    if (this.adminServer !== undefined)
      this.adminHandler = this.buildAdminHandler(enabledPlugins(old.plugins, this.available));
    if (old.accessLog.path !== config.accessLog.path) {
      const previous = this.accessLog;
      this.accessLog = createAccessLog(config.accessLog.path);
      await previous?.close();
    }
  }

  /** Stops accepting, lets in-flight requests finish (up to the timeout), then closes everything. */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.stopping ??= this.drain(options.timeoutMs ?? this.config.shutdownTimeoutMs);
    return this.stopping;
  }

  private async drain(timeoutMs: number): Promise<void> {
    const others = [this.adminServer, this.controlServer, this.metricsServer].filter(
      (s): s is Server => s !== undefined,
    );
    const closed = [...this.proxyServers, ...others].map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    for (const s of this.proxyServers) s.closeIdleConnections();
    for (const s of others) s.closeIdleConnections();
    const deadline = Date.now() + timeoutMs;
    while ((this.handler?.inFlight ?? 0) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      for (const s of this.proxyServers) s.closeIdleConnections();
    }
    for (const s of this.proxyServers) s.closeAllConnections();
    for (const s of others) s.closeAllConnections();
    await Promise.all(closed);
    this.sync?.stop();
    await this.pools.close();
    await this.accessLog?.close();
    if (this.ownsStore) await this.store?.close();
  }
}

/** APISIX's etcd gauges: reachability, the global revision, and the newest modifiedIndex per resource type. */
async function etcdStatus(
  store: EtcdStore,
  sync: ConfigSync,
): Promise<{ reachable: boolean; indexes: Record<string, number> }> {
  const reachable = await store.ping();
  const indexes: Record<string, number> = { x_etcd_index: store.revision() };
  for (const type of RESOURCE_TYPES) {
    let max = 0;
    for (const entry of sync.entries(type).values()) if (entry.modRevision > max) max = entry.modRevision;
    if (max > 0) indexes[type] = max;
  }
  return { reachable, indexes };
}

function enabledPlugins(names: readonly string[], available: ReadonlyMap<string, Plugin>): ReadonlyMap<string, Plugin> {
  const enabled = new Map<string, Plugin>();
  for (const name of names) {
    const plugin = available.get(name);
    if (plugin !== undefined) enabled.set(name, plugin);
  }
  return enabled;
}

function listen(server: Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

function toListen(a: AddressInfo): ListenAddress {
  return { host: a.address, port: a.port };
}
