/**
 * Cases `seal: … supersede …`: sealing a newer source of a conversation cancels its older
 * non-terminal jobs with `E_SYNC_JOB_SUPERSEDED`, never terminal ones nor other
 * conversations' or scopes'.
 *
 * @module
 */

import { assertEquals } from "../assert.ts";
import { utf8 } from "../context.ts";
import { type ConformanceCase } from "../types.ts";
import { jobsOf } from "./support.ts";

// ---------------------------------------------------------------------------------------
// supersede

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
];

/** Supersede cases. */
export const supersedeCases: readonly ConformanceCase[] = [
  ...supersedeList,
];
