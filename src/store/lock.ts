import { randomBytes } from "node:crypto";
import { link, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { FILE_MODE } from "./disk.js";

const LOCK_FILE = "LOCK";
const MAX_ATTEMPTS = 5;

/** Lock files held by stores in this process. A pid check cannot tell two stores of one process apart. */
const heldHere = new Set<string>();

export class DataDirInUseError extends Error {
  readonly dir: string;
  readonly pid: number;
  constructor(dir: string, pid: number) {
    super(`data dir ${dir} is in use by pid ${pid}`);
    this.name = "DataDirInUseError";
    this.dir = dir;
    this.pid = pid;
  }
}

export interface DirLock {
  release(): Promise<void>;
}

/**
 * Makes `dir` exclusive to this store. The lock file holds the owner's pid and appears atomically (written
 * under a temp name, then hard-linked into place, which fails if the name exists), so it is never seen
 * empty or half-written. A lock whose pid is dead is stale (the owner crashed) and is taken over. That
 * includes our own pid when no store in this process holds it: a container's gateway is often pid 1 on
 * every restart.
 */
export async function acquireDirLock(dir: string): Promise<DirLock> {
  const path = join(resolve(dir), LOCK_FILE);
  if (heldHere.has(path)) throw new DataDirInUseError(dir, process.pid);
  heldHere.add(path);
  try {
    await takeLockFile(dir, path);
  } catch (err) {
    heldHere.delete(path);
    throw err;
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      heldHere.delete(path);
      // Only remove the file if it is still ours; never delete a lock another process has since taken.
      if ((await readOwner(path)) === process.pid) await rm(path, { force: true });
    },
  };
}

async function takeLockFile(dir: string, path: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${process.pid}\n`, { mode: FILE_MODE });
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        await link(tmp, path);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = await readOwner(path);
      if (owner === undefined) continue; // released between our link and our read: try again
      // Our own pid here is stale: the heldHere check ruled out another store of this process.
      if (typeof owner === "number" && owner !== process.pid && isAlive(owner)) {
        throw new DataDirInUseError(dir, owner);
      }
      await removeStaleLock(path, owner);
    }
    throw new Error(`could not lock data dir ${dir}: another process keeps taking ${path}`);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Two processes may find the same stale lock at once. Each moves it to a private name first (rename is
 * atomic, so only one of them gets any given file) and checks it moved the stale lock it judged, not a
 * fresh one the other process just linked; a fresh one is put back.
 */
async function removeStaleLock(path: string, staleOwner: number | "unreadable"): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    if ((await readOwner(aside)) !== staleOwner) await link(aside, path).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

/** The pid in the lock file, "unreadable" for content we did not write, undefined if there is no file. */
async function readOwner(path: string): Promise<number | "unreadable" | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : "unreadable";
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user, so it is alive.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
