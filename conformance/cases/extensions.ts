/**
 * Cases: extension sources (DESIGN §9, capability `extensions`). An extension names a
 * sealed base of the same scope and conversation, reuses the base's `k` chunks by
 * reference as its chunks `0..k-1` and appends only chunks `k..n-1`; its job starts at
 * cursor `k` when the base's job was the conversation's last applied snapshot.
 *
 * Every case needs the capability. Cases that expect the cursor-`k` path move the manual
 * clock between the base's job and the extension's seal: a seal in the same millisecond
 * as the base's job falls back to a full apply by design.
 *
 * @module
 */

import { compositeDigest, sha256Hex } from "../../src/checksum.ts";
import { Capability } from "../../src/contracts/capabilities.ts";
import type {
  ChunkInfo,
  GcReport,
  Job,
  JobBase,
  Manifest,
  SealResult,
  Source,
  SourceBase,
  UploadSourceResult,
} from "../../src/contracts/domain.ts";
import type { UploadChunkInput, UploadSourceInput } from "../../src/contracts/inputs.ts";
import { nonRetryable, type SyncError, type SyncErrorCode } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, SUITE_POLICY, utf8 } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  appliesInTransaction,
  deferred,
  errorShape,
  jobsOf,
  settleWithin,
  track,
  turnsUntil,
} from "./support.ts";

const EXT = Capability.extensions;
const TTL_MS = SUITE_POLICY.sourceTtlMs!;
const RETENTION_MS = SUITE_POLICY.retentionMs!;
/** Clock step between a base's job and the next seal (so the cursor-k path applies). */
const GAP_MS = 1_000;
const ZERO_GC: GcReport = { expiredSources: 0, purgedSources: 0, deletedChunks: 0 };
const MISSING_SOURCE = "missing-source-0";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/** A source with every one of its chunks (reused ones included) and its manifest. */
interface Link {
  source: Source;
  /** Chunks `0..n-1`. */
  chunks: Uint8Array[];
  digests: string[];
  /** Item count per chunk, when the case counts items. */
  itemCounts?: (number | undefined)[];
  manifest: Manifest;
}

/** A sealed link and its job (as last read). */
interface SealedLink extends Link {
  job: Job;
}

