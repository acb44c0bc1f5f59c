/**
 * Cases `gc:`: garbage collection — collecting sources expire after their TTL, chunks of
 * ended sources are purged after retention, each pass bounded and counted.
 *
 * @module
 */

import type { GcReport, Manifest, Source } from "../../src/contracts/domain.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { chunkCount, RETENTION_MS, SOURCE_TTL_MS, ZERO_GC } from "./support.ts";

const gcList: ConformanceCase[] = [
  {
    name: "gc: a collecting source past its TTL expires and its chunks are deleted",
    hooks: ["chunkCount"],
    async run(t) {
      const t0 = t.clock.now();
      const { source } = await t.upload(textChunks(3, "ttl"));
      assertEquals(source.expiresAt, t0 + SOURCE_TTL_MS, "expiresAt = createdAt + TTL");
      t.clock.set(t0 + SOURCE_TTL_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before the TTL");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId })).state,
        "collecting",
        "state before the TTL",
      );
      assertEquals(await chunkCount(t, source.sourceId), 3, "chunks before the TTL");
      t.clock.set(t0 + SOURCE_TTL_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 0, deletedChunks: 3 },
        "gc after the TTL",
      );
      const expired = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(expired.state, "expired", "state after the TTL");
      assertEquals(await chunkCount(t, source.sourceId), 0, "chunks after the TTL");
      const late = textChunks(1, "late");
      await expectSyncError(
        t.adapter.appendChunk({
          scope: t.scope,
          sourceId: source.sourceId,
          index: 3,
          bytes: late[0],
          sha256: (await manifestFor(late)).digests[0],
        }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      assertEquals(await t.adapter.gc(), ZERO_GC, "a second gc");
      t.clock.advance(RETENTION_MS + 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc after retention (nothing left)");
    },
  },
  {
    name: "gc: a finished job's chunks are purged only after retention, records stay",
    hooks: ["chunkCount"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(3, "retention"));
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "state");
      const endedAt = done.completedAt!;
      t.clock.set(endedAt + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before retention (sealed: no expiry)");
      assertEquals(await chunkCount(t, sealed.source.sourceId), 3, "chunks before retention");
      const sourceBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: sealed.source.sourceId,
      });
      t.clock.set(endedAt + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 3 },
        "gc after retention",
      );
      assertEquals(await chunkCount(t, sealed.source.sourceId), 0, "chunks after retention");
      const sourceAfter = await t.adapter.getSource({
        scope: t.scope,
        sourceId: sealed.source.sourceId,
      });
      assertEquals(sourceAfter.state, "sealed", "source state after purge");
      assertEquals(sourceAfter.manifest, sourceBefore.manifest, "manifest after purge");
      assertEquals(sourceAfter.jobId, done.jobId, "jobId after purge");
      assertEquals(await t.job(done.jobId), done, "job after purge");
      assertEquals(await t.adapter.gc(), ZERO_GC, "a second gc");
    },
  },
  {
    name: "gc: failed and cancelled jobs are purged after retention, active ones never",
    hooks: ["chunkCount"],
    async run(t) {
      const failing = await t.uploadAndSeal(textChunks(2, "failing"));
      const cancelled = await t.uploadAndSeal(textChunks(3, "cancelled"));
      await t.adapter.cancelJob({ scope: t.scope, jobId: cancelled.job.jobId });
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === failing.job.jobId) throw nonRetryable(new Error("fatal"));
      });
      await t.harness.drain();
      assertEquals((await t.job(failing.job.jobId)).state, "failed", "failing job state");
      const endedAt = t.clock.now();
      const active = await t.uploadAndSeal(textChunks(4, "active"));
      t.clock.set(endedAt + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before retention");
      t.clock.set(endedAt + RETENTION_MS + SOURCE_TTL_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 2, deletedChunks: 5 },
        "gc after retention",
      );
      assertEquals(await chunkCount(t, failing.source.sourceId), 0, "failed job's chunks");
      assertEquals(await chunkCount(t, cancelled.source.sourceId), 0, "cancelled job's chunks");
      assertEquals(await chunkCount(t, active.source.sourceId), 4, "queued job's chunks kept");
      await t.harness.drain();
      const done = await t.job(active.job.jobId);
      assertEquals(done.state, "succeeded", "the queued job still runs after gc");
      assertEquals(done.appliedBytes, active.manifest.byteCount, "its appliedBytes");
    },
  },
  {
    name: "gc: a source whose seal failed is purged after retention",
    hooks: ["chunkCount"],
    async run(t) {
      const up = await t.upload(textChunks(2, "bad-seal"));
      const wrong: Manifest = { ...up.manifest, digest: "0".repeat(64) };
      await expectSyncError(
        t.adapter.sealSource({ scope: t.scope, sourceId: up.source.sourceId, manifest: wrong }),
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      );
      const failedAt = t.clock.now();
      const failed = await t.adapter.getSource({ scope: t.scope, sourceId: up.source.sourceId });
      assertEquals(failed.state, "failed", "source state");
      t.clock.set(failedAt + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before retention");
      assertEquals(await chunkCount(t, up.source.sourceId), 2, "chunks before retention");
      t.clock.set(failedAt + RETENTION_MS + 1);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 1, deletedChunks: 2 },
        "gc after retention",
      );
      assertEquals(await chunkCount(t, up.source.sourceId), 0, "chunks after retention");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: up.source.sourceId });
      assertEquals(after.state, "failed", "source state after purge");
      assertEquals(after.error?.code, failed.error?.code, "recorded error after purge");
      assertEquals(await t.adapter.gc(), ZERO_GC, "a second gc");
    },
  },
  {
    name: "gc: the limit is validated and bounds each pass",
    async run(t) {
      for (const limit of [0, -1, 1.5, Number.NaN, "5"]) {
        await expectSyncError(
          () => t.adapter.gc({ limit } as { limit: number }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      await expectSyncError(
        () => t.adapter.gc({ bogus: 1 } as unknown as { limit: number }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      const t0 = t.clock.now();
      for (let i = 0; i < 3; i++) await t.upload(textChunks(i + 1, `bounded-${i}`));
      t.clock.set(t0 + SOURCE_TTL_MS + 1);
      const first = await t.adapter.gc({ limit: 1 });
      assertEquals(first.expiredSources, 1, "sources expired by a pass of limit 1");
      const total = { ...first };
      for (let pass = 0; pass < 10; pass++) {
        const report = await t.adapter.gc({ limit: 1 });
        assert(report.expiredSources <= 1, `pass ${pass + 2} expired more than the limit`);
        if (report.expiredSources === 0) break;
        total.expiredSources += report.expiredSources;
        total.deletedChunks += report.deletedChunks;
      }
      assertEquals(total.expiredSources, 3, "sources expired in all");
      assertEquals(total.deletedChunks, 1 + 2 + 3, "chunks deleted in all");
    },
  },
  {
    name: "gc: each phase (expiry, purge) honours limit; its counts match what it deleted",
    hooks: ["chunkCount"],
    async run(t) {
      const expiring: Source[] = [];
      for (const n of [1, 2, 3]) expiring.push((await t.upload(textChunks(n, `exp-${n}`))).source);
      const purging: Source[] = [];
      for (const n of [2, 3, 4]) {
        const sealed = await t.uploadAndSeal(textChunks(n, `pur-${n}`));
        purging.push(sealed.source);
        assertEquals((await t.runToTerminal(sealed.job.jobId)).state, "succeeded", "job state");
      }
      const all = [...expiring, ...purging];
      const stored = async () => {
        let sum = 0;
        for (const source of all) sum += await chunkCount(t, source.sourceId);
        return sum;
      };
      assertEquals(await stored(), 6 + 9, "chunks stored before gc");
      t.clock.advance(Math.max(SOURCE_TTL_MS, RETENTION_MS) + 1);
      const total = { ...ZERO_GC };
      const passes: GcReport[] = [];
      for (let pass = 0; pass < 10; pass++) {
        const before = await stored();
        const report = await t.adapter.gc({ limit: 2 });
        passes.push(report);
        assert(report.expiredSources <= 2, `pass ${pass + 1} expired ${report.expiredSources} > 2`);
        assert(report.purgedSources <= 2, `pass ${pass + 1} purged ${report.purgedSources} > 2`);
        assertEquals(
          report.deletedChunks,
          before - await stored(),
          `pass ${pass + 1}: deletedChunks = chunks it deleted`,
        );
        if (report.expiredSources + report.purgedSources === 0) break;
        total.expiredSources += report.expiredSources;
        total.purgedSources += report.purgedSources;
        total.deletedChunks += report.deletedChunks;
      }
      assertEquals(
        [passes[0].expiredSources, passes[0].purgedSources],
        [2, 2],
        "the first pass does as much as its limit allows in each phase",
      );
      assertEquals(total, { expiredSources: 3, purgedSources: 3, deletedChunks: 15 }, "in all");
      assertEquals(await stored(), 0, "chunks left");
      for (const source of expiring) {
        const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
        assertEquals(read.state, "expired", `state of ${source.sourceId}`);
      }
      for (const source of purging) {
        const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
        assertEquals(read.state, "sealed", `state of ${source.sourceId} (records stay)`);
      }
    },
  },
];

/** Garbage-collection cases. */
export const gcCases: readonly ConformanceCase[] = [
  ...gcList,
];
