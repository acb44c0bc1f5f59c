// Extension sources on Convex: the records' extension fields round-trip through documents
// and the wire (absent stays absent), `getLatestSource`'s null survives the wire, and the
// range deletion of an extension's own chunks from a shared chunk home keeps the home's
// bookkeeping (stored counts, pending sweeps, deletion budgets) right.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Capability,
  type Chunk,
  compositeDigest,
  isSyncError,
  type Job,
  sha256Hex,
  type Source,
  type SyncHandler,
} from "@zakstam/codex-sync-engine";
import { jobFromWire, jobToWire, sourceFromWire, sourceToWire, type SourceWire } from "../mod.ts";
import type { ConvexHandlerExtras } from "../server.ts";
import { defaultDeleteBudget, sweepPendingChunks } from "../src/server/purge.ts";
import type { SourceDoc, SyncDbWriter } from "../src/server/schema.ts";
import { ConvexStore, type ConvexStoreOptions } from "../src/server/store.ts";
import { sourceOf } from "../src/server/records.ts";
import type { TestBackend } from "./support/backend.ts";
import { setup } from "./support/setup.ts";

const SCOPE = "scope-1";
const encoder = new TextEncoder();

const quiet: SyncHandler<ConvexHandlerExtras> = { apply() {} };

async function chunkOf(index: number, text = `chunk ${index};`): Promise<Chunk> {
  const bytes = encoder.encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

/** The chunk as an upload or append input (no `byteLength`). */
function input({ index, bytes, sha256 }: Chunk) {
  return { index, bytes, sha256 };
}

function collectingSource(sourceId: string, conversationId = "conv"): Source {
  return {
    sourceId,
    scope: SCOPE,
    conversationId,
    state: "collecting",
    received: { chunkCount: 0, byteCount: 0 },
    createdAt: 1,
    updatedAt: 1,
    expiresAt: 1_000_000,
  };
}

/** Runs `fn` over a fresh store in one `t.run` transaction (one Convex mutation). */
function inStore<T>(
  t: TestBackend,
  fn: (store: ConvexStore<Record<never, never>>, db: SyncDbWriter) => Promise<T>,
  options: Omit<ConvexStoreOptions, "requestSweep"> = {},
): Promise<T> {
  return t.run(async (ctx) => {
    const db = ctx.db as unknown as SyncDbWriter;
    const store = new ConvexStore<Record<never, never>>(db, {}, {
      ...options,
      requestSweep: () => Promise.resolve(),
    });
    return await fn(store, db);
  });
}

function sourceDoc(t: TestBackend, sourceId: string): Promise<SourceDoc | null> {
  return t.run((ctx) =>
    (ctx.db as unknown as SyncDbWriter).query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", sourceId))
      .unique()
  );
}

function chunkDocIndexes(t: TestBackend, sourceId: string): Promise<number[]> {
  return t.run(async (ctx) => {
    const db = ctx.db as unknown as SyncDbWriter;
    const source = await db.query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", sourceId))
      .unique();
    if (!source) return [];
    const docs = await db.query("syncChunks")
      .withIndex("by_source", (range) => range.eq("source", source._id))
      .collect();
    return docs.map((doc) => doc.index);
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

const listIndexes = (t: TestBackend, sourceId: string) =>
  inStore(
    t,
    (store) =>
      store.transaction(async (tx) =>
        (await tx.listChunkInfos(SCOPE, sourceId, -1, 1000)).map((info) => info.index)
      ),
  );

test("extension fields round-trip through the codec; absent ones stay absent", () => {
  const plain: Source = { ...collectingSource("plain"), state: "sealed" };
  assert.deepEqual(sourceFromWire(sourceToWire(plain)), plain);
  assert.ok(!("base" in sourceToWire(plain)) && !("chunkHome" in sourceToWire(plain)));
  const extension: Source = {
    ...plain,
    sourceId: "ext",
    base: { sourceId: "plain", chunkCount: 3, byteCount: 30 },
    chunkHome: "plain",
    extendedBy: "ext-2",
    homeRefs: 2,
    digestState: "state",
  };
  assert.deepEqual(sourceFromWire(sourceToWire(extension)), extension);
  const counted: Source = { ...extension, base: { ...extension.base!, itemCount: 7 } };
  assert.deepEqual(sourceFromWire(sourceToWire(counted)), counted);
  const released: Source = { ...extension, payloadsReleasedAt: 9, releasedChunks: 3 };
  assert.deepEqual(sourceFromWire(sourceToWire(released)), released);
  assert.ok(!("payloadsReleasedAt" in sourceToWire(extension)));
  const job: Job = {
    jobId: "job",
    scope: SCOPE,
    sourceId: "ext",
    conversationId: "conv",
    state: "queued",
    cursor: 3,
    totalChunks: 5,
    appliedBytes: 30,
    attempt: 0,
    runAt: 1,
    leaseToken: 0,
    appliedDigestState: "applied",
    createdAt: 1,
    updatedAt: 1,
  };
  assert.deepEqual(jobFromWire(jobToWire(job)), job);
  assert.ok(!("base" in jobToWire(job)));
  const based: Job = { ...job, base: { sourceId: "plain", jobId: "job-0", chunkCount: 3 } };
  assert.deepEqual(jobFromWire(jobToWire(based)), based);
});

test("an extension through the client: base and job base round-trip, getLatestSource's null survives", async () => {
  const { t, adapter, clock, drain } = setup({ handler: quiet });
  assert.ok(adapter.capabilities.includes(Capability.extensions));
  assert.equal(
    await adapter.getLatestSource!({ scope: SCOPE, conversationId: "conv" }),
    null,
    "no source yet",
  );
  const first = [await chunkOf(0), await chunkOf(1)];
  const base = await adapter.uploadSource!({
    scope: SCOPE,
    conversationId: "conv",
    sourceId: "base",
    chunks: first.map(input),
    manifest: {
      chunkCount: 2,
      byteCount: first[0].byteLength + first[1].byteLength,
      digest: compositeDigest(first.map((chunk) => chunk.sha256)),
    },
  });
  await drain();
  assert.equal((await adapter.getJob({ scope: SCOPE, jobId: base.job.jobId })).state, "succeeded");
  const latest = await adapter.getLatestSource!({ scope: SCOPE, conversationId: "conv" });
  assert.equal(latest?.sourceId, "base");
  assert.equal(await adapter.getLatestSource!({ scope: "other", conversationId: "conv" }), null);

  clock.advance(1);
  const created = await adapter.createSource({
    scope: SCOPE,
    conversationId: "conv",
    sourceId: "ext",
    baseSourceId: "base",
  });
  assert.deepEqual(created.base, {
    sourceId: "base",
    chunkCount: 2,
    byteCount: base.source.manifest!.byteCount,
  });
  const extra = await chunkOf(2);
  await adapter.appendChunk({ scope: SCOPE, sourceId: "ext", ...input(extra) });
  const all = [...first, extra];
  const sealed = await adapter.sealSource({
    scope: SCOPE,
    sourceId: "ext",
    manifest: {
      chunkCount: 3,
      byteCount: all.reduce((sum, chunk) => sum + chunk.byteLength, 0),
      digest: compositeDigest(all.map((chunk) => chunk.sha256)),
    },
  });
  assert.deepEqual(sealed.job.base, { sourceId: "base", jobId: base.job.jobId, chunkCount: 2 });
  assert.equal(sealed.job.cursor, 2);
  // What the client reads is what the documents hold.
  for (const id of ["base", "ext"]) {
    const doc = await sourceDoc(t, id);
    assert.deepEqual(await adapter.getSource({ scope: SCOPE, sourceId: id }), sourceOf(doc!));
  }
  const listed = await adapter.listChunks({ scope: SCOPE, sourceId: "ext" });
  assert.deepEqual(listed.items.map((info) => info.index), [0, 1, 2]);
  const listedBase = await adapter.listChunks({ scope: SCOPE, sourceId: "base" });
  assert.deepEqual(listedBase.items.map((info) => info.index), [0, 1]);
  assert.deepEqual(await chunkDocIndexes(t, "ext"), [], "the extension stores nothing itself");
  assert.deepEqual(await chunkDocIndexes(t, "base"), [0, 1, 2], "its chunk went to the home");
  await drain();
  const done = await adapter.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
  assert.equal(done.state, "succeeded");
  assert.deepEqual(done.base, sealed.job.base);
  assert.equal(
    (await adapter.getLatestSource!({ scope: SCOPE, conversationId: "conv" }))?.sourceId,
    "ext",
  );
});

test("deleteChunks from an index within the budget deletes only those chunks", async () => {
  const { t } = setup({ handler: quiet });
  await homeWith(t, "home", 6);
  const deleted = await inStore(
    t,
    (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home", 4)),
  );
  assert.equal(deleted, 2);
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 3]);
  const doc = (await sourceDoc(t, "home"))!;
  assert.equal(doc.storedChunks, 4);
  assert.equal(doc.purgePending, false);
  assert.equal(doc.purgeFrom, undefined);
  assert.equal(
    await inStore(t, (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home", 4))),
    0,
    "nothing left from there",
  );
  assert.equal(
    await inStore(t, (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home"))),
    4,
  );
  assert.deepEqual(await chunkDocIndexes(t, "home"), []);
  assert.equal((await sourceDoc(t, "home"))!.storedChunks, 0);
});

test("a range deletion past the budget hides only its range; a store there waits for the sweep", async () => {
  const { t } = setup({ handler: quiet });
  await homeWith(t, "home", 8);
  const small = { deleteBudget: { chunks: 2, bytes: 1 << 20 } };
  const deleted = await inStore(
    t,
    (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home", 3)),
    small,
  );
  assert.equal(deleted, 5, "counted exactly, the undeleted rest included");
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 5, 6, 7]);
  let doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [3, true, 3]);
  assert.deepEqual(await listIndexes(t, "home"), [0, 1, 2], "the chunks below stay readable");
  const hidden = await inStore(
    t,
    (store) => store.transaction((tx) => tx.getChunkInfo(SCOPE, "home", 6)),
  );
  assert.equal(hidden ?? undefined, undefined, "a pending chunk is not read"); // t.run: null
  const kept = await inStore(
    t,
    (store) => store.transaction((tx) => tx.getChunkInfo(SCOPE, "home", 2)),
  );
  assert.equal(kept?.index, 2);

  // Storing at a pending index must not leave the new chunk to the sweep: it finishes the
  // deletion first, and when that does not fit, refuses (retryable) and rolls back.
  const fresh = await chunkOf(3, "new chunk 3");
  await assert.rejects(
    inStore(t, (store) => store.transaction((tx) => tx.insertChunk(SCOPE, "home", fresh)), {
      deleteBudget: { chunks: 1, bytes: 1 << 20 },
    }),
    (error) => isSyncError(error) && error.code === "E_SYNC_BACKEND_UNAVAILABLE" && error.retryable,
  );
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 5, 6, 7], "rolled back");
  await inStore(t, (store) => store.transaction((tx) => tx.insertChunk(SCOPE, "home", fresh)));
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 3]);
  doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [4, false, undefined]);
  assert.deepEqual(await listIndexes(t, "home"), [0, 1, 2, 3]);
});