interface LinkOptions {
  scope?: string;
  conversationId?: string;
  sourceId?: string;
  itemCounts?: number[];
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function bytesOf(chunks: readonly Uint8Array[]): number {
  return sum(chunks.map((chunk) => chunk.length));
}

/** The manifest a correct runtime declares for `chunks` (with items when all count some). */
async function manifestOf(
  chunks: readonly Uint8Array[],
  itemCounts?: readonly (number | undefined)[],
): Promise<{ manifest: Manifest; digests: string[] }> {
  const counted = itemCounts !== undefined && itemCounts.length === chunks.length &&
    itemCounts.every((count) => count !== undefined);
  return await manifestFor(chunks, counted ? { itemCount: sum(itemCounts as number[]) } : {});
}

/** The listing a correct adapter returns for `link`'s first `count` chunks. */
function infosOf(link: Link, count: number = link.chunks.length): ChunkInfo[] {
  return link.chunks.slice(0, count).map((chunk, index) => {
    const info: ChunkInfo = { index, byteLength: chunk.length, sha256: link.digests[index] };
    const items = link.itemCounts?.[index];
    if (items !== undefined) info.itemCount = items;
    return info;
  });
}

/** Appends `chunks[from..]` of `link` to its source, in index order. */
async function appendFrom(
  t: CaseContext,
  scope: string,
  sourceId: string,
  chunks: readonly Uint8Array[],
  from: number,
  itemCounts?: readonly (number | undefined)[],
): Promise<void> {
  for (let index = from; index < chunks.length; index++) {
    const result = await append(t, sourceId, index, chunks[index], {
      scope,
      itemCount: itemCounts?.[index],
    });
    assert(result.appended, `chunk ${index} of ${sourceId} was appended`);
  }
}

/** A plain (non-extension) source with `chunks`, collecting. */
async function plainSource(
  t: CaseContext,
  chunks: readonly Uint8Array[],
  options: LinkOptions = {},
): Promise<Link> {
  const scope = options.scope ?? t.scope;
  const created = await t.adapter.createSource({
    scope,
    conversationId: options.conversationId ?? t.newConversationId(),
    sourceId: options.sourceId,
  });
  await appendFrom(t, scope, created.sourceId, chunks, 0, options.itemCounts);
  const { manifest, digests } = await manifestOf(chunks, options.itemCounts);
  const source = await t.adapter.getSource({ scope, sourceId: created.sourceId });
  return { source, chunks: [...chunks], digests, itemCounts: options.itemCounts, manifest };
}

/** Seals `link` with its correct manifest. */
async function seal(t: CaseContext, link: Link): Promise<SealedLink> {
  const sealed = await t.adapter.sealSource({
    scope: link.source.scope,
    sourceId: link.source.sourceId,
    manifest: link.manifest,
  });
  return { ...link, source: sealed.source, job: sealed.job };
}

/** Runs `link`'s job to its end (it must succeed), then moves the clock by {@link GAP_MS}. */
async function run(t: CaseContext, link: SealedLink): Promise<SealedLink> {
  const job = await t.runToTerminal(link.job.jobId, link.source.scope);
  assertEquals(job.state, "succeeded", `job of ${link.source.sourceId}`);
  t.clock.advance(GAP_MS);
  return { ...link, job };
}

/** A plain source, sealed, its job succeeded, the clock moved on. */
async function appliedBase(
  t: CaseContext,
  chunks: readonly Uint8Array[],
  options: LinkOptions = {},
): Promise<SealedLink> {
  return await run(t, await seal(t, await plainSource(t, chunks, options)));
}

/** `createSource` of an extension of `base` (same scope and conversation by default). */
async function createExtension(
  t: CaseContext,
  base: Link,
  options: { sourceId?: string; scope?: string; conversationId?: string } = {},
): Promise<Source> {
  return await t.adapter.createSource({
    scope: options.scope ?? base.source.scope,
    conversationId: options.conversationId ?? base.source.conversationId,
    sourceId: options.sourceId,
    baseSourceId: base.source.sourceId,
  });
}

/**
 * An extension of `base` holding `newChunks` after the base's chunks: created, only the
 * new chunks appended (at indexes `k..`), collecting.
 */
async function extend(
  t: CaseContext,
  base: Link,
  newChunks: readonly Uint8Array[],
  options: { sourceId?: string; newItemCounts?: number[] } = {},
): Promise<Link> {
  const scope = base.source.scope;
  const created = await createExtension(t, base, { sourceId: options.sourceId });
  const chunks = [...base.chunks, ...newChunks];
  const itemCounts = base.itemCounts || options.newItemCounts
    ? [
      ...(base.itemCounts ?? base.chunks.map(() => undefined)),
      ...(options.newItemCounts ?? newChunks.map(() => undefined)),
    ]
    : undefined;
  await appendFrom(t, scope, created.sourceId, chunks, base.chunks.length, itemCounts);
  const { manifest, digests } = await manifestOf(chunks, itemCounts);
  const source = await t.adapter.getSource({ scope, sourceId: created.sourceId });
  return { source, chunks, digests, itemCounts, manifest };
}

/** What a correct adapter records as the extension's `base`. */
function sourceBaseOf(base: Link): SourceBase {
  const expected: SourceBase = {
    sourceId: base.source.sourceId,
    chunkCount: base.chunks.length,
    byteCount: bytesOf(base.chunks),
  };
  if (base.manifest.itemCount !== undefined) expected.itemCount = base.manifest.itemCount;
  return expected;
}

/** What a correct adapter records as `job.base` of an extension of the applied `base`. */
function jobBaseOf(base: SealedLink): JobBase {
  return {
    sourceId: base.source.sourceId,
    jobId: base.job.jobId,
    chunkCount: base.chunks.length,
  };
}

/** Every chunk of a source, following `nextCursor` (bounded). */
async function listAllChunks(
  t: CaseContext,
  sourceId: string,
  options: { scope?: string; limit?: number } = {},
): Promise<{ items: ChunkInfo[]; pages: number[][] }> {
  const items: ChunkInfo[] = [];
  const pages: number[][] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await t.adapter.listChunks({
      scope: options.scope ?? t.scope,
      sourceId,
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
    if (options.limit !== undefined) {
      assert(result.items.length <= options.limit, `page ${page} is larger than its limit`);
    }
    items.push(...result.items);
    pages.push(result.items.map((chunk) => chunk.index));
    if (result.nextCursor === undefined) return { items, pages };
    cursor = result.nextCursor;
  }
  throw new Error("listChunks never ended");
}

/** Asserts `listChunks` of `link` returns exactly its chunks, in one page and in pages of 2. */
async function assertListsExactly(t: CaseContext, link: Link, label: string): Promise<void> {
  const scope = link.source.scope;
  const all = await listAllChunks(t, link.source.sourceId, { scope });
  assertEquals(all.items, infosOf(link), `${label}: listed chunks`);
  assertEquals(all.pages.length, 1, `${label}: pages of the default limit`);
  const paged = await listAllChunks(t, link.source.sourceId, { scope, limit: 2 });
  assertEquals(paged.items, infosOf(link), `${label}: listed chunks in pages of 2`);
}

/** Asserts `sourceId` does not exist in `scope`. */
async function assertNoSource(t: CaseContext, sourceId: string, scope: string = t.scope) {
  await expectSyncError(t.adapter.getSource({ scope, sourceId }), "E_SYNC_SOURCE_NOT_FOUND");
}

/** Successful apply calls of one job, as `[index, bytes]`. */
function appliedOf(t: CaseContext, jobId: string): Array<[number, Uint8Array]> {
  return t.handler.applied
    .filter((call) => call.jobId === jobId)
    .map((call) => [call.index, call.bytes]);
}

/** Every apply call (successful or not) of one job, by index. */
function callsOf(t: CaseContext, jobId: string): number[] {
  return t.handler.calls.filter((call) => call.jobId === jobId).map((call) => call.index);
}

/** `[index, bytes]` of `chunks[from..]`. */
function expectedApplies(chunks: readonly Uint8Array[], from = 0): Array<[number, Uint8Array]> {
  return chunks.slice(from).map((bytes, i) => [from + i, bytes]);
}

/** The adapter's `getLatestSource` (the case requires `extensions`). */
async function latest(
  t: CaseContext,
  conversationId: string,
  scope: string = t.scope,
): Promise<Source | null> {
  const lookup = t.adapter.getLatestSource;
  assert(
    typeof lookup === "function",
    "an adapter declaring extensions must provide getLatestSource",
  );
  return await lookup.call(t.adapter, { scope, conversationId });
}

/** The sourceId `getLatestSource` names (null when none). */
async function latestId(
  t: CaseContext,
  conversationId: string,
  scope: string = t.scope,
): Promise<string | null> {
  return (await latest(t, conversationId, scope))?.sourceId ?? null;
}

/** What the handler's context said for each chunk it applied. */
interface SeenContext {
  jobId: string;
  index: number;
  cursor: number;
  base: unknown;
  jobBase: unknown;
  sourceId: string;
}

/** Records `ctx.base`, `ctx.job.base` and the cursor of every apply call. */
function recordContexts(
  t: CaseContext,
  inner?: (index: number, job: Job) => void | Promise<void>,
): SeenContext[] {
  const seen: SeenContext[] = [];
  t.handler.onApply((chunk, context) => {
    seen.push({
      jobId: context.job.jobId,
      index: chunk.index,
      cursor: context.job.cursor,
      base: structuredClone(context.base),
      jobBase: structuredClone(context.job.base),
      sourceId: context.source.sourceId,
    });
    return inner?.(chunk.index, context.job);
  });
  return seen;
}

/** Asserts a freshly sealed extension job starts at cursor `k` on `base`'s applied job. */
function assertStartsOnBase(job: Job, base: SealedLink, ext: Link, label: string): void {
  assertEquals(job.state, "queued", `${label}: state after seal`);
  assertEquals(job.totalChunks, ext.chunks.length, `${label}: totalChunks`);
  assertEquals(job.cursor, base.chunks.length, `${label}: cursor = the base's chunk count`);
  assertEquals(job.base, jobBaseOf(base), `${label}: job.base`);
  assertEquals(job.appliedBytes, bytesOf(base.chunks), `${label}: appliedBytes = base bytes`);
}

/** Asserts a freshly sealed job applies from chunk 0 (a full apply). */
function assertStartsAtZero(job: Job, ext: Link, label: string): void {
  assertEquals(job.state, "queued", `${label}: state after seal`);
  assertEquals(job.totalChunks, ext.chunks.length, `${label}: totalChunks`);
  assertEquals(job.cursor, 0, `${label}: cursor`);
  assertEquals(job.base, undefined, `${label}: job.base of a full apply`);
  assertEquals(job.appliedBytes, 0, `${label}: appliedBytes`);
}

/** Asserts the terminal job of `link` succeeded verified over all `n` chunks. */
function assertVerifiedWhole(job: Job, link: Link, label: string): void {
  assertEquals(job.state, "succeeded", `${label}: state`);
  assertEquals(job.cursor, link.chunks.length, `${label}: cursor = n`);
  assertEquals(job.totalChunks, link.chunks.length, `${label}: totalChunks = n`);
  assertEquals(job.appliedBytes, link.manifest.byteCount, `${label}: appliedBytes = byteCount`);
  assertEquals(job.error, undefined, `${label}: error`);
}

/**
 * Asserts each link of a chain lists exactly its chunks, and that the handler applied
 * every chunk of the chain exactly once in all (each link's job only its new chunks).
 */
async function assertChainApplied(t: CaseContext, links: readonly Link[]): Promise<void> {
  for (const [m, link] of links.entries()) {
    await assertListsExactly(t, link, `link ${m} at the end`);
  }
  assertEquals(
    t.handler.applied.length,
    links[links.length - 1].chunks.length,
    "every chunk of the chain applied exactly once in all",
  );
}

/** Chunks of one-call upload input for `chunks[from..]`. */
async function uploadChunksFrom(
  chunks: readonly Uint8Array[],
  from: number,
): Promise<UploadChunkInput[]> {
  return await Promise.all(
    chunks.slice(from).map(async (bytes, i) => ({
      index: from + i,
      bytes,
      sha256: await sha256Hex(bytes),
    })),
  );
}

/** The adapter's `uploadSource` (the case requires `one-call-upload`). */
function uploadSource(t: CaseContext, input: UploadSourceInput): Promise<UploadSourceResult> {
  const upload = t.adapter.uploadSource;
  assert(upload, "an adapter declaring one-call-upload must provide uploadSource");
  return upload.call(t.adapter, input);
}

/** A correct one-call upload of an extension of `base` with `newChunks`. */
async function extensionUpload(
  base: Link,
  newChunks: readonly Uint8Array[],
  sourceId: string,
): Promise<{ input: UploadSourceInput; link: Omit<Link, "source"> }> {
  const chunks = [...base.chunks, ...newChunks];
  const { manifest, digests } = await manifestOf(chunks);
  return {
    input: {
      scope: base.source.scope,
      conversationId: base.source.conversationId,
      sourceId,
      baseSourceId: base.source.sourceId,
      chunks: await uploadChunksFrom(chunks, base.chunks.length),
      manifest,
    },
    link: { chunks, digests, manifest },
  };
}

/** Asserts `base` can still be extended (nothing marked it extended) by a new source. */
async function assertStillExtendable(t: CaseContext, base: Link, label: string): Promise<void> {
  const probe = await createExtension(t, base, { sourceId: `probe-${base.source.sourceId}` });
  assertEquals(probe.state, "collecting", `${label}: a new extension of the base`);
  assertEquals(probe.base, sourceBaseOf(base), `${label}: the new extension's base`);
}

// ---------------------------------------------------------------------------------------
// Rule 1: createSource with a base
// ---------------------------------------------------------------------------------------

const createCases: ConformanceCase[] = [
  {
    name: "extensions: create: an extension is collecting, names its base and has received " +
      "the base's chunks",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"), { itemCounts: [1, 2, 3] });
      const baseBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: base.source.sourceId,
      });
      t.clock.advance(500);
      const now = t.clock.now();
      const metadata = { turn: 2, title: "ext ✓" };
      const ext = await t.adapter.createSource({
        scope: t.scope,
        conversationId: base.source.conversationId,
        sourceId: "ext-1",
        metadata,
        baseSourceId: base.source.sourceId,
      });
      assertEquals(ext.sourceId, "ext-1", "sourceId");
      assertEquals(ext.scope, t.scope, "scope");
      assertEquals(ext.conversationId, base.source.conversationId, "conversationId");
      assertEquals(ext.state, "collecting", "state");
      assertEquals(
        ext.base,
        {
          sourceId: base.source.sourceId,
          chunkCount: 3,
          byteCount: bytesOf(base.chunks),
          itemCount: 6,
        },
        "base",
      );
      assertEquals(
        ext.received,
        { chunkCount: 3, byteCount: bytesOf(base.chunks) },
        "received = the base's chunks",
      );
      assertEquals(ext.metadata, metadata, "metadata");
      assertEquals(ext.createdAt, now, "createdAt");
      assertEquals(ext.expiresAt, now + TTL_MS, "expiresAt = now + TTL");
      for (const field of ["manifest", "jobId", "error", "sealedAt", "chunksPurgedAt"] as const) {
        assertEquals(ext[field], undefined, `${field} of a new extension`);
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "ext-1" }),
        ext,
        "getSource of the extension",
      );
      const baseAfter = await t.adapter.getSource({
        scope: t.scope,
        sourceId: base.source.sourceId,
      });
      for (const field of ["state", "manifest", "jobId", "received", "sealedAt"] as const) {
        assertEquals(baseAfter[field], baseBefore[field], `base ${field} after the extension`);
      }
      assertEquals(baseAfter.base, undefined, "the base is not an extension itself");
      assertEquals(
        await t.job(base.job.jobId),
        base.job,
        "the base's job is untouched by the extension",
      );

      // A base whose chunks count no items: the extension's base has no itemCount.
      const plain = await appliedBase(t, textChunks(2, "plain"));
      const ext2 = await createExtension(t, plain, { sourceId: "ext-2" });
      assertEquals(ext2.base, sourceBaseOf(plain), "base without items");
      assertEquals(ext2.base?.itemCount, undefined, "no itemCount when the base counts none");
    },
  },
  {
    name: "extensions: create: a missing base or a base of another scope answers like a " +
      "missing source; nothing is created",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const theirs = await appliedBase(t, textChunks(2, "theirs"), {
        scope: t.otherScope,
        conversationId,
      });
      const missing = await expectSyncError(
        t.adapter.createSource({
          scope: t.scope,
          conversationId,
          sourceId: "ext-of-missing",
          baseSourceId: MISSING_SOURCE,
        }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        t.adapter.createSource({
          scope: t.scope,
          conversationId,
          sourceId: "ext-of-other-scope",
          baseSourceId: theirs.source.sourceId,
        }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertEquals(
        errorShape(other, theirs.source.sourceId),
        errorShape(missing, MISSING_SOURCE),
        "error for a base of another scope vs a missing base",
      );
      const plainMissing = await expectSyncError(
        t.adapter.getSource({ scope: t.scope, sourceId: MISSING_SOURCE }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertEquals(
        errorShape(missing, MISSING_SOURCE),
        errorShape(plainMissing, MISSING_SOURCE),
        "error for a missing base vs getSource of a missing source",
      );
      await assertNoSource(t, "ext-of-missing");
      await assertNoSource(t, "ext-of-other-scope");
      await assertNoSource(t, "ext-of-other-scope", t.otherScope);
      assertEquals(await jobsOf(t, conversationId), [], "jobs of the conversation in scope");
      // The base of the other scope was not marked: its own scope can still extend it.
      await assertStillExtendable(t, theirs, "the other scope's base");
    },
  },
  {
    name: "extensions: create: a base of another conversation is E_SYNC_INVALID_ARGUMENT; " +
      "nothing is created",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(2, "base"));
      const otherConversation = t.newConversationId();
      await expectSyncError(
        createExtension(t, base, {
          sourceId: "ext-other-conversation",
          conversationId: otherConversation,
        }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await assertNoSource(t, "ext-other-conversation");
      assertEquals(await jobsOf(t, otherConversation), [], "jobs of the other conversation");
      await assertStillExtendable(t, base, "the base");
    },
  },
  {
    name: "extensions: create: a collecting or failed base is E_SYNC_INVALID_ARGUMENT " +
      "(details.state); nothing is created",
    requires: [EXT],
    async run(t) {
      const collecting = await plainSource(t, textChunks(2, "collecting"));
      const collectingBefore = collecting.source;
      const notSealed = await expectSyncError(
        createExtension(t, collecting, { sourceId: "ext-of-collecting" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(notSealed.details?.state, "collecting", "details.state of a collecting base");
      await assertNoSource(t, "ext-of-collecting");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: collecting.source.sourceId }),
        collectingBefore,
        "the collecting base is untouched",
      );

      const failing = await plainSource(t, textChunks(2, "failing"));
      await expectSyncError(
        t.adapter.sealSource({
          scope: t.scope,
          sourceId: failing.source.sourceId,
          manifest: { ...failing.manifest, digest: "0".repeat(64) },
        }),
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      );
      const failedBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: failing.source.sourceId,
      });
      assertEquals(failedBefore.state, "failed", "the base's seal failed");
      const failed = await expectSyncError(
        createExtension(t, failing, { sourceId: "ext-of-failed" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(failed.details?.state, "failed", "details.state of a failed base");
      await assertNoSource(t, "ext-of-failed");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: failing.source.sourceId }),
        failedBefore,
        "the failed base is untouched",
      );
      // The collecting base still takes chunks and seals like any source.
      const sealed = await seal(t, collecting);
      assertEquals(sealed.source.state, "sealed", "the refused base still seals");
    },
  },
  {
    name: "extensions: create: an expired base or one purged by retention is " +
      "E_SYNC_SOURCE_EXPIRED; nothing is created",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const purged = await appliedBase(t, textChunks(2, "purged"), { conversationId });
      const expiring = await plainSource(t, textChunks(2, "expiring"), { conversationId });
      t.clock.set(purged.job.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 1, deletedChunks: 4 },
        "gc expires one source and purges the other",
      );
      const expired = await t.adapter.getSource({
        scope: t.scope,
        sourceId: expiring.source.sourceId,
      });
      assertEquals(expired.state, "expired", "state of the expired base");
      await expectSyncError(
        createExtension(t, expiring, { sourceId: "ext-of-expired" }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      await assertNoSource(t, "ext-of-expired");
      const purgedSource = await t.adapter.getSource({
        scope: t.scope,
        sourceId: purged.source.sourceId,
      });
      assert(purgedSource.chunksPurgedAt !== undefined, "the sealed base's chunks were purged");
      await expectSyncError(
        createExtension(t, purged, { sourceId: "ext-of-purged" }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      await assertNoSource(t, "ext-of-purged");
      assertEquals(
        (await jobsOf(t, conversationId)).map((job) => job.jobId),
        [purged.job.jobId],
        "jobs of the conversation",
      );
    },
  },
  {
    name: "extensions: create: a base already extended is E_SYNC_CHUNK_CONFLICT " +
      "(details.extendedBy); nothing is created",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const first = await extend(t, base, textChunks(1, "first"), { sourceId: "ext-first" });
      const conflict = await expectSyncError(
        createExtension(t, base, { sourceId: "ext-second" }),
        "E_SYNC_CHUNK_CONFLICT",
      );
      assertEquals(conflict.details?.extendedBy, "ext-first", "details.extendedBy");
      await assertNoSource(t, "ext-second");
      // Still refused once the first extension is sealed and applied.
      t.clock.advance(GAP_MS);
      await run(t, await seal(t, first));
      const later = await expectSyncError(
        createExtension(t, base, { sourceId: "ext-third" }),
        "E_SYNC_CHUNK_CONFLICT",
      );
      assertEquals(later.details?.extendedBy, "ext-first", "details.extendedBy after the seal");
      await assertNoSource(t, "ext-third");
      await assertListsExactly(t, first, "the first extension");
    },
  },
  {
    name: "extensions: create: racing extensions of one base: exactly one wins, the others " +
      "are E_SYNC_CHUNK_CONFLICT and not created",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const ids = ["race-a", "race-b", "race-c", "race-d"];
      const results = await Promise.allSettled(
        ids.map((sourceId) => createExtension(t, base, { sourceId })),
      );
      const won = results.flatMap((result, i) => result.status === "fulfilled" ? [i] : []);
      assertEquals(won.length, 1, "extensions that were created");
      const winner = ids[won[0]];
      for (const [i, result] of results.entries()) {
        if (i === won[0]) continue;
        assert(result.status === "rejected", `racer ${ids[i]} rejected`);
        const reason = result.reason as SyncError;
        assertEquals(reason?.code, "E_SYNC_CHUNK_CONFLICT", `racer ${ids[i]} code`);
        await assertNoSource(t, ids[i]);
      }
      const stored = await t.adapter.getSource({ scope: t.scope, sourceId: winner });
      assertEquals(stored.base, sourceBaseOf(base), "the winner's base");
      assertEquals(stored.state, "collecting", "the winner's state");
      const conflict = await expectSyncError(
        createExtension(t, base, { sourceId: "race-late" }),
        "E_SYNC_CHUNK_CONFLICT",
      );
      assertEquals(conflict.details?.extendedBy, winner, "details.extendedBy names the winner");
    },
  },
  {
    name: "extensions: create: the same sourceId and base again returns the same source; " +
      "another base or none is E_SYNC_INVALID_ARGUMENT",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const base1 = await appliedBase(t, textChunks(2, "base-1"), { conversationId });
      const base2 = await appliedBase(t, textChunks(3, "base-2"), { conversationId });
      const ext = await extend(t, base1, textChunks(1, "new"), { sourceId: "ext-again" });
      t.clock.advance(5_000);
      const again = await createExtension(t, base1, { sourceId: "ext-again" });
      assertEquals(again, ext.source, "the same create again returns the stored source");
      assertEquals(
        again.received,
        { chunkCount: 3, byteCount: bytesOf(ext.chunks) },
        "received kept (base chunks and the appended one)",
      );
      await expectSyncError(
        createExtension(t, base2, { sourceId: "ext-again" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectSyncError(
        t.adapter.createSource({ scope: t.scope, conversationId, sourceId: "ext-again" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "ext-again" }),
        ext.source,
        "the extension after the refused creates",
      );
      // A plain source's id with a base is refused too.
      const plain = await plainSource(t, textChunks(1, "plain"), {
        conversationId,
        sourceId: "plain-again",
      });
      await expectSyncError(
        createExtension(t, base2, { sourceId: "plain-again" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "plain-again" }),
        plain.source,
        "the plain source after the refused create",
      );
      await assertStillExtendable(t, base2, "the base named by the refused creates");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 2: appendChunk on an extension
// ---------------------------------------------------------------------------------------

const appendCases: ConformanceCase[] = [
  {
    name: "extensions: append: a reused index with the base's bytes is not appended, other " +
      "bytes conflict, new indexes append",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const created = await createExtension(t, base, { sourceId: "ext-append" });
      const baseBytes = bytesOf(base.chunks);
      const reused = await append(t, created.sourceId, 1, base.chunks[1]);
      assertEquals(reused.appended, false, "a reused chunk re-sent is not appended");
      assertEquals(
        reused.chunk,
        { index: 1, byteLength: base.chunks[1].length, sha256: base.digests[1] },
        "chunk info of the reused chunk",
      );
      assertEquals(
        reused.source.received,
        { chunkCount: 3, byteCount: baseBytes },
        "received after re-sending a reused chunk",
      );
      await expectSyncError(
        append(t, created.sourceId, 0, utf8("not the base's chunk 0")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      await expectSyncError(
        append(t, created.sourceId, 2, base.chunks[1]),
        "E_SYNC_CHUNK_CONFLICT",
      );
      const unchanged = await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId });
      assertEquals(
        unchanged.received,
        { chunkCount: 3, byteCount: baseBytes },
        "received after the conflicts",
      );
      const fresh = utf8("the first new chunk");
      const appended = await append(t, created.sourceId, 3, fresh);
      assertEquals(appended.appended, true, "index k is appended");
      assertEquals(
        appended.source.received,
        { chunkCount: 4, byteCount: baseBytes + fresh.length },
        "received after a new chunk",
      );
      const again = await append(t, created.sourceId, 3, fresh);
      assertEquals(again.appended, false, "a new chunk re-sent is not appended again");
      await expectSyncError(
        append(t, created.sourceId, 3, utf8("other bytes at index 3")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      const ext: Link = {
        source: await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId }),
        chunks: [...base.chunks, fresh],
        digests: [...base.digests, await sha256Hex(fresh)],
        manifest: (await manifestFor([...base.chunks, fresh])).manifest,
      };
      assertEquals(ext.source.received, appended.source.received, "received at the end");
      await assertListsExactly(t, ext, "the extension");
      await assertListsExactly(t, base, "the base");
      const sealed = await seal(t, ext);
      assertEquals(sealed.source.state, "sealed", "the extension seals");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 3: listChunks
// ---------------------------------------------------------------------------------------

const listCases: ConformanceCase[] = [
  {
    name: "extensions: list: an extension lists chunks 0..n-1 (reused ones included), " +
      "page by page",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(4, "base"), { itemCounts: [1, 2, 3, 4] });
      const ext = await extend(t, base, textChunks(3, "new"), { newItemCounts: [5, 6, 7] });
      const expected = infosOf(ext);
      assertEquals(expected.length, 7, "7 chunks in all");
      assertEquals(
        (await listAllChunks(t, ext.source.sourceId)).items,
        expected,
        "the extension's chunks",
      );
      for (
        const [limit, pages] of [
          [3, [[0, 1, 2], [3, 4, 5], [6]]],
          [4, [[0, 1, 2, 3], [4, 5, 6]]],
          [5, [[0, 1, 2, 3, 4], [5, 6]]],
          [7, [[0, 1, 2, 3, 4, 5, 6]]],
        ] as const
      ) {
        const listed = await listAllChunks(t, ext.source.sourceId, { limit });
        assertEquals(listed.pages, pages, `pages of ${limit}`);
        assertEquals(listed.items, expected, `chunks in pages of ${limit}`);
      }
      // A partly uploaded extension lists its reused chunks and what it has so far.
      const second = await appliedBase(t, textChunks(2, "second-base"));
      const partial = await createExtension(t, second, { sourceId: "ext-partial" });
      assertEquals(
        (await listAllChunks(t, partial.sourceId)).items,
        infosOf(second),
        "an extension with no new chunk yet lists the base's",
      );
      const sealed = await run(t, await seal(t, ext));
      assertEquals(
        (await listAllChunks(t, ext.source.sourceId)).items,
        expected,
        "the extension's chunks after its job",
      );
      assertEquals(sealed.job.cursor, 7, "the job applied them all");
    },
  },
  {
    name: "extensions: list: the base lists exactly its own chunks after it was extended",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(4, "base"));
      await assertListsExactly(t, base, "the base before its extension");
      const ext = await extend(t, base, textChunks(3, "new"));
      await assertListsExactly(t, base, "the base while its extension collects");
      for (const [limit, pages] of [[2, [[0, 1], [2, 3]]], [3, [[0, 1, 2], [3]]]] as const) {
        const listed = await listAllChunks(t, base.source.sourceId, { limit });
        assertEquals(listed.pages, pages, `the base's pages of ${limit}`);
      }
      const last = await t.adapter.listChunks({
        scope: t.scope,
        sourceId: base.source.sourceId,
        limit: 4,
      });
      assertEquals(last.items.length, 4, "a page of the base's size");
      assertEquals(last.nextCursor, undefined, "no page after the base's last chunk");
      const sealedExt = await run(t, await seal(t, ext));
      await assertListsExactly(t, base, "the base after its extension was applied");
      // A second link continues the same chunks: the first two links still list their own.
      const next = await extend(t, sealedExt, textChunks(2, "next"));
      await run(t, await seal(t, next));
      await assertListsExactly(t, base, "the base after two links");
      await assertListsExactly(t, sealedExt, "the first link after the second");
      await assertListsExactly(t, next, "the second link");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 4: sealSource of an extension
// ---------------------------------------------------------------------------------------

/** A prepared extension whose seal must fail, with the code. */
interface ExtensionSealFailure {
  name: string;
  code: SyncErrorCode;
  /** Appends (some of) the new chunks and returns the wrong manifest and the right one. */
  prepare(
    t: CaseContext,
    base: SealedLink,
  ): Promise<{ sourceId: string; manifest: Manifest; correct?: Manifest }>;
}

const NEW3 = ["new-3", "new-4", "new-5"].map(utf8);

/** Creates an extension of `base` and appends `NEW3[i]` at `k + i` for each `i` given. */
async function partialExtension(
  t: CaseContext,
  base: SealedLink,
  newIndexes: readonly number[],
  itemCounts?: readonly number[],
): Promise<string> {
  const created = await createExtension(t, base);
  const k = base.chunks.length;
  for (const i of newIndexes) {
    await append(t, created.sourceId, k + i, NEW3[i], { itemCount: itemCounts?.[i] });
  }
  return created.sourceId;
}

const EXTENSION_SEAL_FAILURES: readonly ExtensionSealFailure[] = [
  {
    name: "a gap in the new chunks",
    code: "E_SYNC_CHUNK_INDEX_GAP",
    async prepare(t, base) {
      const { manifest } = await manifestFor([...base.chunks, ...NEW3]);
      return { sourceId: await partialExtension(t, base, [0, 2]), manifest };
    },
  },
  {
    name: "a missing last new chunk",
    code: "E_SYNC_CHUNK_INDEX_GAP",
    async prepare(t, base) {
      const { manifest } = await manifestFor([...base.chunks, ...NEW3]);
      return { sourceId: await partialExtension(t, base, [0, 1]), manifest };
    },
  },
  {
    name: "a manifest counting only the new chunks",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t, base) {
      const { manifest } = await manifestFor(NEW3);
      const { manifest: correct } = await manifestFor([...base.chunks, ...NEW3]);
      return { sourceId: await partialExtension(t, base, [0, 1, 2]), manifest, correct };
    },
  },
  {
    name: "a byteCount of only the new bytes",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t, base) {
      const { manifest: correct } = await manifestFor([...base.chunks, ...NEW3]);
      const manifest = { ...correct, byteCount: bytesOf(NEW3) };
      return { sourceId: await partialExtension(t, base, [0, 1, 2]), manifest, correct };
    },
  },
  {
    name: "an itemCount of only the new items",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t, base) {
      const { manifest } = await manifestFor([...base.chunks, ...NEW3]);
      const correct = { ...manifest, itemCount: base.manifest.itemCount! + 3 };
      return {
        sourceId: await partialExtension(t, base, [0, 1, 2], [1, 1, 1]),
        manifest: { ...manifest, itemCount: 3 },
        correct,
      };
    },
  },
  {
    name: "a digest over the new chunks only",
    code: "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
    async prepare(t, base) {
      const { manifest: correct } = await manifestFor([...base.chunks, ...NEW3]);
      const { digests } = await manifestFor(NEW3);
      const manifest = { ...correct, digest: compositeDigest(digests) };
      return { sourceId: await partialExtension(t, base, [0, 1, 2]), manifest, correct };
    },
  },
  {
    name: "a digest with the reused chunks in another order",
    code: "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
    async prepare(t, base) {
      const { manifest: correct } = await manifestFor([...base.chunks, ...NEW3]);
      const { digests } = await manifestFor(NEW3);
      const manifest = {
        ...correct,
        digest: compositeDigest([...[...base.digests].reverse(), ...digests]),
      };
      return { sourceId: await partialExtension(t, base, [0, 1, 2]), manifest, correct };
    },
  },
];

const sealFailureCases: ConformanceCase[] = EXTENSION_SEAL_FAILURES.map((failure) => ({
  name: `extensions: seal: ${failure.name} fails the extension durably with ${failure.code}`,
  requires: [EXT],
  async run(t: CaseContext) {
    const base = await appliedBase(t, textChunks(3, "base"), { itemCounts: [1, 1, 1] });
    const { sourceId, manifest, correct } = await failure.prepare(t, base);
    const before = await t.adapter.listChunks({ scope: t.scope, sourceId });
    t.clock.advance(100);
    const thrown = await expectSyncError(
      t.adapter.sealSource({ scope: t.scope, sourceId, manifest }),
      failure.code,
    );
    assertEquals(thrown.retryable, false, "retryable");
    const failed = await t.adapter.getSource({ scope: t.scope, sourceId });
    assertEquals(failed.state, "failed", "state after the failed seal");
    assertEquals(failed.error?.code, failure.code, "recorded error code");
    assertEquals(failed.jobId, undefined, "jobId of a failed extension");
    assertEquals(failed.updatedAt, t.clock.now(), "updatedAt of the failure");
    assertEquals(failed.base, sourceBaseOf(base), "the failed extension keeps its base");
    assertEquals(
      (await jobsOf(t, base.source.conversationId)).map((job) => job.jobId),
      [base.job.jobId],
      "no job but the base's",
    );
    await expectSyncError(
      append(t, sourceId, 10, utf8("late")),
      "E_SYNC_SOURCE_NOT_COLLECTING",
    );
    await expectSyncError(
      t.adapter.sealSource({ scope: t.scope, sourceId, manifest }),
      "E_SYNC_SOURCE_NOT_COLLECTING",
    );
    if (correct) {
      await expectSyncError(
        t.adapter.sealSource({ scope: t.scope, sourceId, manifest: correct }),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
    }
    const after = await t.adapter.getSource({ scope: t.scope, sourceId });
    assertEquals(after.state, "failed", "state stays failed");
    assertEquals(after.error?.code, failure.code, "recorded error stays");
    assert(before.items.length > base.manifest.chunkCount, "chunks were listed before the seal");
    // An extension that can never be sealed gives its own chunks up at once, and its base
    // may be extended again.
    assert(after.chunksPurgedAt !== undefined, "the failed extension's chunks are released");
    assertEquals(
      (await t.adapter.listChunks({ scope: t.scope, sourceId })).items,
      [],
      "the failed extension lists no chunks",
    );
    await assertListsExactly(t, base, "the base after its extension failed");
    assertEquals(await t.job(base.job.jobId), base.job, "the base's job is untouched");
    const again = await t.adapter.createSource({
      scope: t.scope,
      conversationId: base.source.conversationId,
      baseSourceId: base.source.sourceId,
    });
    assertEquals(again.base?.sourceId, base.source.sourceId, "the base is extended again");
  },
}));

const sealCases: ConformanceCase[] = [
  {
    name: "extensions: seal: the manifest covers all n chunks (count, bytes, items, " +
      "composite digest); the source is sealed with one job",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"), { itemCounts: [1, 1, 2] });
      const ext = await extend(t, base, textChunks(2, "new"), { newItemCounts: [3, 1] });
      const expectedDigest = compositeDigest(ext.digests);
      assertEquals(ext.manifest.digest, expectedDigest, "composite over all n chunk digests");
      const manifest: Manifest = { ...ext.manifest, data: { turns: 8 } };
      assertEquals(manifest.chunkCount, 5, "chunkCount n");
      assertEquals(manifest.itemCount, 8, "itemCount over all n chunks");
      t.clock.advance(250);
      const now = t.clock.now();
      const sealed: SealResult = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: ext.source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "state");
      assertEquals(sealed.source.manifest, manifest, "stored manifest");
      assertEquals(sealed.source.sealedAt, now, "sealedAt");
      assertEquals(sealed.source.jobId, sealed.job.jobId, "the source names its job");
      assertEquals(
        sealed.source.received,
        { chunkCount: 5, byteCount: manifest.byteCount },
        "received covers all n",
      );
      assertEquals(sealed.source.base, sourceBaseOf(base), "base kept");
      assertEquals(sealed.job.totalChunks, 5, "totalChunks = n");
      assertEquals(sealed.job.sourceId, ext.source.sourceId, "job sourceId");
      assertEquals(sealed.job.createdAt, now, "job createdAt");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: ext.source.sourceId }),
        sealed.source,
        "getSource after seal",
      );
      const again = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: ext.source.sourceId,
        manifest,
      });
      assertEquals(again.job.jobId, sealed.job.jobId, "sealing again returns the same job");
      assertEquals(
        (await jobsOf(t, base.source.conversationId)).map((job) => job.jobId),
        [sealed.job.jobId, base.job.jobId],
        "jobs of the conversation",
      );
      const done = await t.runToTerminal(sealed.job.jobId);
      assertVerifiedWhole(done, { ...ext, manifest }, "the extension's job");
    },
  },
  ...sealFailureCases,
];

