/**
 * Cases `scope:`: a record of another scope answers exactly like a missing one, and
 * records of different scopes never touch each other.
 *
 * @module
 */

import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor, utf8 } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  assertSameAsMissing,
  createSource,
  MISSING_JOB,
  MISSING_SOURCE,
  RETENTION_MS,
  SOURCE_TTL_MS,
  storedChunk,
  storedChunkCount,
  within,
} from "./support.ts";

const scopeList: ConformanceCase[] = [
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
  {
    name: "scope: ids that collide once scope and id are joined stay distinct records",
    async run(t) {
      const separators = ["", ":", "/", "|", ".", "-"];
      for (const [i, sep] of separators.entries()) {
        const label = `separator ${JSON.stringify(sep)}`;
        const left = { scope: `k${i}${sep}x`, sourceId: "y" };
        const right = { scope: `k${i}`, sourceId: `x${sep}y` };
        await t.adapter.createSource({ ...left, conversationId: `left-${i}` });
        const created = await t.adapter.createSource({ ...right, conversationId: `right-${i}` });
        assertEquals(
          [created.scope, created.sourceId, created.conversationId, created.received.chunkCount],
          [right.scope, right.sourceId, `right-${i}`, 0],
          `${label}: the second source is new`,
        );
        const leftChunks = [utf8(`left-${i}`)];
        const rightChunks = [utf8(`right-${i}-0`), utf8(`right-${i}-1`)];
        await append(t, left.sourceId, 0, leftChunks[0], { scope: left.scope });
        for (const [index, bytes] of rightChunks.entries()) {
          await append(t, right.sourceId, index, bytes, { scope: right.scope });
        }
        const readLeft = await t.adapter.getSource(left);
        const readRight = await t.adapter.getSource(right);
        assertEquals(
          [readLeft.conversationId, readLeft.received.chunkCount],
          [`left-${i}`, 1],
          `${label}: the first source`,
        );
        assertEquals(
          [readRight.conversationId, readRight.received.chunkCount],
          [`right-${i}`, 2],
          `${label}: the second source`,
        );
        const leftManifest = await manifestFor(leftChunks);
        const rightManifest = await manifestFor(rightChunks);
        assertEquals(
          (await t.adapter.listChunks(left)).items.map((chunk) => chunk.sha256),
          leftManifest.digests,
          `${label}: chunks of the first source`,
        );
        assertEquals(
          (await t.adapter.listChunks(right)).items.map((chunk) => chunk.sha256),
          rightManifest.digests,
          `${label}: chunks of the second source`,
        );
        const { job } = await t.adapter.sealSource({ ...left, manifest: leftManifest.manifest });
        assertEquals(job.scope, left.scope, `${label}: the job's scope`);
        assertEquals(
          (await t.adapter.getSource(right)).state,
          "collecting",
          `${label}: sealing the first source leaves the second collecting`,
        );
        assertEquals(
          (await t.adapter.listJobs({ scope: right.scope })).items,
          [],
          `${label}: jobs of the second scope`,
        );
        const sealed = await t.adapter.sealSource({ ...right, manifest: rightManifest.manifest });
        assertEquals(sealed.job.totalChunks, 2, `${label}: the second source seals on its own`);
      }
    },
  },
  {
    name:
      "scope: gc and chunk deletion in one scope never touch another scope's source of the same id",
    hooks: ["chunkCount"],
    async run(t) {
      const t0 = t.clock.now();
      const other = t.otherScope;
      // Expiry: the same id in both scopes, the other scope's created half a TTL later.
      await t.upload(textChunks(2, "mine-ttl"), { sourceId: "twin-ttl" });
      t.clock.set(t0 + SOURCE_TTL_MS / 2);
      await t.upload(textChunks(3, "theirs-ttl"), { scope: other, sourceId: "twin-ttl" });
      t.clock.set(t0 + SOURCE_TTL_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 0, deletedChunks: 2 },
        "gc past my source's TTL",
      );
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: "twin-ttl" })).state,
        "expired",
        "my source expired",
      );
      assertEquals(await storedChunkCount(t, "twin-ttl"), 0, "my chunks deleted");
      assertEquals(await storedChunkCount(t, "twin-ttl", other), 3, "their chunks kept");
      const late = await append(t, "twin-ttl", 3, utf8("theirs-late"), { scope: other });
      assertEquals(late.source.state, "collecting", "their source still takes chunks");
      // Retention: the same id sealed in both scopes, theirs ending half a retention later.
      const mine = await t.uploadAndSeal(textChunks(2, "mine-done"), { sourceId: "twin-done" });
      const mineDone = await t.runToTerminal(mine.job.jobId);
      t.clock.set(mineDone.completedAt! + RETENTION_MS / 2);
      const theirs = await t.uploadAndSeal(textChunks(3, "theirs-done"), {
        scope: other,
        sourceId: "twin-done",
      });
      assertEquals((await t.runToTerminal(theirs.job.jobId, other)).state, "succeeded", "theirs");
      t.clock.set(mineDone.completedAt! + RETENTION_MS + 1);
      // Their collecting source is past its TTL by now: it expires, on its own.
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 1, deletedChunks: 4 + 2 },
        "gc past my job's retention",
      );
      assertEquals(await storedChunkCount(t, "twin-done"), 0, "my purged chunks");
      assertEquals(await storedChunkCount(t, "twin-done", other), 3, "their sealed chunks kept");
      assertEquals(
        (await t.adapter.listChunks({ scope: other, sourceId: "twin-done" })).items.length,
        3,
        "their sealed source still lists its chunks",
      );
    },
  },
];

/** Scope cases. */
export const scopeCases: readonly ConformanceCase[] = [
  ...scopeList,
];
