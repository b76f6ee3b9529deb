/**
 * Child process for the crash test in embedded.test.ts: opens the store in argv[2] (compacting after
 * argv[3] bytes) and writes until it is killed. Each write is announced as an `intent` line before it
 * starts and confirmed with an `ack` line once it resolves, so the parent knows exactly which writes
 * were acknowledged and which single one may have been in flight. stdout to a pipe is synchronous on
 * POSIX, so a printed line is never lost to the kill.
 */
import { EmbeddedStore } from "./embedded.js";

const [dir, compactAfterBytes] = process.argv.slice(2);
if (dir === undefined) throw new Error("usage: crash-writer.fixture.ts <dir> [compactAfterBytes]");

const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);

const store = new EmbeddedStore({ dir, compactAfterBytes: Number(compactAfterBytes ?? 4096), log: () => {} });
await store.open();
print({ ready: store.revision() });

for (let i = 0; ; i++) {
  const key = `/apisix/routes/${Math.floor(Math.random() * 20)}`;
  const existing = await store.get(key);
  if (existing !== undefined && Math.random() < 0.25) {
    print({ intent: { op: "delete", key } });
    await store.delete(key);
    print({ ack: store.revision() });
  } else {
    const value = { uri: `/r/${i}`, pad: "x".repeat(Math.floor(Math.random() * 300)) };
    print({ intent: { op: "put", key, value } });
    // Every other put goes through compare-and-swap, which must behave the same under crashes.
    const options = i % 2 === 0 ? { prevRevision: existing?.modRevision ?? 0 } : {};
    const entry = await store.put(key, value, options);
    print({ ack: entry.modRevision });
  }
}
