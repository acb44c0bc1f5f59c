// waitForTerminal and the store's change notification: a terminal record handed to the
// listener ends the wait without a read, any other record prompts nothing (a later commit
// or the store's poll follows), and a bare prompt reads the job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import type { Job } from "../src/contracts/domain.ts";
import type { JobListener, KnownJob, StoreTransaction } from "../src/contracts/store.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import { MemoryStore } from "../memory/mod.ts";

/** A memory store whose job notifications the test sends, counting transactions. */
class PromptedStore extends MemoryStore {
  transactions = 0;
  listener: JobListener | undefined;

  override transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    this.transactions++;
    return super.transaction(fn);
  }

  /** Keeps the first listener (the waiter's); a worker's lease watch gets none. */
  override subscribeJob(_scope: string, _jobId: string, listener: JobListener): () => void {
    if (this.listener) return () => {};
    this.listener = listener;
    return () => {
      if (this.listener === listener) this.listener = undefined;
    };
  }
}

async function queuedJob(engine: SyncEngine): Promise<Job> {
  const bytes = new TextEncoder().encode("one\n");
  const sha256 = await sha256Hex(bytes);
  const { job } = await engine.uploadSource({
    scope: "s",
    conversationId: "c",
    chunks: [{ index: 0, bytes, sha256 }],
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job;
}

/** A wait on a queued job of a prompted store, after its first read. */
async function waitingAfterOneRead() {
  const store = new PromptedStore();
  const engine = new SyncEngine({ store, clock: new ManualClock(), handler: { apply() {} } });
  const job = await queuedJob(engine);
  const before = store.transactions;
  let settled: Job | undefined;
  const waiting = engine.waitForTerminal({ scope: "s", jobId: job.jobId }).then((j) => settled = j);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(store.transactions, before + 1, "the first read");
  return { store, engine, job, before, waiting, done: () => settled };
}

test("wait: a terminal record handed over resolves without a read; others prompt no read", async () => {
  const { store, job, before, waiting, done } = await waitingAfterOneRead();
  store.listener!({ ...job, state: "running" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(store.transactions, before + 1, "a running record prompts no read");
  assert.equal(done(), undefined);
  store.listener!();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(store.transactions, before + 2, "a bare prompt reads");
  assert.equal(done(), undefined, "the stored job is still queued");
  const finished: Job = { ...job, state: "succeeded", cursor: 1, completedAt: 5 } as Job;
  store.listener!(finished);
  await waiting;
  assert.deepEqual(done(), finished);
  assert.equal(store.transactions, before + 2, "resolved from the record");
  assert.equal(store.listener, undefined, "unsubscribed");
});

test("wait: a state the job was left in, without its record: unfinished prompts no read, terminal reads", async () => {
  const { store, engine, before, waiting, done } = await waitingAfterOneRead();
  for (const state of ["running", "retry_wait", "verifying"] as const) {
    store.listener!(undefined, state);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.equal(store.transactions, before + 1, "an unfinished state prompts no read");
  assert.equal(done(), undefined);
  // Finished, the record not handed over (too long for a notice): read, found succeeded.
  await engine.runDueJobs();
  const reads = store.transactions;
  store.listener!(undefined, "succeeded");
  assert.equal((await waiting).state, "succeeded");
  assert.equal(store.transactions, reads + 1, "a terminal state without the record is read");
});

/** A prompted store that also says what it knows of jobs (`SyncStore.knownJob`). */
class KnowingStore extends PromptedStore {
  known: KnownJob | undefined;
  askedWhileSubscribed: boolean[] = [];

  knownJob(_scope: string, _jobId: string): KnownJob | undefined {
    this.askedWhileSubscribed.push(this.listener !== undefined);
    return this.known;
  }
}

test("wait: a job the store knows is not read; it is waited for, asked after subscribing", async () => {
  const store = new KnowingStore();
  const engine = new SyncEngine({ store, clock: new ManualClock(), handler: { apply() {} } });
  const job = await queuedJob(engine);
  store.known = { state: job.state, job };
  const before = store.transactions;
  let done: Job | undefined;
  const waiting = engine.waitForTerminal({ scope: "s", jobId: job.jobId }).then((j) => done = j);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(store.askedWhileSubscribed, [true]);
  assert.equal(store.transactions, before, "no read");
  assert.equal(done, undefined);
  store.listener!();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(store.transactions, before + 1, "a bare prompt still reads");
  const finished: Job = { ...job, state: "succeeded", cursor: 1, completedAt: 5 } as Job;
  store.listener!(finished);
  await waiting;
  assert.deepEqual(done, finished);
});

test("wait: a terminal record the store knows is the answer, without a read", async () => {
  const store = new KnowingStore();
  const engine = new SyncEngine({ store, clock: new ManualClock(), handler: { apply() {} } });
  const job = await queuedJob(engine);
  const before = store.transactions;
  // The store heard of the job's end (another process ran it); its own record is older.
  const ended = { ...job, state: "cancelled", completedAt: 3 } as Job;
  store.known = { state: "cancelled", job: ended };
  const done = await engine.waitForTerminal({ scope: "s", jobId: job.jobId });
  assert.deepEqual(done, ended);
  assert.equal(store.transactions, before, "no read");
  assert.equal(store.listener, undefined, "unsubscribed");
});

test("wait: a state the store knows without the record: unfinished is waited for, terminal is read", async () => {
  const store = new KnowingStore();
  const engine = new SyncEngine({ store, clock: new ManualClock(), handler: { apply() {} } });
  const job = await queuedJob(engine);
  const before = store.transactions;
  store.known = { state: "running" }; // another process claimed it; its notice had no record
  let done: Job | undefined;
  const waiting = engine.waitForTerminal({ scope: "s", jobId: job.jobId }).then((j) => done = j);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(store.transactions, before, "no read");
  assert.equal(done, undefined);
  store.listener!({ ...job, state: "failed", completedAt: 4 } as Job);
  assert.equal((await waiting).state, "failed");
  // Known finished, without the record (too long for a notice): read.
  await engine.runDueJobs();
  store.known = { state: "succeeded" };
  const reads = store.transactions;
  const finished = await engine.waitForTerminal({ scope: "s", jobId: job.jobId });
  assert.equal(finished.state, "succeeded");
  assert.equal(store.transactions, reads + 1, "read once");
});

test("wait: a job the store does not know is read (and not found is an error)", async () => {
  const store = new KnowingStore();
  const engine = new SyncEngine({ store, clock: new ManualClock(), handler: { apply() {} } });
  const before = store.transactions;
  await assert.rejects(
    engine.waitForTerminal({ scope: "s", jobId: "missing" }),
    (error: unknown) => (error as { code?: string }).code === "E_SYNC_JOB_NOT_FOUND",
  );
  assert.equal(store.transactions, before + 1);
  assert.equal(store.listener, undefined, "unsubscribed");
});
