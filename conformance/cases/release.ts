/**
 * Cases: releasing the chunk payloads of a verified, current source (`releasePayloads`,
 * capability `release-payloads`, DESIGN §11). The bytes go; the metadata (listing,
 * digests, sizes, manifest, digest state, jobs) stays. An extension of a released source
 * is accepted only where its job starts at the base's chunk count; elsewhere it is refused
 * with `E_SYNC_SOURCE_EXPIRED` (at `createSource`, or at the seal after a race), so no job
 * ever applies a released chunk.
 *
 * An adapter that keeps the bytes but says they are released passes: the cases check what
 * a client can observe, and that nothing needs the bytes again.
 *
 * Cases that expect an extension's job to start at `k` move the manual clock between the
 * base's job and the extension's seal (a seal in the same millisecond falls back by design).
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import { Capability } from "../../src/contracts/capabilities.ts";
import type {
  ChunkInfo,
  Job,
  Manifest,
  ReleasePayloadsResult,
  Source,
} from "../../src/contracts/domain.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import { append, MISSING_SOURCE, RETENTION_MS, storedChunkCount } from "./support.ts";

const REQUIRES = [Capability.extensions, Capability.releasePayloads] as const;
/** Clock step between a job's end and the next seal (so the cursor-k path applies). */
const GAP_MS = 1_000;

/** A sealed source with all its chunks (reused ones included), as a client knows it. */
interface Snapshot {
  source: Source;
  job: Job;
  chunks: Uint8Array[];
  manifest: Manifest;
}

/** Chunks of one line each, named so that every case's bytes differ. */
function lines(prefix: string, count: number, from = 0): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => utf8(`${prefix} line ${from + i}\n`));
}

/** The adapter's `releasePayloads` (the case requires `release-payloads`). */
function release(
  t: CaseContext,
  sourceId: string,
  scope: string = t.scope,
): Promise<ReleasePayloadsResult> {
  const operation = t.adapter.releasePayloads;
  assert(typeof operation === "function", "release-payloads: the adapter has releasePayloads");
  return operation.call(t.adapter, { scope, sourceId });
}

/** Runs the job to its end (it must succeed), then moves the clock on. */
async function applied(t: CaseContext, snapshot: Omit<Snapshot, "job"> & { job: Job }) {
  const job = await t.runToTerminal(snapshot.job.jobId, snapshot.source.scope);
  assertEquals(job.state, "succeeded", `job of ${snapshot.source.sourceId}`);
  t.clock.advance(GAP_MS);
  const source = await t.adapter.getSource({
    scope: snapshot.source.scope,
    sourceId: snapshot.source.sourceId,
  });
  return { ...snapshot, source, job };
}

/** A plain source of `chunks`, sealed, its job succeeded, the clock moved on. */
async function appliedSource(
  t: CaseContext,
  chunks: Uint8Array[],
  conversationId: string = t.newConversationId(),
): Promise<Snapshot> {
  const sealed = await t.uploadAndSeal(chunks, { conversationId });
  return await applied(t, { ...sealed, chunks });
}

/** An extension of `base` with `newChunks` appended (at `k..`), still collecting. */
async function collectingExtension(
  t: CaseContext,
  base: Snapshot,
  newChunks: Uint8Array[],
  sourceId?: string,
): Promise<{ source: Source; chunks: Uint8Array[]; manifest: Manifest }> {
  const created = await t.adapter.createSource({
    scope: base.source.scope,
    conversationId: base.source.conversationId,
    baseSourceId: base.source.sourceId,
    ...(sourceId === undefined ? {} : { sourceId }),
  });
  const k = base.chunks.length;
  for (let i = 0; i < newChunks.length; i++) {
    const result = await append(t, created.sourceId, k + i, newChunks[i], {
      scope: base.source.scope,
    });
    assert(result.appended, `chunk ${k + i} of the extension was appended`);
  }
  const chunks = [...base.chunks, ...newChunks];
  const { manifest } = await manifestFor(chunks);
  return { source: created, chunks, manifest };
}

