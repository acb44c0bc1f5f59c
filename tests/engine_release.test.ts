// Releasing chunk payloads: the memory store drops the bytes (and rolls a release back),
// a job that would read a released chunk fails clearly, and the client's automatic
// extension falls back to a full upload when the engine refuses a released base.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, EMPTY_COMPOSITE_STATE, sha256Hex } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import type { SyncAdapter } from "../src/contracts/adapter.ts";
import type { Chunk, Job } from "../src/contracts/domain.ts";
import type { SyncStore } from "../src/contracts/store.ts";
import { syncConversation } from "../src/client/mod.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import { isSyncError } from "../src/errors.ts";
import { createMemoryAdapter, MemoryStore } from "../memory/mod.ts";
import { uploadAndSeal } from "./support/engine_upload.ts";

const SCOPE = "tenant-a";
const CONVERSATION = "conversation-1";
const encoder = new TextEncoder();

function lines(prefix: string, count: number, from = 0): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => encoder.encode(`${prefix} ${from + i}\n`));
}

/** Creates, appends and seals `chunks` (after `k` reused ones when `baseSourceId` is set). */
function upload(
  engine: SyncEngine,
  chunks: Uint8Array[],
  options: { baseSourceId?: string; from?: number } = {},
) {
  return uploadAndSeal(engine, chunks, { scope: SCOPE, conversationId: CONVERSATION, ...options });
}

async function runAll(engine: SyncEngine): Promise<void> {
  while (await engine.runDueJobs() > 0) { /* until idle */ }
}

describe("memory store: releaseChunkPayloads", () => {
  test("drops the bytes in the range, keeps every chunk's info, and rolls back", async () => {
    const store = new MemoryStore();
    const chunks = lines("bytes", 4);
    await store.transaction(async (tx) => {
      for (const [index, bytes] of chunks.entries()) {
        await tx.insertChunk(SCOPE, "home", {
          index,
          bytes,
          byteLength: bytes.length,
          sha256: await sha256Hex(bytes),
        });
      }
    });
    const infos = await store.transaction((tx) => tx.listChunkInfos(SCOPE, "home", -1, 10));
    await assert.rejects(
      store.transaction(async (tx) => {
        await tx.releaseChunkPayloads!(SCOPE, "home", 0, 4);
        throw new Error("roll back");
      }),
      /roll back/,
    );
    assert.deepEqual(store.oracle.chunk(SCOPE, "home", 0)?.bytes, chunks[0]);
    await store.transaction((tx) => tx.releaseChunkPayloads!(SCOPE, "home", 1, 3));
    const kept = chunks[0].length + chunks[3].length;
    assert.equal(store.oracle.totals().bytes, kept);
    assert.equal(store.oracle.chunkCount(SCOPE, "home"), 4);
    assert.deepEqual(store.oracle.chunk(SCOPE, "home", 1), undefined);
    assert.deepEqual(store.oracle.chunk(SCOPE, "home", 3)?.bytes, chunks[3]);
    await store.transaction(async (tx) => {
      assert.equal(await tx.getChunk(SCOPE, "home", 2), undefined);
      assert.deepEqual(await tx.getChunkInfo(SCOPE, "home", 2), infos[2]);
      assert.deepEqual(await tx.listChunkInfos(SCOPE, "home", -1, 10), infos);
      // Released again (and past the end): nothing changes.
      await tx.releaseChunkPayloads!(SCOPE, "home", 0, 9);
    });
    assert.equal(store.oracle.totals().bytes, 0);
    assert.equal(await store.transaction((tx) => tx.deleteChunks(SCOPE, "home")), 4);
  });
});

describe("engine: released payloads are never applied", () => {
  test("a job made to apply from chunk 0 over released bytes fails with E_SYNC_SOURCE_EXPIRED", async () => {
    const memory = new MemoryStore();
    // A defective store that drops an extension job's start: the job applies from 0.
    const store: SyncStore = {
      transactionalApply: false,
      subscribeJob: (scope, jobId, listener) => memory.subscribeJob(scope, jobId, listener),
      transaction: (fn) =>
        memory.transaction((tx) =>
          fn(Object.assign(Object.create(tx), {
            insertJob: (job: Job) => {
              if (!job.base) return tx.insertJob(job);
              const { base: _base, ...rest } = job;
              return tx.insertJob({
                ...rest,
                cursor: 0,
                appliedBytes: 0,
                appliedDigestState: EMPTY_COMPOSITE_STATE,
              });
            },
          }))
        ),
    };
    const applied: number[] = [];
    const clock = new ManualClock();
    const engine = new SyncEngine({
      store,
      clock,
      handler: { apply: (chunk: Chunk) => void applied.push(chunk.index) },
    });
    const chunks = lines("released", 3);
    const base = await upload(engine, chunks);
    await runAll(engine);
    clock.advance(1000);
    const result = await engine.releasePayloads({ scope: SCOPE, sourceId: base.source.sourceId });
    assert.equal(result.releasedChunks, 3);
    applied.length = 0;
    const extension = await upload(engine, [...chunks, ...lines("new", 1, 3)], {
      baseSourceId: base.source.sourceId,
      from: 3,
    });
    await runAll(engine);
    const job = await engine.getJob({ scope: SCOPE, jobId: extension.job.jobId });
    assert.equal(job.state, "failed");
    assert.equal(job.error?.code, "E_SYNC_SOURCE_EXPIRED");
    assert.equal(job.error?.retryable, false);
    assert.match(job.error?.message ?? "", /chunk 0 .*released/);
    assert.deepEqual(applied, []);
  });

  test("a chunk missing without a release is still E_SYNC_INTERNAL", async () => {
    const store = new MemoryStore();
    const engine = new SyncEngine({ store, handler: { apply: () => {} } });
    const sealed = await upload(engine, lines("lost", 2));
    await store.transaction((tx) => tx.deleteChunks(SCOPE, sealed.source.sourceId, 1));
    await runAll(engine);
    const job = await engine.getJob({ scope: SCOPE, jobId: sealed.job.jobId });
    assert.equal(job.error?.code, "E_SYNC_INTERNAL");
  });
});

