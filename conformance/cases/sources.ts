/**
 * Cases: creating sources, appending chunks, listing chunks, scope isolation, limits and
 * malformed inputs. Also the helpers the seal cases share.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import type { AppendResult, Chunk, Job, Source } from "../../src/contracts/domain.ts";
import type {
  AppendChunkInput,
  CancelJobInput,
  CreateSourceInput,
  GcInput,
  GetJobInput,
  GetSourceInput,
  ListChunksInput,
  ListJobsInput,
  SealSourceInput,
  WaitForTerminalInput,
} from "../../src/contracts/inputs.ts";
import type { SyncError } from "../../src/errors.ts";
import type { Limits } from "../../src/policy/policy.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, SUITE_POLICY, utf8 } from "../context.ts";
import {
  BAD_APPEND_INPUTS,
  BAD_CREATE_INPUTS,
  binaryChunks,
  multiByteConversation,
  NON_OBJECT_INPUTS,
} from "../fixtures.ts";
import type { ConformanceCase } from "../types.ts";

// ---------------------------------------------------------------------------------------
// Shared helpers (also used by the seal cases)

/** The suite's limits, resolved. */
export const LIMITS: Limits = SUITE_POLICY.limits as Limits;

/** The suite's source TTL. */
export const SOURCE_TTL_MS: number = SUITE_POLICY.sourceTtlMs as number;

/** Stored chunk count, read through the oracle (case must declare hook `chunkCount`). */
export async function storedChunkCount(
  t: CaseContext,
  sourceId: string,
  scope: string = t.scope,
): Promise<number> {
  const oracle = t.harness.oracle;
  assert(oracle?.chunkCount, "the case needs the chunkCount oracle hook");
  return await oracle.chunkCount(scope, sourceId);
}

/** A stored chunk, read through the oracle (case must declare hook `readChunk`). */
export async function storedChunk(
  t: CaseContext,
  sourceId: string,
  index: number,
  scope: string = t.scope,
): Promise<Chunk | undefined> {
  const oracle = t.harness.oracle;
  assert(oracle?.readChunk, "the case needs the readChunk oracle hook");
  return await oracle.readChunk(scope, sourceId, index);
}

/** A stored source, read through the oracle (case must declare hook `readSource`). */
export async function storedSource(
  t: CaseContext,
  sourceId: string,
  scope: string = t.scope,
): Promise<Source | undefined> {
  const oracle = t.harness.oracle;
  assert(oracle?.readSource, "the case needs the readSource oracle hook");
  return await oracle.readSource(scope, sourceId);
}

/** An error with `id` blanked out, for comparing "wrong scope" with "missing". */
export function errorShape(error: SyncError, id: string): Record<string, unknown> {
  const hide = (text: string) => text.split(id).join("<id>");
  return {
    name: error.name,
    code: error.code,
    retryable: error.retryable,
    message: hide(error.message),
    details: hide(JSON.stringify(error.details ?? null)),
  };
}

/**
 * Fails if `promise` does not settle within `ms` of real time. A guard against a broken
 * adapter hanging the suite, never a sleep: it settles as soon as `promise` does.
 */
