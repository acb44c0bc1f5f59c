/**
 * Cases `cancel:`: cancelling queued, waiting, running, verifying and terminal jobs; a
 * running worker's next commit is refused.
 *
 * @module
 */

import type { Job } from "../../src/contracts/domain.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  appliesInTransaction,
  deferred,
  eventually,
  indexes,
  LEASE_MS,
  range,
  recordApplies,
  settleWithin,
  track,
  turnsUntil,
} from "./support.ts";

async function expectCancelled(t: CaseContext, job: Job, label: string): Promise<void> {
  assertEquals(job.state, "cancelled", `${label}: state`);
  assertEquals(job.error?.code, "E_SYNC_JOB_CANCELLED", `${label}: error code`);
  assertEquals(job.error?.retryable, false, `${label}: error retryable`);
  assertEquals(job.lease, undefined, `${label}: no lease on a cancelled job`);
  assert(typeof job.completedAt === "number", `${label}: completedAt is set`);
  assertEquals(await t.job(job.jobId), job, `${label}: stored job = returned snapshot`);
}

const cancelList: ConformanceCase[] = [
  {
    name: "cancel: a queued job is cancelled and never runs",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "cancel-queued"));
      t.clock.advance(10);
      const cancelled = await t.adapter.cancelJob({
        scope: t.scope,
        jobId: sealed.job.jobId,
        reason: "user asked",
      });
      await expectCancelled(t, cancelled, "queued");
      assertEquals(cancelled.updatedAt, t.clock.now(), "updatedAt = cancel time");
      assertEquals(cancelled.cursor, 0, "cursor");
      await t.harness.drain();
      t.clock.advance(LEASE_MS * 10);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 0, "apply calls");
      assertEquals(t.handler.verifications.length, 0, "verify calls");
      assertEquals(await t.job(cancelled.jobId), cancelled, "cancelled job never changes");
    },
  },
  {
    name: "cancel: a job in retry_wait is cancelled and never retried",
    async run(t) {
      t.handler.onApply(() => {
        throw new Error("transient");
      });
      const sealed = await t.uploadAndSeal(textChunks(2, "cancel-retry"));
      await t.harness.drain();
      const waiting = await t.job(sealed.job.jobId);
      assertEquals(waiting.state, "retry_wait", "state before cancel");
      const cancelled = await t.adapter.cancelJob({ scope: t.scope, jobId: waiting.jobId });
      await expectCancelled(t, cancelled, "retry_wait");
      t.handler.onApply(undefined);
      t.clock.set(waiting.runAt + 1);
      await t.harness.drain();
      t.clock.advance(LEASE_MS * 10);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 1, "apply calls (only the failed one)");
      assertEquals(await t.job(cancelled.jobId), cancelled, "cancelled job never changes");
    },
  },
  {
    name: "cancel: a running job's handler is signalled and its next commit refused",
    async run(t) {
      const entered = deferred<AbortSignal>();
      const gate = deferred<void>();
      try {
        recordApplies(t, async (index, _job, _call, signal) => {
          if (index === 1) {
            entered.resolve(signal);
            await gate.promise;
          }
        });
        const chunks = textChunks(3, "cancel-running");
        const sealed = await t.uploadAndSeal(chunks);
        const draining = track(t.harness.drain());
        const signal = await settleWithin(entered.promise, "the handler never reached chunk 1");
        assert(!signal.aborted, "ctx.signal is not aborted before cancel");
        const cancelling = track(t.adapter.cancelJob({ scope: t.scope, jobId: sealed.job.jobId }));
        const cancelledWhileBlocked = await turnsUntil(() => cancelling.settled, 50);
        if (!cancelledWhileBlocked) {
          // Only an adapter applying inside the progress transaction may hold a cancel back
          // until the handler's transaction ends.
          assert(
            appliesInTransaction(t),
            "cancelJob did not settle while a handler was running (non-transactional apply)",
          );
          gate.resolve();
          const cancelled = await settleWithin(cancelling.promise, "cancelJob");
          await settleWithin(draining.promise, "drain after cancel");
          const callsAtCancel = t.handler.calls.length;
          await t.harness.drain();
          t.clock.advance(LEASE_MS * 10);
          await t.harness.drain();
          assertEquals(t.handler.calls.length, callsAtCancel, "apply calls after cancel");
          assertEquals(await t.job(cancelled.jobId), cancelled, "job after cancel");
          // The cancel takes effect when it commits. Not settling within a few turns does
          // not prove it was already queued on the job's lock (its statement may not have
          // reached the backend yet), so the worker's next chunk may commit before it: the
          // rule is that every applied chunk is committed progress, and none follows the cancel.
          assertEquals(
            indexes(t.handler.calls),
            range(cancelled.cursor),
            "applied chunks = the progress committed before the cancel",
          );
          return;
        }
        const cancelled = await cancelling.promise;
        await expectCancelled(t, cancelled, "running");
        assertEquals(cancelled.cursor, 1, "cursor at cancel (chunk 0 committed)");
        await eventually(() => signal.aborted, "the running handler's ctx.signal is aborted");
        gate.resolve();
        await settleWithin(draining.promise, "drain after the handler was released");
        await t.harness.drain();
        t.clock.advance(LEASE_MS * 10);
        await t.harness.drain();
        assertEquals(indexes(t.handler.calls), [0, 1], "apply calls (none after cancel)");
        assertEquals(t.handler.verifications.length, 0, "verify calls");
        const after = await t.job(cancelled.jobId);
        assertEquals(after, cancelled, "the worker's commit after cancel is refused");
        assertEquals(after.cursor, 1, "cursor not advanced past the committed chunk");
        assertEquals(after.appliedBytes, chunks[0].length, "appliedBytes of the committed chunk");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "cancel: a verifying job is cancelled and its verification commit refused",
    async run(t) {
      const entered = deferred<Job>();
      const gate = deferred<void>();
      try {
        t.handler.onVerify(async (context) => {
          entered.resolve(context.job);
          await gate.promise;
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "cancel-verifying"));
        const draining = track(t.harness.drain());
        // The job as the hook sees it (reading the store could wait on the hook's transaction).
        const verifying = await settleWithin(entered.promise, "the verify hook was never called");
        assertEquals(verifying.state, "verifying", "state while the verify hook runs");
        assertEquals(verifying.cursor, 2, "cursor while the verify hook runs");
        const cancelling = track(t.adapter.cancelJob({ scope: t.scope, jobId: sealed.job.jobId }));
        const cancelledWhileBlocked = await turnsUntil(() => cancelling.settled, 50);
        if (!cancelledWhileBlocked) {
          assert(
            appliesInTransaction(t),
            "cancelJob did not settle while the verify hook was running (non-transactional apply)",
          );
          gate.resolve();
          const cancelled = await settleWithin(cancelling.promise, "cancelJob");
          await settleWithin(draining.promise, "drain after cancel");
          assertEquals(await t.job(cancelled.jobId), cancelled, "job after cancel");
          return;
        }
        const cancelled = await cancelling.promise;
        await expectCancelled(t, cancelled, "verifying");
        gate.resolve();
        await settleWithin(draining.promise, "drain after the verify hook was released");
        await t.harness.drain();
        t.clock.advance(LEASE_MS * 10);
        await t.harness.drain();
        const after = await t.job(cancelled.jobId);
        assertEquals(after, cancelled, "the verification commit after cancel is refused");
        assertEquals(after.state, "cancelled", "state");
        assertEquals(after.cursor, 2, "cursor");
        assertEquals(t.handler.verifications.length, 1, "verify calls");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "cancel: cancelling a verifying job aborts the verify hook's ctx.signal",
    async run(t) {
      const gate = deferred<void>();
      try {
        const entered = deferred<AbortSignal>();
        t.handler.onVerify(async (context) => {
          entered.resolve(context.signal);
          await gate.promise;
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "verify-signal"));
        const draining = track(t.harness.drain());
        const signal = await settleWithin(entered.promise, "the verify hook was never called");
        assert(!signal.aborted, "the verify hook's ctx.signal is not aborted before cancel");
        const cancelling = track(
          t.adapter.cancelJob({ scope: t.scope, jobId: sealed.job.jobId }),
        );
        if (!(await turnsUntil(() => cancelling.settled, 50))) {
          // A transactional adapter may hold the cancel back until the hook's transaction
          // ends; the hook then has nothing left to be told.
          assert(
            appliesInTransaction(t),
            "cancelJob did not settle while the verify hook was running (non-transactional)",
          );
          return;
        }
        assertEquals((await cancelling.promise).state, "cancelled", "state after cancel");
        await eventually(
          () => signal.aborted,
          "the running verify hook's ctx.signal is aborted after cancel",
        );
        gate.resolve();
        await settleWithin(draining.promise, "drain after the verify hook was released");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "cancel: a terminal job is returned unchanged",
    async run(t) {
      const succeeded = await t.uploadAndSeal(textChunks(1, "done"));
      await t.harness.drain();
      t.handler.onApply(() => {
        throw nonRetryable(new Error("fatal"));
      });
      const failed = await t.uploadAndSeal(textChunks(1, "fail"));
      await t.harness.drain();
      t.handler.onApply(undefined);
      const cancelled = await t.uploadAndSeal(textChunks(1, "cancel"));
      await t.adapter.cancelJob({ scope: t.scope, jobId: cancelled.job.jobId });
      const expected: [string, string][] = [
        [succeeded.job.jobId, "succeeded"],
        [failed.job.jobId, "failed"],
        [cancelled.job.jobId, "cancelled"],
      ];
      for (const [jobId, state] of expected) {
        const before = await t.job(jobId);
        assertEquals(before.state, state, `${state}: state before cancel`);
        t.clock.advance(1_000);
        const returned = await t.adapter.cancelJob({ scope: t.scope, jobId, reason: "again" });
        assertEquals(returned, before, `${state}: cancelJob returns the snapshot unchanged`);
        assertEquals(await t.job(jobId), before, `${state}: stored job unchanged`);
      }
    },
  },
  {
    name: "cancel: an unknown job or another scope's job is E_SYNC_JOB_NOT_FOUND",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(1, "scoped"));
      const missing = await expectSyncError(
        t.adapter.cancelJob({ scope: t.scope, jobId: "no-such-job" }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      const other = await expectSyncError(
        t.adapter.cancelJob({ scope: t.otherScope, jobId: sealed.job.jobId }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      assertEquals(
        other.message.replace(sealed.job.jobId, "X"),
        missing.message.replace("no-such-job", "X"),
        "error message for another scope vs a missing job",
      );
      assertEquals(await t.job(sealed.job.jobId), sealed.job, "job untouched");
    },
  },
];

/** Cancel cases. */
export const cancelCases: readonly ConformanceCase[] = [
  ...cancelList,
];
