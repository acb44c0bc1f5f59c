/**
 * Cases `concurrency:`: several workers and racing calls on one store.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import type { Job } from "../../src/contracts/domain.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { appendParallel, appliedByJob, ids, newWorker, nextTurn, runAtMost } from "./support.ts";

const concurrencyList: ConformanceCase[] = [
  {
    name: "concurrency: three workers apply every chunk of ten jobs exactly once",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const jobs: Job[] = [];
      for (let i = 0; i < 10; i++) {
        jobs.push((await t.uploadAndSeal(textChunks(3, `concurrent-${i}`))).job);
      }
      // Each apply yields, so the workers interleave.
      t.handler.onApply(() => nextTurn());
      const workers = ["w1", "w2", "w3"].map((owner) => newWorker(t, owner));
      // Bounded (not runDueJobs), so an adapter whose workers steal leases from each
      // other fails this case instead of looping forever.
      const runs = await Promise.all(workers.map((worker) => runAtMost(worker, 40)));
      assertEquals(runs.reduce((sum, n) => sum + n, 0), 10, "job runs in all");
      const byJob = appliedByJob(t);
      for (const job of jobs) {
        assertEquals((await t.job(job.jobId)).state, "succeeded", `state of ${job.jobId}`);
        assertEquals(byJob.get(job.jobId), [0, 1, 2], `chunks applied for ${job.jobId}`);
      }
      assertEquals(t.handler.calls.length, 30, "apply calls in all");
      assertEquals(await t.harness.drain(), undefined, "drain");
      assertEquals(t.handler.calls.length, 30, "apply calls after a drain");
    },
  },
  {
    name: "concurrency: racing claims hand a due job to exactly one worker",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(1, "claim-race"));
      const workers = ["c1", "c2", "c3", "c4", "c5"].map((owner) => newWorker(t, owner));
      const claims = await Promise.all(workers.map((worker) => worker.claimNextJob()));
      const winners = claims.filter((job) => job !== undefined);
      assertEquals(winners.length, 1, "workers that claimed the job");
      const stored = await t.job(sealed.job.jobId);
      assertEquals(stored.lease, winners[0]!.lease, "the stored lease is the winner's");
    },
  },
  {
    name: "concurrency: eight parallel appends of distinct indexes are all stored",
    async run(t) {
      const chunks = textChunks(8, "parallel");
      const { manifest, digests } = await manifestFor(chunks);
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
      });
      const order = [5, 2, 7, 0, 3, 6, 1, 4];
      assertEquals(
        await appendParallel(t, source.sourceId, chunks, digests, order),
        Array(8).fill(true),
        "every append stored a chunk",
      );
      const stored = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        stored.received,
        { chunkCount: 8, byteCount: manifest.byteCount },
        "received counters",
      );
      const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        listed.items.map((chunk) => [chunk.index, chunk.sha256]),
        digests.map((digest, index) => [index, digest]),
        "stored chunks",
      );
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      await t.harness.drain();
      assertEquals((await t.job(job.jobId)).state, "succeeded", "job state");
      assertEquals(t.handler.applied.map((call) => call.bytes), chunks, "applied bytes");
    },
  },
  {
    name: "concurrency: racing appends of one index store exactly one chunk",
    async run(t) {
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
      });
      const same = textChunks(1, "same");
      const sameDigest = (await manifestFor(same)).digests[0];
      const results = await Promise.all(
        Array.from({ length: 4 }, () =>
          t.adapter.appendChunk({
            scope: t.scope,
            sourceId: source.sourceId,
            index: 0,
            bytes: same[0],
            sha256: sameDigest,
          })),
      );
      assertEquals(
        results.filter((result) => result.appended).length,
        1,
        "appends of the same chunk that stored it",
      );
      const rivals = [textChunks(1, "rival-a")[0], textChunks(1, "rival-b")[0]];
      const rivalDigests = (await manifestFor(rivals)).digests;
      const raced = await Promise.allSettled(rivals.map((bytes, i) =>
        t.adapter.appendChunk({
          scope: t.scope,
          sourceId: source.sourceId,
          index: 1,
          bytes,
          sha256: rivalDigests[i],
        })
      ));
      const won = raced.findIndex((result) => result.status === "fulfilled");
      assert(won >= 0, "one of two rival appends succeeds");
      const lost = raced[1 - won];
      assert(lost.status === "rejected", "the other rival append fails");
      await expectSyncError(Promise.reject(lost.reason), "E_SYNC_CHUNK_CONFLICT");
      const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        listed.items.map((chunk) => [chunk.index, chunk.sha256]),
        [[0, sameDigest], [1, rivalDigests[won]]],
        "stored chunks",
      );
      const stored = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        stored.received,
        { chunkCount: 2, byteCount: same[0].length + rivals[won].length },
        "received counters",
      );
    },
  },
  {
    name: "concurrency: racing seals with the same manifest create one job",
    async run(t) {
      const up = await t.upload(textChunks(3, "seal-race"));
      const results = await Promise.all(
        Array.from({ length: 4 }, () =>
          t.adapter.sealSource({
            scope: t.scope,
            sourceId: up.source.sourceId,
            manifest: up.manifest,
          })),
      );
      const jobIds = new Set(results.map((result) => result.job.jobId));
      assertEquals(jobIds.size, 1, "distinct jobs returned by racing seals");
      const listed = await t.adapter.listJobs({
        scope: t.scope,
        conversationId: up.source.conversationId,
      });
      assertEquals(ids(listed.items), [...jobIds], "jobs of the conversation");
    },
  },
];

/** Concurrency cases. */
export const concurrencyCases: readonly ConformanceCase[] = [
  ...concurrencyList,
];