export async function within<T>(promise: Promise<T>, label: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** Jobs of one conversation (all pages) in `scope`. */
export async function jobsOf(
  t: CaseContext,
  conversationId: string,
  scope: string = t.scope,
): Promise<Job[]> {
  const jobs: Job[] = [];
  let cursor: string | undefined;
  do {
    const page = await t.adapter.listJobs({ scope, conversationId, cursor });
    jobs.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return jobs;
}

/** Appends one chunk, computing its digest. */
export async function append(
  t: CaseContext,
  sourceId: string,
  index: number,
  bytes: Uint8Array,
  options: { scope?: string; itemCount?: number } = {},
): Promise<AppendResult> {
  const input: AppendChunkInput = {
    scope: options.scope ?? t.scope,
    sourceId,
    index,
    bytes,
    sha256: await sha256Hex(bytes),
  };
  if (options.itemCount !== undefined) input.itemCount = options.itemCount;
  return await t.adapter.appendChunk(input);
}

/** Creates an empty source in `scope` (default the case's scope). */
export async function createSource(
  t: CaseContext,
  options: { scope?: string; conversationId?: string; sourceId?: string } = {},
): Promise<Source> {
  return await t.adapter.createSource({
    scope: options.scope ?? t.scope,
    conversationId: options.conversationId ?? t.newConversationId(),
    sourceId: options.sourceId,
  });
}

const MISSING_SOURCE = "missing-source-0";
const MISSING_JOB = "missing-job-0";

/** Asserts `other` (wrong scope, record `id`) answers exactly like `missing`. */
function assertSameAsMissing(other: SyncError, id: string, missing: SyncError, missingId: string) {
  assertEquals(
    errorShape(other, id),
    errorShape(missing, missingId),
    "error for a record of another scope vs a missing record",
  );
}

// ---------------------------------------------------------------------------------------
// create

const createCases: ConformanceCase[] = [
  {
    name: "create: a new source is collecting, nothing received, expiresAt = now + TTL",
    async run(t) {
      t.clock.advance(1234);
      const now = t.clock.now();
      const conversationId = t.newConversationId();
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId,
        sourceId: "source-1",
      });
      assertEquals(source.sourceId, "source-1", "sourceId");
      assertEquals(source.scope, t.scope, "scope");
      assertEquals(source.conversationId, conversationId, "conversationId");
      assertEquals(source.state, "collecting", "state");
      assertEquals(source.received, { chunkCount: 0, byteCount: 0 }, "received");
      assertEquals(source.createdAt, now, "createdAt");
      assertEquals(source.updatedAt, now, "updatedAt");
      assertEquals(source.expiresAt, now + SOURCE_TTL_MS, "expiresAt");
      for (const field of ["manifest", "jobId", "error", "sealedAt", "metadata"] as const) {
        assertEquals(source[field], undefined, `${field} of a new source`);
      }
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: "source-1" });
      assertEquals(read, source, "getSource after create");
      const chunks = await t.adapter.listChunks({ scope: t.scope, sourceId: "source-1" });
      assertEquals(chunks.items, [], "chunks of a new source");
      assertEquals(chunks.nextCursor, undefined, "nextCursor of an empty listing");
    },
  },
  {
    name: "create: without a sourceId, each source gets its own generated id",
    async run(t) {
      const conversationId = t.newConversationId();
      const a = await t.adapter.createSource({ scope: t.scope, conversationId });
      const b = await t.adapter.createSource({ scope: t.scope, conversationId });
      assert(typeof a.sourceId === "string" && a.sourceId.length > 0, "generated sourceId");
      assert(a.sourceId !== b.sourceId, "two creates without a sourceId share an id");
      assertEquals(a.state, "collecting", "state of a");
      assertEquals(b.state, "collecting", "state of b");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: a.sourceId })).sourceId,
        a.sourceId,
        "getSource of the generated id",
      );
    },
  },
  {
    name: "create: the same sourceId and conversation returns the existing source unchanged",
    hooks: ["chunkCount"],
    async run(t) {
      const conversationId = t.newConversationId();
      const first = await createSource(t, { conversationId, sourceId: "resumable" });
      await append(t, "resumable", 0, utf8("first chunk"));
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: "resumable" });
      t.clock.advance(5_000);
      const again = await t.adapter.createSource({
        scope: t.scope,
        conversationId,
        sourceId: "resumable",
      });
      assertEquals(again, before, "second create returns the stored source");
      assertEquals(again.createdAt, first.createdAt, "createdAt kept");
      assertEquals(again.expiresAt, first.expiresAt, "expiresAt kept");
      assertEquals(again.received, { chunkCount: 1, byteCount: 11 }, "received kept");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "resumable" }),
        before,
        "stored source after the second create",
      );
      assertEquals(await storedChunkCount(t, "resumable"), 1, "stored chunks kept");
    },
  },
  {
    name: "create: the same sourceId with another conversation is refused, source untouched",
    async run(t) {
      const conversationId = t.newConversationId();
      await createSource(t, { conversationId, sourceId: "taken" });
      await append(t, "taken", 0, utf8("kept"));
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: "taken" });
      t.clock.advance(10);
      await expectSyncError(
        () =>
          t.adapter.createSource({
            scope: t.scope,
            conversationId: t.newConversationId(),
            sourceId: "taken",
          }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "taken" }),
        before,
        "source after the refused create",
      );
    },
  },
  {
    name: "create: metadata is stored and returned as given",
    hooks: ["readSource"],
    async run(t) {
      const metadata = {
        title: "Refactor 🚀 — 漢字 — שלום",
        turns: 3,
        ratio: 0.5,
        negative: -7,
        archived: false,
        tags: ["a", "b", { nested: [1, 2, null] }],
        nothing: null,
        empty: {},
      };
      const created = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "with-metadata",
        metadata,
      });
      assertEquals(created.metadata, metadata, "metadata returned by create");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: "with-metadata" });
      assertEquals(read.metadata, metadata, "metadata returned by getSource");
      assertEquals(
        (await storedSource(t, "with-metadata"))?.metadata,
        metadata,
        "metadata stored in the backend",
      );
      const scalar = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "scalar-metadata",
        metadata: "just a string",
      });
      assertEquals(scalar.metadata, "just a string", "scalar metadata");
    },
  },
];

// ---------------------------------------------------------------------------------------
// append

