import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFile, cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { EmbeddedStore, type EmbeddedStoreOptions } from "./embedded.js";
import { CompareFailedError, RevisionCompactedError, type StoreEntry, type WatchEvent } from "./types.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");

const route = (id: string) => `/apisix/routes/${id}`;
const upstream = (id: string) => `/apisix/upstreams/${id}`;

const scratch: string[] = [];
after(() => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "weir-store-"));
  scratch.push(dir);
  return dir;
}

const open: EmbeddedStore[] = [];
after(() => Promise.all(open.map((s) => s.close())));

async function openStore(dir: string, options: Partial<EmbeddedStoreOptions> = {}): Promise<EmbeddedStore> {
  const store = new EmbeddedStore({ dir, log: () => {}, ...options });
  open.push(store);
  await store.open();
  return store;
}

async function dump(store: EmbeddedStore): Promise<{ revision: number; entries: StoreEntry[] }> {
  const { entries, revision } = await store.list("");
  return { revision, entries };
}

/** Offsets of the frames in a WAL, read from their length fields (frame = 12-byte header + payload). */
function frameOffsets(wal: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = 0; at < wal.length; at += 12 + wal.readUInt32BE(at + 4)) offsets.push(at);
  return offsets;
}

function flipBit(buf: Buffer, at: number): void {
  buf.writeUInt8(buf.readUInt8(at) ^ 0x01, at);
}

test("put, get, list and delete keep etcd's createRevision/modRevision semantics", async () => {
  const store = await openStore(await tempDir());
  assert.equal(store.revision(), 0);

  assert.deepEqual(await store.put(route("1"), { uri: "/a" }), {
    key: route("1"),
    value: { uri: "/a" },
    createRevision: 1,
    modRevision: 1,
  });
  await store.put(upstream("1"), { type: "roundrobin" });
  const updated = await store.put(route("1"), { uri: "/b" });
  assert.equal(updated.createRevision, 1);
  assert.equal(updated.modRevision, 3);
  assert.deepEqual((await store.get(route("1")))?.value, { uri: "/b" });
  assert.equal(await store.get(route("missing")), undefined);

  await store.put(route("0"), { uri: "/0" });
  const listed = await store.list("/apisix/routes/");
  assert.deepEqual(
    listed.entries.map((e) => e.key),
    [route("0"), route("1")],
  );
  assert.equal(listed.revision, 4);

  const removed = await store.delete(route("1"));
  assert.equal(removed?.modRevision, 3);
  assert.equal(store.revision(), 5);
  assert.equal(await store.get(route("1")), undefined);
  assert.equal(await store.delete(route("1")), undefined, "deleting a missing key is a no-op");
  assert.equal(store.revision(), 5, "a no-op delete does not use a revision");

  const recreated = await store.put(route("1"), { uri: "/c" });
  assert.equal(recreated.createRevision, 6, "a re-created key starts a new life");
});

test("a failed compare-and-swap changes nothing, in memory or on disk", async () => {
  const dir = await tempDir();
  const store = await openStore(dir);
  await store.put(route("1"), { v: 1 }, { prevRevision: 0 });
  const walSize = (await stat(join(dir, "wal"))).size;

  await assert.rejects(store.put(route("1"), { v: 2 }, { prevRevision: 0 }), (err: unknown) => {
    assert.ok(err instanceof CompareFailedError);
    assert.equal(err.currentRevision, 1);
    return true;
  });
  await assert.rejects(store.put(route("1"), { v: 2 }, { prevRevision: 7 }), CompareFailedError);
  await assert.rejects(store.delete(route("1"), { prevRevision: 7 }), CompareFailedError);
  assert.equal(store.revision(), 1);
  assert.deepEqual((await store.get(route("1")))?.value, { v: 1 });
  assert.equal((await stat(join(dir, "wal"))).size, walSize);

  assert.equal((await store.put(route("1"), { v: 2 }, { prevRevision: 1 })).modRevision, 2);
  assert.equal((await store.delete(route("1"), { prevRevision: 2 }))?.modRevision, 2);
  await store.close();

  const reopened = await openStore(dir);
  assert.deepEqual(await dump(reopened), { revision: 3, entries: [] });
});

test("a value JSON cannot encode is refused before anything is written", async () => {
  const store = await openStore(await tempDir());
  await assert.rejects(store.put(route("1"), { n: 1n }), TypeError);
  assert.equal(store.revision(), 0);
  assert.equal((await store.put(route("1"), { n: 1 })).modRevision, 1, "the store keeps accepting writes");
});

