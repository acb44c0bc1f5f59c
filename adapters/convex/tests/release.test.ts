// Payload release on Convex (capability `release-payloads`): a release bigger than one
// transaction's budget drops what fits, hides the rest at once and leaves it to the
// worker's sweep; pending releases merge, are finished before a chunk is stored in their
// range, and are cleared by a purge; and a store transaction that throws after writes it
// can undo (the engine retries a seal that must lock more first) is undone, not poisoned.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type Chunk,
  compositeDigest,
  isSyncError,
  type Job,
  sha256Hex,
  type Source,
  type SyncHandler,
} from "@zakstam/codex-sync-engine";
import { CONVEX_MAX_CHUNK_BYTES } from "../mod.ts";
import type { ConvexHandlerExtras } from "../server.ts";
import { defaultDeleteBudget, sweepPendingChunks } from "../src/server/purge.ts";
import { sweepPendingReleases } from "../src/server/release.ts";
import type { SourceDoc, SyncDbWriter } from "../src/server/schema.ts";
import { ConvexStore, type ConvexStoreOptions } from "../src/server/store.ts";
import type { TestBackend } from "./support/backend.ts";
import { convexOracle } from "./support/harness.ts";
import { setup } from "./support/setup.ts";

const SCOPE = "scope-1";
const encoder = new TextEncoder();

/** A handler recording which chunks each job applied. */
function recording(applied: Map<string, number[]>): SyncHandler<ConvexHandlerExtras> {
  return {
    apply(chunk, { job }) {
      applied.set(job.jobId, [...(applied.get(job.jobId) ?? []), chunk.index]);
    },
  };
}

