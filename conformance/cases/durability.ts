/**
 * Cases `durability:`: records and progress survive a restart (capability `durable`).
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import { assert, assertEquals } from "../assert.ts";
import { manifestFor } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { appendParallel, newWorker, settleWithin, SUITE_MAX_ATTEMPTS } from "./support.ts";

const durabilityList: ConformanceCase[] = [
  {
    name: "durability: sources, chunks and jobs survive a restart and the job then runs",
    requires: [Capability.durable],
    hooks: ["restart"],
    async run(t) {
      const openChunks = textChunks(3, "open");
      const open = await manifestFor(openChunks);
      const created = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        metadata: { title: "résumé 😀" },
      });
      await appendParallel(t, created.sourceId, openChunks, open.digests, [0, 1]);
      const openBefore = await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId });
      const sealed = await t.uploadAndSeal(textChunks(2, "sealed"));
      const sealedBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: sealed.source.sourceId,
      });
      const jobBefore = await t.job(sealed.job.jobId);
      await t.restart();
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: created.sourceId }),
        openBefore,
        "collecting source after restart",
      );
      assertEquals(
        (await t.adapter.listChunks({ scope: t.scope, sourceId: created.sourceId })).items.map(
          (chunk) => [chunk.index, chunk.sha256],
        ),
        [[0, open.digests[0]], [1, open.digests[1]]],
        "stored chunks after restart",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: sealed.source.sourceId }),
        sealedBefore,
        "sealed source after restart",
      );
      assertEquals(await t.job(sealed.job.jobId), jobBefore, "job after restart");
      assertEquals(
        await appendParallel(t, created.sourceId, openChunks, open.digests, [1, 2]),
        [false, true],
        "appends after restart (1 idempotent, 2 new)",
      );
      const openSeal = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: created.sourceId,
        manifest: open.manifest,
      });
      await t.harness.drain();
      for (
        const [jobId, chunks] of [[sealed.job.jobId, sealed.chunks], [
          openSeal.job.jobId,
          openChunks,
        ]] as const
      ) {
        const done = await settleWithin(
          t.adapter.waitForTerminal({ scope: t.scope, jobId, timeoutMs: 1_000 }),
          "waitForTerminal after restart",
        );
        assertEquals(done.state, "succeeded", `job ${jobId} after restart`);
        const applied = t.handler.applied.filter((call) => call.jobId === jobId);
        assertEquals(applied.map((call) => call.bytes), chunks, `applied bytes of ${jobId}`);
      }
    },
  },
  {
    name: "durability: a job interrupted mid-way resumes from its cursor after a restart",
    requires: [Capability.durable],
    hooks: ["restart"],
    async run(t) {
      let failed = false;
      t.handler.onApply((chunk) => {
        if (chunk.index === 2 && !failed) {
          failed = true;
          throw new Error("interrupted");
        }
      });
      const sealed = await t.uploadAndSeal(textChunks(4, "resume"));
      await t.harness.drain();
      const before = await t.job(sealed.job.jobId);
      assertEquals([before.state, before.cursor], ["retry_wait", 2], "progress before restart");
      await t.restart();
      assertEquals(await t.job(sealed.job.jobId), before, "job after restart");
      t.clock.set(before.runAt);
      await t.harness.drain();
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "state");
      assertEquals(
        t.handler.applied.map((call) => call.index),
        [0, 1, 2, 3],
        "each chunk applied once across the restart",
      );
      assertEquals(done.appliedBytes, sealed.manifest.byteCount, "appliedBytes");
    },
  },
  {
    name: "durability: a job claimed by a worker that died with the process is reclaimed",
    requires: [Capability.durable, Capability.concurrentWorkers],
    hooks: ["restart", "newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(3, "orphan"));
      const claimed = await newWorker(t, "doomed").claimNextJob();
      assert(claimed?.lease !== undefined, "the doomed worker claims the job");
      await t.restart();
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 0, "nothing runs while the dead lease holds");
      t.clock.set(claimed.lease.expiresAt + 1);
      await t.harness.drain();
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "state after the lease expired");
      assertEquals(t.handler.applied.map((call) => call.index), [0, 1, 2], "applied chunks");
    },
  },
  {
    name: "durability: a chunk whose worker dies every time fails the job after maxAttempts, " +
      "across restarts",
    requires: [Capability.durable, Capability.concurrentWorkers],
    hooks: ["restart", "newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "crash-restart"));
      const jobId = sealed.job.jobId;
      for (let death = 1; death <= SUITE_MAX_ATTEMPTS; death++) {
        const claimed = await newWorker(t, `dies-${death}`).claimNextJob();
        assert(claimed?.lease !== undefined, `worker ${death} claims the job`);
        assertEquals(claimed.jobId, jobId, `worker ${death}'s job`);
        assertEquals(claimed.attempt, death - 1, `attempts counted before worker ${death}`);
        if (death > 1) {
          assertEquals(claimed.error?.code, "E_SYNC_LEASE_LOST", `error seen by worker ${death}`);
          assertEquals(claimed.error?.retryable, true, `retryable before worker ${death}`);
        }
        // The worker dies holding the lease; the first and the last die with the process
        // (a restart each: fewer than one per death keeps the case cheap on slow backends).
        if (death === 1 || death === SUITE_MAX_ATTEMPTS) await t.restart();
        const stored = await t.job(jobId);
        assertEquals(
          [stored.state, stored.attempt, stored.lease],
          [claimed.state, claimed.attempt, claimed.lease],
          `the claim of worker ${death} as stored`,
        );
        t.clock.set(claimed.lease.expiresAt);
      }
      await t.harness.drain();
      const done = await t.job(jobId);
      assertEquals(done.state, "failed", "job state after maxAttempts dead workers");
      assertEquals(done.attempt, SUITE_MAX_ATTEMPTS, "attempts");
      assertEquals(done.error?.code, "E_SYNC_LEASE_LOST", "error code");
      assertEquals(done.error?.retryable, false, "the last attempt's error is final");
      assertEquals(done.error?.details?.index, 0, "the chunk that killed its workers");
      assertEquals(done.cursor, 0, "cursor");
      assertEquals(done.lease, undefined, "no lease on the failed job");
      assertEquals(t.handler.calls.length, 0, "no handler ran");
    },
  },
];

/** Durability cases. */
export const durabilityCases: readonly ConformanceCase[] = [
  ...durabilityList,
];
