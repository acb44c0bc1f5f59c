/**
 * Cases `retry:`: a failed attempt backs off exactly per policy; attempts are counted
 * per chunk; exhausted or non-retryable failures fail the job.
 *
 * @module
 */

import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { indexes, recordApplies, RETRY, suiteDelay } from "./support.ts";

const retryList: ConformanceCase[] = [
  {
    name: "retry: a handler failing twice backs off exactly per policy, then succeeds",
    async run(t) {
      t.handler.onApply((_chunk, _context, call) => {
        if (call < 2) throw new Error(`transient failure ${call}`);
      });
      const sealed = await t.uploadAndSeal(textChunks(1, "retry"));
      const jobId = sealed.job.jobId;
      const t0 = t.clock.now();
      await t.harness.drain();
      const first = await t.job(jobId);
      assertEquals(first.state, "retry_wait", "state after the first failure");
      assertEquals(first.attempt, 1, "attempt after the first failure");
      assertEquals(first.runAt, t0 + suiteDelay(1), "runAt after the first failure");
      assertEquals(first.cursor, 0, "cursor after the first failure");
      assertEquals(first.error?.code, "E_SYNC_HANDLER_FAILED", "error code");
      assertEquals(first.error?.retryable, true, "error retryable");
      assert(
        first.error?.message.includes("transient failure 0"),
        `error message keeps the handler's message: ${first.error?.message}`,
      );
      t.clock.advance(suiteDelay(1) - 1);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 1, "apply calls before runAt");
      assertEquals(await t.job(jobId), first, "job before runAt");
      t.clock.advance(1);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 2, "apply calls at runAt");
      assertEquals(t.handler.calls[1].at, t0 + suiteDelay(1), "time of the second call");
      const second = await t.job(jobId);
      assertEquals(second.state, "retry_wait", "state after the second failure");
      assertEquals(second.attempt, 2, "attempt after the second failure");
      assertEquals(
        second.runAt,
        t0 + suiteDelay(1) + suiteDelay(2),
        "runAt after the second failure",
      );
      assert(
        second.error?.message.includes("transient failure 1"),
        `error message of the second failure: ${second.error?.message}`,
      );
      t.clock.advance(suiteDelay(2) - 1);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 2, "apply calls before the second runAt");
      assertEquals(await t.job(jobId), second, "job before the second runAt");
      t.clock.advance(1);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 3, "apply calls in all");
      assertEquals(
        t.handler.calls[2].at,
        t0 + suiteDelay(1) + suiteDelay(2),
        "time of the third call",
      );
      const done = await t.job(jobId);
      assertEquals(done.state, "succeeded", "final state");
      assertEquals(done.cursor, 1, "final cursor");
      assertEquals(done.attempt, 0, "attempt after the chunk succeeded");
    },
  },
  {
    name: "retry: exhausted retries fail the job after maxAttempts calls with the last error",
    async run(t) {
      t.handler.onApply((_chunk, _context, call) => {
        throw new Error(`always failing #${call}`);
      });
      const sealed = await t.uploadAndSeal(textChunks(2, "exhaust"));
      const t0 = t.clock.now();
      const done = await t.runToTerminal(sealed.job.jobId);
      const maxAttempts = RETRY.maxAttempts!;
      assertEquals(done.state, "failed", "final state");
      assertEquals(t.handler.calls.length, maxAttempts, "apply calls");
      assertEquals(indexes(t.handler.calls), Array(maxAttempts).fill(0), "chunks tried");
      let at = t0;
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        if (attempt > 0) at += suiteDelay(attempt);
        assertEquals(t.handler.calls[attempt].at, at, `time of call ${attempt + 1}`);
      }
      assertEquals(done.error?.code, "E_SYNC_HANDLER_FAILED", "error code");
      assert(
        done.error?.message.includes(`always failing #${maxAttempts - 1}`),
        `the last error is kept: ${done.error?.message}`,
      );
      assertEquals(done.cursor, 0, "cursor");
      assertEquals(done.attempt, maxAttempts, "attempt");
      assertEquals(done.completedAt, at, "completedAt");
      t.clock.advance(60 * 60 * 1000);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, maxAttempts, "apply calls after the job failed");
      assertEquals(await t.job(done.jobId), done, "failed job never changes");
    },
  },
  {
    name: "retry: a non-retryable handler error fails the job at once",
    async run(t) {
      const throwers: [string, () => never][] = [
        ["nonRetryable()", () => {
          throw nonRetryable(new Error("schema violation"));
        }],
        ["an Error with retryable=false", () => {
          throw Object.assign(new Error("schema violation"), { retryable: false });
        }],
      ];
      for (const [label, thrower] of throwers) {
        const before = t.handler.calls.length;
        t.handler.onApply(() => thrower());
        const sealed = await t.uploadAndSeal(textChunks(2, "fatal"));
        await t.harness.drain();
        const done = await t.job(sealed.job.jobId);
        assertEquals(done.state, "failed", `${label}: state`);
        assertEquals(t.handler.calls.length - before, 1, `${label}: apply calls`);
        assertEquals(done.error?.code, "E_SYNC_HANDLER_FAILED", `${label}: error code`);
        assertEquals(done.error?.retryable, false, `${label}: error retryable`);
        assert(
          done.error?.message.includes("schema violation"),
          `${label}: error message: ${done.error?.message}`,
        );
        t.clock.advance(60_000);
        await t.harness.drain();
        assertEquals(t.handler.calls.length - before, 1, `${label}: apply calls later`);
        assertEquals(await t.job(done.jobId), done, `${label}: failed job never changes`);
      }
    },
  },
  {
    name: "retry: attempts are counted per chunk and reset after a success",
    async run(t) {
      const failures = new Map([[0, 2], [1, 3]]);
      const calls = new Map<number, number>();
      const seen = recordApplies(t, (index) => {
        const n = (calls.get(index) ?? 0) + 1;
        calls.set(index, n);
        if (n <= (failures.get(index) ?? 0)) throw new Error(`chunk ${index} failure ${n}`);
      });
      const sealed = await t.uploadAndSeal(textChunks(3, "per-chunk"));
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "final state (5 failures in all, at most 3 per chunk)");
      assertEquals(indexes(seen), [0, 0, 0, 1, 1, 1, 1, 2], "chunks tried");
      assertEquals(
        seen.map((s) => s.attempt),
        [0, 1, 2, 0, 1, 2, 3, 0],
        "ctx.job.attempt per call (back to 0 after each success)",
      );
      assertEquals(seen.map((s) => s.cursor), [0, 0, 0, 1, 1, 1, 1, 2], "ctx.job.cursor");
      const at = t.handler.calls.map((call) => call.at);
      assertEquals(
        [at[1] - at[0], at[2] - at[1], at[4] - at[3], at[5] - at[4], at[6] - at[5]],
        [suiteDelay(1), suiteDelay(2), suiteDelay(1), suiteDelay(2), suiteDelay(3)],
        "backoff restarts for each chunk",
      );
      assertEquals(done.attempt, 0, "final attempt");
      assertEquals(done.cursor, 3, "final cursor");
    },
  },
];

/** Retry cases. */
export const retryCases: readonly ConformanceCase[] = [
  ...retryList,
];