test("the sweep deletes a pending range only, and clears it", async () => {
  const { t } = setup({ handler: quiet });
  await homeWith(t, "home", 8);
  await inStore(
    t,
    (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home", 5)),
    { deleteBudget: { chunks: 1, bytes: 1 << 20 } },
  );
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 3, 4, 6, 7]);
  const swept = await t.run((ctx) =>
    sweepPendingChunks(ctx.db as unknown as SyncDbWriter, defaultDeleteBudget())
  );
  assert.deepEqual(swept, { remaining: false });
  assert.deepEqual(await chunkDocIndexes(t, "home"), [0, 1, 2, 3, 4]);
  const doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [5, false, undefined]);
  assert.deepEqual(await listIndexes(t, "home"), [0, 1, 2, 3, 4]);
});

test("deletions over a pending range count only live chunks", async () => {
  const { t } = setup({ handler: quiet });
  await homeWith(t, "home", 10);
  const one: Omit<ConvexStoreOptions, "requestSweep"> = {
    deleteBudget: { chunks: 1, bytes: 1 << 20 },
  };
  const del = (from: number | undefined, options = one) =>
    inStore(t, (store) => store.transaction((tx) => tx.deleteChunks(SCOPE, "home", from)), options);
  assert.equal(await del(7), 3); // 7 deleted; 8, 9 pending
  assert.equal(await del(8), 0, "already deleted (logically)");
  assert.equal(await del(5), 2, "5 and 6 only; 8 and 9 were counted before");
  let doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [5, true, 5]);
  assert.deepEqual(await listIndexes(t, "home"), [0, 1, 2, 3, 4]);
  // Past the count budget the count assumes the chunks below are all stored (a home's are).
  assert.equal(await del(3, { ...one, countBudget: 0 }), 2);
  doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [3, true, 3]);
  assert.equal(await del(undefined), 3, "a whole deletion counts every live chunk");
  doc = (await sourceDoc(t, "home"))!;
  assert.deepEqual([doc.storedChunks, doc.purgePending, doc.purgeFrom], [0, true, undefined]);
  assert.deepEqual(await listIndexes(t, "home"), []);
  await t.run((ctx) =>
    sweepPendingChunks(ctx.db as unknown as SyncDbWriter, defaultDeleteBudget())
  );
  assert.deepEqual(await chunkDocIndexes(t, "home"), []);
});

