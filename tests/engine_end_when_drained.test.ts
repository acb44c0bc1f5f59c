// runDueJobs({ endWhenDrained }): a caller woken by every job write (the Postgres
// adapter's background worker) ends its run as soon as a pass finds nothing more due,
// instead of looking once more in a transaction of its own. Default: it looks once more.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../memory/mod.ts";
import { ManualClock } from "../src/clock.ts";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import type { StoreTransaction, SyncStore } from "../src/contracts/store.ts";
import { SyncEngine } from "../src/engine/engine.ts";

/** The memory store, applying inside its transactions, counting them. */
class CountingStore implements SyncStore {
  readonly transactionalApply = true;
  readonly inner = new MemoryStore();
  transactions = 0;

  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    this.transactions++;
    return this.inner.transaction(fn);
  }

  subscribeJob(scope: string, jobId: string, listener: () => void): () => void {
    return this.inner.subscribeJob(scope, jobId, listener);
  }
}

function setup() {
  const store = new CountingStore();
  const applied: string[] = [];
  const engine = new SyncEngine({
    store,
    clock: new ManualClock(),
    policy: { shortJobBatchSize: 4 },
    handler: { apply: (_chunk, ctx) => void applied.push(ctx.job.conversationId) },
  });
  return { store, engine, applied };
}

async function seal(engine: SyncEngine, conversationId: string) {
  const bytes = new TextEncoder().encode(conversationId);
  const sha256 = await sha256Hex(bytes);
  const { job } = await engine.uploadSource({
    scope: "s",
    conversationId,
    chunks: [{ index: 0, bytes, sha256 }],
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job;
}

describe("runDueJobs: endWhenDrained", () => {
  for (const [jobs, batches] of [[3, 1], [4, 2], [6, 2]] as const) {
    test(`${jobs} due one-chunk jobs in batches of 4: ${batches} transaction(s), not one more`, async () => {
      const { store, engine, applied } = setup();
      for (let i = 0; i < jobs; i++) await seal(engine, `c${i}`);
      const before = store.transactions;
      assert.equal(await engine.runDueJobs({ endWhenDrained: true }), jobs);
      assert.equal(store.transactions - before, batches);
      assert.deepEqual(applied, Array.from({ length: jobs }, (_, i) => `c${i}`));
      // Nothing was left behind: a further run finds nothing.
      assert.equal(await engine.runDueJobs({ endWhenDrained: true }), 0);
    });
  }

  test("by default a run looks once more after the pass that ran out of due jobs", async () => {
    const { store, engine } = setup();
    for (let i = 0; i < 3; i++) await seal(engine, `c${i}`);
    const before = store.transactions;
    assert.equal(await engine.runDueJobs(), 3);
    assert.equal(store.transactions - before, 2);
  });
});