const appendCases: ConformanceCase[] = [
  {
    name: "append: stores the chunk and reports the engine-computed digest",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const source = await createSource(t);
      t.clock.advance(50);
      const bytes = utf8("hello");
      const result = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes,
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        itemCount: 1,
      });
      assertEquals(result.appended, true, "appended");
      assertEquals(
        result.chunk,
        {
          index: 0,
          byteLength: 5,
          sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
          itemCount: 1,
        },
        "chunk info",
      );
      assertEquals(result.source.received, { chunkCount: 1, byteCount: 5 }, "received");
      assertEquals(result.source.state, "collecting", "state");
      assertEquals(result.source.updatedAt, t.clock.now(), "updatedAt");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        result.source,
        "getSource after append",
      );
      const stored = await storedChunk(t, source.sourceId, 0);
      assert(stored, "chunk stored");
      assertEquals(stored.bytes, bytes, "stored bytes");
      assertEquals(stored.sha256, result.chunk.sha256, "stored digest");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "append: same index and bytes again is idempotent and changes nothing",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      t.clock.advance(1_000);
      const again = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: utf8("hello"),
        sha256: digests[0],
      });
      assertEquals(again.appended, false, "appended");
      assertEquals(again.chunk, { index: 0, byteLength: 5, sha256: digests[0] }, "chunk info");
      assertEquals(again.source.received, { chunkCount: 1, byteCount: 5 }, "received");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the idempotent append",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "append: other bytes at a stored index conflict; stored chunk untouched",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("world")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("hello, longer")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      const stored = await storedChunk(t, source.sourceId, 0);
      assert(stored, "chunk still stored");
      assertEquals(stored.bytes, utf8("hello"), "stored bytes");
      assertEquals(stored.sha256, digests[0], "stored digest");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the conflicts",
      );
      const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(listed.items.map((c) => c.sha256), [digests[0]], "listed digests");
    },
  },
  {
    name: "append: a checksum mismatch is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      await expectSyncError(
        () =>
          t.adapter.appendChunk({
            scope: t.scope,
            sourceId: source.sourceId,
            index: 0,
            bytes: utf8("hello"),
            sha256: "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7", // "world"
          }),
        "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after, before, "source after the refused append");
      assertEquals(after.received, { chunkCount: 0, byteCount: 0 }, "received");
      // Nothing was stored at index 0, so the right bytes are a fresh append, not a conflict.
      const retry = await append(t, source.sourceId, 0, utf8("world"));
      assertEquals(retry.appended, true, "the index is still free");
    },
  },
  {
    name: "append: out-of-order appends (3, 1, 0, 2) are accepted and the source seals",
    async run(t) {
      const chunks = ["zero", "one", "two", "three"].map(utf8);
      const source = await createSource(t);
      for (const index of [3, 1, 0, 2]) {
        const result = await append(t, source.sourceId, index, chunks[index]);
        assertEquals(result.appended, true, `appended ${index}`);
      }
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 4, byteCount: 15 }, "received");
      const { manifest } = await manifestFor(chunks);
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "state");
      assertEquals(sealed.job.totalChunks, 4, "totalChunks");
      const job = await t.runToTerminal(sealed.job.jobId);
      assertEquals(job.state, "succeeded", "job state");
      assertEquals(t.handler.applied.map((c) => c.index), [0, 1, 2, 3], "apply order");
    },
  },
  {
    name: "append: a Uint8Array view is stored as exactly its own bytes, copied",
    hooks: ["readChunk"],
    async run(t) {
      const source = await createSource(t);
      const backing = utf8("XXXXhello-viewYYYY");
      const view = backing.subarray(4, 14);
      const digest = await sha256Hex(utf8("hello-view"));
      const result = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: view,
        sha256: digest,
      });
      assertEquals(result.chunk.byteLength, 10, "byteLength of the view");
      backing.fill(0x21); // the caller reuses its buffer once the append resolved
      const stored = await storedChunk(t, source.sourceId, 0);
      assertEquals(stored?.bytes, utf8("hello-view"), "stored bytes");
      assertEquals(stored?.sha256, digest, "stored digest");
    },
  },
  {
    name: "append: multi-byte text and binary chunks are stored byte-exact",
    hooks: ["readChunk"],
    async run(t) {
      const text = multiByteConversation();
      assert(text.length >= 3, "multi-byte fixture has several chunks");
      assert(
        text.slice(1).every((chunk) => chunk[0] >= 0x80 && chunk[0] <= 0xbf),
        "every multi-byte fixture boundary splits a character",
      );
      const binary = binaryChunks();
      for (const chunks of [text, binary]) {
        const { source, digests } = await t.upload(chunks);
        const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
        assertEquals(listed.items.map((c) => c.sha256), digests, "listed digests");
        for (let index = 0; index < chunks.length; index++) {
          const stored = await storedChunk(t, source.sourceId, index);
          assertEquals(stored?.bytes, chunks[index], `stored bytes of chunk ${index}`);
        }
      }
    },
  },
  {
    name: "append: listChunks returns digests and sizes in index order",
    async run(t) {
      const chunks = ["c0", "chunk-1", "c2", "chunk three", "4"].map(utf8);
      const source = await createSource(t);
      const digests = await Promise.all(chunks.map((c) => sha256Hex(c)));
      for (const index of [4, 2, 0, 3, 1]) {
        await append(t, source.sourceId, index, chunks[index], { itemCount: index + 1 });
      }
      const page = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        page.items,
        chunks.map((c, index) => ({
          index,
          byteLength: c.length,
          sha256: digests[index],
          itemCount: index + 1,
        })),
        "listed chunks",
      );
      assertEquals(page.nextCursor, undefined, "nextCursor of the only page");
      for (const item of page.items) {
        assert(!("bytes" in item), "listChunks must not return bytes");
      }
    },
  },
  {
    name: "append: listChunks paginates with limit and cursor",
    async run(t) {
      const chunks = Array.from({ length: 7 }, (_, i) => utf8(`chunk-${i}`));
      const source = await createSource(t);
      for (const index of [6, 0, 5, 1, 4, 2, 3]) {
        await append(t, source.sourceId, index, chunks[index]);
      }
      const seen: number[][] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await t.adapter.listChunks({
          scope: t.scope,
          sourceId: source.sourceId,
          limit: 3,
          cursor,
        });
        assert(page.items.length <= 3, "page larger than its limit");
        seen.push(page.items.map((c) => c.index));
        cursor = page.nextCursor;
        assert(++pages <= 10, "listChunks never ends");
      } while (cursor !== undefined);
      assertEquals(seen, [[0, 1, 2], [3, 4, 5], [6]], "pages");
      const exact = await t.adapter.listChunks({
        scope: t.scope,
        sourceId: source.sourceId,
        limit: 7,
      });
      assertEquals(exact.items.length, 7, "a page holding everything");
      assertEquals(exact.nextCursor, undefined, "no cursor after the last page");
      const one = await t.adapter.listChunks({
        scope: t.scope,
        sourceId: source.sourceId,
        limit: 1,
      });
      assertEquals(one.items.map((c) => c.index), [0], "limit 1");
      assert(one.nextCursor !== undefined, "limit 1 of 7 has a next page");
    },
  },
  {
    name: "append: listChunks refuses a malformed cursor or limit",
    async run(t) {
      const { source } = await t.upload([utf8("a"), utf8("b")]);
      const base = { scope: t.scope, sourceId: source.sourceId };
      for (const cursor of ["not-a-cursor", "", "-1", "\u0000", "i1.5", "{}"]) {
        await expectSyncError(
          () => t.adapter.listChunks({ ...base, cursor }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      for (const limit of [0, -1, 1.5, NaN]) {
        await expectSyncError(
          () => t.adapter.listChunks({ ...base, limit }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      await expectSyncError(
        () => t.adapter.listChunks({ ...base, cursor: 1 } as unknown as ListChunksInput),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectSyncError(
        () => t.adapter.listChunks({ ...base, limit: "1" } as unknown as ListChunksInput),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectSyncError(
        () => t.adapter.listChunks({ scope: t.scope, sourceId: MISSING_SOURCE }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
    },
  },
  {
    name: "append: after seal is refused with E_SYNC_SOURCE_NOT_COLLECTING",
    hooks: ["chunkCount"],
    async run(t) {
      const sealed = await t.uploadAndSeal([utf8("a"), utf8("b")]);
      const sourceId = sealed.source.sourceId;
      const before = await t.adapter.getSource({ scope: t.scope, sourceId });
      await expectSyncError(
        () => append(t, sourceId, 2, utf8("late")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      await expectSyncError(
        () => append(t, sourceId, 0, utf8("other")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      assertEquals(await storedChunkCount(t, sourceId), 2, "stored chunks");
      assertEquals(await t.adapter.getSource({ scope: t.scope, sourceId }), before, "source");
    },
  },
  {
    name: "append: after a failed seal is refused with E_SYNC_SOURCE_NOT_COLLECTING",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, manifest } = await t.upload([utf8("a"), utf8("b")]);
      await expectSyncError(
        () =>
          t.adapter.sealSource({
            scope: t.scope,
            sourceId: source.sourceId,
            manifest: { ...manifest, chunkCount: 3 },
          }),
        "E_SYNC_CHUNK_INDEX_GAP",
      );
      await expectSyncError(
        () => append(t, source.sourceId, 2, utf8("c")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 2, "stored chunks");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "failed", "state");
      assertEquals(after.received, { chunkCount: 2, byteCount: 2 }, "received");
    },
  },
  {
    name: "append: after the TTL is refused with E_SYNC_SOURCE_EXPIRED, source durably expired",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      await append(t, source.sourceId, 0, utf8("early"));
      t.clock.set(source.expiresAt - 1);
      const justInTime = await append(t, source.sourceId, 1, utf8("just in time"));
      assertEquals(justInTime.appended, true, "append one ms before expiry");
      t.clock.set(source.createdAt + SOURCE_TTL_MS);
      await expectSyncError(
        () => append(t, source.sourceId, 2, utf8("too late")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      const expired = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(expired.state, "expired", "state after the refused append");
      assertEquals(expired.error?.code, "E_SYNC_SOURCE_EXPIRED", "recorded error");
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "chunks of an expired source");
      t.clock.advance(1);
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("early")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId })).state,
        "expired",
        "state stays expired",
      );
    },
  },
  {
    name: "append: racing appends of different bytes at one index: one stores, the rest conflict",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const candidates = Array.from({ length: 6 }, (_, i) => utf8(`racer-${i}`));
      const results = await Promise.allSettled(
        candidates.map((bytes) => append(t, source.sourceId, 0, bytes)),
      );
      const won = results.flatMap((r, i) => r.status === "fulfilled" ? [i] : []);
      assertEquals(won.length, 1, "appends that succeeded");
      const winner = results[won[0]] as PromiseFulfilledResult<AppendResult>;
      assertEquals(winner.value.appended, true, "winner appended");
      for (const [i, result] of results.entries()) {
        if (i === won[0]) continue;
        assert(result.status === "rejected", "loser rejected");
        const reason = result.reason as SyncError;
        assertEquals(reason?.code, "E_SYNC_CHUNK_CONFLICT", `loser ${i} code`);
      }
      const stored = await storedChunk(t, source.sourceId, 0);
      assertEquals(stored?.bytes, candidates[won[0]], "stored bytes are the winner's");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        read.received,
        { chunkCount: 1, byteCount: candidates[won[0]].length },
        "received",
      );
    },
  },
  {
    name: "append: racing appends of the same bytes: exactly one reports appended",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const results = await Promise.all(
        Array.from({ length: 6 }, () => append(t, source.sourceId, 0, utf8("same"))),
      );
      assertEquals(
        results.map((r) => r.appended).sort(),
        [false, false, false, false, false, true],
        "appended flags",
      );
      for (const result of results) {
        assertEquals(result.chunk.byteLength, 4, "chunk info of every racer");
      }
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 1, byteCount: 4 }, "received");
    },
  },
  {
    name: "append: racing appends at different indexes are all counted",
    hooks: ["chunkCount"],
    async run(t) {
      const chunks = Array.from({ length: 24 }, (_, i) => utf8(`parallel-${i}`));
      const source = await createSource(t);
      const results = await Promise.all(
        chunks.map((bytes, index) => append(t, source.sourceId, index, bytes)),
      );
      assert(results.every((r) => r.appended), "every racer appended");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        read.received,
        { chunkCount: 24, byteCount: chunks.reduce((s, c) => s + c.length, 0) },
        "received",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 24, "stored chunks");
      const { manifest } = await manifestFor(chunks);
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "seals after parallel upload");
    },
  },
];

