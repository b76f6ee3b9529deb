import {
  CompareFailedError,
  type ConfigStore,
  type DeleteOptions,
  type ListResult,
  type PutOptions,
  RevisionCompactedError,
  type StoreEntry,
  type WatchEvent,
  type Watcher,
  type WatchListener,
} from "./types.js";

const DEFAULT_HISTORY = 10_000;

interface WatchRegistration {
  prefix: string;
  listener: WatchListener;
}

/**
 * The in-memory core of every local store: revisions, compare-and-swap, a bounded event history for
 * watch-from-revision, and fan-out to watchers. Durable stores persist through the `persist` hook
 * around it; tests can use it directly when durability is not what they prove.
 */
export class MemoryStore implements ConfigStore {
  protected entries = new Map<string, StoreEntry>();
  protected currentRevision = 0;
  private history: WatchEvent[] = [];
  private readonly historyLimit: number;
  private watchers = new Set<WatchRegistration>();
  /** Writes run one at a time so each sees the revision the previous one produced. */
  private writeChain: Promise<unknown> = Promise.resolve();

  constructor(options: { historyLimit?: number } = {}) {
    this.historyLimit = options.historyLimit ?? DEFAULT_HISTORY;
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {
    this.watchers.clear();
  }

  revision(): number {
    return this.currentRevision;
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    return this.entries.get(key);
  }

  async list(prefix: string): Promise<ListResult> {
    const entries: StoreEntry[] = [];
    for (const [key, entry] of this.entries) {
      if (key.startsWith(prefix)) entries.push(entry);
    }
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { entries, revision: this.currentRevision };
  }

  put(key: string, value: unknown, options: PutOptions = {}): Promise<StoreEntry> {
    return this.serialize(() => this.putNow(key, value, options));
  }

  delete(key: string, options: DeleteOptions = {}): Promise<StoreEntry | undefined> {
    return this.serialize(() => this.deleteNow(key, options));
  }

  private async putNow(key: string, value: unknown, options: PutOptions): Promise<StoreEntry> {
    const existing = this.entries.get(key);
    this.checkCompare(key, existing, options.prevRevision);
    const revision = this.currentRevision + 1;
    const entry: StoreEntry = {
      key,
      value,
      createRevision: existing ? existing.createRevision : revision,
      modRevision: revision,
    };
    await this.persist({ type: "put", key, value, entry, revision });
    return entry;
  }

  private async deleteNow(key: string, options: DeleteOptions): Promise<StoreEntry | undefined> {
    const existing = this.entries.get(key);
    this.checkCompare(key, existing, options.prevRevision);
    if (!existing) return undefined;
    const revision = this.currentRevision + 1;
    await this.persist({ type: "delete", key, entry: existing, revision });
    return existing;
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher {
    if (fromRevision <= this.currentRevision) {
      const oldest = this.history.length > 0 ? this.history[0]!.revision : this.currentRevision + 1;
      if (fromRevision < oldest && fromRevision > 0) throw new RevisionCompactedError(oldest);
      const replay = this.history.filter((e) => e.revision >= fromRevision && e.key.startsWith(prefix));
      if (replay.length > 0) listener(replay);
    }
    const registration: WatchRegistration = { prefix, listener };
    this.watchers.add(registration);
    return { close: () => this.watchers.delete(registration) };
  }

  /** Durable subclasses write the event to disk here before it is applied; the base applies directly. */
  protected async persist(event: WatchEvent): Promise<void> {
    this.apply(event);
  }

  /** Applies an event to memory and notifies watchers. Also used by subclasses when replaying a log. */
  protected apply(event: WatchEvent, notify = true): void {
    if (event.type === "put") this.entries.set(event.key, event.entry);
    else this.entries.delete(event.key);
    this.currentRevision = event.revision;
    this.history.push(event);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
    if (!notify) return;
    for (const w of this.watchers) {
      if (event.key.startsWith(w.prefix)) {
        try {
          w.listener([event]);
        } catch {
          // a faulty watcher must not stop the store or other watchers
        }
      }
    }
  }

  private serialize<T>(write: () => Promise<T>): Promise<T> {
    const result = this.writeChain.then(write);
    this.writeChain = result.catch(() => undefined);
    return result;
  }

  private checkCompare(key: string, existing: StoreEntry | undefined, prevRevision: number | undefined): void {
    if (prevRevision === undefined) return;
    const current = existing ? existing.modRevision : 0;
    if (current !== prevRevision) throw new CompareFailedError(key, current);
  }
}