// ---------------------------------------------------------------------------------------
// Rule 5: the extension's job
// ---------------------------------------------------------------------------------------

/** A way the base's job ends up unusable, so the extension must apply from chunk 0. */
interface FullApplyReason {
  name: string;
  /** The base (sealed; its job in whatever state the reason leaves it). */
  prepare(t: CaseContext): Promise<SealedLink>;
}

const FULL_APPLY_REASONS: readonly FullApplyReason[] = [
  {
    name: "the base's job failed",
    async prepare(t) {
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === base.job.jobId) throw nonRetryable(new Error("fatal"));
      });
      const job = await t.runToTerminal(base.job.jobId);
      assertEquals(job.state, "failed", "the base's job failed");
      t.handler.onApply(undefined);
      t.clock.advance(GAP_MS);
      return { ...base, job };
    },
  },
  {
    name: "the base's job was cancelled",
    async prepare(t) {
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      const job = await t.adapter.cancelJob({ scope: t.scope, jobId: base.job.jobId });
      assertEquals(job.state, "cancelled", "the base's job was cancelled");
      t.clock.advance(GAP_MS);
      return { ...base, job };
    },
  },
  {
    name: "a newer job of the conversation succeeded after the base's",
    async prepare(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      await appliedBase(t, textChunks(2, "newer"), {
        conversationId: base.source.conversationId,
      });
      return base;
    },
  },
];