// ---------------------------------------------------------------------------------------
// scope

const scopeCases: ConformanceCase[] = [
  {
    name: "scope: createSource with a sourceId taken in another scope makes an independent source",
    async run(t) {
      const theirs = await createSource(t, { scope: t.otherScope, sourceId: "shared-id" });
      await append(t, "shared-id", 0, utf8("theirs"), { scope: t.otherScope });
      const theirsBefore = await t.adapter.getSource({
        scope: t.otherScope,
        sourceId: "shared-id",
      });
      // Another conversation: must not be refused (that would leak the other record).
      const mine = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "shared-id",
      });
      assert(mine.conversationId !== theirs.conversationId, "conversations differ");
      assertEquals(mine.scope, t.scope, "scope of the new source");
      assertEquals(mine.state, "collecting", "state of the new source");
      assertEquals(mine.received, { chunkCount: 0, byteCount: 0 }, "new source is empty");
      assertEquals(
        await t.adapter.getSource({ scope: t.otherScope, sourceId: "shared-id" }),
        theirsBefore,
        "the other scope's source",
      );
    },
  },
  {
    name: "scope: the same sourceId lives independently in two scopes",
    hooks: ["readChunk"],
    async run(t) {
      const conversationId = t.newConversationId();
      const mine = await t.upload([utf8("mine-0"), utf8("mine-1")], {
        conversationId,
        sourceId: "twin",
      });
      const theirs = await t.upload([utf8("theirs-0")], {
        scope: t.otherScope,
        conversationId,
        sourceId: "twin",
      });
      const listMine = await t.adapter.listChunks({ scope: t.scope, sourceId: "twin" });
      const listTheirs = await t.adapter.listChunks({ scope: t.otherScope, sourceId: "twin" });
      assertEquals(listMine.items.map((c) => c.sha256), mine.digests, "my chunks");
      assertEquals(listTheirs.items.map((c) => c.sha256), theirs.digests, "their chunks");
      assertEquals((await storedChunk(t, "twin", 0))?.bytes, utf8("mine-0"), "my stored chunk");
      assertEquals(
        (await storedChunk(t, "twin", 0, t.otherScope))?.bytes,
        utf8("theirs-0"),
        "their stored chunk",
      );
      const sealedMine = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: "twin",
        manifest: mine.manifest,
      });
      const sealedTheirs = await t.adapter.sealSource({
        scope: t.otherScope,
        sourceId: "twin",
        manifest: theirs.manifest,
      });
      assert(sealedMine.job.jobId !== sealedTheirs.job.jobId, "two scopes share a job");
      assertEquals(sealedMine.job.totalChunks, 2, "my job");
      assertEquals(sealedTheirs.job.totalChunks, 1, "their job");
      assertEquals(sealedTheirs.job.scope, t.otherScope, "their job's scope");
      assertEquals((await t.job(sealedMine.job.jobId)).state, "queued", "my job not superseded");
      assertEquals(
        (await t.job(sealedTheirs.job.jobId, t.otherScope)).state,
        "queued",
        "their job not superseded",
      );
    },
  },
  {
    name: "scope: appendChunk in another scope answers like a missing source, source untouched",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      const input = { index: 1, bytes: utf8("hello"), sha256: digests[0] };
      const missing = await expectSyncError(
        () => t.adapter.appendChunk({ scope: t.scope, sourceId: MISSING_SOURCE, ...input }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.appendChunk({ scope: t.otherScope, sourceId: source.sourceId, ...input }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertSameAsMissing(other, source.sourceId, missing, MISSING_SOURCE);
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the foreign append",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      assertEquals(await storedChunkCount(t, source.sourceId, t.otherScope), 0, "foreign chunks");
    },
  },
  {
    name: "scope: listChunks in another scope answers like a missing source",
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const missing = await expectSyncError(
        () => t.adapter.listChunks({ scope: t.scope, sourceId: MISSING_SOURCE }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.listChunks({ scope: t.otherScope, sourceId: source.sourceId }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertSameAsMissing(other, source.sourceId, missing, MISSING_SOURCE);
    },
  },
  {
    name: "scope: sealSource in another scope answers like a missing source, source untouched",
    async run(t) {
      const { source, manifest } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      const missing = await expectSyncError(
        () => t.adapter.sealSource({ scope: t.scope, sourceId: MISSING_SOURCE, manifest }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.sealSource({ scope: t.otherScope, sourceId: source.sourceId, manifest }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertSameAsMissing(other, source.sourceId, missing, MISSING_SOURCE);
      // A wrong manifest from another scope must not fail the source either.
      await expectSyncError(
        () =>
          t.adapter.sealSource({
            scope: t.otherScope,
            sourceId: source.sourceId,
            manifest: { ...manifest, chunkCount: 2 },
          }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the foreign seals",
      );
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items, [], "jobs");
      assertEquals((await t.adapter.listJobs({ scope: t.otherScope })).items, [], "foreign jobs");
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "the owner can still seal");
    },
  },
  {
    name: "scope: getSource in another scope answers like a missing source",
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const missing = await expectSyncError(
        () => t.adapter.getSource({ scope: t.scope, sourceId: MISSING_SOURCE }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.getSource({ scope: t.otherScope, sourceId: source.sourceId }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertSameAsMissing(other, source.sourceId, missing, MISSING_SOURCE);
    },
  },
  {
    name: "scope: getJob in another scope answers like a missing job",
    async run(t) {
      const { job } = await t.uploadAndSeal([utf8("hello")]);
      const missing = await expectSyncError(
        () => t.adapter.getJob({ scope: t.scope, jobId: MISSING_JOB }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.getJob({ scope: t.otherScope, jobId: job.jobId }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      assertSameAsMissing(other, job.jobId, missing, MISSING_JOB);
    },
  },
  {
    name: "scope: listJobs in another scope sees no jobs",
    async run(t) {
      const conversationId = t.newConversationId();
      const { job } = await t.uploadAndSeal([utf8("hello")], { conversationId });
      const mine = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(mine.items.map((j) => j.jobId), [job.jobId], "jobs of the owner");
      for (
        const query of [
          {},
          { conversationId },
          { state: "queued" as const },
          { conversationId, state: "queued" as const, limit: 1 },
        ]
      ) {
        const other = await t.adapter.listJobs({ scope: t.otherScope, ...query });
        assertEquals(other.items, [], `jobs seen by another scope (${JSON.stringify(query)})`);
        assertEquals(other.nextCursor, undefined, "nextCursor for another scope");
      }
    },
  },
  {
    name: "scope: cancelJob in another scope answers like a missing job, job untouched",
    async run(t) {
      const { job } = await t.uploadAndSeal([utf8("hello")]);
      const before = await t.job(job.jobId);
      const missing = await expectSyncError(
        () => t.adapter.cancelJob({ scope: t.scope, jobId: MISSING_JOB }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      const other = await expectSyncError(
        () => t.adapter.cancelJob({ scope: t.otherScope, jobId: job.jobId, reason: "not yours" }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      assertSameAsMissing(other, job.jobId, missing, MISSING_JOB);
      assertEquals(await t.job(job.jobId), before, "job after the foreign cancel");
      assertEquals((await t.runToTerminal(job.jobId)).state, "succeeded", "job still runs");
    },
  },
  {
    name: "scope: waitForTerminal in another scope answers like a missing job, job untouched",
    async run(t) {
      const done = await t.uploadAndSeal([utf8("done")]);
      await t.runToTerminal(done.job.jobId);
      const pending = await t.uploadAndSeal([utf8("pending")]);
      const pendingBefore = await t.job(pending.job.jobId);
      const missing = await within(
        expectSyncError(
          () => t.adapter.waitForTerminal({ scope: t.scope, jobId: MISSING_JOB }),
          "E_SYNC_JOB_NOT_FOUND",
        ),
        "waitForTerminal of a missing job",
      );
      const otherDone = await within(
        expectSyncError(
          () => t.adapter.waitForTerminal({ scope: t.otherScope, jobId: done.job.jobId }),
          "E_SYNC_JOB_NOT_FOUND",
        ),
        "waitForTerminal of a terminal job of another scope",
      );
      assertSameAsMissing(otherDone, done.job.jobId, missing, MISSING_JOB);
      const otherPending = await within(
        expectSyncError(
          () =>
            t.adapter.waitForTerminal({
              scope: t.otherScope,
              jobId: pending.job.jobId,
              timeoutMs: 60_000,
            }),
          "E_SYNC_JOB_NOT_FOUND",
        ),
        "waitForTerminal of a queued job of another scope",
      );
      assertSameAsMissing(otherPending, pending.job.jobId, missing, MISSING_JOB);
      assertEquals(await t.job(pending.job.jobId), pendingBefore, "job after the foreign wait");
    },
  },
];

// ---------------------------------------------------------------------------------------
// limits

const LONG_ID = "x".repeat(65);
const MAX_ID = "y".repeat(64);

const limitCases: ConformanceCase[] = [
  {
    name: "limits: a chunk over maxChunkBytes is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const tooBig = new Uint8Array(LIMITS.maxChunkBytes + 1).fill(7);
      await expectSyncError(
        () => append(t, source.sourceId, 0, tooBig),
        "E_SYNC_LIMIT_EXCEEDED",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 0, byteCount: 0 }, "received");
      const atLimit = await append(t, source.sourceId, 0, tooBig.subarray(1));
      assertEquals(atLimit.appended, true, "a chunk of exactly maxChunkBytes is accepted");
      assertEquals(atLimit.chunk.byteLength, LIMITS.maxChunkBytes, "byteLength at the limit");
    },
  },
  {
    name: "limits: an index at maxChunksPerSource is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      for (const index of [LIMITS.maxChunksPerSource, LIMITS.maxChunksPerSource + 1, 2 ** 40]) {
        await expectSyncError(
          () => append(t, source.sourceId, index, utf8("far")),
          "E_SYNC_LIMIT_EXCEEDED",
        );
      }
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const last = await append(t, source.sourceId, LIMITS.maxChunksPerSource - 1, utf8("last"));
      assertEquals(last.appended, true, "the last allowed index is accepted");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "limits: appends beyond maxSourceBytes (cumulative) are refused, nothing more stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const full = new Uint8Array(LIMITS.maxChunkBytes).fill(0x5a);
      const sha256 = await sha256Hex(full);
      const count = Math.floor(LIMITS.maxSourceBytes / LIMITS.maxChunkBytes);
      assertEquals(count * LIMITS.maxChunkBytes, LIMITS.maxSourceBytes, "suite limits divide");
      for (let index = 0; index < count; index += 8) {
        await Promise.all(
          Array.from({ length: Math.min(8, count - index) }, (_, k) =>
            t.adapter.appendChunk({
              scope: t.scope,
              sourceId: source.sourceId,
              index: index + k,
              bytes: full,
              sha256,
            })),
        );
      }
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        before.received,
        { chunkCount: count, byteCount: LIMITS.maxSourceBytes },
        "a source of exactly maxSourceBytes",
      );
      await expectSyncError(
        () => append(t, source.sourceId, count, utf8("1")),
        "E_SYNC_LIMIT_EXCEEDED",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), count, "stored chunks");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the refused append",
      );
      // Idempotent re-append of a stored chunk is not new bytes: still accepted.
      const again = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: full,
        sha256,
      });
      assertEquals(again.appended, false, "idempotent re-append at the byte limit");
    },
  },
  {
    name: "limits: metadata over maxMetadataBytes (UTF-8) is refused and no source is created",
    hooks: ["readSource"],
    async run(t) {
      // {"b":"…"} is 8 bytes plus the string.
      const fits = { b: "x".repeat(LIMITS.maxMetadataBytes - 8) };
      const over = { b: "x".repeat(LIMITS.maxMetadataBytes - 7) };
      // Fewer characters than the limit, more UTF-8 bytes: "é" is 2 bytes.
      const overInBytes = { b: "é".repeat(LIMITS.maxMetadataBytes / 2 - 2) };
      for (const [sourceId, metadata] of [["over", over], ["over-bytes", overInBytes]] as const) {
        await expectSyncError(
          () =>
            t.adapter.createSource({
              scope: t.scope,
              conversationId: t.newConversationId(),
              sourceId,
              metadata,
            }),
          "E_SYNC_LIMIT_EXCEEDED",
        );
        await expectSyncError(
          () => t.adapter.getSource({ scope: t.scope, sourceId }),
          "E_SYNC_SOURCE_NOT_FOUND",
        );
        assertEquals(await storedSource(t, sourceId), undefined, `stored source ${sourceId}`);
      }
      const created = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "fits",
        metadata: fits,
      });
      assertEquals(created.metadata, fits, "metadata of exactly the limit is accepted");
    },
  },
  {
    name: "limits: createSource refuses scope, sourceId, conversationId over maxIdLength",
    hooks: ["readSource"],
    async run(t) {
      const variants: Array<[string, CreateSourceInput, string, string]> = [
        ["scope", { scope: LONG_ID, conversationId: "c", sourceId: "s" }, LONG_ID, "s"],
        ["sourceId", { scope: t.scope, conversationId: "c", sourceId: LONG_ID }, t.scope, LONG_ID],
        [
          "conversationId",
          { scope: t.scope, conversationId: LONG_ID, sourceId: "s" },
          t.scope,
          "s",
        ],
      ];
      for (const [field, input, scope, sourceId] of variants) {
        await expectSyncError(() => t.adapter.createSource(input), "E_SYNC_LIMIT_EXCEEDED");
        assertEquals(
          await storedSource(t, sourceId, scope),
          undefined,
          `source with long ${field}`,
        );
      }
      const ok = await t.adapter.createSource({
        scope: MAX_ID,
        conversationId: MAX_ID,
        sourceId: MAX_ID,
      });
      assertEquals(ok.sourceId, MAX_ID, "ids of exactly maxIdLength are accepted");
      await append(t, MAX_ID, 0, utf8("a"), { scope: MAX_ID });
      const { manifest } = await manifestFor([utf8("a")]);
      const sealed = await t.adapter.sealSource({ scope: MAX_ID, sourceId: MAX_ID, manifest });
      assertEquals((await t.job(sealed.job.jobId, MAX_ID)).state, "queued", "job with long ids");
    },
  },
  {
    name: "limits: every operation refuses ids over maxIdLength before looking anything up",
    async run(t) {
      const { source, digests, manifest } = await t.upload([utf8("hello")]);
      const sealedOther = await t.uploadAndSeal([utf8("job")]);
      const jobBefore = await t.job(sealedOther.job.jobId);
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          "appendChunk sourceId",
          () =>
            t.adapter.appendChunk({
              scope: t.scope,
              sourceId: LONG_ID,
              index: 0,
              bytes: utf8("hello"),
              sha256: digests[0],
            }),
        ],
        [
          "appendChunk scope",
          () =>
            t.adapter.appendChunk({
              scope: LONG_ID,
              sourceId: source.sourceId,
              index: 1,
              bytes: utf8("hello"),
              sha256: digests[0],
            }),
        ],
        ["listChunks sourceId", () => t.adapter.listChunks({ scope: t.scope, sourceId: LONG_ID })],
        [
          "listChunks scope",
          () => t.adapter.listChunks({ scope: LONG_ID, sourceId: source.sourceId }),
        ],
        [
          "sealSource sourceId",
          () => t.adapter.sealSource({ scope: t.scope, sourceId: LONG_ID, manifest }),
        ],
        [
          "sealSource scope",
          () => t.adapter.sealSource({ scope: LONG_ID, sourceId: source.sourceId, manifest }),
        ],
        ["getSource sourceId", () => t.adapter.getSource({ scope: t.scope, sourceId: LONG_ID })],
        [
          "getSource scope",
          () => t.adapter.getSource({ scope: LONG_ID, sourceId: source.sourceId }),
        ],
        ["getJob jobId", () => t.adapter.getJob({ scope: t.scope, jobId: LONG_ID })],
        ["getJob scope", () => t.adapter.getJob({ scope: LONG_ID, jobId: sealedOther.job.jobId })],
        ["listJobs scope", () => t.adapter.listJobs({ scope: LONG_ID })],
        [
          "listJobs conversationId",
          () => t.adapter.listJobs({ scope: t.scope, conversationId: LONG_ID }),
        ],
        ["cancelJob jobId", () => t.adapter.cancelJob({ scope: t.scope, jobId: LONG_ID })],
        [
          "cancelJob scope",
          () => t.adapter.cancelJob({ scope: LONG_ID, jobId: sealedOther.job.jobId }),
        ],
        [
          "waitForTerminal jobId",
          () => within(t.adapter.waitForTerminal({ scope: t.scope, jobId: LONG_ID }), "wait"),
        ],
        [
          "waitForTerminal scope",
          () =>
            within(
              t.adapter.waitForTerminal({ scope: LONG_ID, jobId: sealedOther.job.jobId }),
              "wait",
            ),
        ],
      ];
      for (const [label, call] of calls) {
        try {
          await expectSyncError(call, "E_SYNC_LIMIT_EXCEEDED");
        } catch (error) {
          throw new Error(`${label}: ${(error as Error).message}`, { cause: error });
        }
      }
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "collecting", "source untouched");
      assertEquals(after.received, { chunkCount: 1, byteCount: 5 }, "received untouched");
      assertEquals(await t.job(sealedOther.job.jobId), jobBefore, "job untouched");
    },
  },
];

