// Short-job batches: where the store applies in its transaction, due one-chunk jobs are
// claimed, applied and verified together, several per transaction. The store here is the
// memory store made transactional: the handler's effects are staged per transaction and
// kept only when it commits, so "exactly once" is checked on committed effects.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../memory/mod.ts";
import { ManualClock } from "../src/clock.ts";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import type { Job } from "../src/contracts/domain.ts";
import type { ApplyContext } from "../src/contracts/handler.ts";
import type { StoreTransaction, SyncStore } from "../src/contracts/store.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";

/** What the handler may write: kept only if the transaction commits. */
interface EffectExtras {
  effect(entry: string): void;
}

class TransactionalMemoryStore implements SyncStore<EffectExtras> {
  readonly transactionalApply = true;
  readonly inner = new MemoryStore();
  /** Effects of committed transactions, in commit order. */
  readonly committed: string[] = [];
  transactions = 0;

  async transaction<T>(fn: (tx: StoreTransaction<EffectExtras>) => Promise<T>): Promise<T> {
    this.transactions++;
    const staged: string[] = [];
    const result = await this.inner.transaction((tx) =>
      fn(Object.assign(Object.create(tx), { extras: { effect: (e: string) => staged.push(e) } }))
    );
    this.committed.push(...staged);
    return result;
  }

  subscribeJob(scope: string, jobId: string, listener: () => void): () => void {
    return this.inner.subscribeJob(scope, jobId, listener);
  }
}

type Apply = (label: string, call: number) => void;

function setup(policy: PolicyOverrides = {}, onApply: Apply = () => {}) {
  const store = new TransactionalMemoryStore();
  const clock = new ManualClock();
  const calls: string[] = [];
  const engine = new SyncEngine<EffectExtras>({
    store,
    clock,
    random: () => 0.5,
    policy: { retry: { baseDelayMs: 100 }, ...policy },
    handler: {
      apply(chunk, ctx: ApplyContext & EffectExtras) {
        const label = `${ctx.job.conversationId}#${chunk.index}`;
        calls.push(label);
        ctx.effect(label);
        onApply(label, calls.filter((call) => call === label).length);
      },
    },
  });
  return { store, clock, engine, calls };
}

const encoder = new TextEncoder();

/** Uploads and seals a source of `parts` for conversation `name`; its job. */
async function sealed(engine: SyncEngine<EffectExtras>, name: string, parts: string[]) {
  const chunks = parts.map((part) => encoder.encode(part));
  const digests = await Promise.all(chunks.map((bytes) => sha256Hex(bytes)));
  const { job } = await engine.uploadSource({
    scope: "s",
    conversationId: name,
    chunks: chunks.map((bytes, index) => ({ index, bytes, sha256: digests[index] })),
    manifest: {
      chunkCount: chunks.length,
      byteCount: chunks.reduce((sum, bytes) => sum + bytes.length, 0),
      digest: compositeDigest(digests),
    },
  });
  return job;
}

async function states(engine: SyncEngine<EffectExtras>, jobs: Job[]): Promise<string[]> {
  return await Promise.all(
    jobs.map(async (job) => (await engine.getJob({ scope: "s", jobId: job.jobId })).state),
  );
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);

describe("short-job batches", () => {
  test("due one-chunk jobs are finished several per transaction, each effect once", async () => {
    const { store, engine, calls } = setup({ shortJobBatchSize: 4 });
    const jobs = [];
    for (const name of names(10)) jobs.push(await sealed(engine, name, [`${name} only`]));
    const before = store.transactions;
    assert.equal(await engine.runDueJobs(), 10);
    // Batches of 4, 4 and 2, then one transaction that finds nothing due.
    assert.equal(store.transactions - before, 4);
    assert.deepEqual(await states(engine, jobs), jobs.map(() => "succeeded"));
    assert.deepEqual(store.committed, names(10).map((name) => `${name}#0`));
    assert.deepEqual(calls, store.committed);
  });

  test("a batch size of 1 claims one job per transaction", async () => {
    const { store, engine } = setup({ shortJobBatchSize: 1 });
    for (const name of names(3)) await sealed(engine, name, ["x"]);
    const before = store.transactions;
    assert.equal(await engine.runDueJobs(), 3);
    assert.equal(store.transactions - before, 4);
  });

  test("a handler failure rolls the batch back; only the failing job records an attempt", async () => {
    const { store, clock, engine, calls } = setup(
      { shortJobBatchSize: 8 },
      (label, call) => {
        if (label === "c2#0" && call === 1) throw new Error("transient");
      },
    );
    const jobs = [];
    for (const name of names(5)) jobs.push(await sealed(engine, name, [name]));
    await engine.runDueJobs();
    const failing = await engine.getJob({ scope: "s", jobId: jobs[2].jobId });
    assert.equal(failing.state, "retry_wait");
    assert.equal(failing.attempt, 1);
    assert.equal(failing.error?.code, "E_SYNC_HANDLER_FAILED");
    assert.deepEqual(await states(engine, jobs), [
      "succeeded",
      "succeeded",
      "retry_wait",
      "succeeded",
      "succeeded",
    ]);
    // c0 and c1 ran in the rolled-back batch too, but their effects committed once.
    assert.deepEqual(calls.slice(0, 3), ["c0#0", "c1#0", "c2#0"]);
    assert.deepEqual([...store.committed].sort(), ["c0#0", "c1#0", "c3#0", "c4#0"]);
    clock.advance(failing.runAt - clock.now());
    assert.equal(await engine.runDueJobs(), 1);
    assert.deepEqual(await states(engine, jobs), jobs.map(() => "succeeded"));
    assert.deepEqual([...store.committed].sort(), names(5).map((name) => `${name}#0`));
  });

  test("a batch stops once it applied a chunk's worth of bytes", async () => {
    const { store, engine } = setup({ shortJobBatchSize: 32, limits: { maxChunkBytes: 100 } });
    for (const name of names(6)) await sealed(engine, name, ["x".repeat(40)]);
    const before = store.transactions;
    assert.equal(await engine.runDueJobs(), 6);
    // 40 + 40 + 40 ≥ 100 ends a batch: two batches of three, then the empty probe.
    assert.equal(store.transactions - before, 3);
  });

  test("a multi-chunk job ends the batch and runs step by step; maxJobs is honoured", async () => {
    const { engine, store } = setup({ shortJobBatchSize: 8 });
    const short = await sealed(engine, "short", ["a"]);
    const long = await sealed(engine, "long", ["b", "c", "d"]);
    const later = await sealed(engine, "later", ["e"]);
    assert.equal(await engine.runDueJobs({ maxJobs: 2 }), 2);
    assert.deepEqual(await states(engine, [short, long, later]), [
      "succeeded",
      "succeeded",
      "queued",
    ]);
    assert.equal(await engine.runDueJobs(), 1);
    assert.deepEqual(store.committed, ["short#0", "long#0", "long#1", "long#2", "later#0"]);
  });

  test("an aborted signal ends a batch after the job in hand", async () => {
    const controller = new AbortController();
    const { engine } = setup({ shortJobBatchSize: 8 }, (label) => {
      if (label === "c1#0") controller.abort();
    });
    for (const name of names(4)) await sealed(engine, name, [name]);
    assert.equal(await engine.runDueJobs({ signal: controller.signal }), 2);
  });
});
