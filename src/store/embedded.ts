import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { FILE_MODE, makeDirDurably, replaceFileDurably, syncDir } from "./disk.js";
import { CorruptFileError, encodeFrame } from "./frame.js";
import { acquireDirLock, type DirLock } from "./lock.js";
import { MemoryStore } from "./memory.js";
import { encodeSnapshot, readSnapshot } from "./snapshot-file.js";
import type { WatchEvent } from "./types.js";
import { readWal, type WalContents, type WalRecord, WalWriter, walRecordOf } from "./wal.js";

const WAL_FILE = "wal";
const SNAPSHOT_FILE = "snapshot";
const DEFAULT_COMPACT_AFTER_BYTES = 4 * 1024 * 1024;

export interface EmbeddedStoreOptions {
  /** Directory holding the store's files; created with mode 0700 if missing. */
  dir: string;
  /** Events kept in memory for watch-from-revision (see MemoryStore). */
  historyLimit?: number;
  /** WAL size that triggers a snapshot and a fresh WAL. */
  compactAfterBytes?: number;
  /** Where recovery and compaction report what they did; defaults to a process warning. */
  log?: (message: string) => void;
}

/**
 * The single-node durable store in the data dir: a write-ahead log of every put/delete plus a snapshot
 * that periodically absorbs the log. Files:
 *   LOCK      pid of the process that has the store open
 *   wal       framed records (see frame.ts), each fdatasynced before its write is acknowledged
 *   snapshot  the whole store at one revision, replaced atomically
 * Recovery loads the snapshot and replays log records newer than it, so a crash at any step (including
 * mid-compaction) leaves files that recover to exactly the acknowledged writes, plus at most the one
 * write that was in flight.
 */
export class EmbeddedStore extends MemoryStore {
  readonly dir: string;
  private readonly compactAfterBytes: number;
  private readonly log: (message: string) => void;
  private state: "new" | "opening" | "open" | "closed" = "new";
  private opening: Promise<void> | undefined;
  private lock: DirLock | undefined;
  private wal: WalWriter | undefined;
  /**
   * Set when a log write or reset failed part-way. The log's tail is then unknown (and after a failed
   * fsync the kernel may have dropped the data), so more appends could leave a gap or reuse a revision;
   * writes are refused until a restart re-reads the log.
   */
  private failure: Error | undefined;
  /** WAL size that starts the next compaction; pushed out after a failure so it is not retried per write. */
  private compactAt: number;
  /** Appends and compactions run one at a time; close() waits for the last one. */
  private diskChain: Promise<unknown> = Promise.resolve();

  constructor(options: EmbeddedStoreOptions) {
    super({ historyLimit: options.historyLimit });
    this.dir = options.dir;
    this.compactAfterBytes = options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES;
    this.compactAt = this.compactAfterBytes;
    this.log = options.log ?? ((message) => process.emitWarning(message, { code: "WEIR_STORE" }));
  }

  override open(): Promise<void> {
    if (this.state !== "new") {
      return Promise.reject(new Error(`store ${this.dir} was already opened; create a new EmbeddedStore to reopen it`));
    }
    this.state = "opening";
    this.opening = this.openNow().then(
      () => {
        this.state = "open";
      },
      (err: unknown) => {
        this.state = "closed";
        throw err;
      },
    );
    return this.opening;
  }

  override async close(): Promise<void> {
    if (this.opening !== undefined) await this.opening.catch(() => undefined);
    if (this.state === "open") {
      this.state = "closed";
      await this.diskChain;
      await this.wal?.close();
      this.wal = undefined;
      await this.lock?.release();
      this.lock = undefined;
    }
    this.state = "closed";
    await super.close();
  }

  /** Writes a snapshot and starts an empty WAL now rather than at compactAfterBytes. */
  compact(): Promise<void> {
    return this.onDisk(() => this.compactNow(this.writableWal()));
  }

  protected override persist(event: WatchEvent): Promise<void> {
    return this.onDisk(async () => {
      const wal = this.writableWal();
      // Encoding first: a value JSON cannot encode fails the write before anything reaches the disk.
      const frame = encodeFrame(walRecordOf(event));
      try {
        await wal.append(frame);
      } catch (err) {
        throw this.fail(err, "a write to the log failed");
      }
      this.apply(event);
      if (wal.size >= this.compactAt) await this.compactAfterWrite(wal);
    });
  }

  private async openNow(): Promise<void> {
    await makeDirDurably(this.dir);
    this.lock = await acquireDirLock(this.dir);
    try {
      this.wal = await this.recover();
    } catch (err) {
      await this.lock.release();
      this.lock = undefined;
      throw err;
    }
  }

