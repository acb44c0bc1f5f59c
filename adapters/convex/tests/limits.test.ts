// Convex's document and transaction limits, enforced by convex-test
// (`transactionLimits: true`): the largest chunk, the largest seal, bounded gc passes,
// and chunk deletions larger than one transaction.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  compositeDigest,
  isSyncError,
  type JsonValue,
  sha256Hex,
  syncConversation,
  type SyncHandler,
} from "@zakstam/codex-sync-engine";
import {
  CONVEX_MAX_CHUNK_BYTES,
  CONVEX_MAX_CHUNKS_PER_SOURCE,
  CONVEX_MAX_GC_SOURCES,
} from "../mod.ts";
import type { ConvexHandlerExtras } from "../server.ts";
import type { SyncDbWriter } from "../src/server/schema.ts";
import { runDueWorkers, type TestBackend } from "./support/backend.ts";
import { setup } from "./support/setup.ts";

const SCOPE = "scope-1";
const HOUR = 60 * 60 * 1000;

function countingHandler(
  seen: { chunks: number; bytes: number },
): SyncHandler<ConvexHandlerExtras> {
  return {
    apply(chunk) {
      seen.chunks++;
      seen.bytes += chunk.bytes.length;
    },
  };
}

function asStore(t: TestBackend) {
  return <T>(fn: (db: SyncDbWriter) => Promise<T>): Promise<T> =>
    t.run((ctx) => fn(ctx.db as unknown as SyncDbWriter));
}

async function storedChunks(t: TestBackend, sourceId: string): Promise<number> {
  return await asStore(t)(async (db) => {
    const source = await db.query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", sourceId))
      .unique();
    if (!source) return 0;
    const chunks = await db.query("syncChunks")
      .withIndex("by_source", (range) => range.eq("source", source._id))
      .collect();
    return chunks.length;
  });
}