test("watch replays history from a revision, then streams live events under its prefix", async () => {
  const store = await openStore(await tempDir());
  await store.put(route("1"), { uri: "/1" });
  await store.put(upstream("1"), { type: "roundrobin" });
  await store.put(route("2"), { uri: "/2" });

  const seen: WatchEvent[] = [];
  const watcher = store.watch("/apisix/routes/", 1, (events) => seen.push(...events));
  assert.deepEqual(
    seen.map((e) => e.revision),
    [1, 3],
    "history is replayed before watch returns",
  );

  await store.put(route("1"), { uri: "/1b" });
  await store.delete(route("2"));
  await store.put(upstream("1"), { type: "chash" });
  assert.deepEqual(
    seen.map((e) => [e.type, e.key, e.revision]),
    [
      ["put", route("1"), 1],
      ["put", route("2"), 3],
      ["put", route("1"), 4],
      ["delete", route("2"), 5],
    ],
  );
  assert.deepEqual(seen[3]?.entry.value, { uri: "/2" }, "a delete event carries the removed entry");

  watcher.close();
  await store.put(route("3"), {});
  assert.equal(seen.length, 4, "a closed watcher hears nothing more");
});

test("a restart keeps every entry, the revision and the watch history", async () => {
  const dir = await tempDir();
  const first = await openStore(dir);
  await first.put(route("1"), { uri: "/1" });
  await first.put(route("2"), { uri: "/2" });
  await first.put(route("1"), { uri: "/1b" });
  await first.delete(route("2"));
  const before = await dump(first);
  await first.close();

  const second = await openStore(dir);
  assert.deepEqual(await dump(second), before);
  const replayed: number[] = [];
  second.watch("/apisix/", 1, (events) => replayed.push(...events.map((e) => e.revision)));
  assert.deepEqual(replayed, [1, 2, 3, 4]);

  await second.delete(route("1"));
  await second.close();
  const third = await openStore(dir);
  assert.deepEqual(await dump(third), { revision: 5, entries: [] }, "an emptied store keeps its revision");
  assert.deepEqual(await third.put(route("1"), {}), { key: route("1"), value: {}, createRevision: 6, modRevision: 6 });
});

test("an acknowledged write is on disk before put resolves, without any close()", async () => {
  const dir = await tempDir();
  const store = await openStore(dir);
  await store.put(route("1"), { uri: "/1" });
  await store.put(route("2"), { uri: "/2" });
  // A copy taken while the store is open is what a crash would leave behind. Its LOCK names this process,
  // which holds no store on the copy, so the copy's lock counts as stale.
  const copy = join(await tempDir(), "copy");
  await cp(dir, copy, { recursive: true });

  const recovered = await openStore(copy);
  assert.deepEqual(await dump(recovered), await dump(store));
});

test("a torn record at the end of the log is cut away and reported, and writing goes on", async () => {
  const frame = await (async () => {
    const dir = await tempDir();
    const s = await openStore(dir);
    await s.put(route("9"), { uri: "/torn", pad: "p".repeat(40) });
    await s.close();
    return readFile(join(dir, "wal"));
  })();
  const tails = {
    "part of a header": frame.subarray(0, 5),
    "a header and part of the payload": frame.subarray(0, frame.length - 10),
    "zeros from an extended file": Buffer.alloc(64),
  };

  for (const [name, tail] of Object.entries(tails)) {
    const dir = await tempDir();
    const first = await openStore(dir);
    await first.put(route("1"), { uri: "/1" });
    await first.put(route("2"), { uri: "/2" });
    const before = await dump(first);
    await first.close();
    const walPath = join(dir, "wal");
    const cleanSize = (await stat(walPath)).size;
    await appendFile(walPath, tail);

    const messages: string[] = [];
    const second = await openStore(dir, { log: (m) => messages.push(m) });
    assert.deepEqual(await dump(second), before, name);
    assert.equal((await stat(walPath)).size, cleanSize, `${name}: the tail is truncated away`);
    assert.match(messages.join("\n"), /removed a torn record at the end of .*wal/, name);

    await second.put(route("3"), { uri: "/3" });
    await second.close();
    const third = await openStore(dir);
    assert.equal(third.revision(), 3, name);
    assert.deepEqual((await third.get(route("3")))?.value, { uri: "/3" }, name);
    await third.close();
  }
});