/** Seals an extension made by {@link collectingExtension}. */
async function sealExtension(
  t: CaseContext,
  extension: { source: Source; chunks: Uint8Array[]; manifest: Manifest },
): Promise<Snapshot> {
  const sealed = await t.adapter.sealSource({
    scope: extension.source.scope,
    sourceId: extension.source.sourceId,
    manifest: extension.manifest,
  });
  return { ...extension, source: sealed.source, job: sealed.job };
}

/** Every listed chunk of a source (all pages). */
async function listed(t: CaseContext, sourceId: string): Promise<ChunkInfo[]> {
  const items: ChunkInfo[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await t.adapter.listChunks({
      scope: t.scope,
      sourceId,
      limit: 2,
      ...(cursor === undefined ? {} : { cursor }),
    });
    items.push(...result.items);
    if (result.nextCursor === undefined) return items;
    cursor = result.nextCursor;
  }
  throw new Error("listChunks never ended");
}

/** The listing a correct adapter returns for `chunks`. */
async function infosOf(chunks: readonly Uint8Array[]): Promise<ChunkInfo[]> {
  return await Promise.all(chunks.map(async (bytes, index) => ({
    index,
    byteLength: bytes.length,
    sha256: await sha256Hex(bytes),
  })));
}

/** Successful apply calls of one job, as indexes. */
function appliedIndexes(t: CaseContext, jobId: string): number[] {
  return t.handler.applied.filter((call) => call.jobId === jobId).map((call) => call.index);
}

/** `source` without what a release may change. */
function releasable(source: Source): Partial<Source> {
  const { payloadsReleasedAt: _at, releasedChunks: _count, updatedAt: _updated, ...rest } = source;
  return rest;
}

async function getSource(t: CaseContext, sourceId: string): Promise<Source> {
  return await t.adapter.getSource({ scope: t.scope, sourceId });
}

/** Asserts a refused release left the source as it was. */
async function assertRefused(
  t: CaseContext,
  sourceId: string,
  reason: string,
  label: string,
): Promise<void> {
  const before = await getSource(t, sourceId);
  const error = await expectSyncError(release(t, sourceId), "E_SYNC_INVALID_ARGUMENT");
  assertEquals(error.retryable, false, `${label}: retryable`);
  assertEquals(error.details?.reason, reason, `${label}: details.reason`);
  assertEquals(await getSource(t, sourceId), before, `${label}: the source is unchanged`);
}