test("wire: a source without extension fields has none on the wire", () => {
  const wire: SourceWire = sourceToWire({ ...collectingSource("s"), state: "sealed" });
  for (const field of ["base", "chunkHome", "extendedBy", "homeRefs", "digestState"]) {
    assert.ok(!(field in wire), field);
  }
});

test("an expired extension bigger than a deletion budget leaves its base extendable at once", async () => {
  const HOUR = 60 * 60 * 1000;
  const { t, adapter, clock, drain } = setup({ handler: quiet, policy: { sourceTtlMs: HOUR } });
  const first = await chunkOf(0);
  const base = await adapter.uploadSource!({
    scope: SCOPE,
    conversationId: "conv",
    sourceId: "base",
    chunks: [input(first)],
    manifest: {
      chunkCount: 1,
      byteCount: first.byteLength,
      digest: compositeDigest([first.sha256]),
    },
  });
  await drain();
  clock.advance(1);
  await adapter.createSource({
    scope: SCOPE,
    conversationId: "conv",
    sourceId: "ext-1",
    baseSourceId: "base",
  });
  const own = 600; // more than one transaction's deletion budget (512)
  for (let index = 1; index <= own; index++) {
    await adapter.appendChunk({ scope: SCOPE, sourceId: "ext-1", ...input(await chunkOf(index)) });
  }
  clock.advance(HOUR + 1);
  assert.deepEqual(await adapter.gc(), { expiredSources: 1, purgedSources: 0, deletedChunks: own });
  assert.equal((await chunkDocIndexes(t, "base")).length, 1 + own - 512, "left to the sweep");
  let home = (await sourceDoc(t, "base"))!;
  assert.deepEqual([home.storedChunks, home.purgePending, home.purgeFrom], [1, true, 1]);
  const listed = await adapter.listChunks({ scope: SCOPE, sourceId: "base" });
  assert.deepEqual(listed.items.map((info) => info.index), [0], "the base keeps its chunk");

  // Before the sweep runs: a new extension stores where the expired one's chunks wait.
  await adapter.createSource({
    scope: SCOPE,
    conversationId: "conv",
    sourceId: "ext-2",
    baseSourceId: "base",
  });
  const next = await chunkOf(1, "another chunk 1");
  await adapter.appendChunk({ scope: SCOPE, sourceId: "ext-2", ...input(next) });
  assert.deepEqual(await chunkDocIndexes(t, "base"), [0, 1]);
  home = (await sourceDoc(t, "base"))!;
  assert.deepEqual([home.storedChunks, home.purgePending, home.purgeFrom], [2, false, undefined]);
  const sealed = await adapter.sealSource({
    scope: SCOPE,
    sourceId: "ext-2",
    manifest: {
      chunkCount: 2,
      byteCount: first.byteLength + next.byteLength,
      digest: compositeDigest([first.sha256, next.sha256]),
    },
  });
  assert.deepEqual(sealed.job.base, { sourceId: "base", jobId: base.job.jobId, chunkCount: 1 });
  await drain(); // the sweep finds nothing left; the job applies chunk 1
  assert.equal(
    (await adapter.getJob({ scope: SCOPE, jobId: sealed.job.jobId })).state,
    "succeeded",
  );
  assert.deepEqual(await chunkDocIndexes(t, "base"), [0, 1]);
  const extension = await adapter.listChunks({ scope: SCOPE, sourceId: "ext-2" });
  assert.deepEqual(extension.items.map((info) => info.sha256), [first.sha256, next.sha256]);
});