/** How a case makes its extension: created, appended and sealed, or in one call. */
const EXTENSION_CALLS = [
  { name: "", oneCall: false },
  { name: " (one-call upload)", oneCall: true },
] as const;

/** `newChunks` on `base`, sealed: in separate calls, or in one `uploadSource`. */
async function sealedExtension(
  t: CaseContext,
  base: SealedLink,
  newChunks: readonly Uint8Array[],
  oneCall: boolean,
): Promise<{ ext: Link; sealed: SealedLink }> {
  if (!oneCall) {
    const ext = await extend(t, base, newChunks);
    return { ext, sealed: await seal(t, ext) };
  }
  const { input, link } = await extensionUpload(base, newChunks, "one-call-ext");
  const result = await uploadSource(t, input);
  const ext: Link = { ...link, source: result.source };
  return { ext, sealed: { ...ext, job: result.job } };
}

const fullApplyCases: ConformanceCase[] = FULL_APPLY_REASONS.flatMap((reason) =>
  EXTENSION_CALLS.map((calls) => ({
    name: `extensions: job: when ${reason.name}, the extension's job applies every chunk from 0` +
      calls.name,
    requires: calls.oneCall ? [EXT, Capability.oneCallUpload] : [EXT],
    async run(t: CaseContext) {
      const base = await reason.prepare(t);
      const baseJob = await t.job(base.job.jobId);
      const seen = recordContexts(t);
      const { ext, sealed } = await sealedExtension(t, base, textChunks(2, "new"), calls.oneCall);
      assertStartsAtZero(sealed.job, ext, "the extension's job");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks),
        "chunks applied by the extension's job (all, reused bytes included)",
      );
      for (const context of seen.filter((c) => c.jobId === sealed.job.jobId)) {
        assertEquals(context.base, undefined, `ctx.base of chunk ${context.index}`);
        assertEquals(context.cursor, context.index, `ctx.job.cursor of chunk ${context.index}`);
      }
      const done = await t.job(sealed.job.jobId);
      assertVerifiedWhole(done, ext, "the extension's job");
      assertEquals(done.base, undefined, "job.base of a full apply");
      assertEquals(await t.job(base.job.jobId), baseJob, "the base's job is untouched");
    },
  }))
);

