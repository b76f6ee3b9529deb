import { readFile } from "node:fs/promises";
import { CorruptFileError, decodeFrameAt, encodeFrame } from "./frame.js";
import type { StoreEntry } from "./types.js";
import { isRevision } from "./wal.js";

const FORMAT = 1;

/**
 * The whole store at one revision. The revision is stored even when there are no entries, so a store
 * emptied by deletes never hands out a revision it has used before.
 */
export interface StoreSnapshot {
  revision: number;
  entries: StoreEntry[];
}

export function encodeSnapshot(snapshot: StoreSnapshot): Buffer {
  return encodeFrame({ format: FORMAT, revision: snapshot.revision, entries: snapshot.entries });
}

/**
 * Undefined when there is no snapshot yet. The file only ever appears by atomic rename of a fully synced
 * temp file, so unlike the WAL it can have no torn tail: any damage is corruption and refuses the open.
 */
export async function readSnapshot(path: string): Promise<StoreSnapshot | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const frame = decodeFrameAt(buf, 0);
  if (!frame.ok) throw new CorruptFileError(path, 0, frame.reason);
  if (frame.end !== buf.length) throw new CorruptFileError(path, frame.end, "unexpected bytes after the snapshot");
  const snapshot = asSnapshot(frame.payload);
  if (snapshot === undefined) throw new CorruptFileError(path, 0, "snapshot has an unexpected shape or format");
  return snapshot;
}

function asSnapshot(payload: unknown): StoreSnapshot | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const s = payload as Record<string, unknown>;
  if (s.format !== FORMAT || !isRevision(s.revision) || !Array.isArray(s.entries)) return undefined;
  const revision = s.revision;
  const entries: StoreEntry[] = [];
  for (const item of s.entries as unknown[]) {
    if (typeof item !== "object" || item === null) return undefined;
    const e = item as Record<string, unknown>;
    if (typeof e.key !== "string" || !isRevision(e.createRevision) || !isRevision(e.modRevision)) return undefined;
    if (e.createRevision > e.modRevision || e.modRevision > revision) return undefined;
    entries.push({ key: e.key, value: e.value, createRevision: e.createRevision, modRevision: e.modRevision });
  }
  return { revision, entries };
}
