// The one-step upload (`SyncStore.insertSealedSource`): a one-call upload of a new source
// extending nothing is one store step that writes exactly what the transaction would have
// written; anything else, and any step the store declines, goes through the transaction.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import type { Chunk, Job, Source } from "../src/contracts/domain.ts";
import type { UploadSourceInput } from "../src/contracts/inputs.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import { MemoryStore } from "../memory/mod.ts";
import { drainEngine, uploadInputOf } from "./support/engine_upload.ts";

const SCOPE = "tenant-a";

/** A memory store with the one-step upload, kept as the contract says, counting its calls. */
class OneStepStore extends MemoryStore {
  steps = 0;
  stored = 0;

  insertSealedSource(source: Source, chunks: readonly Chunk[], job: Job): Promise<boolean> {
    this.steps++;
    return this.transaction(async (tx) => {
      if (await tx.getSource(source.scope, source.sourceId)) return false;
      if ((await tx.listActiveJobs(source.scope, source.conversationId)).length > 0) return false;
      await tx.insertSource(source);
      for (const chunk of chunks) await tx.insertChunk(source.scope, source.sourceId, chunk);
      await tx.insertJob(job);
      this.stored++;
      return true;
    });
  }
}

function engineOn(store: MemoryStore, applied: string[] = []): SyncEngine {
  let next = 0;
  return new SyncEngine({
    store,
    clock: new ManualClock(),
    generateId: () => `id-${++next}`,
    handler: { apply: (chunk) => void applied.push(new TextDecoder().decode(chunk.bytes)) },
  });
}

function inputOf(
  texts: readonly string[],
  extra: Partial<UploadSourceInput> = {},
): Promise<UploadSourceInput> {
  return uploadInputOf(texts, { scope: SCOPE, conversationId: "conversation" }, extra);
}

const drain = drainEngine;

describe("engine: one-step upload", () => {
  test("a new source is one store step, storing what the transaction would", async () => {
    const oneStep = new OneStepStore();
    const viaStep = engineOn(oneStep);
    const viaTransaction = engineOn(new MemoryStore());
    const input = await inputOf(["one\n", "two\n", "three\n"]);
    const stepped = await viaStep.uploadSource(await inputOf(["one\n", "two\n", "three\n"]));
    const transacted = await viaTransaction.uploadSource(input);
    assert.equal(oneStep.stored, 1);
    assert.deepEqual(stepped, transacted);
    for (const [engine, result] of [[viaStep, stepped], [viaTransaction, transacted]] as const) {
      const { sourceId } = result.source;
      assert.deepEqual(await engine.getSource({ scope: SCOPE, sourceId }), result.source);
      assert.deepEqual(await engine.getJob({ scope: SCOPE, jobId: result.job.jobId }), result.job);
    }
    assert.deepEqual(
      await viaStep.listChunks({ scope: SCOPE, sourceId: stepped.source.sourceId }),
      await viaTransaction.listChunks({ scope: SCOPE, sourceId: transacted.source.sourceId }),
    );
  });

  test("its job applies the uploaded chunks and succeeds", async () => {
    const applied: string[] = [];
    const engine = engineOn(new OneStepStore(), applied);
    const { job } = await engine.uploadSource(await inputOf(["one\n", "two\n"]));
    await drain(engine);
    assert.equal((await engine.getJob({ scope: SCOPE, jobId: job.jobId })).state, "succeeded");
    assert.deepEqual(applied, ["one\n", "two\n"]);
  });

  test("a caller's source id and an extension go through the transaction", async () => {
    const store = new OneStepStore();
    const engine = engineOn(store);
    const base = await engine.uploadSource(await inputOf(["one\n"], { sourceId: "mine" }));
    assert.equal(store.steps, 0, "a caller's id may name a source to resume");
    await drain(engine);
    const extended = await engine.uploadSource(
      await inputOf(["one\n", "two\n"], { baseSourceId: base.source.sourceId }),
    );
    assert.equal(store.steps, 0, "an extension");
    assert.equal(extended.source.base?.sourceId, "mine");
  });

  test("chunks that do not match the manifest fail the source durably, as before", async () => {
    const store = new OneStepStore();
    const engine = engineOn(store);
    const input = await inputOf(["one\n", "two\n"]);
    input.manifest = { ...input.manifest, byteCount: input.manifest.byteCount + 1 };
    await assert.rejects(engine.uploadSource(input), { code: "E_SYNC_MANIFEST_MISMATCH" });
    assert.equal(store.steps, 0);
    // The step's id generation came first (id-1): the transaction's source is id-2.
    const failed = await engine.getSource({ scope: SCOPE, sourceId: "id-2" });
    assert.equal(failed.state, "failed");
    assert.equal(failed.error?.code, "E_SYNC_MANIFEST_MISMATCH");
    const jobs = await engine.listJobs({ scope: SCOPE, conversationId: "conversation" });
    assert.deepEqual(jobs.items, [], "no job");
  });

  test("a declined step (the conversation has a job running) supersedes it in a transaction", async () => {
    const store = new OneStepStore();
    const engine = engineOn(store);
    const older = await engine.uploadSource(await inputOf(["one\n"]));
    const newer = await engine.uploadSource(await inputOf(["one\n", "two\n"]));
    assert.deepEqual([store.steps, store.stored], [2, 1]);
    const cancelled = await engine.getJob({ scope: SCOPE, jobId: older.job.jobId });
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.error?.code, "E_SYNC_JOB_SUPERSEDED");
    assert.equal(newer.job.state, "queued");
    assert.deepEqual(newer.appended, [true, true]);
  });
});