  private async recover(): Promise<WalWriter> {
    // A compaction that crashed before its rename leaves a temp file; the old snapshot and the log still
    // hold everything it had.
    await rm(join(this.dir, `${SNAPSHOT_FILE}.tmp`), { force: true });
    const snapshot = await readSnapshot(join(this.dir, SNAPSHOT_FILE));
    if (snapshot !== undefined) {
      for (const entry of snapshot.entries) this.entries.set(entry.key, entry);
      this.currentRevision = snapshot.revision;
    }

    const walPath = join(this.dir, WAL_FILE);
    const bytes = await readFile(walPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    const contents = readWal(bytes ?? Buffer.alloc(0), walPath);
    this.replay(contents, walPath);

    const handle = await open(walPath, "a", FILE_MODE);
    try {
      if (contents.tornReason !== undefined) {
        await handle.truncate(contents.validBytes);
        await handle.sync();
        const torn = (bytes?.length ?? 0) - contents.validBytes;
        this.log(
          `store ${this.dir}: removed a torn record at the end of ${walPath} (${torn} bytes at offset ` +
            `${contents.validBytes}: ${contents.tornReason}); a crash interrupted that write before it was acknowledged`,
        );
      }
      if (bytes === undefined) await syncDir(this.dir);
    } catch (err) {
      await handle.close();
      throw err;
    }
    return new WalWriter(handle, contents.validBytes);
  }

  private replay(contents: WalContents, walPath: string): void {
    const snapshotRevision = this.currentRevision;
    for (const { record, offset } of contents.records) {
      // Already in the snapshot: a compaction crashed after its rename but before it emptied the log.
      if (record.revision <= snapshotRevision) continue;
      if (record.revision !== this.currentRevision + 1) {
        throw new CorruptFileError(
          walPath,
          offset,
          `the log continues at revision ${record.revision} but the snapshot ends at revision ${snapshotRevision}`,
        );
      }
      this.apply(this.eventOf(record, walPath, offset), false);
    }
  }

  private eventOf(record: WalRecord, walPath: string, offset: number): WatchEvent {
    const { key, revision } = record;
    if (record.type === "put") {
      const entry = { key, value: record.value, createRevision: record.createRevision, modRevision: revision };
      return { type: "put", key, value: record.value, entry, revision };
    }
    const removed = this.entries.get(key);
    if (removed === undefined) {
      throw new CorruptFileError(walPath, offset, `revision ${revision} deletes ${key}, which does not exist then`);
    }
    return { type: "delete", key, entry: removed, revision };
  }

  private async compactNow(wal: WalWriter): Promise<void> {
    const snapshot = encodeSnapshot({ revision: this.currentRevision, entries: [...this.entries.values()] });
    await replaceFileDurably(this.dir, SNAPSHOT_FILE, snapshot);
    // The snapshot now holds everything and recovery skips log records at or below its revision, so a
    // crash before or during the reset below recovers the same state.
    try {
      await wal.reset();
    } catch (err) {
      throw this.fail(err, "emptying the log after a snapshot failed");
    }
    this.compactAt = this.compactAfterBytes;
  }

  /** The write that crossed the threshold is already durable; a failed compaction must not fail it. */
  private async compactAfterWrite(wal: WalWriter): Promise<void> {
    try {
      await this.compactNow(wal);
    } catch (err) {
      this.compactAt = wal.size + this.compactAfterBytes;
      this.log(
        `store ${this.dir}: compaction failed, the log keeps growing until it succeeds: ${(err as Error).message}`,
      );
    }
  }

  private writableWal(): WalWriter {
    if (this.failure !== undefined) {
      throw new Error(`store ${this.dir} refuses writes until restarted: ${this.failure.message}`);
    }
    if (this.state !== "open" || this.wal === undefined) {
      throw new Error(`store ${this.dir} is ${this.state === "closed" ? "closed" : "not open"}`);
    }
    return this.wal;
  }

  private fail(err: unknown, what: string): Error {
    const cause = err instanceof Error ? err : new Error(String(err));
    this.failure = new Error(`${what}: ${cause.message}`, { cause });
    this.log(`store ${this.dir}: ${this.failure.message}; refusing further writes until restarted`);
    return cause;
  }

  private onDisk<T>(work: () => Promise<T>): Promise<T> {
    const result = this.diskChain.then(work);
    this.diskChain = result.catch(() => undefined);
    return result;
  }
}
