/**
 * Cases `seal: … supersede …`: sealing a newer source of a conversation cancels its older
 * non-terminal jobs with `E_SYNC_JOB_SUPERSEDED`, never terminal ones nor other
 * conversations' or scopes'.
 *
 * @module
 */

import type { Job } from "../../src/contracts/domain.ts";
import { assert, assertEquals } from "../assert.ts";
import { utf8 } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  appliesInTransaction,
  deferred,
  eventually,
  indexes,
  jobsOf,
  LEASE_MS,
  range,
  recordApplies,
  settleWithin,
  track,
  turnsUntil,
} from "./support.ts";

/**
 * Event-loop turns a seal gets to settle while a handler blocks before the case takes it
 * as held back by the handler's transaction. A seal makes several round trips: more
 * turns than a cancel gets, so a slow backend that does not hold it back is not taken
 * for one that does.
 */
const SEAL_TURNS = 200;

const supersedeList: ConformanceCase[] = [
  {
    name: "seal: a newer source of the same conversation supersedes the older queued job",
    async run(t) {
      const conversationId = t.newConversationId();
      const older = await t.uploadAndSeal([utf8("older")], { conversationId });
      assertEquals(older.job.state, "queued", "older job queued");
      t.clock.advance(20);
      const newer = await t.uploadAndSeal([utf8("newer"), utf8("!")], { conversationId });
      assertEquals(newer.job.state, "queued", "newer job queued");
      const superseded = await t.job(older.job.jobId);
      assertEquals(superseded.state, "cancelled", "older job state");
      assertEquals(superseded.error?.code, "E_SYNC_JOB_SUPERSEDED", "older job error");
      assertEquals(superseded.error?.retryable, false, "supersede is not retryable");
      assertEquals(superseded.completedAt, t.clock.now(), "completedAt");
      assertEquals((await t.job(newer.job.jobId)).state, "queued", "newer job still queued");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: older.source.sourceId })).state,
        "sealed",
        "older source stays sealed",
      );
      const states = (await jobsOf(t, conversationId)).map((j) => [j.jobId, j.state]);
      assertEquals(
        states.sort(),
        [[older.job.jobId, "cancelled"], [newer.job.jobId, "queued"]].sort(),
        "jobs of the conversation",
      );
      const done = await t.runToTerminal(newer.job.jobId);
      assertEquals(done.state, "succeeded", "newer job runs");
      assertEquals(
        [...new Set(t.handler.calls.map((c) => c.jobId))],
        [newer.job.jobId],
        "only the newer job was applied",
      );
      assertEquals((await t.job(older.job.jobId)).state, "cancelled", "older job stays cancelled");
    },
  },
  {
    name: "seal: supersede also cancels an older job waiting to retry",
    async run(t) {
      const conversationId = t.newConversationId();
      t.handler.onApply(() => {
        throw new Error("transient");
      });
      const older = await t.uploadAndSeal([utf8("older")], { conversationId });
      await t.harness.drain();
      const waiting = await t.job(older.job.jobId);
      assertEquals(waiting.state, "retry_wait", "older job waits to retry");
      t.handler.onApply(undefined);
      const newer = await t.uploadAndSeal([utf8("newer")], { conversationId });
      const superseded = await t.job(older.job.jobId);
      assertEquals(superseded.state, "cancelled", "older job state");
      assertEquals(superseded.error?.code, "E_SYNC_JOB_SUPERSEDED", "older job error");
      t.clock.set(waiting.runAt + 1);
      assertEquals((await t.runToTerminal(newer.job.jobId)).state, "succeeded", "newer job");
      assertEquals((await t.job(older.job.jobId)).state, "cancelled", "older stays cancelled");
      assertEquals(
        t.handler.applied.map((c) => c.jobId),
        [newer.job.jobId],
        "older job never applied again",
      );
    },
  },
  {
    name: "seal: jobs of another conversation or another scope are not superseded",
    async run(t) {
      const conversationId = t.newConversationId();
      const otherConversation = await t.uploadAndSeal([utf8("other conversation")]);
      const otherScope = await t.uploadAndSeal([utf8("other scope")], {
        scope: t.otherScope,
        conversationId,
      });
      const before = [
        await t.job(otherConversation.job.jobId),
        await t.job(otherScope.job.jobId, t.otherScope),
      ];
      const sealed = await t.uploadAndSeal([utf8("mine")], { conversationId });
      assertEquals(sealed.job.state, "queued", "new job");
      assertEquals(
        [await t.job(otherConversation.job.jobId), await t.job(otherScope.job.jobId, t.otherScope)],
        before,
        "jobs of another conversation and another scope",
      );
    },
  },
  {
    name: "seal: a terminal job is not changed by a later seal of its conversation",
    async run(t) {
      const conversationId = t.newConversationId();
      const first = await t.uploadAndSeal([utf8("first")], { conversationId });
      const done = await t.runToTerminal(first.job.jobId);
      assertEquals(done.state, "succeeded", "first job");
      t.clock.advance(1_000);
      const second = await t.uploadAndSeal([utf8("second")], { conversationId });
      assertEquals(second.job.state, "queued", "second job");
      assertEquals(await t.job(first.job.jobId), done, "the succeeded job is unchanged");
      // A cancelled job is terminal too.
      const cancelled = await t.adapter.cancelJob({ scope: t.scope, jobId: second.job.jobId });
      t.clock.advance(1_000);
      await t.uploadAndSeal([utf8("third")], { conversationId });
      assertEquals(await t.job(second.job.jobId), cancelled, "the cancelled job is unchanged");
      assertEquals(cancelled.error?.code, "E_SYNC_JOB_CANCELLED", "cancel is not a supersede");
    },
  },
  {
    name: "seal: a newer source supersedes a running job: its handler is signalled, its commit " +
      "refused, and a wait on it settles",
    async run(t) {
      const entered = deferred<AbortSignal>();
      const gate = deferred<void>();
      try {
        const conversationId = t.newConversationId();
        const older = await t.uploadAndSeal(textChunks(3, "older-running"), { conversationId });
        const olderId = older.job.jobId;
        // Uploaded before the handler blocks: a backend running one transaction at a time
        // could not take these chunks while the handler holds its transaction.
        const newer = await t.upload(textChunks(2, "newer"), { conversationId });
        recordApplies(t, async (index, job, _call, signal) => {
          if (job.jobId === olderId && index === 1) {
            entered.resolve(signal);
            await gate.promise;
          }
        });
        const waiting = track(t.adapter.waitForTerminal({ scope: t.scope, jobId: olderId }));
        assert(!(await turnsUntil(() => waiting.settled, 5)), "the wait settled while queued");
        const draining = track(t.harness.drain());
        const signal = await settleWithin(entered.promise, "the handler never reached chunk 1");
        const sealing = track(t.adapter.sealSource({
          scope: t.scope,
          sourceId: newer.source.sourceId,
          manifest: newer.manifest,
        }));
        let superseded: Job;
        const whileBlocked = await turnsUntil(() => sealing.settled, SEAL_TURNS);
        if (whileBlocked) {
          await sealing.promise;
          superseded = await t.job(olderId);
          assertEquals(superseded.state, "cancelled", "the running job's state after the seal");
          assertEquals(superseded.error?.code, "E_SYNC_JOB_SUPERSEDED", "its error");
          assertEquals(superseded.cursor, 1, "its cursor (chunk 0 committed)");
          await eventually(() => signal.aborted, "the running handler's ctx.signal is aborted");
          assertEquals(
            await settleWithin(waiting.promise, "waitForTerminal on the superseded job"),
            superseded,
            "the wait settles with the superseded snapshot",
          );
          gate.resolve();
          await settleWithin(draining.promise, "drain after the handler was released");
        } else {
          // Only an adapter applying inside the progress transaction may hold the seal back
          // until the handler's transaction ends; the job may then even finish first.
          assert(
            appliesInTransaction(t),
            "sealSource did not settle while a handler was running (non-transactional apply)",
          );
          gate.resolve();
          await settleWithin(sealing.promise, "sealSource after the handler was released");
          await settleWithin(draining.promise, "drain after the seal");
          superseded = await t.job(olderId);
          if (superseded.state !== "succeeded") {
            assertEquals(superseded.state, "cancelled", "the older job's state");
            assertEquals(superseded.error?.code, "E_SYNC_JOB_SUPERSEDED", "its error");
          }
          assertEquals(
            await settleWithin(waiting.promise, "waitForTerminal on the older job"),
            superseded,
            "the wait settles with the older job's terminal snapshot",
          );
        }
        await t.harness.drain();
        t.clock.advance(LEASE_MS * 10);
        await t.harness.drain();
        assertEquals(await t.job(olderId), superseded, "no commit of the older job after it ended");
        const olderCalls = t.handler.calls.filter((call) => call.jobId === olderId);
        assertEquals(
          indexes(olderCalls),
          range(superseded.state === "succeeded" ? 3 : superseded.cursor + (whileBlocked ? 1 : 0)),
          "the older job's chunks applied: the committed ones (and the one refused at commit)",
        );
        const newerJob = (await t.adapter.getSource({
          scope: t.scope,
          sourceId: newer.source.sourceId,
        })).jobId!;
        assertEquals((await t.job(newerJob)).state, "succeeded", "the newer job runs");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "seal: a newer source supersedes a verifying job: its verification commit is refused",
    async run(t) {
      const gate = deferred<void>();
      try {
        const entered = deferred<void>();
        const conversationId = t.newConversationId();
        const older = await t.uploadAndSeal(textChunks(2, "older-verifying"), { conversationId });
        const olderId = older.job.jobId;
        const newer = await t.upload(textChunks(1, "newer"), { conversationId });
        t.handler.onVerify(async (context) => {
          if (context.job.jobId !== olderId) return;
          entered.resolve();
          await gate.promise;
        });
        const waiting = track(t.adapter.waitForTerminal({ scope: t.scope, jobId: olderId }));
        assert(!(await turnsUntil(() => waiting.settled, 5)), "the wait settled while queued");
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the verify hook was never called");
        const sealing = track(t.adapter.sealSource({
          scope: t.scope,
          sourceId: newer.source.sourceId,
          manifest: newer.manifest,
        }));
        let ended: Job;
        if (await turnsUntil(() => sealing.settled, SEAL_TURNS)) {
          await sealing.promise;
          ended = await t.job(olderId);
          assertEquals(ended.state, "cancelled", "the verifying job's state after the seal");
          assertEquals(ended.error?.code, "E_SYNC_JOB_SUPERSEDED", "its error");
          assertEquals(ended.cursor, 2, "its cursor");
          assertEquals(
            await settleWithin(waiting.promise, "waitForTerminal on the superseded job"),
            ended,
            "the wait settles with the superseded snapshot",
          );
          gate.resolve();
          await settleWithin(draining.promise, "drain after the verify hook was released");
        } else {
          // The verification's transaction holds the job: it commits first, and a terminal
          // job is never superseded.
          assert(
            appliesInTransaction(t),
            "sealSource did not settle while the verify hook ran (non-transactional apply)",
          );
          gate.resolve();
          await settleWithin(sealing.promise, "sealSource after the verify hook was released");
          await settleWithin(draining.promise, "drain after the seal");
          ended = await t.job(olderId);
          if (ended.state !== "succeeded") {
            assertEquals(ended.state, "cancelled", "the older job's state");
            assertEquals(ended.error?.code, "E_SYNC_JOB_SUPERSEDED", "its error");
          }
          assertEquals(
            await settleWithin(waiting.promise, "waitForTerminal on the older job"),
            ended,
            "the wait settles with the older job's terminal snapshot",
          );
        }
        await t.harness.drain();
        t.clock.advance(LEASE_MS * 10);
        await t.harness.drain();
        assertEquals(await t.job(olderId), ended, "the verification commit after it ended");
        assertEquals(
          t.handler.verifications.filter((job) => job.jobId === olderId).length,
          1,
          "the older job's verify calls",
        );
        const newerJob = (await t.adapter.getSource({
          scope: t.scope,
          sourceId: newer.source.sourceId,
        })).jobId!;
        assertEquals((await t.job(newerJob)).state, "succeeded", "the newer job runs");
      } finally {
        gate.resolve();
      }
    },
  },
];

/** Supersede cases. */
export const supersedeCases: readonly ConformanceCase[] = [
  ...supersedeList,
];
