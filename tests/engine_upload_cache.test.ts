// The engine's upload cache: a job applies the chunks its own engine hashed and stored
// without reading them back (and without hashing them a third time), while anything read
// from storage is still hashed; the budget, the digest check, deletes and releases bound
// what it may hand out.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Chunk } from "../src/contracts/domain.ts";
import type { StoreTransaction, SyncStore } from "../src/contracts/store.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import { UploadCache } from "../src/engine/upload_cache.ts";
import { MemoryStore } from "../memory/mod.ts";
import { uploadAndSeal } from "./support/engine_upload.ts";

const SCOPE = "tenant-a";
const encoder = new TextEncoder();

function chunkOf(index: number, text: string, sha256 = "0".repeat(64)): Chunk {
  const bytes = encoder.encode(text);
  return { index, bytes, byteLength: bytes.length, sha256 };
}

describe("UploadCache", () => {
  test("hands a chunk out once, as a copy, when the stored info names the same bytes", () => {
    const cache = new UploadCache(1024);
    const chunk = chunkOf(0, "hello");
    cache.add(SCOPE, "home", [chunk]);
    assert.equal(cache.bytes, 5);
    assert.ok(cache.has(SCOPE, "home", 0));
    assert.ok(!cache.has(SCOPE, "other", 0) && !cache.has("tenant-b", "home", 0));
    const taken = cache.take(SCOPE, "home", { index: 0, byteLength: 5, sha256: chunk.sha256 });
    assert.deepEqual(taken?.bytes, chunk.bytes);
    assert.notEqual(taken?.bytes.buffer, chunk.bytes.buffer, "a copy");
    assert.equal(
      cache.take(SCOPE, "home", { index: 0, byteLength: 5, sha256: chunk.sha256 }),
      undefined,
    );
    assert.equal(cache.bytes, 0);
  });

  test("another digest or length at the key, or nothing stored, is not handed out", () => {
    const cache = new UploadCache(1024);
    cache.add(SCOPE, "home", [chunkOf(0, "a"), chunkOf(1, "b"), chunkOf(2, "c")]);
    assert.equal(
      cache.take(SCOPE, "home", { index: 0, byteLength: 1, sha256: "1".repeat(64) }),
      undefined,
    );
    assert.equal(
      cache.take(SCOPE, "home", { index: 1, byteLength: 2, sha256: "0".repeat(64) }),
      undefined,
    );
    assert.equal(cache.take(SCOPE, "home", undefined), undefined);
    assert.ok(!cache.has(SCOPE, "home", 0) && !cache.has(SCOPE, "home", 1), "dropped once checked");
    assert.ok(cache.has(SCOPE, "home", 2));
  });

  test("the budget evicts the oldest; a chunk above it is not kept; a budget of 0 keeps none", () => {
    const cache = new UploadCache(10);
    cache.add(SCOPE, "home", [chunkOf(0, "aaaa"), chunkOf(1, "bbbb")]);
    cache.add(SCOPE, "next", [chunkOf(0, "cccc")]);
    assert.deepEqual(
      [cache.has(SCOPE, "home", 0), cache.has(SCOPE, "home", 1), cache.has(SCOPE, "next", 0)],
      [false, true, true],
    );
    assert.equal(cache.bytes, 8);
    cache.add(SCOPE, "big", [chunkOf(0, "x".repeat(11))]);
    assert.ok(!cache.has(SCOPE, "big", 0));
    assert.equal(cache.bytes, 8, "nothing evicted for a chunk that cannot fit");
    const none = new UploadCache(0);
    none.add(SCOPE, "home", [chunkOf(0, "a")]);
    assert.equal(none.bytes, 0);
  });

  test("drop forgets a home's chunks from an index on; re-adding an index replaces it", () => {
    const cache = new UploadCache(1024);
    cache.add(SCOPE, "home", [chunkOf(0, "a"), chunkOf(1, "b"), chunkOf(2, "c")]);
    cache.add(SCOPE, "home", [chunkOf(2, "cc")]);
    assert.equal(cache.bytes, 4);
    cache.drop(SCOPE, "home", 1);
    assert.deepEqual([0, 1, 2].map((i) => cache.has(SCOPE, "home", i)), [true, false, false]);
    cache.drop(SCOPE, "home");
    assert.equal(cache.bytes, 0);
    cache.drop(SCOPE, "missing");
  });
});

/**
 * A memory store that counts chunk reads with bytes, and keeps a copy of what it is given
 * (as a store writing elsewhere does: its oracle's corruption then reaches only storage).
 */
class CountingStore extends MemoryStore {
  chunkReads = 0;

  constructor(readonly copyOnInsert = true) {
    super();
  }

