import type { FileHandle } from "node:fs/promises";
import { writeAll } from "./disk.js";
import { CorruptFileError, scanFrames } from "./frame.js";
import type { WatchEvent } from "./types.js";

/**
 * One write in the log. A put carries the whole new entry (its modRevision is the record's revision); a
 * delete carries only the key, since the removed entry is whatever replay holds for it at that point.
 */
export type WalRecord =
  | { type: "put"; revision: number; key: string; value: unknown; createRevision: number }
  | { type: "delete"; revision: number; key: string };

export function walRecordOf(event: WatchEvent): WalRecord {
  if (event.type === "put") {
    return {
      type: "put",
      revision: event.revision,
      key: event.key,
      value: event.value,
      createRevision: event.entry.createRevision,
    };
  }
  return { type: "delete", revision: event.revision, key: event.key };
}

export interface WalContents {
  records: { record: WalRecord; offset: number }[];
  validBytes: number;
  tornReason?: string;
}

/** Parses a whole log; a torn tail is reported (not thrown), damage before valid records throws. */
export function readWal(buf: Buffer, file: string): WalContents {
  const scan = scanFrames(buf, file);
  const records: WalContents["records"] = [];
  let previous: number | undefined;
  for (const { payload, offset } of scan.frames) {
    const record = asWalRecord(payload);
    if (record === undefined) throw new CorruptFileError(file, offset, "record has an unexpected shape");
    // Revisions in one log are consecutive: a gap or a step back means records were lost or reordered.
    if (previous !== undefined && record.revision !== previous + 1) {
      throw new CorruptFileError(file, offset, `revision ${record.revision} follows revision ${previous}`);
    }
    previous = record.revision;
    records.push({ record, offset });
  }
  return { records, validBytes: scan.validBytes, tornReason: scan.tornReason };
}

function asWalRecord(payload: unknown): WalRecord | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const r = payload as Record<string, unknown>;
  if (!isRevision(r.revision) || typeof r.key !== "string") return undefined;
  if (r.type === "delete") return { type: "delete", revision: r.revision, key: r.key };
  if (r.type === "put" && isRevision(r.createRevision) && r.createRevision <= r.revision) {
    return { type: "put", revision: r.revision, key: r.key, value: r.value, createRevision: r.createRevision };
  }
  return undefined;
}

export function isRevision(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The open log: appends are fdatasynced before they count, so an acknowledged write survives a crash. */
export class WalWriter {
  private readonly handle: FileHandle;
  private bytes: number;

  constructor(handle: FileHandle, bytes: number) {
    this.handle = handle;
    this.bytes = bytes;
  }

  get size(): number {
    return this.bytes;
  }

  /** Takes an already encoded frame so that a value JSON cannot encode fails before anything is written. */
  async append(frame: Buffer): Promise<void> {
    await writeAll(this.handle, frame);
    this.bytes += frame.length;
    // fdatasync, not fsync: it still flushes the file length (needed to read the data back) but skips
    // timestamps, which recovery does not care about.
    await this.handle.datasync();
  }

  /** Empties the log after a snapshot has made every record in it redundant. */
  async reset(): Promise<void> {
    await this.handle.truncate(0);
    this.bytes = 0;
    await this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