// ---------------------------------------------------------------------------------------
// input

const inputCases: ConformanceCase[] = [
  {
    name: "input: createSource refuses every malformed input and creates nothing",
    async run(t) {
      const valid: CreateSourceInput = {
        scope: t.scope,
        conversationId: "conversation-bad-input",
        sourceId: "bad-input-source",
        metadata: { ok: true },
      };
      for (const entry of BAD_CREATE_INPUTS) {
        try {
          await expectSyncError(
            () => t.adapter.createSource(entry.input(valid) as CreateSourceInput),
            "E_SYNC_INVALID_ARGUMENT",
          );
          await expectSyncError(
            () => t.adapter.getSource({ scope: t.scope, sourceId: "bad-input-source" }),
            "E_SYNC_SOURCE_NOT_FOUND",
          );
        } catch (error) {
          throw new Error(`${entry.name}: ${(error as Error).message}`, { cause: error });
        }
      }
      const created = await t.adapter.createSource(valid);
      assertEquals(created.state, "collecting", "the valid input still works");
    },
  },
  {
    name: "input: appendChunk refuses every malformed input and stores nothing",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const bytes = utf8("valid chunk");
      const valid: AppendChunkInput = {
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes,
        sha256: await sha256Hex(bytes),
      };
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      for (const entry of BAD_APPEND_INPUTS) {
        try {
          await expectSyncError(
            () => t.adapter.appendChunk(entry.input(valid) as AppendChunkInput),
            "E_SYNC_INVALID_ARGUMENT",
          );
          assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
        } catch (error) {
          throw new Error(`${entry.name}: ${(error as Error).message}`, { cause: error });
        }
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the malformed appends",
      );
      const ok = await t.adapter.appendChunk(valid);
      assertEquals(ok.appended, true, "the valid input still appends");
    },
  },
  {
    name: "input: every operation refuses a non-object input",
    hooks: ["chunkCount"],
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const sealed = await t.uploadAndSeal([utf8("job")]);
      const sourceBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: source.sourceId,
      });
      const jobBefore = await t.job(sealed.job.jobId);
      const a = t.adapter;
      const operations: Array<[string, (input: unknown) => Promise<unknown>]> = [
        ["createSource", (input) => a.createSource(input as CreateSourceInput)],
        ["appendChunk", (input) => a.appendChunk(input as AppendChunkInput)],
        ["listChunks", (input) => a.listChunks(input as ListChunksInput)],
        ["sealSource", (input) => a.sealSource(input as SealSourceInput)],
        ["getSource", (input) => a.getSource(input as GetSourceInput)],
        ["getJob", (input) => a.getJob(input as GetJobInput)],
        ["listJobs", (input) => a.listJobs(input as ListJobsInput)],
        ["cancelJob", (input) => a.cancelJob(input as CancelJobInput)],
        [
          "waitForTerminal",
          (input) => within(a.waitForTerminal(input as WaitForTerminalInput), "wait"),
        ],
        ["gc", (input) => a.gc(input as GcInput)],
      ];
      for (const [operation, call] of operations) {
        for (const entry of NON_OBJECT_INPUTS) {
          // gc's input is optional: undefined means "defaults".
          if (operation === "gc" && entry.input === undefined) continue;
          try {
            await expectSyncError(() => call(entry.input), "E_SYNC_INVALID_ARGUMENT");
          } catch (error) {
            throw new Error(`${operation}(${entry.name}): ${(error as Error).message}`, {
              cause: error,
            });
          }
        }
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        sourceBefore,
        "source untouched",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      assertEquals(await t.job(sealed.job.jobId), jobBefore, "job untouched");
    },
  },
  {
    name: "input: read and job operations refuse malformed fields",
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const done = await t.uploadAndSeal([utf8("done")]);
      await t.runToTerminal(done.job.jobId);
      const pending = await t.uploadAndSeal([utf8("pending")]);
      const pendingBefore = await t.job(pending.job.jobId);
      const s = t.scope;
      const q = pending.job.jobId;
      const d = done.job.jobId;
      const bad = <T>(value: unknown): T => value as T;
      const calls: Array<[string, () => Promise<unknown>]> = [
        ["getSource sourceId missing", () => t.adapter.getSource(bad({ scope: s }))],
        [
          "getSource extra field",
          () => t.adapter.getSource(bad({ scope: s, sourceId: source.sourceId, x: 1 })),
        ],
        ["getSource scope number", () => t.adapter.getSource(bad({ scope: 1, sourceId: "a" }))],
        ["getJob jobId empty", () => t.adapter.getJob({ scope: s, jobId: "" })],
        ["getJob jobId missing", () => t.adapter.getJob(bad({ scope: s }))],
        ["getJob extra field", () => t.adapter.getJob(bad({ scope: s, jobId: q, x: 1 }))],
        ["listJobs state unknown", () => t.adapter.listJobs(bad({ scope: s, state: "bogus" }))],
        ["listJobs limit 0", () => t.adapter.listJobs({ scope: s, limit: 0 })],
        ["listJobs limit fractional", () => t.adapter.listJobs({ scope: s, limit: 2.5 })],
        ["listJobs cursor malformed", () => t.adapter.listJobs({ scope: s, cursor: "garbage" })],
        [
          "listJobs conversationId empty",
          () => t.adapter.listJobs({ scope: s, conversationId: "" }),
        ],
        ["listJobs extra field", () => t.adapter.listJobs(bad({ scope: s, x: 1 }))],
        [
          "cancelJob reason number",
          () => t.adapter.cancelJob(bad({ scope: s, jobId: q, reason: 5 })),
        ],
        ["cancelJob jobId missing", () => t.adapter.cancelJob(bad({ scope: s }))],
        ["cancelJob extra field", () => t.adapter.cancelJob(bad({ scope: s, jobId: q, force: 1 }))],
        [
          "waitForTerminal timeoutMs negative",
          () => within(t.adapter.waitForTerminal({ scope: s, jobId: d, timeoutMs: -1 }), "wait"),
        ],
        [
          "waitForTerminal timeoutMs a string",
          () =>
            within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, timeoutMs: "5" })), "wait"),
        ],
        [
          "waitForTerminal signal not an AbortSignal",
          () => within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, signal: {} })), "wait"),
        ],
        [
          "waitForTerminal extra field",
          () => within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, x: 1 })), "wait"),
        ],
        ["gc limit 0", () => t.adapter.gc({ limit: 0 })],
        ["gc limit negative", () => t.adapter.gc({ limit: -5 })],
        ["gc extra field", () => t.adapter.gc(bad({ dryRun: true }))],
      ];
      for (const [label, call] of calls) {
        try {
          await expectSyncError(call, "E_SYNC_INVALID_ARGUMENT");
        } catch (error) {
          throw new Error(`${label}: ${(error as Error).message}`, { cause: error });
        }
      }
      assertEquals(await t.job(q), pendingBefore, "queued job untouched");
      assertEquals(
        (await t.adapter.getSource({ scope: s, sourceId: source.sourceId })).state,
        "collecting",
        "source untouched",
      );
    },
  },
];

/** Source, append, scope, limit and input cases. */
export const sourceCases: readonly ConformanceCase[] = [
  ...createCases,
  ...appendCases,
  ...scopeCases,
  ...limitCases,
  ...inputCases,
];
