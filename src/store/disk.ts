import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";

/** Config may hold secrets (API keys, TLS keys): only the gateway's user may read the store. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** `write` may legally write fewer bytes than asked (e.g. near a full disk); loop until all are out. */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written);
    written += bytesWritten;
  }
}

/**
 * A created, renamed or removed file is only durable once its directory is fsynced; fsyncing the file
 * itself does not persist its name. Windows cannot open a directory for fsync, and NTFS journals names.
 */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `dir` (and missing parents) with DIR_MODE, and makes the new names durable. */
export async function makeDirDurably(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  // Each new directory's name lives in its parent: sync the parents from `dir`'s up to the first one created.
  const top = dirname(resolve(first));
  for (let child = resolve(dir); ; ) {
    const parent = dirname(child);
    await syncDir(parent);
    if (parent === top || parent === child) break;
    child = parent;
  }
}

/**
 * Replaces `dir/name` atomically: readers (and a recovery after a crash at any step) see either the old
 * file or the complete new one, never a mix. Order: write temp, fsync it, rename over, fsync the directory.
 */
export async function replaceFileDurably(dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  try {
    const handle = await open(tmp, "w", FILE_MODE);
    try {
      await writeAll(handle, data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}
