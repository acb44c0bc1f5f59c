// The one-step upload of an extension (`SyncStore.insertSealedExtension`): a one-call
// upload extending the conversation's current applied snapshot is one store step, built
// from reads without a lock, that writes exactly what the transaction would have written;
// anything else, and any step the store declines (what was read changed), goes through
// the transaction.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { ManualClock } from "../src/clock.ts";
import type { SealedExtension, StoreTransaction } from "../src/contracts/store.ts";
import type { UploadSourceInput } from "../src/contracts/inputs.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import { chunkHomeOf } from "../src/state/source.ts";
import { MemoryStore } from "../memory/mod.ts";
import { drainEngine, uploadInputOf } from "./support/engine_upload.ts";

const SCOPE = "tenant-a";
const CONVERSATION = "conversation";

/** A memory store with the one-step extension, kept as the contract says, counting calls. */
class OneStepStore extends MemoryStore {
  steps = 0;
  stored = 0;
  reads = 0;

  readOnce<T>(fn: (reader: StoreTransaction<Record<never, never>>) => Promise<T>): Promise<T> {
    this.reads++;
    return this.transaction(fn);
  }

  /** Runs right before each step (to change what the engine read). */
  beforeStep: (() => Promise<void>) | undefined;

  async insertSealedExtension(extension: SealedExtension): Promise<boolean> {
    this.steps++;
    await this.beforeStep?.();
    const { source, chunks, job, updates, baseJob } = extension;
    return await this.transaction(async (tx) => {
      for (const { read } of updates) {
        const stored = await tx.lockSource(read.scope, read.sourceId);
        if (!isDeepStrictEqual(stored, read)) return false;
      }
      if ((await tx.listActiveJobs(source.scope, source.conversationId)).length > 0) return false;
      if (!isDeepStrictEqual(await tx.getJob(baseJob.scope, baseJob.jobId), baseJob)) {
        return false;
      }
      const jobs = await tx.listJobs({
        scope: source.scope,
        conversationId: source.conversationId,
        limit: 100,
      });
      const newer = jobs.filter((other) =>
        other.jobId !== baseJob.jobId && other.createdAt >= baseJob.createdAt
      );
      if (newer.length > 0) return false;
      if (!(await tx.insertSource(source))) return false;
      for (const { write } of updates) await tx.updateSource(write);
      for (const chunk of chunks) await tx.insertChunk(source.scope, chunkHomeOf(source), chunk);
      await tx.insertJob(job);
      this.stored++;
      return true;
    });
  }
}

/** Runs `change` once, right before the store's next step: what the engine read is stale. */
function beforeNextStep(store: OneStepStore, change: () => Promise<unknown>): void {
  store.beforeStep = async () => {
    store.beforeStep = undefined;
    await change();
  };
}

/** An engine over `store` and the clock it runs on. */
function engineOn(store: MemoryStore): { engine: SyncEngine; clock: ManualClock } {
  let next = 0;
  const clock = new ManualClock();
  const engine = new SyncEngine({
    store,
    clock,
    generateId: () => `id-${++next}`,
    handler: { apply() {} },
  });
  return { engine, clock };
}

/** A one-call upload of `texts` as a whole conversation (extending `baseSourceId`, if any). */
function inputOf(
  texts: readonly string[],
  baseChunks: number,
  extra: Partial<UploadSourceInput> = {},
): Promise<UploadSourceInput> {
  return uploadInputOf(
    texts,
    { scope: SCOPE, conversationId: CONVERSATION, from: baseChunks },
    extra,
  );
}

const drain = drainEngine;

/** Every record and chunk the engine can read back for `sourceIds` and their jobs. */
async function storedState(engine: SyncEngine, sourceIds: readonly string[]) {
  const state: unknown[] = [];
  for (const sourceId of sourceIds) {
    const source = await engine.getSource({ scope: SCOPE, sourceId });
    state.push(source, (await engine.listChunks({ scope: SCOPE, sourceId })).items);
    if (source.jobId) state.push(await engine.getJob({ scope: SCOPE, jobId: source.jobId }));
  }
  return state;
}

/**
 * A chain of `links` one-call uploads of one conversation (each adds a line and is applied
 * before the next), through `engine`: the results and source ids, in order.
 */