async function chunkOf(index: number, text = `chunk ${index};`): Promise<Chunk> {
  const bytes = encoder.encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

function collectingSource(sourceId: string): Source {
  return {
    sourceId,
    scope: SCOPE,
    conversationId: "conv",
    state: "collecting",
    received: { chunkCount: 0, byteCount: 0 },
    createdAt: 1,
    updatedAt: 1,
    expiresAt: 1_000_000,
  };
}

function queuedJob(jobId: string, sourceId: string): Job {
  return {
    jobId,
    scope: SCOPE,
    sourceId,
    conversationId: "conv",
    state: "queued",
    cursor: 0,
    totalChunks: 1,
    appliedBytes: 0,
    attempt: 0,
    runAt: 1,
    leaseToken: 0,
    appliedDigestState: "state",
    createdAt: 1,
    updatedAt: 1,
  };
}

type Store = ConvexStore<Record<never, never>>;
type Transaction = Parameters<Parameters<Store["transaction"]>[0]>[0];

/** Runs `fn` over a fresh store in one `t.run` transaction (one Convex mutation). */
function inStore<T>(
  t: TestBackend,
  fn: (store: Store) => Promise<T>,
  options: Omit<ConvexStoreOptions, "requestSweep"> = {},
): Promise<T> {
  return t.run(async (ctx) => {
    const store: Store = new ConvexStore(ctx.db as unknown as SyncDbWriter, {}, {
      ...options,
      requestSweep: () => Promise.resolve(),
    });
    return await fn(store);
  });
}

function sourceDoc(t: TestBackend, sourceId: string): Promise<SourceDoc | null> {
  return t.run((ctx) =>
    (ctx.db as unknown as SyncDbWriter).query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", sourceId))
      .unique()
  );
}

/** The pending release of a source document, as `[releasePending, from, to]`. */
async function pending(t: TestBackend, sourceId: string) {
  const doc = (await sourceDoc(t, sourceId))!;
  return [doc.releasePending, doc.releaseFrom, doc.releaseTo];
}

/** Indexes of the source's chunk documents that still point to bytes, and of all of them. */
function chunkDocs(t: TestBackend, sourceId: string) {
  return t.run(async (ctx) => {
    const db = ctx.db as unknown as SyncDbWriter;
    const source = await db.query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", sourceId))
      .unique();
    const docs = source
      ? await db.query("syncChunks")
        .withIndex("by_source", (range) => range.eq("source", source._id))
        .collect()
      : [];
    return {
      all: docs.map((doc) => doc.index),
      withBytes: docs.filter((doc) => doc.bytes !== undefined).map((doc) => doc.index),
    };
  });
}

/** Documents in the tables a store writes (the bytes table included). */
function tableSizes(t: TestBackend) {
  return t.run(async (ctx) => {
    const db = ctx.db as unknown as SyncDbWriter;
    return {
      sources: (await db.query("syncSources").collect()).length,
      chunks: (await db.query("syncChunks").collect()).length,
      bytes: (await db.query("syncChunkBytes").collect()).length,
      jobs: (await db.query("syncJobs").collect()).length,
    };
  });
}

/** A home with `count` chunks (0..count-1) stored under `sourceId`. */
async function homeWith(t: TestBackend, sourceId: string, count: number): Promise<void> {
  const chunks = await Promise.all(Array.from({ length: count }, (_, i) => chunkOf(i)));
  await inStore(t, (store) =>
    store.transaction(async (tx) => {
      await tx.insertSource(collectingSource(sourceId));
      for (const chunk of chunks) await tx.insertChunk(SCOPE, sourceId, chunk);
    }));
}

/** `releaseChunkPayloads` in its own mutation, with a small deletion budget. */
function releaseRange(t: TestBackend, from: number, to: number, chunks: number) {
  return inStore(
    t,
    (store) => store.transaction((tx) => tx.releaseChunkPayloads!(SCOPE, "home", from, to)),
    { deleteBudget: { chunks, bytes: 1 << 20 } },
  );
}

/** `getChunk` in its own mutation: what a job would read (its bytes as text), or null. */
function readChunk(t: TestBackend, sourceId: string, index: number) {
  return inStore(t, async (store) => {
    const chunk = await store.transaction((tx) => tx.getChunk(SCOPE, sourceId, index));
    return chunk ? { index: chunk.index, text: new TextDecoder().decode(chunk.bytes) } : null;
  });
}

const retryableUnavailable = (error: unknown) =>
  isSyncError(error) && error.code === "E_SYNC_BACKEND_UNAVAILABLE" && error.retryable;

/** Appends `chunks` to a source through the adapter. */
async function appendAll(
  adapter: ReturnType<typeof setup>["adapter"],
  sourceId: string,
  chunks: Chunk[],
): Promise<void> {
  for (const { index, bytes, sha256 } of chunks) {
    await adapter.appendChunk({ scope: SCOPE, sourceId, index, bytes, sha256 });
  }
}

test("a release past one transaction's budget hides the rest at once; the sweep drops it", async () => {
  const applied = new Map<string, number[]>();
  const { t, adapter, clock, drain } = setup({ handler: recording(applied) });
  const count = 600; // more than one transaction's deletion budget (512 chunks)
  const chunks = await Promise.all(Array.from({ length: count }, (_, i) => chunkOf(i)));
  const base = await adapter.createSource({ scope: SCOPE, conversationId: "conv" });
  await appendAll(adapter, base.sourceId, chunks);
  const sealed = await adapter.sealSource({
    scope: SCOPE,
    sourceId: base.sourceId,
    manifest: {
      chunkCount: count,
      byteCount: chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0),
      digest: compositeDigest(chunks.map((chunk) => chunk.sha256)),
    },
  });
  await drain();
  assert.equal(
    (await adapter.getJob({ scope: SCOPE, jobId: sealed.job.jobId })).state,
    "succeeded",
  );
  clock.advance(1_000);

  const released = await adapter.releasePayloads!({ scope: SCOPE, sourceId: base.sourceId });
  assert.equal(released.releasedChunks, count);
  let docs = await chunkDocs(t, base.sourceId);
  assert.equal(docs.all.length, count, "every chunk's digest document stays");
  assert.equal(docs.withBytes.length, count - 512, "what did not fit waits for the sweep");
  assert.deepEqual(await pending(t, base.sourceId), [true, 512, count]);
  // Hidden at once: no reader sees bytes the release has not dropped yet.
  assert.equal(await readChunk(t, base.sourceId, count - 1), null);
  assert.equal(await readChunk(t, base.sourceId, 0), null);
  const oracle = convexOracle(t);
  assert.equal(await oracle.readChunk!(SCOPE, base.sourceId, count - 1), undefined);
  const listing = await adapter.listChunks({ scope: SCOPE, sourceId: base.sourceId, limit: 1000 });
  assert.equal(listing.items.length, count, "the listing keeps every chunk");

  await drain();
  docs = await chunkDocs(t, base.sourceId);
  assert.deepEqual([docs.all.length, docs.withBytes.length], [count, 0], "the sweep dropped them");
  assert.deepEqual(await pending(t, base.sourceId), [undefined, undefined, undefined]);
  assert.equal((await tableSizes(t)).bytes, 0, "no bytes document is left");

  // The chain goes on: an extension's job starts at the released base's chunk count.
  const next = await chunkOf(count, "the next line");
  const extension = await adapter.createSource({
    scope: SCOPE,
    conversationId: "conv",
    baseSourceId: base.sourceId,
  });
  await appendAll(adapter, extension.sourceId, [next]);
  const all = [...chunks, next];
  const extended = await adapter.sealSource({
    scope: SCOPE,
    sourceId: extension.sourceId,
    manifest: {
      chunkCount: all.length,
      byteCount: all.reduce((sum, chunk) => sum + chunk.byteLength, 0),
      digest: compositeDigest(all.map((chunk) => chunk.sha256)),
    },
  });
  await drain();
  const job = await adapter.getJob({ scope: SCOPE, jobId: extended.job.jobId });
  assert.equal(job.state, "succeeded");
  assert.deepEqual(applied.get(job.jobId), [count], "only the new chunk was applied");
});