const jobCases: ConformanceCase[] = [
  {
    name: "extensions: job: after the base's job succeeded, the job starts at k, the handler " +
      "sees only k..n-1 with ctx.base = job.base, and verifies all n",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(4, "base"));
      const baseJob = await t.job(base.job.jobId);
      const ext = await extend(t, base, textChunks(3, "new"));
      const seen = recordContexts(t);
      const sealed = await seal(t, ext);
      assertStartsOnBase(sealed.job, base, ext, "the extension's job");
      assertEquals(await t.job(sealed.job.jobId), sealed.job, "getJob after seal");
      await t.harness.drain();
      assertEquals(callsOf(t, sealed.job.jobId), [4, 5, 6], "apply calls of the extension's job");
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks, 4),
        "chunks applied by the extension's job",
      );
      const contexts = seen.filter((context) => context.jobId === sealed.job.jobId);
      assertEquals(contexts.length, 3, "contexts seen");
      for (const context of contexts) {
        assertEquals(context.base, jobBaseOf(base), `ctx.base of chunk ${context.index}`);
        assertEquals(context.jobBase, jobBaseOf(base), `ctx.job.base of chunk ${context.index}`);
        assertEquals(context.cursor, context.index, `ctx.job.cursor of chunk ${context.index}`);
        assertEquals(context.sourceId, ext.source.sourceId, `ctx.source of ${context.index}`);
      }
      const done = await t.job(sealed.job.jobId);
      assertVerifiedWhole(done, ext, "the extension's job");
      assertEquals(done.base, jobBaseOf(base), "job.base of the terminal job");
      const verified = t.handler.verifications.filter((job) => job.jobId === sealed.job.jobId);
      assertEquals(verified.length, 1, "verify hook calls for the extension");
      assertEquals(verified[0].cursor, 7, "the verify hook sees all n applied");
      assertEquals(verified[0].appliedBytes, ext.manifest.byteCount, "verify hook appliedBytes");
      assertEquals(await t.job(base.job.jobId), baseJob, "the base's job is untouched");
      t.clock.advance(SUITE_POLICY.leaseMs! * 10);
      await t.harness.drain();
      assertEquals(callsOf(t, sealed.job.jobId), [4, 5, 6], "nothing applied again later");
    },
  },
  ...fullApplyCases,
  {
    name: "extensions: job: another job of the conversation created in the same millisecond " +
      "as the base's makes the extension apply from 0",
    requires: [EXT],
    async run(t) {
      // Both jobs are created, and succeed, at one instant: neither is the last applied
      // snapshot for sure, so the extension must not build on the base's.
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      const baseJob = await t.runToTerminal(base.job.jobId);
      assertEquals(baseJob.state, "succeeded", "the base's job");
      const twin = await seal(
        t,
        await plainSource(t, textChunks(2, "twin"), {
          conversationId: base.source.conversationId,
        }),
      );
      assertEquals(twin.job.createdAt, baseJob.createdAt, "the twin's job has the same createdAt");
      assertEquals((await t.runToTerminal(twin.job.jobId)).state, "succeeded", "the twin's job");
      t.clock.advance(GAP_MS);
      const ext = await extend(t, base, textChunks(2, "new"));
      const sealed = await seal(t, ext);
      assertStartsAtZero(sealed.job, ext, "the extension's job");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks),
        "chunks applied by the extension's job",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), ext, "the extension's job");
    },
  },
  {
    name: "extensions: job: a newer job of the same conversation id in another scope does " +
      "not stop the job starting at k",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const conversationId = base.source.conversationId;
      const theirs = await seal(
        t,
        await plainSource(t, textChunks(2, "theirs"), { scope: t.otherScope, conversationId }),
      );
      t.clock.advance(GAP_MS);
      const ext = await extend(t, base, textChunks(2, "new"));
      const sealed = await seal(t, ext);
      assertStartsOnBase(sealed.job, base, ext, "the extension's job");
      assertEquals(
        (await t.job(theirs.job.jobId, t.otherScope)).state,
        "queued",
        "the other scope's job is not superseded",
      );
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks, 3),
        "chunks applied by the extension's job",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), ext, "the extension's job");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 6: uploadSource with a base
// ---------------------------------------------------------------------------------------

/** A one-call upload of an extension that must be refused, storing nothing. */
interface BadExtensionUpload {
  name: string;
  code: SyncErrorCode;
  /** Builds the input for `sourceId`; returns the base that must stay extendable, if any. */
  make(
    t: CaseContext,
    sourceId: string,
  ): Promise<{ input: UploadSourceInput; base?: SealedLink; extended?: Link }>;
}

const BAD_EXTENSION_UPLOADS: readonly BadExtensionUpload[] = [
  {
    name: "a missing base",
    code: "E_SYNC_SOURCE_NOT_FOUND",
    async make(t, sourceId) {
      const base = await appliedBase(t, textChunks(2, "base"));
      const { input } = await extensionUpload(base, textChunks(1, "new"), sourceId);
      return { input: { ...input, baseSourceId: MISSING_SOURCE }, base };
    },
  },
  {
    name: "a base of another scope",
    code: "E_SYNC_SOURCE_NOT_FOUND",
    async make(t, sourceId) {
      const theirs = await appliedBase(t, textChunks(2, "theirs"), { scope: t.otherScope });
      const { input } = await extensionUpload(theirs, textChunks(1, "new"), sourceId);
      return { input: { ...input, scope: t.scope }, base: theirs };
    },
  },
  {
    name: "a base of another conversation",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const base = await appliedBase(t, textChunks(2, "base"));
      const { input } = await extensionUpload(base, textChunks(1, "new"), sourceId);
      return { input: { ...input, conversationId: t.newConversationId() }, base };
    },
  },
  {
    name: "a collecting base",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const collecting = await plainSource(t, textChunks(2, "collecting"));
      const { input } = await extensionUpload(collecting, textChunks(1, "new"), sourceId);
      return { input };
    },
  },
  {
    name: "a base already extended",
    code: "E_SYNC_CHUNK_CONFLICT",
    async make(t, sourceId) {
      const base = await appliedBase(t, textChunks(2, "base"));
      const extended = await extend(t, base, textChunks(1, "first"));
      const { input } = await extensionUpload(base, textChunks(1, "new"), sourceId);
      return { input, extended };
    },
  },
  {
    name: "a reused index with other bytes",
    code: "E_SYNC_CHUNK_CONFLICT",
    async make(t, sourceId) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const newChunks = textChunks(1, "new");
      const { input } = await extensionUpload(base, newChunks, sourceId);
      const other = utf8("not the base's chunk 1");
      const chunks = [base.chunks[0], other, base.chunks[2], ...newChunks];
      const { manifest } = await manifestFor(chunks);
      const conflicting = { index: 1, bytes: other, sha256: await sha256Hex(other) };
      return { input: { ...input, chunks: [conflicting, ...input.chunks], manifest }, base };
    },
  },
];

const badUploadCases: ConformanceCase[] = BAD_EXTENSION_UPLOADS.map((bad) => ({
  name: `extensions: upload: ${bad.name} is refused with ${bad.code} and stores nothing`,
  requires: [EXT, Capability.oneCallUpload],
  async run(t: CaseContext) {
    const sourceId = "upload-ext-bad";
    const { input, base, extended } = await bad.make(t, sourceId);
    await expectSyncError(uploadSource(t, input), bad.code);
    await assertNoSource(t, sourceId, input.scope);
    if (base) {
      await assertListsExactly(t, base, "the base after the refused upload");
      assertEquals(
        (await jobsOf(t, base.source.conversationId, base.source.scope)).map((job) => job.jobId),
        [base.job.jobId],
        "no job but the base's",
      );
      await assertStillExtendable(t, base, "the base after the refused upload");
    }
    if (extended) {
      const stored = await t.adapter.getSource({
        scope: t.scope,
        sourceId: extended.source.sourceId,
      });
      assertEquals(stored, extended.source, "the existing extension is untouched");
      await assertListsExactly(t, extended, "the existing extension");
    }
  },
}));