async function chainOn(
  { engine, clock }: { engine: SyncEngine; clock: ManualClock },
  links: number,
  withIds = false,
) {
  const texts: string[] = [];
  const results = [];
  let base: string | undefined;
  for (let n = 0; n < links; n++) {
    const baseChunks = texts.length;
    texts.push(`line ${n}\n`);
    const extra: Partial<UploadSourceInput> = {};
    if (base) extra.baseSourceId = base;
    if (withIds) extra.sourceId = `link-${n}`;
    const result = await engine.uploadSource(await inputOf(texts, baseChunks, extra));
    results.push(result);
    await drain(engine);
    // Later jobs are created later: each link's base job is then the newest.
    clock.advance(10);
    base = result.source.sourceId;
  }
  return results;
}

describe("engine: one-step extension", () => {
  for (const withIds of [false, true]) {
    test(
      `a chain of extensions (${withIds ? "caller's ids" : "generated ids"}) is one step each, ` +
        `storing what the transaction would`,
      async () => {
        const store = new OneStepStore();
        const viaStep = engineOn(store);
        const viaTransaction = engineOn(new MemoryStore());
        const stepped = await chainOn(viaStep, 5, withIds);
        const transacted = await chainOn(viaTransaction, 5, withIds);
        assert.deepEqual([store.steps, store.stored], [4, 4], "every link after the first");
        assert.deepEqual(stepped, transacted);
        for (const [n, result] of stepped.entries()) {
          if (n > 0) assert.equal(result.job.cursor, n, `link ${n} starts at its base's count`);
        }
        const ids = stepped.map((result) => result.source.sourceId);
        assert.deepEqual(
          await storedState(viaStep.engine, ids),
          await storedState(viaTransaction.engine, ids),
        );
      },
    );
  }

  test("a chain reads neither its base nor its chunk home's root once this engine stored them", async () => {
    const store = new OneStepStore();
    const setup = engineOn(store);
    const [, link1] = await chainOn(setup, 2);
    const before = store.reads;
    // Only the base's job is read: the memory store cannot vouch for a job it heard of
    // (no knownJob).
    const link2 = await setup.engine.uploadSource(
      await inputOf(["line 0\n", "line 1\n", "line 2\n"], 2, {
        baseSourceId: link1.source.sourceId,
      }),
    );
    assert.equal(store.reads - before, 1, "reads for the third link");
    assert.deepEqual([store.steps, store.stored], [2, 2]);
    assert.equal(link2.job.cursor, 2, "its job starts after the base's");
  });

  test("a stale guess (another engine released the base's payloads) is declined, then read", async () => {
    const store = new OneStepStore();
    const setup = engineOn(store);
    const other = engineOn(store);
    const viaTransaction = engineOn(new MemoryStore());
    const released = async ({ engine }: { engine: SyncEngine }, sourceId: string) => {
      await engine.releasePayloads({ scope: SCOPE, sourceId });
    };
    const [, link1] = await chainOn(setup, 2);
    const [, plain1] = await chainOn(viaTransaction, 2);
    await released(other, link1.source.sourceId);
    await released(viaTransaction, plain1.source.sourceId);
    const input = await inputOf(["line 0\n", "line 1\n", "line 2\n"], 2, {
      baseSourceId: link1.source.sourceId,
    });
    const stepped = await setup.engine.uploadSource(input);
    assert.deepEqual([store.steps, store.stored], [3, 2], "a declined step, then a stored one");
    assert.equal(stepped.job.cursor, 2, "its job starts after the base's");
    assert.deepEqual(stepped, await viaTransaction.engine.uploadSource(input));
  });

  test("a declined step (the base changed after the read) goes through the transaction", async () => {
    const store = new OneStepStore();
    const setup = engineOn(store);
    const { engine } = setup;
    const [base] = await chainOn(setup, 1);
    // Another caller extends the base between the engine's read and its step.
    beforeNextStep(store, () =>
      engine.createSource({
        scope: SCOPE,
        conversationId: CONVERSATION,
        sourceId: "other",
        baseSourceId: base.source.sourceId,
      }));
    await assert.rejects(
      engine.uploadSource(
        await inputOf(["line 0\n", "line 1\n"], 1, { baseSourceId: base.source.sourceId }),
      ),
      { code: "E_SYNC_CHUNK_CONFLICT" },
    );
    assert.deepEqual([store.steps, store.stored], [1, 0]);
    const stored = await engine.getSource({ scope: SCOPE, sourceId: base.source.sourceId });
    assert.equal(stored.extendedBy, "other");
    const jobs = await engine.listJobs({ scope: SCOPE, conversationId: CONVERSATION });
    assert.deepEqual(jobs.items.map((job) => job.jobId), [base.job.jobId], "no new job");
  });

  test("a declined step (a newer job appeared) applies from 0 through the transaction", async () => {
    const store = new OneStepStore();
    const setup = engineOn(store);
    const { engine } = setup;
    const [base] = await chainOn(setup, 1);
    beforeNextStep(
      store,
      async () => engine.uploadSource(await inputOf(["other\n"], 0, { sourceId: "newer" })),
    );
    const extended = await engine.uploadSource(
      await inputOf(["line 0\n", "line 1\n"], 1, { baseSourceId: base.source.sourceId }),
    );
    assert.deepEqual([store.steps, store.stored], [1, 0]);
    assert.equal(extended.job.cursor, 0, "a full apply");
    assert.equal(extended.job.base, undefined);
    const newer = await engine.getSource({ scope: SCOPE, sourceId: "newer" });
    const superseded = await engine.getJob({ scope: SCOPE, jobId: newer.jobId! });
    assert.equal(superseded.error?.code, "E_SYNC_JOB_SUPERSEDED");
  });

  test("no step where the transaction would do anything else", async (t) => {
    const cases: Array<{
      name: string;
      input: (base: { sourceId: string }) => Promise<UploadSourceInput>;
      prepare?: (engine: SyncEngine, base: { sourceId: string; jobId?: string }) => Promise<void>;
      code?: string;
    }> = [
      {
        name: "the base's job did not succeed",
        input: (base) =>
          inputOf(["line 0\n", "x\n", "line 2\n"], 2, { baseSourceId: base.sourceId }),
        prepare: async (engine, base) => {
          // A later link whose job is cancelled leaves it the conversation's newest.
          const link = await engine.uploadSource(
            await inputOf(["line 0\n", "x\n"], 1, { baseSourceId: base.sourceId }),
          );
          await engine.cancelJob({ scope: SCOPE, jobId: link.job.jobId });
          base.sourceId = link.source.sourceId;
        },
      },
      {
        name: "a reused chunk is sent again",
        input: async (base) => {
          const input = await inputOf(["line 0\n", "line 1\n"], 0, {
            baseSourceId: base.sourceId,
          });
          return input;
        },
      },
      {
        name: "the chunks do not match the manifest",
        input: async (base) => {
          const input = await inputOf(["line 0\n", "line 1\n"], 1, {
            baseSourceId: base.sourceId,
          });
          input.manifest = { ...input.manifest, byteCount: input.manifest.byteCount + 1 };
          return input;
        },
        code: "E_SYNC_MANIFEST_MISMATCH",
      },
      {
        name: "the base belongs to another conversation",
        input: (base) =>
          inputOf(["line 0\n", "line 1\n"], 1, {
            baseSourceId: base.sourceId,
            conversationId: "another",
          }),
        code: "E_SYNC_INVALID_ARGUMENT",
      },
      {
        name: "the base is already extended",
        input: (base) => inputOf(["line 0\n", "line 1\n"], 1, { baseSourceId: base.sourceId }),
        prepare: async (engine, base) => {
          await engine.createSource({
            scope: SCOPE,
            conversationId: CONVERSATION,
            baseSourceId: base.sourceId,
          });
        },
        code: "E_SYNC_CHUNK_CONFLICT",
      },
    ];
    for (const c of cases) {
      await t.test(c.name, async () => {
        const runOn = async (store: MemoryStore) => {
          const setup = engineOn(store);
          const { engine } = setup;
          const [first] = await chainOn(setup, 1);
          const base = { sourceId: first.source.sourceId };
          await c.prepare?.(engine, base);
          if (store instanceof OneStepStore) store.steps = 0;
          const input = await c.input(base);
          try {
            return { result: await engine.uploadSource(input) };
          } catch (error) {
            return { code: (error as { code?: string }).code };
          }
        };
        const store = new OneStepStore();
        const stepped = await runOn(store);
        assert.equal(store.steps, 0, "no step");
        assert.equal(stepped.code, c.code);
        assert.deepEqual(stepped, await runOn(new MemoryStore()));
      });
    }
  });
});
