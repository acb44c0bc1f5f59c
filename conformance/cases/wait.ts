/**
 * Cases `wait:`: `waitForTerminal` — woken by change notification, bounded by
 * `timeoutMs` on the adapter's clock and by an `AbortSignal`, never changing the job.
 *
 * @module
 */

import type { JobState } from "../../src/contracts/domain.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { MISSING_JOB, settleWithin, track, turnsUntil } from "./support.ts";

const waitList: ConformanceCase[] = [
  {
    name: "wait: resolves with the terminal snapshot once the job finishes",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(3, "wait"));
      const waiting = track(t.adapter.waitForTerminal({ scope: t.scope, jobId: sealed.job.jobId }));
      assert(!(await turnsUntil(() => waiting.settled, 5)), "resolved while the job is queued");
      await t.harness.drain();
      const done = await settleWithin(waiting.promise, "waitForTerminal after the job finished");
      assertEquals(done.state, "succeeded", "state");
      assertEquals(done, await t.job(sealed.job.jobId), "the stored terminal snapshot");
    },
  },
  {
    name: "wait: resolves at once for succeeded, failed and cancelled jobs",
    async run(t) {
      const ok = await t.uploadAndSeal(textChunks(1, "ok"));
      const bad = await t.uploadAndSeal(textChunks(1, "bad"));
      const stop = await t.uploadAndSeal(textChunks(1, "stop"));
      await t.adapter.cancelJob({ scope: t.scope, jobId: stop.job.jobId });
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === bad.job.jobId) throw nonRetryable(new Error("fatal"));
      });
      await t.harness.drain();
      const expected: [string, JobState][] = [
        [ok.job.jobId, "succeeded"],
        [bad.job.jobId, "failed"],
        [stop.job.jobId, "cancelled"],
      ];
      for (const [jobId, state] of expected) {
        const stored = await t.job(jobId);
        assertEquals(stored.state, state, `${state}: stored state`);
        const waited = await settleWithin(
          t.adapter.waitForTerminal({ scope: t.scope, jobId, timeoutMs: 1_000 }),
          `waitForTerminal on a ${state} job`,
        );
        assertEquals(waited, stored, `${state}: waitForTerminal returns the snapshot`);
      }
    },
  },
  {
    name: "wait: resolves when the job is cancelled or fails while waiting",
    async run(t) {
      const stop = await t.uploadAndSeal(textChunks(1, "stop"));
      const waitingStop = track(
        t.adapter.waitForTerminal({ scope: t.scope, jobId: stop.job.jobId }),
      );
      assert(!(await turnsUntil(() => waitingStop.settled, 5)), "resolved before cancel");
      const cancelled = await t.adapter.cancelJob({ scope: t.scope, jobId: stop.job.jobId });
      assertEquals(
        await settleWithin(waitingStop.promise, "waitForTerminal after cancel"),
        cancelled,
        "the cancelled snapshot",
      );
      t.handler.onApply(() => {
        throw new Error("keeps failing");
      });
      const bad = await t.uploadAndSeal(textChunks(1, "bad"));
      const waitingBad = track(t.adapter.waitForTerminal({ scope: t.scope, jobId: bad.job.jobId }));
      await t.harness.drain();
      assert(!(await turnsUntil(() => waitingBad.settled, 5)), "resolved in retry_wait");
      const failed = await t.runToTerminal(bad.job.jobId);
      assertEquals(failed.state, "failed", "state");
      assertEquals(
        await settleWithin(waitingBad.promise, "waitForTerminal after failure"),
        failed,
        "the failed snapshot",
      );
    },
  },
  {
    name: "wait: timeoutMs elapses on the adapter's clock with E_SYNC_TIMEOUT, job untouched",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "timeout"));
      const before = await t.job(sealed.job.jobId);
      const timers = t.clock.pendingTimers;
      const waiting = track(
        t.adapter.waitForTerminal({ scope: t.scope, jobId: before.jobId, timeoutMs: 5_000 }),
      );
      // Let the adapter arm its timer on the suite's clock before time moves.
      await turnsUntil(() => t.clock.pendingTimers > timers || waiting.settled, 50);
      assert(!waiting.settled, "waitForTerminal settled before the timeout");
      t.clock.advance(4_999);
      assert(!(await turnsUntil(() => waiting.settled, 5)), "timed out before timeoutMs");
      t.clock.advance(1);
      await expectSyncError(
        settleWithin(waiting.promise, "waitForTerminal after timeoutMs"),
        "E_SYNC_TIMEOUT",
      );
      assertEquals(await t.job(before.jobId), before, "job untouched by the timeout");
      await t.harness.drain();
      assertEquals((await t.job(before.jobId)).state, "succeeded", "the job still runs");
    },
  },
  {
    name: "wait: an AbortSignal ends the wait with E_SYNC_ABORTED, job untouched",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "abort"));
      const before = await t.job(sealed.job.jobId);
      const controller = new AbortController();
      const waiting = track(
        t.adapter.waitForTerminal({
          scope: t.scope,
          jobId: before.jobId,
          signal: controller.signal,
        }),
      );
      assert(!(await turnsUntil(() => waiting.settled, 5)), "settled before abort");
      controller.abort();
      await expectSyncError(
        settleWithin(waiting.promise, "waitForTerminal after abort"),
        "E_SYNC_ABORTED",
      );
      await expectSyncError(
        settleWithin(
          t.adapter.waitForTerminal({
            scope: t.scope,
            jobId: before.jobId,
            signal: AbortSignal.abort(),
          }),
          "waitForTerminal with an already-aborted signal",
        ),
        "E_SYNC_ABORTED",
      );
      assertEquals(await t.job(before.jobId), before, "job untouched by the aborts");
      await t.harness.drain();
      assertEquals((await t.job(before.jobId)).state, "succeeded", "the job still runs");
    },
  },
  {
    name: "wait: an unknown job or another scope's job is E_SYNC_JOB_NOT_FOUND",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(1, "scoped"));
      await expectSyncError(
        settleWithin(
          t.adapter.waitForTerminal({ scope: t.scope, jobId: "no-such-job", timeoutMs: 1_000 }),
          "waitForTerminal on an unknown job",
        ),
        "E_SYNC_JOB_NOT_FOUND",
      );
      await expectSyncError(
        settleWithin(
          t.adapter.waitForTerminal({
            scope: t.otherScope,
            jobId: sealed.job.jobId,
            timeoutMs: 1_000,
          }),
          "waitForTerminal on another scope's job",
        ),
        "E_SYNC_JOB_NOT_FOUND",
      );
    },
  },
  {
    name: "wait: malformed inputs are E_SYNC_INVALID_ARGUMENT",
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(1, "bad-input"));
      const jobId = sealed.job.jobId;
      const bad: unknown[] = [
        { scope: t.scope, jobId, timeoutMs: -1 },
        { scope: t.scope, jobId, timeoutMs: Number.NaN },
        { scope: t.scope, jobId: "" },
        { scope: "", jobId },
        { scope: t.scope, jobId, signal: "not a signal" },
      ];
      for (const input of bad) {
        await expectSyncError(
          () => t.adapter.waitForTerminal(input as Parameters<typeof t.adapter.waitForTerminal>[0]),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
    },
  },
  {
    name: "wait: timeoutMs 0 resolves a terminal job at once and times out a live one at the " +
      "clock's next tick",
    async run(t) {
      const done = await t.uploadAndSeal(textChunks(1, "zero-done"));
      await t.harness.drain();
      const terminal = await t.job(done.job.jobId);
      assertEquals(terminal.state, "succeeded", "fixture: a terminal job");
      assertEquals(
        await settleWithin(
          t.adapter.waitForTerminal({ scope: t.scope, jobId: terminal.jobId, timeoutMs: 0 }),
          "waitForTerminal(timeoutMs: 0) on a terminal job",
        ),
        terminal,
        "the terminal snapshot",
      );
      const live = await t.uploadAndSeal(textChunks(1, "zero-live"));
      const before = await t.job(live.job.jobId);
      const timers = t.clock.pendingTimers;
      const waiting = track(
        t.adapter.waitForTerminal({ scope: t.scope, jobId: before.jobId, timeoutMs: 0 }),
      );
      await turnsUntil(() => t.clock.pendingTimers > timers || waiting.settled, 50);
      t.clock.advance(0);
      await expectSyncError(
        settleWithin(waiting.promise, "waitForTerminal(timeoutMs: 0) on a live job"),
        "E_SYNC_TIMEOUT",
      );
      assertEquals(await t.job(before.jobId), before, "job untouched by the timeout");
      await t.harness.drain();
      assertEquals((await t.job(before.jobId)).state, "succeeded", "the job still runs");
    },
  },
  {
    name: "wait: an already-aborted signal settles at once, for a live, a terminal and an " +
      "unknown job",
    async run(t) {
      const live = await t.uploadAndSeal(textChunks(1, "aborted-live"));
      const done = await t.uploadAndSeal(textChunks(1, "aborted-done"));
      await t.adapter.cancelJob({ scope: t.scope, jobId: done.job.jobId });
      const terminal = await t.job(done.job.jobId);
      const liveBefore = await t.job(live.job.jobId);
      const signal = AbortSignal.abort();
      await expectSyncError(
        settleWithin(
          t.adapter.waitForTerminal({ scope: t.scope, jobId: liveBefore.jobId, signal }),
          "waitForTerminal on a live job with an aborted signal",
        ),
        "E_SYNC_ABORTED",
      );
      // A job already terminal may be returned, or the wait refused as aborted.
      const onTerminal = track(
        t.adapter.waitForTerminal({ scope: t.scope, jobId: terminal.jobId, signal }),
      );
      assert(
        await turnsUntil(() => onTerminal.settled),
        "waitForTerminal on a terminal job with an aborted signal did not settle",
      );
      if (onTerminal.rejected) {
        await expectSyncError(onTerminal.promise, "E_SYNC_ABORTED");
      } else {
        assertEquals(onTerminal.value, terminal, "the terminal snapshot");
      }
      const onUnknown = track(
        t.adapter.waitForTerminal({ scope: t.scope, jobId: MISSING_JOB, signal }),
      );
      assert(
        await turnsUntil(() => onUnknown.settled),
        "waitForTerminal on an unknown job with an aborted signal did not settle",
      );
      assert(onUnknown.rejected, "waitForTerminal on an unknown job resolved");
      const code = (onUnknown.error as { code?: string })?.code;
      assert(
        code === "E_SYNC_ABORTED" || code === "E_SYNC_JOB_NOT_FOUND",
        `an unknown job with an aborted signal: E_SYNC_ABORTED or E_SYNC_JOB_NOT_FOUND, got ${
          code ?? String(onUnknown.error)
        }`,
      );
      assertEquals(await t.job(liveBefore.jobId), liveBefore, "the live job untouched");
    },
  },
  {
    name: "wait: an unknown job is E_SYNC_JOB_NOT_FOUND at once, with or without timeoutMs " +
      "or a signal",
    async run(t) {
      await t.uploadAndSeal(textChunks(1, "known"));
      const variants: [string, Record<string, unknown>][] = [
        ["no options", {}],
        ["timeoutMs: 0", { timeoutMs: 0 }],
        ["timeoutMs: 60 000", { timeoutMs: 60_000 }],
        ["a live signal", { signal: new AbortController().signal }],
      ];
      for (const [label, options] of variants) {
        await expectSyncError(
          settleWithin(
            t.adapter.waitForTerminal({ scope: t.scope, jobId: MISSING_JOB, ...options }),
            `waitForTerminal on an unknown job (${label})`,
          ),
          "E_SYNC_JOB_NOT_FOUND",
        );
      }
    },
  },
];

/** Wait cases. */
export const waitCases: readonly ConformanceCase[] = [
  ...waitList,
];