  override transaction<T>(fn: (tx: StoreTransaction<Record<never, never>>) => Promise<T>) {
    return super.transaction((tx) =>
      fn({
        ...tx,
        getChunk: (scope, sourceId, index) => {
          this.chunkReads++;
          return tx.getChunk(scope, sourceId, index);
        },
        insertChunk: (scope, sourceId, chunk) =>
          tx.insertChunk(
            scope,
            sourceId,
            this.copyOnInsert ? { ...chunk, bytes: chunk.bytes.slice() } : chunk,
          ),
      })
    );
  }
}

interface Setup {
  store: CountingStore;
  engine: SyncEngine;
  applied: string[];
}

function setup(policy: PolicyOverrides = {}, mutate = false): Setup {
  // A handler that writes into its bytes gets a store that keeps the engine's own copy.
  const store = new CountingStore(!mutate);
  const applied: string[] = [];
  const engine = new SyncEngine({
    store: store as SyncStore<Record<never, never>>,
    policy: { retry: { maxAttempts: 1 }, ...policy },
    handler: {
      apply(chunk) {
        applied.push(new TextDecoder().decode(chunk.bytes));
        if (mutate) chunk.bytes.fill(0x21);
      },
    },
  });
  return { store, engine, applied };
}

function upload(engine: SyncEngine, texts: string[]) {
  return uploadAndSeal(engine, texts.map((text) => encoder.encode(text)), {
    scope: SCOPE,
    conversationId: "c1",
  });
}

async function drain(engine: SyncEngine): Promise<void> {
  while (await engine.runDueJobs() > 0) { /* until idle */ }
}

describe("engine: applying what it uploaded", () => {
  const texts = ["one\n", "two\n", "three\n", "four\n"];

  test("its own uploads are applied without reading their bytes back", async () => {
    const { store, engine, applied } = setup();
    const sealed = await upload(engine, texts);
    // Storage rot after the write: the engine applies the bytes it verified, not these.
    for (let index = 0; index < texts.length; index++) {
      store.oracle.corruptChunk(SCOPE, sealed.source.sourceId, index);
    }
    await drain(engine);
    const job = await engine.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
    assert.equal(job.state, "succeeded");
    assert.deepEqual(applied, texts);
    assert.equal(store.chunkReads, 0);
  });

  test("with the cache off (0), every chunk is read back and hashed: rot is found", async () => {
    const { store, engine, applied } = setup({ uploadCacheBytes: 0 });
    const sealed = await upload(engine, texts);
    store.oracle.corruptChunk(SCOPE, sealed.source.sourceId, 2);
    await drain(engine);
    const job = await engine.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
    assert.equal(job.state, "failed");
    assert.equal(job.error?.code, "E_SYNC_CHUNK_CHECKSUM_MISMATCH");
    assert.deepEqual(applied, texts.slice(0, 2));
    assert.equal(store.chunkReads, 3);
  });

  test("beyond the budget, the oldest chunks are read back and hashed", async () => {
    // Budget for the last two chunks ("three\n" + "four\n" = 11 bytes).
    const { store, engine, applied } = setup({ uploadCacheBytes: 11 });
    const sealed = await upload(engine, texts);
    store.oracle.corruptChunk(SCOPE, sealed.source.sourceId, 3);
    store.oracle.corruptChunk(SCOPE, sealed.source.sourceId, 0);
    await drain(engine);
    const job = await engine.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
    assert.equal(job.error?.code, "E_SYNC_CHUNK_CHECKSUM_MISMATCH", "chunk 0 came from storage");
    assert.equal(job.cursor, 0);
    assert.deepEqual(applied, []);
    assert.equal(store.chunkReads, 1);
  });

  test("another engine over the same store reads from storage", async () => {
    const first = setup();
    const sealed = await upload(first.engine, texts);
    first.store.oracle.corruptChunk(SCOPE, sealed.source.sourceId, 1);
    const applied: string[] = [];
    const other = new SyncEngine({
      store: first.store as SyncStore<Record<never, never>>,
      policy: { retry: { maxAttempts: 1 } },
      handler: { apply: (chunk) => void applied.push(new TextDecoder().decode(chunk.bytes)) },
    });
    await drain(other);
    const job = await other.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
    assert.equal(job.error?.code, "E_SYNC_CHUNK_CHECKSUM_MISMATCH");
    assert.deepEqual(applied, ["one\n"]);
  });

  test("a handler that writes into the bytes it got does not reach the stored chunk", async () => {
    const { store, engine } = setup({}, true);
    const sealed = await upload(engine, texts);
    await drain(engine);
    for (const [index, text] of texts.entries()) {
      const stored = store.oracle.chunk(SCOPE, sealed.source.sourceId, index);
      assert.equal(new TextDecoder().decode(stored?.bytes), text);
    }
  });
});