test("a release of large chunks drops at most the byte budget per mutation (Convex limits)", async () => {
  const { t, adapter, clock, drain } = setup({ handler: { apply() {} } });
  // 12 of the largest chunks: more than the 8 MiB a transaction's deletion budget allows
  // (the chunk that exhausts it is still dropped whole).
  const chunks = await Promise.all(Array.from({ length: 12 }, async (_, index) => {
    const bytes = new Uint8Array(CONVEX_MAX_CHUNK_BYTES).fill(index + 1);
    return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
  }));
  const source = await adapter.createSource({ scope: SCOPE, conversationId: "large" });
  await appendAll(adapter, source.sourceId, chunks);
  const sealed = await adapter.sealSource({
    scope: SCOPE,
    sourceId: source.sourceId,
    manifest: {
      chunkCount: chunks.length,
      byteCount: chunks.length * CONVEX_MAX_CHUNK_BYTES,
      digest: compositeDigest(chunks.map((chunk) => chunk.sha256)),
    },
  });
  await drain();
  assert.equal(
    (await adapter.getJob({ scope: SCOPE, jobId: sealed.job.jobId })).state,
    "succeeded",
  );
  clock.advance(1_000);
  await adapter.releasePayloads!({ scope: SCOPE, sourceId: source.sourceId });
  assert.deepEqual((await chunkDocs(t, source.sourceId)).withBytes, [9, 10, 11]);
  assert.deepEqual(await pending(t, source.sourceId), [true, 9, 12]);
  await drain();
  assert.deepEqual((await chunkDocs(t, source.sourceId)).withBytes, []);
  assert.equal((await tableSizes(t)).bytes, 0);
});

