/**
 * The config store contract. Keys follow APISIX's etcd layout (`/apisix/routes/<id>`), values are the JSON
 * objects the Admin API accepts. Revisions are global and strictly increasing, like etcd's, so the embedded
 * store and an etcd store are interchangeable for every caller.
 */
export interface StoreEntry<V = unknown> {
  key: string;
  value: V;
  /** Revision at which the key was (last) created. Admin API `createdIndex`. */
  createRevision: number;
  /** Revision of the last write to the key. Admin API `modifiedIndex`. */
  modRevision: number;
}

export interface WatchEvent {
  type: "put" | "delete";
  key: string;
  /** The new value for `put`; undefined for `delete`. */
  value?: unknown;
  /** For `put` the entry after the write; for `delete` the entry that was removed. */
  entry: StoreEntry;
  /** Revision at which this event happened. */
  revision: number;
}

export interface ListResult {
  entries: StoreEntry[];
  /** Store revision at which the listing was taken; watch from `revision + 1` to see every later change. */
  revision: number;
}

export interface PutOptions {
  /**
   * Compare-and-swap: the write happens only if the key's current modRevision equals this value.
   * `0` means "only if the key does not exist".
   */
  prevRevision?: number;
}

export interface DeleteOptions {
  /** Compare-and-swap on delete, as for put. */
  prevRevision?: number;
}

export type WatchListener = (events: WatchEvent[]) => void;

export interface Watcher {
  close(): void;
}

/** Raised when a compare-and-swap condition does not hold; nothing was written. */
export class CompareFailedError extends Error {
  readonly key: string;
  readonly currentRevision: number;
  constructor(key: string, currentRevision: number) {
    super(`compare failed for ${key}: current modRevision is ${currentRevision}`);
    this.name = "CompareFailedError";
    this.key = key;
    this.currentRevision = currentRevision;
  }
}

/** Raised when a watch asks for revisions that were compacted away; the caller must re-list. */
export class RevisionCompactedError extends Error {
  readonly compactRevision: number;
  constructor(compactRevision: number) {
    super(`requested revision was compacted; oldest available is ${compactRevision}`);
    this.name = "RevisionCompactedError";
    this.compactRevision = compactRevision;
  }
}

export interface ConfigStore {
  /** Opens (and for durable stores, recovers) the store. Must be called before anything else. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Current store revision (0 for an empty, never-written store). */
  revision(): number;
  get(key: string): Promise<StoreEntry | undefined>;
  /** Every entry whose key starts with `prefix`, ordered by key. */
  list(prefix: string): Promise<ListResult>;
  /** Resolves once the write is durable; rejects with CompareFailedError when `prevRevision` does not match. */
  put(key: string, value: unknown, options?: PutOptions): Promise<StoreEntry>;
  /** Resolves to the removed entry, or undefined if the key did not exist. */
  delete(key: string, options?: DeleteOptions): Promise<StoreEntry | undefined>;
  /**
   * Calls `listener` with every change to keys under `prefix` at revision >= `fromRevision`, in revision
   * order, first replaying history the store still holds. Throws RevisionCompactedError when that history
   * is gone.
   */
  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher;
}
