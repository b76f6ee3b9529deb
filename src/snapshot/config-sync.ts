import type { PluginSecrets } from "../config/secrets.js";
import type { Plugin, RequestMetrics } from "../plugin-api/plugin.js";
import { DEFAULT_PREFIX, parseResourceKey, type ResourceType } from "../store/keys.js";
import type { ConfigStore, StoreEntry, WatchEvent, Watcher } from "../store/types.js";
import { HealthCheckManager } from "../upstream/health.js";
import type { PoolManager } from "../upstream/pool.js";
import { compileSnapshot } from "./compile.js";
import type { Snapshot } from "./snapshot.js";

/**
 * Keeps the data plane's snapshot in step with the store: lists everything once, then watches from the
 * next revision. Bursts of events (one Admin API call may touch several keys; an etcd watch batches) are
 * coalesced into one rebuild, and the new snapshot replaces the old in a single assignment.
 */
export class ConfigSync {
  private readonly store: ConfigStore;
  private readonly registry: ReadonlyMap<string, Plugin>;
  private readonly pools: PoolManager;
  readonly health: HealthCheckManager;
  private readonly log: (msg: string) => void;
  private readonly prefix: string;
  private readonly secrets: PluginSecrets | undefined;
  private readonly metrics: RequestMetrics | undefined;
  private readonly tables = new Map<ResourceType, Map<string, StoreEntry>>();
  private watcher: Watcher | undefined;
  private revision = 0;
  private rebuildScheduled = false;
  private snapshot: Snapshot | undefined;
  private readonly listeners = new Set<(s: Snapshot) => void>();

  constructor(options: {
    store: ConfigStore;
    registry: ReadonlyMap<string, Plugin>;
    pools: PoolManager;
    log: (msg: string) => void;
    prefix?: string;
    secrets?: PluginSecrets;
    /** The owning gateway's metrics, which the prometheus plugin instances compiled here feed. */
    metrics?: RequestMetrics;
  }) {
    this.store = options.store;
    this.registry = options.registry;
    this.pools = options.pools;
    this.health = new HealthCheckManager(options.log);
    this.log = options.log;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.secrets = options.secrets;
    this.metrics = options.metrics;
  }

  get current(): Snapshot {
    if (this.snapshot === undefined) throw new Error("config not loaded yet");
    return this.snapshot;
  }

  /** The stored resources of one type as the data plane currently knows them (read views). */
  entries(type: ResourceType): ReadonlyMap<string, StoreEntry> {
    return this.tables.get(type) ?? new Map();
  }

  /** Calls `listener` after every swap (tests and the control API wait on this). */
  onSnapshot(listener: (s: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    const { entries, revision } = await this.store.list(`${this.prefix}/`);
    for (const entry of entries) this.applyPut(entry);
    this.revision = revision;
    this.rebuild();
    this.watcher = this.store.watch(`${this.prefix}/`, revision + 1, (events) => this.onEvents(events));
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.health.stop();
    if (this.snapshot !== undefined) {
      for (const inst of this.snapshot.instances.all()) inst.plugin.destroy?.(inst.state);
    }
  }

  private onEvents(events: WatchEvent[]): void {
    for (const event of events) {
      if (event.type === "put") this.applyPut(event.entry);
      else this.applyDelete(event.key);
      if (event.revision > this.revision) this.revision = event.revision;
    }
    if (!this.rebuildScheduled) {
      this.rebuildScheduled = true;
      setImmediate(() => {
        this.rebuildScheduled = false;
        this.rebuild();
      });
    }
  }

  private applyPut(entry: StoreEntry): void {
    const parsed = parseResourceKey(entry.key, this.prefix);
    if (parsed === undefined) return;
    let table = this.tables.get(parsed.type);
    if (table === undefined) this.tables.set(parsed.type, (table = new Map()));
    table.set(parsed.id, entry);
  }

  private applyDelete(key: string): void {
    const parsed = parseResourceKey(key, this.prefix);
    if (parsed !== undefined) this.tables.get(parsed.type)?.delete(parsed.id);
  }

  private rebuild(): void {
    const previous = this.snapshot;
    let next: Snapshot;
    try {
      next = compileSnapshot(this.tables, this.revision, {
        registry: this.registry,
        pools: this.pools,
        health: this.health,
        previous,
        log: this.log,
        secrets: this.secrets,
        metrics: this.metrics,
      });
    } catch (err) {
      // Keep serving the last good config; the next change gets another chance.
      this.log(
        `config revision ${this.revision} failed to compile, keeping revision ${previous?.revision}: ${(err as Error).message}`,
      );
      return;
    }
    this.snapshot = next;
    for (const inst of next.instances.retired()) {
      try {
        inst.plugin.destroy?.(inst.state);
      } catch (err) {
        this.log(`plugin ${inst.plugin.name} destroy failed: ${(err as Error).message}`);
      }
    }
    this.pools.retain(next.poolKeys);
    this.health.retain(next.healthKeys);
    for (const listener of this.listeners) listener(next);
  }
}