test("a release meeting a pending one merges with it; a disjoint one finishes it first", async () => {
  const { t } = setup({ handler: { apply() {} } });
  await homeWith(t, "home", 14);
  await releaseRange(t, 0, 6, 2);
  assert.deepEqual(await pending(t, "home"), [true, 2, 6]);
  await releaseRange(t, 6, 10, 2); // merged: [2, 10), of which 2 and 3 are dropped
  assert.deepEqual(await pending(t, "home"), [true, 4, 10]);
  assert.deepEqual((await chunkDocs(t, "home")).withBytes, [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(await readChunk(t, "home", 9), null, "pending reads as released");
  assert.equal((await readChunk(t, "home", 10))?.index, 10, "past the range reads as stored");

  // [12, 14) does not meet [4, 10): finishing the pending release does not fit one chunk.
  await assert.rejects(releaseRange(t, 12, 14, 1), retryableUnavailable);
  assert.deepEqual(await pending(t, "home"), [true, 4, 10], "rolled back");
  assert.deepEqual((await chunkDocs(t, "home")).withBytes, [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  await releaseRange(t, 12, 14, 100);
  assert.deepEqual(await pending(t, "home"), [undefined, undefined, undefined]);
  assert.deepEqual((await chunkDocs(t, "home")).withBytes, [10, 11]);
  assert.equal((await tableSizes(t)).bytes, 2);
});

test("storing a chunk in a pending release's range finishes the release first", async () => {
  const { t } = setup({ handler: { apply() {} } });
  await homeWith(t, "home", 6);
  await releaseRange(t, 0, 10, 2);
  assert.deepEqual(await pending(t, "home"), [true, 2, 10]);
  const fresh = await chunkOf(7, "new chunk 7");
  const insert = (chunks: number) =>
    inStore(t, (store) => store.transaction((tx) => tx.insertChunk(SCOPE, "home", fresh)), {
      deleteBudget: { chunks, bytes: 1 << 20 },
    });
  await assert.rejects(insert(1), retryableUnavailable);
  assert.deepEqual(await chunkDocs(t, "home"), {
    all: [0, 1, 2, 3, 4, 5],
    withBytes: [2, 3, 4, 5],
  });
  await insert(100);
  assert.deepEqual(await pending(t, "home"), [undefined, undefined, undefined]);
  assert.deepEqual(await chunkDocs(t, "home"), { all: [0, 1, 2, 3, 4, 5, 7], withBytes: [7] });
  assert.deepEqual(await readChunk(t, "home", 7), { index: 7, text: "new chunk 7" });
});

test("a purge deletes a chain whose release is pending; the sweep then clears the release", async () => {
  const { t } = setup({ handler: { apply() {} } });
  await homeWith(t, "home", 10);
  await releaseRange(t, 0, 10, 3);
  assert.deepEqual(await pending(t, "home"), [true, 3, 10]);
  const deleted = await inStore(
    t,
    (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home")),
    { deleteBudget: { chunks: 4, bytes: 1 << 20 } },
  );
  assert.equal(deleted, 10);
  assert.deepEqual(await chunkDocs(t, "home"), {
    all: [4, 5, 6, 7, 8, 9],
    withBytes: [4, 5, 6, 7, 8, 9],
  });
  assert.equal((await tableSizes(t)).bytes, 6, "released chunks had no bytes to delete");
  await t.run(async (ctx) => {
    const db = ctx.db as unknown as SyncDbWriter;
    const budget = defaultDeleteBudget();
    assert.deepEqual(await sweepPendingChunks(db, budget), { remaining: false });
    assert.deepEqual(await sweepPendingReleases(db, budget), { remaining: false });
  });
  assert.deepEqual(await chunkDocs(t, "home"), { all: [], withBytes: [] });
  assert.deepEqual(await pending(t, "home"), [undefined, undefined, undefined]);
  assert.equal((await tableSizes(t)).bytes, 0);
});

test("a transaction that throws after inserts and replacements is undone, not poisoned", async () => {
  const { t } = setup({ handler: { apply() {} } });
  await inStore(t, (store) =>
    store.transaction(async (tx) => {
      await tx.insertSource(collectingSource("kept"));
      await tx.insertJob(queuedJob("job-kept", "kept"));
    }));
  const before = await tableSizes(t);
  const keptDoc = await sourceDoc(t, "kept");
  const failure = await inStore(t, async (store) => {
    await assert.rejects(
      store.transaction(async (tx) => {
        await tx.insertSource(collectingSource("new"));
        await tx.insertChunk(SCOPE, "new", await chunkOf(0));
        await tx.insertJob(queuedJob("job-new", "new"));
        // A nested transaction that commits is undone with the outer one.
        await store.transaction(async (inner) => {
          const kept = (await inner.getSource(SCOPE, "kept"))!;
          await inner.updateSource({ ...kept, updatedAt: 99 });
          await inner.updateJob({ ...(await inner.getJob(SCOPE, "job-kept"))!, attempt: 5 });
        });
        throw new Error("boom");
      }),
      /boom/,
    );
    // The store's own view is undone too.
    const seen = await store.transaction(async (tx) => ({
      created: await tx.getSource(SCOPE, "new"),
      kept: await tx.getSource(SCOPE, "kept"),
      job: await tx.getJob(SCOPE, "job-kept"),
    }));
    assert.equal(seen.created, undefined);
    assert.equal(seen.kept?.updatedAt, 1);
    assert.equal(seen.job?.attempt, 0);
    return store.failure !== undefined;
  });
  assert.equal(failure, false, "the store is not poisoned");
  assert.deepEqual(await tableSizes(t), before, "nothing was left behind");
  assert.deepEqual(await sourceDoc(t, "kept"), keptDoc, "the replaced source is as it was");
});

test("a transaction that throws after a deletion or a release poisons the store", async () => {
  const { t } = setup({ handler: { apply() {} } });
  await homeWith(t, "home", 3);
  for (
    const write of [
      (tx: Transaction) => tx.deleteChunks(SCOPE, "home", 2),
      (tx: Transaction) => tx.releaseChunkPayloads!(SCOPE, "home", 0, 1),
    ]
  ) {
    await assert.rejects(
      inStore(t, async (store) => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await write(tx);
            throw new Error("boom");
          }),
          /boom/,
        );
        assert.ok(store.failure, "the invocation must roll back");
        throw store.failure.error; // as the function wrapper does: Convex rolls back
      }),
      /boom/,
    );
  }
  assert.deepEqual(await chunkDocs(t, "home"), { all: [0, 1, 2], withBytes: [0, 1, 2] });
});