const uploadCases: ConformanceCase[] = [
  {
    name: "extensions: upload: uploadSource with baseSourceId stores only the new chunks " +
      "and its job starts at k",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const { input, link } = await extensionUpload(base, textChunks(2, "new"), "up-ext");
      const result = await uploadSource(t, input);
      assertEquals(result.appended, [true, true], "only the new chunks were appended");
      assertEquals(result.source.state, "sealed", "source state");
      assertEquals(result.source.base, sourceBaseOf(base), "source base");
      assertEquals(result.source.manifest, input.manifest, "source manifest");
      assertEquals(
        result.source.received,
        { chunkCount: 5, byteCount: input.manifest.byteCount },
        "received",
      );
      assertEquals(result.source.jobId, result.job.jobId, "the source names its job");
      const ext: Link = { ...link, source: result.source };
      assertStartsOnBase(result.job, base, ext, "the upload's job");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "up-ext" }),
        result.source,
        "the stored source is the returned one",
      );
      await assertListsExactly(t, ext, "the uploaded extension");
      await assertListsExactly(t, base, "the base");
      const again = await uploadSource(t, input);
      assertEquals(again.job.jobId, result.job.jobId, "the same call again: the same job");
      assertEquals(again.appended, [false, false], "nothing appended again");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, result.job.jobId),
        expectedApplies(ext.chunks, 3),
        "chunks applied by the upload's job",
      );
      assertVerifiedWhole(await t.job(result.job.jobId), ext, "the upload's job");
      assertEquals(
        (await jobsOf(t, base.source.conversationId)).map((job) => job.jobId),
        [result.job.jobId, base.job.jobId],
        "jobs of the conversation",
      );
    },
  },
  {
    name: "extensions: upload: a reused index re-sent with the base's bytes is not appended",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const { input, link } = await extensionUpload(base, textChunks(1, "new"), "up-reused");
      const reused = { index: 2, bytes: base.chunks[2], sha256: base.digests[2] };
      const result = await uploadSource(t, { ...input, chunks: [reused, ...input.chunks] });
      assertEquals(result.appended, [false, true], "the reused chunk is not appended");
      assertEquals(result.source.state, "sealed", "source state");
      await assertListsExactly(t, { ...link, source: result.source }, "the uploaded extension");
    },
  },
  {
    name: "extensions: upload: a manifest the chunks do not match fails the extension durably",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const newChunks = textChunks(2, "new");
      const { input } = await extensionUpload(base, newChunks, "up-ext-mismatch");
      const { digests } = await manifestFor(newChunks);
      const wrong: Manifest = { ...input.manifest, digest: compositeDigest(digests) };
      const error = await expectSyncError(
        uploadSource(t, { ...input, manifest: wrong }),
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      );
      const failed = await t.adapter.getSource({ scope: t.scope, sourceId: "up-ext-mismatch" });
      assertEquals(failed.state, "failed", "source state");
      assertEquals(failed.error?.code, error.code, "recorded error");
      assertEquals(
        (await jobsOf(t, base.source.conversationId)).map((job) => job.jobId),
        [base.job.jobId],
        "no job but the base's",
      );
      await expectSyncError(uploadSource(t, input), "E_SYNC_SOURCE_NOT_COLLECTING");
      await assertListsExactly(t, base, "the base");
    },
  },
  {
    name: "extensions: upload: a chain of one-call uploads without sourceIds: each link " +
      "starts at its base's count, applies only its new chunks and lists exactly its chunks",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const links: SealedLink[] = [await appliedBase(t, textChunks(3, "link-0"))];
      const conversationId = links[0].source.conversationId;
      for (let m = 1; m <= 5; m++) {
        const previous = links[m - 1];
        const { input, link } = await extensionUpload(previous, linkChunks(m), "unused");
        const { sourceId: _given, ...generated } = input;
        const result = await uploadSource(t, generated);
        assertEquals(result.appended, input.chunks.map(() => true), `link ${m}: appended`);
        assertEquals(result.source.base, sourceBaseOf(previous), `link ${m}: base`);
        const sealed: SealedLink = { ...link, source: result.source, job: result.job };
        assertStartsOnBase(result.job, previous, sealed, `link ${m}'s job`);
        const done = await run(t, sealed);
        assertEquals(
          appliedOf(t, result.job.jobId),
          expectedApplies(link.chunks, previous.chunks.length),
          `link ${m}: chunks applied`,
        );
        assertVerifiedWhole(done.job, sealed, `link ${m}'s job`);
        assertEquals(
          await latestId(t, conversationId),
          result.source.sourceId,
          `latest after link ${m}`,
        );
        const stored = await t.adapter.getSource({
          scope: t.scope,
          sourceId: previous.source.sourceId,
        });
        assertEquals(
          stored.extendedBy,
          result.source.sourceId,
          `link ${m - 1} is extended by link ${m}`,
        );
        links.push(done);
      }
      await assertChainApplied(t, links);
    },
  },
  {
    name: "extensions: upload: racing one-call uploads extending one base: exactly one wins, " +
      "the others are E_SYNC_CHUNK_CONFLICT and store nothing",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const ids = ["race-up-a", "race-up-b", "race-up-c", "race-up-d"];
      const uploads = await Promise.all(
        ids.map((sourceId) => extensionUpload(base, textChunks(1, sourceId), sourceId)),
      );
      const results = await Promise.allSettled(
        uploads.map(({ input }) => uploadSource(t, input)),
      );
      const won = results.flatMap((result, i) => result.status === "fulfilled" ? [i] : []);
      assertEquals(won.length, 1, "uploads that stored an extension");
      const winner = results[won[0]] as PromiseFulfilledResult<UploadSourceResult>;
      for (const [i, result] of results.entries()) {
        if (i === won[0]) continue;
        assert(result.status === "rejected", `racer ${ids[i]} rejected`);
        assertEquals(
          (result.reason as SyncError)?.code,
          "E_SYNC_CHUNK_CONFLICT",
          `racer ${ids[i]}`,
        );
        await assertNoSource(t, ids[i]);
      }
      const ext: SealedLink = {
        ...uploads[won[0]].link,
        source: winner.value.source,
        job: winner.value.job,
      };
      assertStartsOnBase(winner.value.job, base, ext, "the winner's job");
      assertEquals(
        (await jobsOf(t, base.source.conversationId)).map((job) => job.jobId),
        [winner.value.job.jobId, base.job.jobId],
        "jobs of the conversation",
      );
      await t.harness.drain();
      assertEquals(
        appliedOf(t, winner.value.job.jobId),
        expectedApplies(ext.chunks, 3),
        "chunks applied by the winner's job",
      );
      assertVerifiedWhole(await t.job(winner.value.job.jobId), ext, "the winner's job");
      await assertListsExactly(t, ext, "the winner");
      await assertListsExactly(t, base, "the base");
    },
  },
  {
    name: "extensions: upload: while another source's job of the conversation is queued, a " +
      "one-call extension of the applied base supersedes it and applies from 0",
    requires: [EXT, Capability.oneCallUpload],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const other = await seal(
        t,
        await plainSource(t, textChunks(2, "other"), {
          conversationId: base.source.conversationId,
        }),
      );
      t.clock.advance(GAP_MS);
      const { input, link } = await extensionUpload(base, textChunks(2, "new"), "up-ext-over");
      const result = await uploadSource(t, input);
      const ext: SealedLink = { ...link, source: result.source, job: result.job };
      await assertReplacedWhole(t, other.job, ext, "the other source's job");
    },
  },
  ...badUploadCases,
];

// ---------------------------------------------------------------------------------------
// Rule 7: getLatestSource
// ---------------------------------------------------------------------------------------