describe("syncConversation over a released base", () => {
  test("extends a released, current base: uploads and applies only the tail", async () => {
    const clock = new ManualClock();
    const applied: number[] = [];
    const adapter = createMemoryAdapter({
      handler: { apply: (chunk: Chunk) => void applied.push(chunk.index) },
      clock,
      mode: "manual",
    });
    const payload = "a\n".repeat(3000);
    const sync = async (text: string) => {
      clock.advance(1000);
      return await syncConversation(adapter, {
        scope: SCOPE,
        conversationId: CONVERSATION,
        payload: encoder.encode(text),
        chunkSize: 1024,
        clock,
        onProgress: (event) => {
          if (event.phase === "waiting") void adapter.drain();
        },
      });
    };
    const first = await sync(payload);
    await adapter.releasePayloads({ scope: SCOPE, sourceId: first.source.sourceId });
    applied.length = 0;
    const second = await sync(`${payload}b\n`);
    assert.equal(second.base?.sourceId, first.source.sourceId);
    assert.deepEqual(second.uploaded, { chunks: 1, bytes: 2 });
    assert.deepEqual(applied, [first.manifest.chunkCount]);
    await adapter.close();
  });

  for (
    const [path, tail] of [
      ["uploadSource", "d\n"],
      ["createSource", "e".repeat(3000) + "\n"],
    ] as const
  ) {
    test(`falls back to a full upload when ${path} refuses a released base`, async () => {
      const clock = new ManualClock();
      const adapter = createMemoryAdapter({ handler: { apply: () => {} }, clock, mode: "manual" });
      const payload = "c\n".repeat(3000);
      const sync = async (target: SyncAdapter, text: string) => {
        clock.advance(1000);
        return await syncConversation(target, {
          scope: SCOPE,
          conversationId: CONVERSATION,
          payload: encoder.encode(text),
          chunkSize: 1024,
          clock,
          onProgress: (event) => {
            if (event.phase === "waiting") void adapter.drain();
          },
        });
      };
      const first = await sync(adapter, payload);
      await adapter.releasePayloads({ scope: SCOPE, sourceId: first.source.sourceId });
      // Another client seals a full source of the conversation right after this client
      // found its latest source: the released base is no longer current.
      const refusals: string[] = [];
      const racing: SyncAdapter = {
        ...adapter,
        getLatestSource: async (input) => {
          const latest = await adapter.getLatestSource(input);
          const other = await adapter.createSource({ scope: SCOPE, conversationId: CONVERSATION });
          const bytes = encoder.encode("other\n");
          const sha256 = await sha256Hex(bytes);
          await adapter.appendChunk({
            scope: SCOPE,
            sourceId: other.sourceId,
            index: 0,
            bytes,
            sha256,
          });
          await adapter.sealSource({
            scope: SCOPE,
            sourceId: other.sourceId,
            manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
          });
          return latest;
        },
        createSource: (input) => counted("createSource", adapter.createSource(input)),
        uploadSource: (input) => counted("uploadSource", adapter.uploadSource(input)),
      };
      const calls: string[] = [];
      const counted = async <T>(name: string, call: Promise<T>): Promise<T> => {
        calls.push(name);
        try {
          return await call;
        } catch (error) {
          if (isSyncError(error) && error.code === "E_SYNC_SOURCE_EXPIRED") refusals.push(name);
          throw error;
        }
      };
      const text = `${payload}${tail}`;
      const second = await sync(racing, text);
      assert.deepEqual(refusals, [path]);
      assert.equal(calls[0], path);
      assert.equal(second.base, undefined);
      assert.equal(second.source.base, undefined);
      assert.equal(second.job.state, "succeeded");
      assert.equal(second.uploaded.bytes, text.length);
      await adapter.close();
    });
  }
});
