// The store's one-step upload (`insertSealedSource`, migration 3's function) on PGlite: it
// writes the source, every chunk (cut from one byte parameter) and the job, or nothing;
// it declines when the conversation has a job running or the source exists; subscribers
// hear of the job. The engine's use of it, and the races, are conformance cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type Chunk,
  EMPTY_COMPOSITE_STATE,
  type Job,
  sha256Hex,
  type Source,
} from "@zakstam/codex-sync-engine";
import { createPostgresAdapter, type PostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { countCalls } from "./support/recording.ts";

const SCOPE = "one-step";
const NOW = 1_000;

async function chunk(index: number, text: string): Promise<Chunk> {
  const bytes = new TextEncoder().encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

function records(sourceId: string, conversationId: string, chunks: readonly Chunk[]) {
  const byteCount = chunks.reduce((sum, c) => sum + c.byteLength, 0);
  const jobId = `job-of-${sourceId}`;
  const source: Source = {
    sourceId,
    scope: SCOPE,
    conversationId,
    state: "sealed",
    received: { chunkCount: chunks.length, byteCount },
    manifest: { chunkCount: chunks.length, byteCount, digest: "0".repeat(64) },
    jobId,
    createdAt: NOW,
    updatedAt: NOW,
    sealedAt: NOW,
    expiresAt: NOW + 60_000,
  } as Source;
  const job: Job = {
    jobId,
    scope: SCOPE,
    sourceId,
    conversationId,
    state: "queued",
    cursor: 0,
    totalChunks: chunks.length,
    appliedBytes: 0,
    attempt: 0,
    runAt: NOW,
    leaseToken: 0,
    appliedDigestState: EMPTY_COMPOSITE_STATE,
    createdAt: NOW,
    updatedAt: NOW,
  };
  return { source, job };
}

async function withStore(body: (adapter: PostgresAdapter) => Promise<void>): Promise<void> {
  const adapter = await createPostgresAdapter({ handler: { apply() {} }, mode: "manual" });
  try {
    await body(adapter);
  } finally {
    await adapter.close();
  }
}

async function storedChunks(adapter: PostgresAdapter, sourceId: string) {
  return await adapter.store.transaction(async (tx) => {
    const infos = await tx.listChunkInfos(SCOPE, sourceId, -1, 100);
    const out: Array<[number, string]> = [];
    for (const info of infos) {
      const stored = await tx.getChunk(SCOPE, sourceId, info.index);
      out.push([info.index, new TextDecoder().decode(stored!.bytes)]);
    }
    return out;
  });
}

test("one-step upload: source, chunks of any lengths and job are stored as given", async () => {
  await withStore(async (adapter) => {
    const store = adapter.store;
    const chunks = [await chunk(1, "b".repeat(300)), await chunk(0, "a"), await chunk(2, "ccc")];
    const { source, job } = records("s1", "c1", chunks);
    const heard: string[] = [];
    const unsubscribe = store.subscribeJob(SCOPE, job.jobId, () => heard.push(job.jobId));
    assert.equal(await store.insertSealedSource(source, chunks, job), true);
    assert.deepEqual(await adapter.getSource({ scope: SCOPE, sourceId: "s1" }), source);
    assert.deepEqual(await adapter.getJob({ scope: SCOPE, jobId: job.jobId }), job);
    assert.deepEqual(await storedChunks(adapter, "s1"), [
      [0, "a"],
      [1, "b".repeat(300)],
      [2, "ccc"],
    ]);
    assert.deepEqual(heard, [job.jobId], "the job's subscribers were told");
    unsubscribe();
  });
});

/** A sealed source of `texts` (one chunk each) with its job, stored in one step. */
async function insertSealed(
  adapter: PostgresAdapter,
  sourceId: string,
  conversationId: string,
  texts: readonly string[],
  jobId?: string,
): Promise<boolean> {
  const chunks = await Promise.all(texts.map((text, index) => chunk(index, text)));
  const { source, job } = records(sourceId, conversationId, chunks);
  if (jobId !== undefined) job.jobId = source.jobId = jobId;
  return await adapter.store.insertSealedSource(source, chunks, job);
}

async function assertNotStored(adapter: PostgresAdapter, sourceId: string, jobId: string) {
  await assert.rejects(adapter.getSource({ scope: SCOPE, sourceId }), {
    code: "E_SYNC_SOURCE_NOT_FOUND",
  });
  await assert.rejects(adapter.getJob({ scope: SCOPE, jobId }), { code: "E_SYNC_JOB_NOT_FOUND" });
}

test("one-step upload: declined, storing nothing, while the conversation has a job running", async () => {
  await withStore(async (adapter) => {
    assert.equal(await insertSealed(adapter, "s1", "c1", ["a"]), true);
    assert.equal(await insertSealed(adapter, "s2", "c1", ["b"]), false);
    await assertNotStored(adapter, "s2", "job-of-s2");
    assert.deepEqual(await storedChunks(adapter, "s2"), []);
    // Once that job is terminal, the conversation takes a new source in one step again.
    await adapter.drain();
    assert.equal(await insertSealed(adapter, "s2", "c1", ["b"]), true);
  });
});

test("one-step upload: declined, storing nothing, when the source id exists", async () => {
  await withStore(async (adapter) => {
    assert.equal(await insertSealed(adapter, "s1", "c1", ["a"]), true);
    await adapter.drain();
    assert.equal(await insertSealed(adapter, "s1", "c2", ["other"], "another-job"), false);
    assert.equal((await adapter.getSource({ scope: SCOPE, sourceId: "s1" })).conversationId, "c1");
    await assert.rejects(adapter.getJob({ scope: SCOPE, jobId: "another-job" }), {
      code: "E_SYNC_JOB_NOT_FOUND",
    });
    assert.deepEqual(await storedChunks(adapter, "s1"), [[0, "a"]]);
  });
});

test("one-step upload: a key postgres cannot store is E_SYNC_INVALID_ARGUMENT", async () => {
  await withStore(async (adapter) => {
    const bad = records("s\0", "c1", []);
    await assert.rejects(adapter.store.insertSealedSource(bad.source, [], bad.job), {
      code: "E_SYNC_INVALID_ARGUMENT",
    });
  });
});

test("one-step uploads that arrive together go as one statement, each as if alone in turn", async () => {
  await withStore(async (adapter) => {
    assert.equal(await insertSealed(adapter, "busy", "c-busy", ["x"]), true);
    await adapter.drain();
    assert.equal(await insertSealed(adapter, "running", "c-busy", ["y"]), true);
    const batches = countCalls(adapter, "insert_sealed_sources");
    const lone = countCalls(adapter, "insert_sealed_source");
    // The first two take the store's two slots; the next ones wait for a slot together.
    const results = await Promise.all([
      insertSealed(adapter, "a", "c-a", ["a"]),
      insertSealed(adapter, "b", "c-b", ["b"]),
      insertSealed(adapter, "c", "c-c", ["c0", "c1 longer", ""]),
      insertSealed(adapter, "d", "c-c", ["d"]), // c's conversation, now busy: declined
      insertSealed(adapter, "e", "c-busy", ["e"]), // busy before the batch: declined
      insertSealed(adapter, "running", "c-f", ["f"], "another-job"), // id exists: declined
      insertSealed(adapter, "g", "c-g", ["g", "gg"]),
    ]);
    assert.deepEqual(results, [true, true, true, false, false, false, true]);
    assert.equal(batches.count, 1, "one batch");
    assert.equal(lone.count, 2, "and the two that went alone");
    assert.deepEqual(await storedChunks(adapter, "c"), [[0, "c0"], [1, "c1 longer"], [2, ""]]);
    assert.deepEqual(await storedChunks(adapter, "g"), [[0, "g"], [1, "gg"]]);
    for (const [sourceId, jobId] of [["d", "job-of-d"], ["e", "job-of-e"]]) {
      await assertNotStored(adapter, sourceId, jobId);
    }
    await assert.rejects(adapter.getJob({ scope: SCOPE, jobId: "another-job" }), {
      code: "E_SYNC_JOB_NOT_FOUND",
    });
    assert.equal(await adapter.drain(), 5, "the jobs of running, a, b, c and g");
  });
});

test("one-step uploads in one statement: a call the database refuses fails alone", async () => {
  await withStore(async (adapter) => {
    const batches = countCalls(adapter, "insert_sealed_sources");
    const chunks = [await chunk(0, "bad")];
    const bad = records("bad", "c-bad", chunks);
    bad.job.runAt = Number.MAX_VALUE; // not a bigint: the statement fails
    const results = await Promise.allSettled([
      insertSealed(adapter, "a", "c-a", ["a"]),
      insertSealed(adapter, "b", "c-b", ["b"]),
      insertSealed(adapter, "c", "c-c", ["c"]),
      adapter.store.insertSealedSource(bad.source, chunks, bad.job),
      insertSealed(adapter, "d", "c-d", ["d"]),
    ]);
    assert.equal(batches.count, 1, "the three waiting went together, and were refused");
    assert.deepEqual(results.map((result) => result.status), [
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    assert.equal((results[3] as PromiseRejectedResult).reason.code, "E_SYNC_INTERNAL");
    await assertNotStored(adapter, "bad", "job-of-bad");
    assert.deepEqual(await storedChunks(adapter, "bad"), []);
    for (const sourceId of ["a", "b", "c", "d"]) {
      assert.equal((await adapter.getSource({ scope: SCOPE, sourceId })).state, "sealed");
    }
  });
});
