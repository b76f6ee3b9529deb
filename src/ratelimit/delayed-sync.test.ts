import assert from "node:assert/strict";
import { test } from "node:test";
import { DelayedSyncCounter } from "./delayed-sync.js";
import { LocalFixedWindowCounter } from "./local-fixed.js";

// The remote here is a local counter standing in for Redis (the Redis one is tested on a real server):
// what matters is when the wrapper talks to it, which a hand-driven clock and sync() make exact.
test("delayed sync: the first request asks the remote, the rest are decided here, sync() sends the spending", async () => {
  let now = 1_000_000;
  const remote = new LocalFixedWindowCounter({ now: () => now, sweepIntervalMs: 0 });
  const here = new DelayedSyncCounter(remote, 3600, () => now);
  const other = new DelayedSyncCounter(remote, 3600, () => now);
  try {
    const first = here.incoming("k", 1, 5, 60);
    assert.ok(first instanceof Promise, "the first request of a key goes to the remote");
    assert.deepEqual(await first, { allowed: true, remaining: 4, resetSeconds: 60 });
    for (let i = 3; i >= 0; i--) {
      const r = here.incoming("k", 1, 5, 60);
      assert.ok(!(r instanceof Promise), "decided locally");
      assert.equal(r.remaining, i);
    }
    assert.equal((here.incoming("k", 1, 5, 60) as { allowed: boolean }).allowed, false);
    assert.equal(remote.incoming("k", 0, 5, 60).remaining, 4, "the remote has not heard of the local spending yet");
    await here.sync();
    assert.equal(remote.incoming("k", 0, 5, 60).remaining, 0);
    assert.equal((await other.incoming("k", 1, 5, 60)).allowed, false, "another instance sees it after the sync");
    now += 60_000;
    assert.equal((await here.incoming("k", 1, 5, 60)).allowed, true, "a new window asks the remote again");
  } finally {
    here.close();
    other.close();
  }
});

test("delayed sync: spending Redis did not take is sent with the next sync", async () => {
  const remote = new LocalFixedWindowCounter({ sweepIntervalMs: 0 });
  let failing = false;
  const flaky = {
    incoming: remote.incoming.bind(remote),
    commit: (k: string, c: number, l: number, w: number) => {
      if (failing) return Promise.reject(new Error("redis down"));
      return remote.commit(k, c, l, w);
    },
    close: () => remote.close(),
  };
  const here = new DelayedSyncCounter(flaky, 3600);
  try {
    await here.incoming("k", 1, 10, 60);
    here.incoming("k", 1, 10, 60);
    here.incoming("k", 1, 10, 60);
    failing = true;
    await here.sync();
    failing = false;
    assert.equal(remote.incoming("k", 0, 10, 60).remaining, 9);
    await here.sync();
    assert.equal(remote.incoming("k", 0, 10, 60).remaining, 7);
  } finally {
    here.close();
  }
});