const latestCases: ConformanceCase[] = [
  {
    name: "extensions: latest: null without a sealed source; another scope or conversation " +
      "sees null",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      assertEquals(await latestId(t, conversationId), null, "a conversation with no source");
      await plainSource(t, textChunks(2, "collecting"), { conversationId });
      assertEquals(await latestId(t, conversationId), null, "only a collecting source");
      const failing = await plainSource(t, textChunks(2, "failing"), { conversationId });
      await expectSyncError(
        t.adapter.sealSource({
          scope: t.scope,
          sourceId: failing.source.sourceId,
          manifest: { ...failing.manifest, byteCount: failing.manifest.byteCount + 1 },
        }),
        "E_SYNC_MANIFEST_MISMATCH",
      );
      assertEquals(await latestId(t, conversationId), null, "only a failed source besides");
      const base = await appliedBase(t, textChunks(2, "base"), { conversationId });
      const found = await latest(t, conversationId);
      assertEquals(found?.sourceId, base.source.sourceId, "the sealed source");
      assertEquals(
        found,
        await t.adapter.getSource({ scope: t.scope, sourceId: base.source.sourceId }),
        "getLatestSource returns the stored source",
      );
      assertEquals(await latestId(t, conversationId, t.otherScope), null, "another scope");
      assertEquals(await latestId(t, t.newConversationId()), null, "another conversation");
      // The other scope's newer source of the same conversation id is its own only.
      const theirs = await appliedBase(t, textChunks(1, "theirs"), {
        scope: t.otherScope,
        conversationId,
      });
      assertEquals(
        await latestId(t, conversationId),
        base.source.sourceId,
        "a newer source in another scope does not count",
      );
      assertEquals(
        await latestId(t, conversationId, t.otherScope),
        theirs.source.sourceId,
        "the other scope's own latest",
      );
    },
  },
  {
    name: "extensions: latest: the newest sealed source of the conversation, whatever its " +
      "job's outcome, and a sealed extension once it exists",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const first = await appliedBase(t, textChunks(2, "first"), { conversationId });
      assertEquals(await latestId(t, conversationId), first.source.sourceId, "one source");
      const second = await appliedBase(t, textChunks(2, "second"), { conversationId });
      assertEquals(await latestId(t, conversationId), second.source.sourceId, "the newer one");
      const ext = await extend(t, second, textChunks(1, "tail"));
      const sealedExt = await run(t, await seal(t, ext));
      assertEquals(
        await latestId(t, conversationId),
        sealedExt.source.sourceId,
        "the sealed extension",
      );
      // A newer source whose job failed is still the newest sealed snapshot.
      const failing = await seal(
        t,
        await plainSource(t, textChunks(2, "failing"), {
          conversationId,
        }),
      );
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === failing.job.jobId) throw nonRetryable(new Error("fatal"));
      });
      assertEquals((await t.runToTerminal(failing.job.jobId)).state, "failed", "its job failed");
      assertEquals(
        await latestId(t, conversationId),
        failing.source.sourceId,
        "a newer sealed source whose job failed",
      );
    },
  },
  {
    name: "extensions: latest: a source whose chunks were purged is not returned",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const base = await appliedBase(t, textChunks(2, "base"), { conversationId });
      assertEquals(await latestId(t, conversationId), base.source.sourceId, "before the purge");
      t.clock.set(base.job.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 2 },
        "gc purges the source",
      );
      assertEquals(await latestId(t, conversationId), null, "after the purge");
      const next = await appliedBase(t, textChunks(2, "next"), { conversationId });
      assertEquals(await latestId(t, conversationId), next.source.sourceId, "a new source");
    },
  },
  {
    name: "extensions: latest: among sources sealed at the same instant, prefers one no " +
      "other source extends; a newer extended source still wins over an older one",
    requires: [EXT],
    async run(t) {
      const conversationId = t.newConversationId();
      const a = await seal(t, await plainSource(t, textChunks(2, "same-a"), { conversationId }));
      const b = await seal(t, await plainSource(t, textChunks(2, "same-b"), { conversationId }));
      assertEquals(a.job.createdAt, b.job.createdAt, "both sealed at the same instant");
      // Extend the one a lookup would meet first (jobs come newest first, then by jobId).
      const [first] = await jobsOf(t, conversationId);
      const [extended, other] = first.jobId === a.job.jobId ? [a, b] : [b, a];
      const tied = await latestId(t, conversationId);
      assert(
        tied === a.source.sourceId || tied === b.source.sourceId,
        "one of the two sources before either is extended",
      );
      await extend(t, extended, textChunks(1, "tail"));
      assertEquals(
        await latestId(t, conversationId),
        other.source.sourceId,
        "the tied source no other source extends",
      );
      // A newer source extended by an upload under way is still the newest snapshot.
      t.clock.advance(GAP_MS);
      const newer = await appliedBase(t, textChunks(2, "newer"), { conversationId });
      await extend(t, newer, textChunks(1, "tail"));
      assertEquals(
        await latestId(t, conversationId),
        newer.source.sourceId,
        "the newest sealed source, though extended",
      );
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 8: supersede and cancel
// ---------------------------------------------------------------------------------------

/** Asserts `job` was superseded by the seal of `ext`. */
function assertSuperseded(job: Job, label: string): void {
  assertEquals(job.state, "cancelled", `${label}: state`);
  assertEquals(job.error?.code, "E_SYNC_JOB_SUPERSEDED", `${label}: error code`);
}

/**
 * Asserts the seal of `ext` superseded the job `replaced` (which then never runs), and
 * that `ext`'s job applies every chunk from 0 and verifies the whole.
 */
async function assertReplacedWhole(
  t: CaseContext,
  replaced: Job,
  ext: SealedLink,
  label: string,
): Promise<void> {
  assertSuperseded(await t.job(replaced.jobId), label);
  assertStartsAtZero(ext.job, ext, "the extension's job");
  await t.harness.drain();
  assertEquals(callsOf(t, replaced.jobId), [], `${label} never ran`);
  assertEquals(
    appliedOf(t, ext.job.jobId),
    expectedApplies(ext.chunks),
    "chunks applied by the extension's job",
  );
  assertVerifiedWhole(await t.job(ext.job.jobId), ext, "the extension's job");
}

const supersedeCases: ConformanceCase[] = [
  {
    name: "extensions: supersede: the seal supersedes the base's queued job; the extension " +
      "applies from 0",
    requires: [EXT],
    async run(t) {
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      t.clock.advance(GAP_MS);
      const ext = await extend(t, base, textChunks(2, "new"));
      await assertReplacedWhole(t, base.job, await seal(t, ext), "the base's job");
    },
  },
  {
    name: "extensions: supersede: the base's job stopped part-way (retry_wait) is superseded; " +
      "the extension applies from 0",
    requires: [EXT],
    async run(t) {
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      t.handler.onApply((chunk, context) => {
        if (context.job.jobId === base.job.jobId && chunk.index === 1) {
          throw new Error("transient");
        }
      });
      await t.harness.drain();
      const waiting = await t.job(base.job.jobId);
      assertEquals([waiting.state, waiting.cursor], ["retry_wait", 1], "the base's job part-way");
      t.clock.advance(GAP_MS);
      const ext = await extend(t, base, textChunks(2, "new"));
      const sealed = await seal(t, ext);
      assertSuperseded(await t.job(base.job.jobId), "the base's job");
      assertStartsAtZero(sealed.job, ext, "the extension's job");
      t.clock.set(Math.max(waiting.runAt, t.clock.now()) + 1);
      await t.harness.drain();
      assertEquals(callsOf(t, base.job.jobId), [0, 1], "the base's job did not run again");
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks),
        "chunks applied by the extension's job",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), ext, "the extension's job");
    },
  },
  {
    name: "extensions: supersede: the base's running job is superseded; the extension " +
      "applies from 0",
    requires: [EXT],
    async run(t) {
      const entered = deferred<void>();
      const gate = deferred<void>();
      let baseJobId = "";
      try {
        t.handler.onApply(async (chunk, context) => {
          if (context.job.jobId === baseJobId && chunk.index === 1) {
            entered.resolve();
            await gate.promise;
          }
        });
        const base = await seal(t, await plainSource(t, textChunks(3, "base")));
        baseJobId = base.job.jobId;
        // Uploaded before the base's job runs: an adapter applying inside a transaction
        // may hold every other write back while the handler is blocked.
        const ext = await extend(t, base, textChunks(2, "new"));
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the base's handler never reached chunk 1");
        t.clock.advance(GAP_MS);
        const sealing = track(seal(t, ext));
        const sealedWhileRunning = await turnsUntil(() => sealing.settled, 50);
        if (!sealedWhileRunning) {
          // Only an adapter applying inside the progress transaction may hold the seal back
          // until the handler's transaction ends.
          assert(
            appliesInTransaction(t),
            "sealSource did not settle while a handler was running (non-transactional apply)",
          );
        }
        gate.resolve();
        const sealed = await settleWithin(sealing.promise, "sealSource of the extension");
        await settleWithin(draining.promise, "drain after the handler was released");
        await t.harness.drain();
        const baseJob = await t.job(base.job.jobId);
        if (sealedWhileRunning) {
          assertSuperseded(baseJob, "the base's job");
          assertStartsAtZero(sealed.job, ext, "the extension's job");
          assert(!callsOf(t, base.job.jobId).includes(2), "the base's job went on after supersede");
        }
        const from = sealed.job.base === undefined ? 0 : base.chunks.length;
        if (baseJob.state !== "succeeded") {
          assertEquals(from, 0, "the extension of an unfinished base applies from 0");
        }
        assertEquals(
          appliedOf(t, sealed.job.jobId),
          expectedApplies(ext.chunks, from),
          "chunks applied by the extension's job",
        );
        assertVerifiedWhole(await t.job(sealed.job.jobId), ext, "the extension's job");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "extensions: cancel: an extension's job cancels like any job; the next link then " +
      "applies from 0",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const baseJob = await t.job(base.job.jobId);
      const first = await seal(t, await extend(t, base, textChunks(1, "first")));
      assertStartsOnBase(first.job, base, first, "the first extension's job");
      const cancelled = await t.adapter.cancelJob({
        scope: t.scope,
        jobId: first.job.jobId,
        reason: "stop",
      });
      assertEquals(cancelled.state, "cancelled", "state");
      assertEquals(cancelled.error?.code, "E_SYNC_JOB_CANCELLED", "error code");
      assertEquals(cancelled.base, jobBaseOf(base), "job.base kept on the cancelled job");
      await t.harness.drain();
      assertEquals(callsOf(t, first.job.jobId), [], "the cancelled job never ran");
      assertEquals(await t.job(first.job.jobId), cancelled, "the cancelled job never changes");
      assertEquals(await t.job(base.job.jobId), baseJob, "the base's job is untouched");
      t.clock.advance(GAP_MS);
      const second = await extend(t, first, textChunks(2, "second"));
      const sealed = await seal(t, second);
      assertStartsAtZero(sealed.job, second, "the next link's job");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(second.chunks),
        "chunks applied by the next link (through both links)",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), second, "the next link's job");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 9: retention and expiry
// ---------------------------------------------------------------------------------------

const gcCases: ConformanceCase[] = [
  {
    name: "extensions: gc: purging a base keeps the chunks its collecting extension needs; " +
      "the extension then applies them all",
    requires: [EXT],
    async run(t) {
      // The base's job fails, so the extension's job must read the reused chunks' bytes.
      const base = await seal(t, await plainSource(t, textChunks(3, "base")));
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === base.job.jobId) throw nonRetryable(new Error("fatal"));
      });
      const baseJob = await t.runToTerminal(base.job.jobId);
      assertEquals(baseJob.state, "failed", "the base's job failed");
      t.handler.onApply(undefined);
      t.clock.set(baseJob.completedAt! + RETENTION_MS - 30 * 60 * 1000);
      const ext = await extend(t, base, textChunks(2, "new"));
      t.clock.set(baseJob.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 0 },
        "gc purges the base but deletes none of the chunks its extension needs",
      );
      const purged = await t.adapter.getSource({ scope: t.scope, sourceId: base.source.sourceId });
      assert(purged.chunksPurgedAt !== undefined, "the base is marked purged");
      assertEquals(await t.adapter.gc(), ZERO_GC, "a second gc");
      await assertListsExactly(t, ext, "the extension after its base was purged");
      const sealed = await seal(t, ext);
      assertStartsAtZero(sealed.job, ext, "the extension's job");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks),
        "chunks applied (the purged base's bytes included)",
      );
      const done = await t.job(sealed.job.jobId);
      assertVerifiedWhole(done, ext, "the extension's job");
      t.clock.set(done.completedAt! + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before the extension's retention");
      t.clock.set(done.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 5 },
        "once the whole chain is purged, every chunk is deleted",
      );
      assertEquals(await t.adapter.gc(), ZERO_GC, "a last gc");
    },
  },
  {
    name: "extensions: gc: purging a base keeps the chunks while its extension's job has not " +
      "ended past retention",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      t.clock.set(base.job.completedAt! + RETENTION_MS - 30 * 60 * 1000);
      const ext = await extend(t, base, textChunks(2, "new"));
      const sealed = await seal(t, ext);
      assertStartsOnBase(sealed.job, base, ext, "the extension's job");
      t.clock.set(base.job.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 0 },
        "gc purges the base, not the chunks of its queued extension",
      );
      await assertListsExactly(t, ext, "the extension after its base was purged");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks, 3),
        "chunks applied by the extension's job",
      );
      const done = await t.job(sealed.job.jobId);
      assertVerifiedWhole(done, ext, "the extension's job");
      t.clock.set(done.completedAt! + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before the extension's retention");
      await assertListsExactly(t, ext, "the extension until its own retention");
      t.clock.set(done.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 5 },
        "gc after the extension's retention deletes every chunk of the chain",
      );
      assertEquals(await t.adapter.gc(), ZERO_GC, "a last gc");
    },
  },
  {
    name: "extensions: gc: when the collecting extension of a purged base expires, every " +
      "chunk of the chain is deleted",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      t.clock.set(base.job.completedAt! + RETENTION_MS - 30 * 60 * 1000);
      const ext = await extend(t, base, textChunks(2, "new"));
      t.clock.set(base.job.completedAt! + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 0 },
        "gc purges the base, keeping the chunks of its collecting extension",
      );
      t.clock.set(ext.source.expiresAt + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 0, deletedChunks: 5 },
        "the extension expires: the last user of the chunks, it takes them all",
      );
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: ext.source.sourceId })).state,
        "expired",
        "the extension's state",
      );
      t.clock.advance(RETENTION_MS + 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "nothing left for a later gc");
    },
  },
  {
    name: "extensions: gc: an expired collecting extension loses only its own chunks; the " +
      "base lists its chunks and can be extended again",
    requires: [EXT],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const doomed = await extend(t, base, ["doomed-3", "doomed-4"].map(utf8), {
        sourceId: "ext-doomed",
      });
      t.clock.set(doomed.source.expiresAt + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 0, deletedChunks: 2 },
        "gc expires the extension and deletes its 2 own chunks",
      );
      const expired = await t.adapter.getSource({ scope: t.scope, sourceId: "ext-doomed" });
      assertEquals(expired.state, "expired", "the extension's state");
      await expectSyncError(
        append(t, "ext-doomed", 5, utf8("late")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      await assertListsExactly(t, base, "the base after its extension expired");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: base.source.sourceId }))
          .chunksPurgedAt,
        undefined,
        "the base is not purged",
      );
      assertEquals(await latestId(t, base.source.conversationId), base.source.sourceId, "latest");
      // Another extension reuses the base and stores other bytes at the same indexes.
      t.clock.advance(GAP_MS);
      const again = await extend(t, base, ["again-3"].map(utf8), { sourceId: "ext-again" });
      assertEquals(again.source.base, sourceBaseOf(base), "the new extension's base");
      await assertListsExactly(t, again, "the new extension");
      const sealed = await seal(t, again);
      assertStartsOnBase(sealed.job, base, again, "the new extension's job");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(again.chunks, 3),
        "chunks applied by the new extension",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), again, "the new extension's job");
      await assertListsExactly(t, base, "the base at the end");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 10: durability