test("a damaged record followed by valid ones refuses to open, naming the file and offset", async () => {
  const dir = await tempDir();
  const store = await openStore(dir);
  for (let i = 1; i <= 3; i++) await store.put(route(String(i)), { uri: `/${i}` });
  await store.close();
  const walPath = join(dir, "wal");
  const wal = await readFile(walPath);
  const second = frameOffsets(wal)[1] ?? assert.fail("expected three records");
  flipBit(wal, second + 20);
  await writeFile(walPath, wal);

  const reopened = new EmbeddedStore({ dir, log: () => {} });
  await assert.rejects(reopened.open(), (err: Error) => {
    assert.equal(err.name, "CorruptFileError");
    assert.ok(err.message.includes(`${walPath} is corrupt at byte offset ${second}: checksum mismatch`), err.message);
    return true;
  });
  assert.equal((await readFile(walPath)).length, wal.length, "nothing is truncated");
  await assert.rejects(new EmbeddedStore({ dir }).open(), /corrupt/, "the lock was released after the failure");
});

test("compaction keeps data and revisions across restarts; compacted history must be re-listed", async () => {
  const dir = await tempDir();
  const store = await openStore(dir, { compactAfterBytes: 1024 });
  for (let i = 0; i < 60; i++) await store.put(route(String(i % 10)), { uri: `/${i}`, i });
  for (let i = 0; i < 5; i++) await store.delete(route(String(i)));
  const before = await dump(store);
  assert.equal(before.revision, 65);
  assert.ok((await stat(join(dir, "snapshot"))).size > 0, "a snapshot was written");
  assert.ok((await stat(join(dir, "wal"))).size < 1024, "the log was emptied");
  await store.close();

  const reopened = await openStore(dir, { compactAfterBytes: 1024 });
  assert.deepEqual(await dump(reopened), before);
  assert.throws(() => reopened.watch("/apisix/", 1, () => {}), RevisionCompactedError);
  const live: number[] = [];
  reopened.watch("/apisix/", before.revision + 1, (events) => live.push(...events.map((e) => e.revision)));
  await reopened.put(route("1"), { uri: "/after" });
  assert.deepEqual(live, [66]);
  await reopened.delete(route("1"));
  await reopened.compact();
  await reopened.close();

  const emptied = await openStore(dir);
  assert.equal(emptied.revision(), 67, "the snapshot keeps the revision of deletes");
  assert.equal(await emptied.get(route("1")), undefined);
});

test("a crash between compaction steps recovers the same state", async () => {
  const dir = await tempDir();
  const store = await openStore(dir);
  for (let i = 1; i <= 10; i++) await store.put(route(String(i % 4)), { i });
  await store.delete(route("0"));
  const before = await dump(store);
  await store.close();
  const walPath = join(dir, "wal");
  const fullLog = await readFile(walPath);

  // Crash while writing the temp snapshot: a partial temp file next to the intact log.
  await writeFile(join(dir, "snapshot.tmp"), fullLog.subarray(0, 30));
  const afterTempCrash = await openStore(dir);
  assert.deepEqual(await dump(afterTempCrash), before);
  assert.ok(!(await readdir(dir)).includes("snapshot.tmp"), "the leftover temp file is removed");

  // Crash after the rename, before the log was emptied: snapshot and log both hold revisions 1..11.
  await afterTempCrash.compact();
  await afterTempCrash.close();
  await writeFile(walPath, fullLog);
  const afterRenameCrash = await openStore(dir);
  assert.deepEqual(await dump(afterRenameCrash), before, "log records already in the snapshot are skipped");

  // New writes land after the stale records, and the next recovery applies only those.
  await afterRenameCrash.put(route("new"), { n: 1 });
  await afterRenameCrash.close();
  const later = await openStore(dir);
  assert.equal(later.revision(), 12);
  assert.deepEqual((await later.get(route("new")))?.value, { n: 1 });
  assert.deepEqual(
    (await later.list(route("1"))).entries,
    before.entries.filter((e) => e.key === route("1")),
  );
});

test("a damaged snapshot refuses to open instead of silently losing config", async () => {
  const dir = await tempDir();
  const store = await openStore(dir);
  await store.put(route("1"), { uri: "/1" });
  await store.compact();
  await store.close();
  const snapshotPath = join(dir, "snapshot");
  const snapshot = await readFile(snapshotPath);
  flipBit(snapshot, snapshot.length - 3);
  await writeFile(snapshotPath, snapshot);

  await assert.rejects(new EmbeddedStore({ dir }).open(), (err: Error) => {
    assert.ok(err.message.includes(`${snapshotPath} is corrupt at byte offset 0: checksum mismatch`), err.message);
    return true;
  });
});