/** Case names, stable: mutants and skips refer to them. */
export const releaseCases: readonly ConformanceCase[] = [
  {
    name: "release: a verified, current source's payloads are released; its metadata stays",
    requires: REQUIRES,
    async run(t) {
      const chunks = lines("keep", 5);
      const base = await appliedSource(t, chunks);
      const before = await getSource(t, base.source.sourceId);
      const listing = await listed(t, base.source.sourceId);
      assertEquals(listing, await infosOf(chunks), "listed before the release");
      const result = await release(t, base.source.sourceId);
      assertEquals(result.releasedChunks, chunks.length, "chunks released");
      assert(result.source.payloadsReleasedAt !== undefined, "payloadsReleasedAt is set");
      assertEquals(releasable(result.source), releasable(before), "the source's other fields");
      const after = await getSource(t, base.source.sourceId);
      assertEquals(after, result.source, "the stored source is what releasePayloads answered");
      assertEquals(await listed(t, base.source.sourceId), listing, "listed after the release");
      assertEquals(await t.job(base.job.jobId), base.job, "the verified job is unchanged");
      const latest = await t.adapter.getLatestSource?.({
        scope: t.scope,
        conversationId: base.source.conversationId,
      });
      assertEquals(latest?.sourceId, base.source.sourceId, "still the conversation's latest");
    },
  },
  {
    name: "release: releasing again answers the released source, unchanged",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("twice", 3));
      const first = await release(t, base.source.sourceId);
      t.clock.advance(GAP_MS);
      const second = await release(t, base.source.sourceId);
      assertEquals(second.source, first.source, "the second answer");
      assertEquals(second.releasedChunks, 0, "chunks released by the second call");
      assertEquals(await getSource(t, base.source.sourceId), first.source, "stored source");
      // Still released (and idempotent) after the conversation moved on.
      await t.uploadAndSeal(lines("newer", 1), { conversationId: base.source.conversationId });
      assertEquals((await release(t, base.source.sourceId)).source, first.source, "later");
    },
  },
  {
    name: "release: a source that is not sealed, verified and current is refused, unchanged",
    requires: REQUIRES,
    async run(t) {
      const collecting = await t.upload(lines("collecting", 2));
      await assertRefused(t, collecting.source.sourceId, "not-sealed", "collecting");

      const failing = await t.upload(lines("bad manifest", 1));
      await expectSyncError(
        t.adapter.sealSource({
          scope: t.scope,
          sourceId: failing.source.sourceId,
          manifest: { ...failing.manifest, byteCount: failing.manifest.byteCount + 1 },
        }),
        "E_SYNC_MANIFEST_MISMATCH",
      );
      await assertRefused(t, failing.source.sourceId, "not-sealed", "failed seal");

      const queued = await t.uploadAndSeal(lines("queued", 2));
      await assertRefused(t, queued.source.sourceId, "job-active", "job queued");

      const rejected = await t.uploadAndSeal(lines("rejected", 1));
      t.handler.onApply(() => {
        throw nonRetryable(new Error("the host rejects this chunk"));
      });
      const failedJob = await t.runToTerminal(rejected.job.jobId);
      t.handler.onApply(undefined);
      assertEquals(failedJob.state, "failed", "the rejected job");
      await assertRefused(t, rejected.source.sourceId, "not-verified", "job failed");

      const older = await appliedSource(t, lines("older", 2));
      const conversationId = older.source.conversationId;
      const newer = await t.uploadAndSeal(lines("newer", 2), { conversationId });
      // The newer job supersedes nothing (the older one ended) and is still queued.
      await assertRefused(t, older.source.sourceId, "job-active", "a newer job queued");
      await t.runToTerminal(newer.job.jobId);
      await assertRefused(t, older.source.sourceId, "not-current", "a newer job succeeded");
      // The current one can be released.
      assertEquals((await release(t, newer.source.sourceId)).releasedChunks, 2, "newer");
    },
  },
  {
    name: "release: a missing source or one of another scope is E_SYNC_SOURCE_NOT_FOUND",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("scoped", 2));
      await expectSyncError(release(t, MISSING_SOURCE), "E_SYNC_SOURCE_NOT_FOUND");
      await expectSyncError(
        release(t, base.source.sourceId, t.otherScope),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const after = await getSource(t, base.source.sourceId);
      assertEquals(after.payloadsReleasedAt, undefined, "the other scope's call released nothing");
    },
  },
  {
    name: "release: bad input is E_SYNC_INVALID_ARGUMENT, an overlong id E_SYNC_LIMIT_EXCEEDED",
    requires: REQUIRES,
    async run(t) {
      const operation = t.adapter.releasePayloads;
      assert(operation, "the adapter must provide releasePayloads");
      for (
        const input of [
          {},
          { scope: t.scope },
          { scope: "", sourceId: "s" },
          { scope: t.scope, sourceId: 3 },
          { scope: t.scope, sourceId: "s", extra: true },
        ]
      ) {
        // deno-lint-ignore no-explicit-any
        await expectSyncError(operation.call(t.adapter, input as any), "E_SYNC_INVALID_ARGUMENT");
      }
      await expectSyncError(
        operation.call(t.adapter, { scope: t.scope, sourceId: "x".repeat(100_000) }),
        "E_SYNC_LIMIT_EXCEEDED",
      );
    },
  },
  {
    name: "release: an extension of a released source starts at k, verifies and releases in turn",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("chain", 3));
      await release(t, base.source.sourceId);
      const first = await applied(
        t,
        await sealExtension(t, await collectingExtension(t, base, lines("chain", 2, 3))),
      );
      assertEquals(
        first.job.base?.jobId,
        base.job.jobId,
        "the extension's job builds on the base's",
      );
      assertEquals(appliedIndexes(t, first.job.jobId), [3, 4], "chunks the extension applied");
      assertEquals(first.job.cursor, 5, "cursor");
      assertEquals(await listed(t, first.source.sourceId), await infosOf(first.chunks), "listed");
      assertEquals((await release(t, first.source.sourceId)).releasedChunks, 2, "new chunks");
      // And once more along the chain, with uploadSource where the adapter has it.
      const next = [...first.chunks, ...lines("chain", 1, 5)];
      const { manifest } = await manifestFor(next);
      const tail = { index: 5, bytes: next[5], sha256: await sha256Hex(next[5]) };
      const second = t.adapter.uploadSource
        ? await t.adapter.uploadSource({
          scope: t.scope,
          conversationId: base.source.conversationId,
          baseSourceId: first.source.sourceId,
          chunks: [tail],
          manifest,
        })
        : await sealExtension(t, await collectingExtension(t, first, [next[5]]));
      const done = await t.runToTerminal(second.job.jobId);
      assertEquals(done.state, "succeeded", "the second extension's job");
      assertEquals(appliedIndexes(t, done.jobId), [5], "chunks the second extension applied");
      assertEquals((await release(t, second.source.sourceId)).releasedChunks, 1, "the last chunk");
    },
  },
  {
    name: "release: an extension whose job would start at 0 is refused at create, nothing created",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("stale", 2));
      const conversationId = base.source.conversationId;
      await release(t, base.source.sourceId);
      // A newer full source of the conversation: the base is no longer its current snapshot.
      const newer = await t.uploadAndSeal(lines("full", 3), { conversationId });
      const create = (sourceId: string) =>
        t.adapter.createSource({
          scope: t.scope,
          conversationId,
          sourceId,
          baseSourceId: base.source.sourceId,
        });
      const whileActive = await expectSyncError(create("ext-active"), "E_SYNC_SOURCE_EXPIRED");
      assertEquals(whileActive.details?.baseSourceId, base.source.sourceId, "details.baseSourceId");
      await expectSyncError(getSource(t, "ext-active"), "E_SYNC_SOURCE_NOT_FOUND");
      await t.runToTerminal(newer.job.jobId);
      await expectSyncError(create("ext-later"), "E_SYNC_SOURCE_EXPIRED");
      await expectSyncError(getSource(t, "ext-later"), "E_SYNC_SOURCE_NOT_FOUND");
      if (t.adapter.uploadSource) {
        const chunks = [...base.chunks, utf8("tail\n")];
        const { manifest } = await manifestFor(chunks);
        await expectSyncError(
          t.adapter.uploadSource({
            scope: t.scope,
            conversationId,
            sourceId: "ext-upload",
            baseSourceId: base.source.sourceId,
            chunks: [{ index: 2, bytes: chunks[2], sha256: await sha256Hex(chunks[2]) }],
            manifest,
          }),
          "E_SYNC_SOURCE_EXPIRED",
        );
        await expectSyncError(getSource(t, "ext-upload"), "E_SYNC_SOURCE_NOT_FOUND");
      }
      const after = await getSource(t, base.source.sourceId);
      assertEquals(after.extendedBy, undefined, "the base is not extended");
      assertEquals(await listed(t, base.source.sourceId), await infosOf(base.chunks), "listed");
    },
  },
  {
    name: "release: an extension whose base stopped being current before its seal fails the seal",
    requires: REQUIRES,
    hooks: ["chunkCount"],
    async run(t) {
      const base = await appliedSource(t, lines("race", 2));
      const conversationId = base.source.conversationId;
      await release(t, base.source.sourceId);
      const extension = await collectingExtension(t, base, lines("race", 2, 2), "ext-race");
      const home = base.source.sourceId;
      assertEquals(await storedChunkCount(t, home), 4, "chunks in the home before the race");
      // Meanwhile another client seals a full source of the conversation.
      const newer = await t.uploadAndSeal(lines("other client", 1), { conversationId });
      const error = await expectSyncError(
        t.adapter.sealSource({
          scope: t.scope,
          sourceId: extension.source.sourceId,
          manifest: extension.manifest,
        }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      assertEquals(error.retryable, false, "retryable");
      const failed = await getSource(t, extension.source.sourceId);
      assertEquals(failed.state, "failed", "the extension's state");
      assertEquals(failed.error?.code, "E_SYNC_SOURCE_EXPIRED", "its recorded error");
      assertEquals(failed.jobId, undefined, "no job was created for it");
      const jobs = (await t.adapter.listJobs({ scope: t.scope, conversationId })).items;
      assertEquals(
        jobs.map((job) => job.jobId).sort(),
        [base.job.jobId, newer.job.jobId].sort(),
        "jobs",
      );
      assertEquals(await storedChunkCount(t, home), 2, "the extension's own chunks are deleted");
      assertEquals((await getSource(t, home)).extendedBy, undefined, "the base is free again");
      assertEquals(await listed(t, home), await infosOf(base.chunks), "the base's listing");
      assertEquals((await t.runToTerminal(newer.job.jobId)).state, "succeeded", "newer job");
    },
  },
  {
    name: "release: an abandoned extension of a released source frees it for the next one",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("abandon", 2));
      await release(t, base.source.sourceId);
      const dropped = await collectingExtension(t, base, lines("dropped", 1));
      const abandon = t.adapter.abandonSource;
      assert(abandon, "the adapter must provide abandonSource");
      assertEquals(
        (await abandon.call(t.adapter, { scope: t.scope, sourceId: dropped.source.sourceId }))
          .state,
        "expired",
        "the abandoned extension",
      );
      const next = await applied(
        t,
        await sealExtension(t, await collectingExtension(t, base, lines("kept", 1))),
      );
      assertEquals(appliedIndexes(t, next.job.jobId), [2], "the next extension applied its tail");
      assertEquals(await listed(t, next.source.sourceId), await infosOf(next.chunks), "listed");
    },
  },
  {
    name: "release: gc purges a released chain like any other",
    requires: REQUIRES,
    hooks: ["chunkCount"],
    async run(t) {
      const base = await appliedSource(t, lines("purge", 2));
      await release(t, base.source.sourceId);
      const extension = await applied(
        t,
        await sealExtension(t, await collectingExtension(t, base, lines("purge", 2, 2))),
      );
      await release(t, extension.source.sourceId);
      t.clock.advance(RETENTION_MS + 1);
      const report = await t.adapter.gc();
      assertEquals(
        report,
        { expiredSources: 0, purgedSources: 2, deletedChunks: 4 },
        "gc report",
      );
      assertEquals(await storedChunkCount(t, base.source.sourceId), 0, "chunks left");
      for (const sourceId of [base.source.sourceId, extension.source.sourceId]) {
        const purged = await getSource(t, sourceId);
        assert(purged.chunksPurgedAt !== undefined, `${sourceId} is marked purged`);
        assertEquals((await t.adapter.listChunks({ scope: t.scope, sourceId })).items, [], "list");
      }
      // Released before the purge: still answered as released.
      assertEquals((await release(t, extension.source.sourceId)).releasedChunks, 0, "again");
    },
  },
  {
    name: "release: a purged source that was never released is E_SYNC_SOURCE_EXPIRED",
    requires: REQUIRES,
    async run(t) {
      const base = await appliedSource(t, lines("old", 1));
      t.clock.advance(RETENTION_MS + 1);
      assertEquals((await t.adapter.gc()).purgedSources, 1, "purged");
      await expectSyncError(release(t, base.source.sourceId), "E_SYNC_SOURCE_EXPIRED");
    },
  },
  {
    name: "release: durability: a released source and its marker survive a restart",
    requires: [...REQUIRES, Capability.durable],
    hooks: ["restart"],
    async run(t) {
      const base = await appliedSource(t, lines("durable", 2));
      const released = await release(t, base.source.sourceId);
      await t.restart();
      assertEquals(await getSource(t, base.source.sourceId), released.source, "after restart");
      assertEquals((await release(t, base.source.sourceId)).releasedChunks, 0, "again");
      // The marker survived: an extension that would start at 0 is still refused.
      const newer = await t.uploadAndSeal(lines("durable full", 1), {
        conversationId: base.source.conversationId,
      });
      await expectSyncError(
        t.adapter.createSource({
          scope: t.scope,
          conversationId: base.source.conversationId,
          baseSourceId: base.source.sourceId,
        }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      assertEquals((await t.runToTerminal(newer.job.jobId)).state, "succeeded", "newer job");
    },
  },
];