test("chunks of CONVEX_MAX_CHUNK_BYTES sync end to end; one byte more is refused", async () => {
  const seen = { chunks: 0, bytes: 0 };
  const { adapter, clock, drain } = setup({ handler: countingHandler(seen) });
  const records: JsonValue[] = Array.from({ length: 3_000 }, (_, i) => ({
    turn: i,
    text: `message ${i} — ${"ü".repeat(500)}`,
  }));
  let done = false;
  const synced = syncConversation(adapter, {
    scope: SCOPE,
    conversationId: "big",
    payload: records, // no chunkSize: the adapter's maxChunkBytes sets the default
    clock,
  }).finally(() => (done = true));
  // Runs the worker between the client's steps; each turn yields to the event loop (Web
  // Crypto settles there), it does not wait for time to pass.
  while (!done) {
    await drain();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const { job } = await synced;
  assert.equal(job.state, "succeeded");
  assert.ok(job.totalChunks >= 3, `several full chunks (${job.totalChunks})`);
  assert.equal(seen.chunks, job.totalChunks);
  assert.equal(seen.bytes, job.appliedBytes);

  const source = await adapter.createSource({ scope: SCOPE, conversationId: "too-big" });
  const bytes = new Uint8Array(CONVEX_MAX_CHUNK_BYTES + 1);
  await assert.rejects(
    adapter.appendChunk({
      scope: SCOPE,
      sourceId: source.sourceId,
      index: 0,
      bytes,
      sha256: await sha256Hex(bytes),
    }),
    (error) => isSyncError(error) && error.code === "E_SYNC_LIMIT_EXCEEDED",
  );
});

test("sealing CONVEX_MAX_CHUNKS_PER_SOURCE chunks fits in one mutation", async () => {
  const { t, adapter } = setup({ handler: countingHandler({ chunks: 0, bytes: 0 }) });
  const created = await adapter.createSource({ scope: SCOPE, conversationId: "many" });
  const count = CONVEX_MAX_CHUNKS_PER_SOURCE;
  const encoder = new TextEncoder();
  const chunks = Array.from({ length: count }, (_, i) => encoder.encode(`c${i};`));
  const digests = await Promise.all(chunks.map((chunk) => sha256Hex(chunk)));
  const byteCount = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  // Stored directly, in batches: appending 16 384 chunks one mutation at a time is what
  // the conformance suite's scale case does (at 5 000); here only the seal is measured.
  const store = asStore(t);
  const batch = 4_000;
  for (let start = 0; start < count; start += batch) {
    await store(async (db) => {
      const source = (await db.query("syncSources")
        .withIndex("by_key", (range) => range.eq("scope", SCOPE).eq("sourceId", created.sourceId))
        .unique())!;
      for (let index = start; index < Math.min(count, start + batch); index++) {
        const bytes = await db.insert("syncChunkBytes", {
          bytes: chunks[index].slice().buffer as ArrayBuffer,
        });
        await db.insert("syncChunks", {
          source: source._id,
          index,
          byteLength: chunks[index].length,
          sha256: digests[index],
          bytes,
        });
      }
      await db.patch(source._id, {
        storedChunks: Math.min(count, start + batch),
        received: { chunkCount: Math.min(count, start + batch), byteCount: 0 },
      });
    });
  }
  const { job } = await adapter.sealSource({
    scope: SCOPE,
    sourceId: created.sourceId,
    manifest: { chunkCount: count, byteCount, digest: compositeDigest(digests) },
  });
  assert.equal(job.state, "queued");
  assert.equal(job.totalChunks, count);
});

test("a deletion larger than one transaction hides the chunks and the sweep removes them", async () => {
  const { t, adapter, clock, drain } = setup({
    handler: countingHandler({ chunks: 0, bytes: 0 }),
    policy: { sourceTtlMs: HOUR },
  });
  const source = await adapter.createSource({ scope: SCOPE, conversationId: "expiring" });
  const count = 600; // more than one transaction's deletion budget (512)
  const encoder = new TextEncoder();
  for (let index = 0; index < count; index++) {
    const bytes = encoder.encode(`chunk ${index}`);
    await adapter.appendChunk({
      scope: SCOPE,
      sourceId: source.sourceId,
      index,
      bytes,
      sha256: await sha256Hex(bytes),
    });
  }
  clock.advance(HOUR + 1);
  const report = await adapter.gc();
  assert.deepEqual(report, { expiredSources: 1, purgedSources: 0, deletedChunks: count });
  assert.equal(await storedChunks(t, source.sourceId), count - 512, "left to the sweep");
  const listed = await adapter.listChunks({ scope: SCOPE, sourceId: source.sourceId });
  assert.deepEqual(listed.items, [], "chunks pending deletion are not listed");

  await drain();
  assert.equal(await storedChunks(t, source.sourceId), 0, "the sweep deleted the rest");
  const flagged = await asStore(t)((db) =>
    db.query("syncSources")
      .withIndex("by_pending_purge", (range) => range.eq("purgePending", true))
      .collect()
  );
  assert.equal(flagged.length, 0);
  assert.deepEqual(await adapter.gc(), { expiredSources: 0, purgedSources: 0, deletedChunks: 0 });
});

test("a gc pass touches at most CONVEX_MAX_GC_SOURCES sources", async () => {
  const { adapter, clock } = setup({
    handler: countingHandler({ chunks: 0, bytes: 0 }),
    policy: { sourceTtlMs: HOUR },
  });
  const total = CONVEX_MAX_GC_SOURCES + 8;
  for (let i = 0; i < total; i++) {
    await adapter.createSource({ scope: SCOPE, conversationId: `c-${i}` });
  }
  clock.advance(HOUR + 1);
  assert.equal((await adapter.gc()).expiredSources, CONVEX_MAX_GC_SOURCES);
  assert.equal((await adapter.gc({ limit: 100 })).expiredSources, 8);
});

test("runDueWorkers drains nothing when no work was requested", async () => {
  const { t, clock } = setup({ handler: countingHandler({ chunks: 0, bytes: 0 }) });
  assert.equal(await runDueWorkers(t, () => clock.now()), 0);
});