// ---------------------------------------------------------------------------------------

const durabilityCases: ConformanceCase[] = [
  {
    name: "extensions: durability: an extension and its base link survive a restart; its job " +
      "then starts at k",
    requires: [EXT, Capability.durable],
    hooks: ["restart"],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const newChunks = textChunks(2, "new");
      const created = await createExtension(t, base, { sourceId: "ext-durable" });
      await append(t, created.sourceId, 3, newChunks[0]);
      const extBefore = await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId });
      const baseBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: base.source.sourceId,
      });
      const baseJob = await t.job(base.job.jobId);
      await t.restart();
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId }),
        extBefore,
        "the extension after restart",
      );
      assertEquals(extBefore.base, sourceBaseOf(base), "its base");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: base.source.sourceId }),
        baseBefore,
        "the base after restart",
      );
      assertEquals(await t.job(base.job.jobId), baseJob, "the base's job after restart");
      const chunks = [...base.chunks, ...newChunks];
      const { manifest, digests } = await manifestFor(chunks);
      const ext: Link = { source: extBefore, chunks, digests, manifest };
      const partial = await listAllChunks(t, created.sourceId);
      assertEquals(partial.items, infosOf(ext, 4), "the extension's chunks after restart");
      await assertListsExactly(t, base, "the base after restart");
      const conflict = await expectSyncError(
        createExtension(t, base, { sourceId: "ext-rival" }),
        "E_SYNC_CHUNK_CONFLICT",
      );
      assertEquals(conflict.details?.extendedBy, created.sourceId, "extendedBy after restart");
      assertEquals((await append(t, created.sourceId, 3, newChunks[0])).appended, false, "3");
      assertEquals((await append(t, created.sourceId, 4, newChunks[1])).appended, true, "4");
      t.clock.advance(GAP_MS);
      const sealed = await seal(t, ext);
      assertStartsOnBase(sealed.job, base, ext, "the extension's job after restart");
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(chunks, 3),
        "chunks applied by the extension's job",
      );
      assertVerifiedWhole(await t.job(sealed.job.jobId), ext, "the extension's job");
    },
  },
  {
    name: "extensions: durability: an extension's job interrupted mid-way resumes after a " +
      "restart, still on its base",
    requires: [EXT, Capability.durable],
    hooks: ["restart"],
    async run(t) {
      const base = await appliedBase(t, textChunks(3, "base"));
      const ext = await extend(t, base, textChunks(3, "new"));
      let failed = false;
      const seen = recordContexts(t, (index) => {
        if (index === 4 && !failed) {
          failed = true;
          throw new Error("interrupted");
        }
      });
      const sealed = await seal(t, ext);
      assertStartsOnBase(sealed.job, base, ext, "the extension's job");
      await t.harness.drain();
      const before = await t.job(sealed.job.jobId);
      assertEquals([before.state, before.cursor], ["retry_wait", 4], "progress before restart");
      assertEquals(before.base, jobBaseOf(base), "job.base before restart");
      await t.restart();
      assertEquals(await t.job(sealed.job.jobId), before, "the job after restart");
      t.clock.set(before.runAt);
      await t.harness.drain();
      assertEquals(
        appliedOf(t, sealed.job.jobId),
        expectedApplies(ext.chunks, 3),
        "each new chunk applied once across the restart",
      );
      for (const context of seen.filter((c) => c.jobId === sealed.job.jobId)) {
        assertEquals(context.base, jobBaseOf(base), `ctx.base of chunk ${context.index}`);
      }
      const done = await t.job(sealed.job.jobId);
      assertVerifiedWhole(done, ext, "the extension's job");
      assertEquals(done.base, jobBaseOf(base), "job.base of the terminal job");
    },
  },
];

// ---------------------------------------------------------------------------------------
// Rule 11: chains
// ---------------------------------------------------------------------------------------

/** New chunks of chain link `m` (1-based): 1 or 2 chunks. */
function linkChunks(m: number): Uint8Array[] {
  return textChunks(1 + (m % 2), `link-${m}`);
}

const chainCases: ConformanceCase[] = [
  {
    name: "extensions: chain: six links each upload only their new chunks, start at their " +
      "base's count and list exactly their chunks",
    requires: [EXT],
    async run(t) {
      const links: SealedLink[] = [await appliedBase(t, textChunks(3, "link-0"))];
      const conversationId = links[0].source.conversationId;
      for (let m = 1; m <= 5; m++) {
        const previous = links[m - 1];
        const created = await createExtension(t, previous, { sourceId: `link-${m}` });
        assertEquals(
          created.received,
          { chunkCount: previous.chunks.length, byteCount: bytesOf(previous.chunks) },
          `link ${m}: received the previous link's chunks without an upload`,
        );
        assertEquals(created.base, sourceBaseOf(previous), `link ${m}: base`);
        const newChunks = linkChunks(m);
        const chunks = [...previous.chunks, ...newChunks];
        let appends = 0;
        for (let index = previous.chunks.length; index < chunks.length; index++) {
          assert((await append(t, created.sourceId, index, chunks[index])).appended, "appended");
          appends++;
        }
        assertEquals(appends, newChunks.length, `link ${m}: appendChunk calls`);
        const { manifest, digests } = await manifestFor(chunks);
        const link: Link = {
          source: await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId }),
          chunks,
          digests,
          manifest,
        };
        const sealed = await seal(t, link);
        assertStartsOnBase(sealed.job, previous, link, `link ${m}'s job`);
        const done = await run(t, sealed);
        assertEquals(
          appliedOf(t, sealed.job.jobId),
          expectedApplies(chunks, previous.chunks.length),
          `link ${m}: chunks applied`,
        );
        assertVerifiedWhole(done.job, link, `link ${m}'s job`);
        assertEquals(await latestId(t, conversationId), `link-${m}`, `latest after link ${m}`);
        links.push(done);
      }
      assertEquals(links[5].chunks.length, 3 + 2 + 1 + 2 + 1 + 2, "chunks of the last link");
      await assertChainApplied(t, links);
    },
  },
  {
    name: "extensions: chain: after a link's job is cancelled, the next link applies from 0 " +
      "through the whole chain, and the one after starts at its base's count",
    requires: [EXT],
    async run(t) {
      const links: SealedLink[] = [await appliedBase(t, textChunks(3, "link-0"))];
      for (let m = 1; m <= 5; m++) {
        const previous = links[m - 1];
        const link = await extend(t, previous, linkChunks(m), { sourceId: `link-${m}` });
        const sealed = await seal(t, link);
        if (m === 3) {
          // Link 3 is never applied: its job is cancelled.
          assertStartsOnBase(sealed.job, previous, link, "link 3's job");
          const cancelled = await t.adapter.cancelJob({ scope: t.scope, jobId: sealed.job.jobId });
          assertEquals(cancelled.state, "cancelled", "link 3's job cancelled");
          t.clock.advance(GAP_MS);
          links.push({ ...sealed, job: cancelled });
          continue;
        }
        if (m === 4) assertStartsAtZero(sealed.job, link, "link 4's job");
        else assertStartsOnBase(sealed.job, previous, link, `link ${m}'s job`);
        const done = await run(t, sealed);
        assertEquals(
          appliedOf(t, sealed.job.jobId),
          expectedApplies(link.chunks, m === 4 ? 0 : previous.chunks.length),
          `link ${m}: chunks applied`,
        );
        assertVerifiedWhole(done.job, link, `link ${m}'s job`);
        links.push(done);
      }
      for (const [m, link] of links.entries()) {
        await assertListsExactly(t, link, `link ${m} at the end`);
      }
    },
  },
  {
    name: "extensions: gc: an ended chain is purged link by link; its chunks are deleted once " +
      "the last link is purged",
    requires: [EXT],
    async run(t) {
      const links: SealedLink[] = [await appliedBase(t, textChunks(3, "link-0"))];
      for (let m = 1; m <= 5; m++) {
        // An hour between links: each link's job ends an hour after the previous one's.
        t.clock.advance(60 * 60 * 1000 - GAP_MS);
        const link = await extend(t, links[m - 1], linkChunks(m), { sourceId: `link-${m}` });
        links.push(await run(t, await seal(t, link)));
      }
      const total = links[5].chunks.length;
      const endOf = (m: number) => links[m].job.completedAt!;
      t.clock.set(endOf(0) + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before any link's retention");
      t.clock.set(endOf(1) + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 2, deletedChunks: 0 },
        "gc purges the first two links, deleting nothing the later links need",
      );
      await assertListsExactly(t, links[5], "the last link");
      t.clock.set(endOf(4) + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 3, deletedChunks: 0 },
        "gc purges three more links",
      );
      assertEquals(await latestId(t, links[0].source.conversationId), "link-5", "latest");
      t.clock.set(endOf(5) + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: total },
        "gc purges the last link and deletes every chunk of the chain once",
      );
      assertEquals(await t.adapter.gc(), ZERO_GC, "a last gc");
      assertEquals(await latestId(t, links[0].source.conversationId), null, "latest at the end");
    },
  },
];

/** Every extension case. */
export const extensionCases: readonly ConformanceCase[] = [
  ...createCases,
  ...appendCases,
  ...listCases,
  ...sealCases,
  ...jobCases,
  ...uploadCases,
  ...latestCases,
  ...supersedeCases,
  ...gcCases,
  ...durabilityCases,
  ...chainCases,
];