test("a writer SIGKILLed at random moments, compacting as it goes, never loses an acknowledged write", async () => {
  const dir = await tempDir();
  const fixture = join(here, "crash-writer.fixture.ts");
  let model = new Map<string, StoreEntry>();
  let revision = 0;
  let acknowledged = 0;

  for (let round = 0; round < 5; round++) {
    const child = spawn(process.execPath, ["--import", "tsx", fixture, dir, "2048"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_code, signal) => resolve(signal)),
    );
    const guard = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.stdout.on("data", (chunk: Buffer) => {
      const first = !stdout.includes("\n");
      stdout += chunk.toString();
      if (first && stdout.includes("\n")) setTimeout(() => child.kill("SIGKILL"), Math.random() * 400);
    });
    const signal = await exited;
    clearTimeout(guard);
    assert.equal(signal, "SIGKILL", `round ${round}: the writer died on its own:\n${stderr}`);

    // Only complete lines count: a line cut by the kill was never fully announced.
    const lines = stdout
      .split("\n")
      .slice(0, -1)
      .map((line) => JSON.parse(line));
    assert.deepEqual(lines[0], { ready: revision }, `round ${round}: the writer recovered the previous state`);
    let inFlight: { op: "put" | "delete"; key: string; value?: unknown } | undefined;
    for (const line of lines.slice(1)) {
      if (line.intent) {
        inFlight = line.intent;
        continue;
      }
      assert.equal(line.ack, revision + 1, "acknowledged revisions are consecutive");
      assert.ok(inFlight !== undefined, "every ack follows its intent");
      model = applyOp(model, inFlight, line.ack);
      revision = line.ack;
      inFlight = undefined;
      acknowledged++;
    }

    const store = await openStore(dir);
    const actual = new Map((await store.list("")).entries.map((e) => [e.key, e]));
    if (store.revision() === revision) {
      assert.deepEqual(actual, model, `round ${round}: exactly the acknowledged writes are present`);
    } else {
      // The write in flight at the kill may have reached the disk; it is then complete, never partial.
      assert.ok(inFlight !== undefined, `round ${round}: revision ${store.revision()} but last ack ${revision}`);
      assert.equal(store.revision(), revision + 1);
      assert.deepEqual(actual, applyOp(model, inFlight, revision + 1), `round ${round}: acks plus the in-flight write`);
    }
    model = actual;
    revision = store.revision();
    await store.close();
  }

  assert.ok(acknowledged > 20, `the writers acknowledged only ${acknowledged} writes`);
  assert.ok((await stat(join(dir, "snapshot"))).size > 0, "compaction ran during the rounds");
});

function applyOp(
  model: Map<string, StoreEntry>,
  op: { op: "put" | "delete"; key: string; value?: unknown },
  revision: number,
): Map<string, StoreEntry> {
  const next = new Map(model);
  if (op.op === "delete") {
    next.delete(op.key);
  } else {
    const createRevision = model.get(op.key)?.createRevision ?? revision;
    next.set(op.key, { key: op.key, value: op.value, createRevision, modRevision: revision });
  }
  return next;
}

test("a second open of the same data dir fails while the first is open, and works after close", async () => {
  const dir = await tempDir();
  const first = await openStore(dir);
  await first.put(route("1"), {});

  await assert.rejects(new EmbeddedStore({ dir }).open(), {
    name: "DataDirInUseError",
    message: `data dir ${dir} is in use by pid ${process.pid}`,
  });
  await first.close();
  await assert.rejects(first.put(route("2"), {}), /is closed/);

  const second = await openStore(dir);
  assert.equal(second.revision(), 1);
});

test("a lock left by a process that no longer runs is taken over", async () => {
  const dir = await tempDir();
  // Far above any kernel's pid_max, so certainly not a running process.
  await writeFile(join(dir, "LOCK"), "2147483646\n");
  const store = await openStore(dir);
  assert.equal((await readFile(join(dir, "LOCK"), "utf8")).trim(), String(process.pid));
  await store.close();
  assert.ok(!(await readdir(dir)).includes("LOCK"), "close() releases the lock");

  // A container restarts its gateway as the same pid (often 1): a lock naming our own pid that no store
  // in this process holds is stale too.
  await writeFile(join(dir, "LOCK"), `${process.pid}\n`);
  await (await openStore(dir)).close();
});

test("store files are private to the gateway's user", { skip: process.platform === "win32" }, async () => {
  const dir = join(await tempDir(), "data", "store");
  const store = await openStore(dir);
  await store.put(route("1"), { key: "sk-secret" });
  await store.compact();
  await store.put(route("2"), {});
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const name of ["wal", "snapshot", "LOCK"]) {
    assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name);
  }
});
