/**
 * Cases `time:`: the exact instant a deadline names counts as reached, the same way in
 * every operation — a source's `expiresAt` (gc, append, seal, upload), the end of
 * retention (gc), a lease's `expiresAt` (claim) — and one millisecond before, not yet.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import { Capability } from "../../src/contracts/capabilities.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor, utf8 } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  LEASE_MS,
  newWorker,
  RETENTION_MS,
  SOURCE_TTL_MS,
  storedChunkCount,
  ZERO_GC,
} from "./support.ts";

const timeList: ConformanceCase[] = [
  {
    name: "time: a collecting source expires at exactly expiresAt, in gc, append and seal alike",
    hooks: ["chunkCount"],
    async run(t) {
      const t0 = t.clock.now();
      const byGc = await t.upload(textChunks(2, "ttl-gc"));
      const byAppend = await t.upload(textChunks(1, "ttl-append"));
      const bySeal = await t.upload(textChunks(1, "ttl-seal"));
      for (const up of [byGc, byAppend, bySeal]) {
        assertEquals(up.source.expiresAt, t0 + SOURCE_TTL_MS, "fixture: one expiresAt for all");
      }
      const expiresAt = t0 + SOURCE_TTL_MS;
      t.clock.set(expiresAt - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc 1 ms before expiresAt");
      const early = await append(t, byAppend.source.sourceId, 1, utf8("1 ms early"));
      assertEquals(early.appended, true, "append 1 ms before expiresAt");
      t.clock.set(expiresAt);
      await expectSyncError(
        () => append(t, byAppend.source.sourceId, 2, utf8("at expiresAt")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      await expectSyncError(
        () =>
          t.adapter.sealSource({
            scope: t.scope,
            sourceId: bySeal.source.sourceId,
            manifest: bySeal.manifest,
          }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      // Append and seal expired their sources durably: gc finds only the third one.
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 1, purgedSources: 0, deletedChunks: 2 },
        "gc at expiresAt",
      );
      for (const up of [byGc, byAppend, bySeal]) {
        const source = await t.adapter.getSource({ scope: t.scope, sourceId: up.source.sourceId });
        assertEquals(source.state, "expired", `state of ${up.source.sourceId}`);
        assertEquals(
          await storedChunkCount(t, up.source.sourceId),
          0,
          `chunks of ${up.source.sourceId}`,
        );
      }
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items, [], "no job");
    },
  },
  {
    name:
      "time: uploadSource resuming a source at exactly expiresAt is refused; the source expires",
    requires: [Capability.oneCallUpload],
    hooks: ["chunkCount"],
    async run(t) {
      const chunks = textChunks(2, "ttl-upload");
      const { source } = await t.upload(chunks.slice(0, 1), { sourceId: "upload-at-ttl" });
      const input = {
        scope: t.scope,
        conversationId: source.conversationId,
        sourceId: source.sourceId,
        chunks: await Promise.all(
          chunks.map(async (bytes, index) => ({ index, bytes, sha256: await sha256Hex(bytes) })),
        ),
        manifest: (await manifestFor(chunks)).manifest,
      };
      t.clock.set(source.expiresAt);
      const upload = t.adapter.uploadSource;
      assert(upload, "an adapter declaring one-call-upload must provide uploadSource");
      await expectSyncError(() => upload.call(t.adapter, input), "E_SYNC_SOURCE_EXPIRED");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "expired", "the refused upload expired the source durably");
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "its chunks are deleted");
      assertEquals(await t.adapter.gc(), ZERO_GC, "nothing left for gc");
    },
  },
  {
    name:
      "time: retention ends at exactly completedAt + retentionMs (or a failed seal's + retention)",
    hooks: ["chunkCount"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "retention-job"));
      const done = await t.runToTerminal(sealed.job.jobId);
      const endedAt = done.completedAt!;
      t.clock.set(endedAt);
      const failing = await t.upload(textChunks(3, "retention-seal"));
      await expectSyncError(
        () =>
          t.adapter.sealSource({
            scope: t.scope,
            sourceId: failing.source.sourceId,
            manifest: { ...failing.manifest, digest: "0".repeat(64) },
          }),
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      );
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: failing.source.sourceId }))
          .updatedAt,
        endedAt,
        "fixture: the seal failed when the job ended",
      );
      t.clock.set(endedAt + RETENTION_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc 1 ms before retention ends");
      assertEquals(await storedChunkCount(t, sealed.source.sourceId), 2, "job's chunks kept");
      t.clock.set(endedAt + RETENTION_MS);
      assertEquals(
        await t.adapter.gc(),
        { expiredSources: 0, purgedSources: 2, deletedChunks: 5 },
        "gc when retention ends",
      );
      assertEquals(await storedChunkCount(t, sealed.source.sourceId), 0, "job's chunks purged");
      assertEquals(await storedChunkCount(t, failing.source.sourceId), 0, "failed chunks purged");
    },
  },
  {
    name: "time: a lease is claimable at exactly its expiresAt, not 1 ms before",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "lease-instant"));
      const claimed = await newWorker(t, "a").claimNextJob();
      assert(claimed?.lease !== undefined, "worker A claims the job");
      const expiresAt = claimed.lease.expiresAt;
      assertEquals(expiresAt, t.clock.now() + LEASE_MS, "lease expiry = claim time + leaseMs");
      const b = newWorker(t, "b");
      t.clock.set(expiresAt - 1);
      assertEquals(await b.claimNextJob(), undefined, "claim 1 ms before the lease expires");
      assertEquals(await t.job(sealed.job.jobId), claimed, "the job is still A's");
      t.clock.set(expiresAt);
      const taken = await b.claimNextJob();
      assertEquals(taken?.jobId, sealed.job.jobId, "claim at the lease's expiresAt");
      assertEquals(taken?.lease?.owner, "b", "the new lease's owner");
      assert(taken!.lease!.token > claimed.lease.token, "the new lease's token is above A's");
      assertEquals(taken?.attempt, 1, "A's abandoned step counts as one attempt");
      assertEquals(taken?.error?.code, "E_SYNC_LEASE_LOST", "recorded for A's step");
      assertEquals(await b.runClaimedJob(taken!).then((job) => job.state), "succeeded", "B runs");
    },
  },
];

/** Time-boundary cases. */
export const timeCases: readonly ConformanceCase[] = timeList;
