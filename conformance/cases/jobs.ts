/**
 * Cases: running jobs — applying chunks, retries with backoff, cancellation, leases and
 * fencing, verification. Also the small async helpers the lifecycle cases share.
 *
 * Time is the suite's manual clock: no case waits for real time to pass. Where a case
 * must let an adapter's asynchronous work (a notification, a heartbeat write) complete,
 * it yields a bounded number of event-loop turns and fails instead of hanging.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import type { Job } from "../../src/contracts/domain.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, SUITE_POLICY } from "../context.ts";
import { binaryChunks } from "../fixtures.ts";
import {
  concatBytes,
  encodeUtf8,
  multiByteText,
  splitEvery,
  splitSequenceLengths,
  textChunks,
} from "../payloads.ts";
import type { ConformanceCase, ConformanceWorker } from "../types.ts";

// ---------------------------------------------------------------------------------------
// Helpers shared with the lifecycle cases
// ---------------------------------------------------------------------------------------

/** A promise with its settle functions exposed. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise settled from outside (to block a handler until the case releases it). */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** How many event-loop turns a case grants an adapter's asynchronous work. */
export const DEFAULT_TURNS = 500;

/**
 * Yields one event-loop turn so pending I/O and notifications can run. This is not a
 * wait for time to pass: the suite's clock does not move.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A promise whose outcome can be inspected without awaiting it. */
export interface Tracked<T> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  readonly rejected: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
}

/** Tracks `promise` (and marks its rejection handled until the case awaits it). */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const state = {
    promise,
    settled: false,
    rejected: false,
    value: undefined as T | undefined,
    error: undefined as unknown,
  };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error) => {
      state.settled = true;
      state.rejected = true;
      state.error = error;
    },
  );
  return state;
}

/** Yields up to `turns` event-loop turns until `condition` holds; returns whether it did. */
export async function turnsUntil(
  condition: () => boolean | Promise<boolean>,
  turns: number = DEFAULT_TURNS,
): Promise<boolean> {
  for (let turn = 0; turn <= turns; turn++) {
    if (await condition()) return true;
    await nextTurn();
  }
  return false;
}

/** Fails with `message` unless `condition` holds within `turns` event-loop turns. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  message: string,
  turns: number = DEFAULT_TURNS,
): Promise<void> {
  assert(await turnsUntil(condition, turns), `${message} (not within ${turns} event-loop turns)`);
}

/** Awaits `promise`, failing with `message` instead of hanging when it does not settle. */
export async function settleWithin<T>(
  promise: Promise<T>,
  message: string,
  turns: number = DEFAULT_TURNS,
): Promise<T> {
  const tracked = track(promise);
  assert(await turnsUntil(() => tracked.settled, turns), `${message} (did not settle)`);
  return await promise;
}

/** Another worker over the adapter's store (cases declaring the `newWorker` hook). */
export function newWorker(t: CaseContext, owner: string): ConformanceWorker {
  if (!t.harness.newWorker) throw new Error("harness has no newWorker hook");
  return t.harness.newWorker(owner);
}

/**
 * Fails unless `worker.runDueJobs()` finds nothing to run. Tracked rather than awaited:
 * a worker that wrongly claims a job could block on the case's gated handler.
 */
export async function expectNothingClaimed(
  worker: ConformanceWorker,
  message: string,
): Promise<void> {
  const run = track(worker.runDueJobs());
  assert(await turnsUntil(() => run.settled, 50), `${message}: the worker is running a job`);
  assertEquals(await run.promise, 0, `${message}: jobs run`);
}

/** True when the adapter applies chunks inside the transaction that commits progress. */
export function appliesInTransaction(t: CaseContext): boolean {
  return t.adapter.capabilities.includes(Capability.transactionalApply);
}

/** What a case saw of one `apply` call. */
export interface SeenApply {
  index: number;
  jobId: string;
  cursor: number;
  attempt: number;
  state: string;
  owner: string | undefined;
  token: number | undefined;
}

/** Records what `apply` is told, then runs `inner` (which may throw or block). */
export function recordApplies(
  t: CaseContext,
  inner?: (index: number, job: Job, call: number, signal: AbortSignal) => void | Promise<void>,
): SeenApply[] {
  const seen: SeenApply[] = [];
  t.handler.onApply((chunk, context, call) => {
    seen.push({
      index: chunk.index,
      jobId: context.job.jobId,
      cursor: context.job.cursor,
      attempt: context.job.attempt,
      state: context.job.state,
      owner: context.job.lease?.owner,
      token: context.job.lease?.token,
    });
    return inner?.(chunk.index, context.job, call, context.signal);
  });
  return seen;
}

const RETRY = SUITE_POLICY.retry!;
const LEASE_MS = SUITE_POLICY.leaseMs!;
const HEARTBEAT_MS = SUITE_POLICY.heartbeatMs!;

/** The suite's backoff before retry number `attempt`: jitter sample 0.5 → 0.75 × capped. */
export function suiteDelay(attempt: number): number {
  const raw = RETRY.baseDelayMs! * Math.pow(RETRY.factor!, attempt - 1);
  return Math.floor(Math.min(RETRY.maxDelayMs!, raw) * 0.75);
}

function indexes(calls: readonly { index: number }[]): number[] {
  return calls.map((call) => call.index);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

// ---------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------

const applyCases: ConformanceCase[] = [
  {
    name: "apply: a fault-free run applies chunks 0..n-1 in order, each once, then succeeds",
    async run(t) {
      const chunks = textChunks(5, "apply");
      const up = await t.upload(chunks);
      const manifest = { ...up.manifest, data: { keys: ["m-1", "m-2"] } };
      const { job: queued } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: up.source.sourceId,
        manifest,
      });
      assertEquals(queued.state, "queued", "job state after seal");
      assertEquals(queued.cursor, 0, "cursor after seal");
      assertEquals(queued.totalChunks, 5, "totalChunks");
      assertEquals(queued.appliedBytes, 0, "appliedBytes after seal");
      const contexts: { manifest: unknown; sourceId: string; cursor: number }[] = [];
      t.handler.onApply((_chunk, context) => {
        contexts.push({
          manifest: structuredClone(context.manifest),
          sourceId: context.source.sourceId,
          cursor: context.job.cursor,
        });
      });
      await t.harness.drain();
      assertEquals(indexes(t.handler.calls), [0, 1, 2, 3, 4], "apply calls by index");
      assert(t.handler.calls.every((call) => call.ok), "every apply call succeeded");
      t.handler.calls.forEach((call, i) => {
        assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`);
        assertEquals(call.jobId, queued.jobId, `job of chunk ${i}`);
      });
      contexts.forEach((context, i) => {
        assertEquals(context.cursor, i, `ctx.job.cursor when chunk ${i} is applied`);
        assertEquals(context.manifest, manifest, `ctx.manifest when chunk ${i} is applied`);
        assertEquals(context.sourceId, up.source.sourceId, `ctx.source of chunk ${i}`);
      });
      const done = await t.job(queued.jobId);
      assertEquals(done.state, "succeeded", "job state");
      assertEquals(done.cursor, 5, "cursor = totalChunks");
      assertEquals(done.totalChunks, 5, "totalChunks");
      assertEquals(done.appliedBytes, manifest.byteCount, "appliedBytes = byteCount");
      assertEquals(done.attempt, 0, "attempt");
      assertEquals(done.lease, undefined, "no lease on a terminal job");
      assert(typeof done.completedAt === "number", "completedAt is set");
      assertEquals(t.handler.verifications.length, 1, "verify hook calls");
      // Nothing runs again, whatever the clock does.
      t.clock.advance(LEASE_MS * 10);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 5, "apply calls after a later drain");
      assertEquals(await t.job(queued.jobId), done, "terminal job after a later drain");
    },
  },
  {
    name: "apply: multi-byte text cut inside UTF-8 sequences arrives byte for byte",
    async run(t) {
      const text = multiByteText(8);
      const chunks = splitEvery(encodeUtf8(text), 7);
      const split = splitSequenceLengths(chunks);
      assert(
        split.has(2) && split.has(3) && split.has(4),
        `fixture: boundaries must fall inside 2-, 3- and 4-byte sequences (got ${[...split]})`,
      );
      const sealed = await t.uploadAndSeal(chunks);
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      const applied = t.handler.applied;
      assertEquals(indexes(applied), range(chunks.length), "applied chunk indexes");
      applied.forEach((call, i) => assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`));
      const joined = concatBytes(applied.map((call) => call.bytes));
      assertEquals(joined, encodeUtf8(text), "concatenated applied bytes");
      assertEquals(
        new TextDecoder("utf-8", { fatal: true }).decode(joined),
        text,
        "decoded applied text",
      );
      assertEquals(done.appliedBytes, joined.length, "appliedBytes");
    },
  },
  {
    name: "apply: binary chunks with all 256 byte values arrive byte for byte",
    async run(t) {
      const chunks = binaryChunks();
      const sealed = await t.uploadAndSeal(chunks);
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      const applied = t.handler.applied;
      assertEquals(indexes(applied), range(chunks.length), "applied chunk indexes");
      applied.forEach((call, i) => assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`));
      const joined = concatBytes(applied.map((call) => call.bytes));
      assertEquals(joined, concatBytes(chunks), "concatenated applied bytes");
      assertEquals(new Set(joined).size, 256, "distinct byte values applied");
      assertEquals(done.appliedBytes, sealed.manifest.byteCount, "appliedBytes");
    },
  },
];

// ---------------------------------------------------------------------------------------
// retry
// ---------------------------------------------------------------------------------------

const retryCases: ConformanceCase[] = [
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

// ---------------------------------------------------------------------------------------
// cancel
// ---------------------------------------------------------------------------------------

async function expectCancelled(t: CaseContext, job: Job, label: string): Promise<void> {
  assertEquals(job.state, "cancelled", `${label}: state`);
  assertEquals(job.error?.code, "E_SYNC_JOB_CANCELLED", `${label}: error code`);
  assertEquals(job.error?.retryable, false, `${label}: error retryable`);
  assertEquals(job.lease, undefined, `${label}: no lease on a cancelled job`);
  assert(typeof job.completedAt === "number", `${label}: completedAt is set`);
  assertEquals(await t.job(job.jobId), job, `${label}: stored job = returned snapshot`);
}

const cancelCases: ConformanceCase[] = [
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

// ---------------------------------------------------------------------------------------
// lease
// ---------------------------------------------------------------------------------------

const leaseCases: ConformanceCase[] = [
  {
    name: "lease: a crashed worker's claim blocks others until it expires, then work resumes " +
      "at the cursor",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      let failedOnce = false;
      const seen = recordApplies(t, (index) => {
        if (index === 2 && !failedOnce) {
          failedOnce = true;
          throw new Error("transient");
        }
      });
      const sealed = await t.uploadAndSeal(textChunks(4, "lease"));
      const jobId = sealed.job.jobId;
      await t.harness.drain();
      const partial = await t.job(jobId);
      assertEquals([partial.state, partial.cursor], ["retry_wait", 2], "progress before A");
      const earlierTokens = seen.map((s) => s.token ?? 0);
      t.clock.set(partial.runAt);
      const a = newWorker(t, "a");
      const claimed = await a.claimNextJob();
      assert(claimed !== undefined, "worker A claims the due job");
      assertEquals(claimed.jobId, jobId, "claimed job");
      assertEquals(claimed.state, "running", "claimed state");
      assertEquals(claimed.lease?.owner, "a", "lease owner");
      const tokenA = claimed.lease!.token;
      assert(
        earlierTokens.every((token) => token < tokenA),
        `A's token ${tokenA} is above earlier tokens ${earlierTokens}`,
      );
      const expiresAt = claimed.lease!.expiresAt;
      assertEquals(expiresAt, t.clock.now() + LEASE_MS, "lease expiry = claim time + leaseMs");
      // Worker A crashes: it never runs the job.
      const held = await t.job(jobId);
      t.clock.set(expiresAt - 1);
      await t.harness.drain();
      const b = newWorker(t, "b");
      await expectNothingClaimed(b, "B while A's lease holds");
      assertEquals(seen.length, 3, "apply calls while A's lease holds");
      assertEquals(await t.job(jobId), held, "job while A's lease holds");
      t.clock.set(expiresAt + 1);
      // Claim and run, not runDueJobs: bounded even if the adapter hands the job out again.
      const claimedByB = await b.claimNextJob();
      assertEquals(claimedByB?.jobId, jobId, "B claims the job once A's lease expired");
      await b.runClaimedJob(claimedByB!);
      const done = await t.job(jobId);
      assertEquals(done.state, "succeeded", "final state");
      assertEquals(done.cursor, 4, "final cursor");
      const byB = seen.slice(3);
      assertEquals(indexes(byB), [2, 3], "B resumes at the cursor");
      assert(byB.every((s) => s.owner === "b"), "B's calls run under B's lease");
      assert(
        byB.every((s) => s.token !== undefined && s.token > tokenA),
        `B's token is above A's (${byB.map((s) => s.token)} vs ${tokenA})`,
      );
      assertEquals(indexes(t.handler.applied), [0, 1, 2, 3], "each chunk applied once in all");
    },
  },
  {
    name: "lease: a stale worker's commits are refused after another worker took over",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const seen = recordApplies(t);
      const sealed = await t.uploadAndSeal(textChunks(3, "stale"));
      const a = newWorker(t, "a");
      const jobA = await a.claimNextJob();
      assert(jobA?.lease !== undefined, "worker A claims the job");
      t.clock.set(jobA.lease.expiresAt + 1);
      const b = newWorker(t, "b");
      const jobB = await b.claimNextJob();
      assert(jobB?.lease !== undefined, "worker B claims the expired job");
      assert(jobB.lease.token > jobA.lease.token, "B's fencing token is above A's");
      // A wakes up while B holds the job: none of A's commits may land.
      const staleRun = async (label: string) => {
        const before = await t.job(sealed.job.jobId);
        const calls = seen.length;
        t.clock.advance(5);
        try {
          await a.runClaimedJob(jobA);
        } catch (error) {
          // Refusing loudly is fine too; changing the job is not.
          await expectSyncError(Promise.reject(error), "E_SYNC_LEASE_LOST");
        }
        assertEquals(await t.job(sealed.job.jobId), before, `${label}: A changed nothing`);
        const byA = seen.length - calls;
        assert(byA <= 1, `${label}: A applies no further chunk (${byA} calls)`);
        seen.splice(calls);
      };
      await staleRun("while B holds the lease");
      const done = await b.runClaimedJob(jobB);
      assertEquals(done.state, "succeeded", "state after B");
      assertEquals((await t.job(done.jobId)).cursor, 3, "cursor after B");
      assertEquals(indexes(seen), [0, 1, 2], "B applied every chunk once");
      assert(seen.every((s) => s.owner === "b"), "B applied under its own lease");
      await staleRun("after B finished");
      await expectNothingClaimed(a, "A after B finished");
    },
  },
  {
    name: "lease: heartbeats keep the lease of a worker whose handler is still running",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const entered = deferred<void>();
      const gate = deferred<void>();
      try {
        const seen = recordApplies(t, async (index) => {
          if (index === 0) {
            entered.resolve();
            await gate.promise;
          }
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "heartbeat"));
        const jobId = sealed.job.jobId;
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the handler was never called");
        const owner = seen[0].owner;
        const claimedAt = t.clock.now();
        const b = newWorker(t, "b");
        const transactional = appliesInTransaction(t);
        while (t.clock.now() < claimedAt + LEASE_MS * 1.5) {
          t.clock.advance(HEARTBEAT_MS);
          if (transactional) continue;
          await eventually(
            async () => (await t.job(jobId)).lease?.expiresAt === t.clock.now() + LEASE_MS,
            `the heartbeat at +${t.clock.now() - claimedAt} ms extends the lease to now + leaseMs`,
          );
          await expectNothingClaimed(b, "B while the lease is kept alive");
        }
        const bRun = track(b.runDueJobs());
        await turnsUntil(() => bRun.settled, 20);
        gate.resolve();
        assertEquals(await settleWithin(bRun.promise, "B's run"), 0, "B never ran the job");
        await settleWithin(draining.promise, "drain after the handler was released");
        const done = await t.job(jobId);
        assertEquals(done.state, "succeeded", "final state");
        assertEquals(indexes(seen), [0, 1], "apply calls");
        assert(seen.every((s) => s.owner === owner), "every chunk applied by the first worker");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "lease: heartbeats keep the lease while the verify hook runs",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const gate = deferred<void>();
      try {
        const entered = deferred<void>();
        t.handler.onVerify(async () => {
          entered.resolve();
          await gate.promise;
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "verify-heartbeat"));
        const jobId = sealed.job.jobId;
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the verify hook was never called");
        const startedAt = t.clock.now();
        const b = newWorker(t, "b");
        const transactional = appliesInTransaction(t);
        while (t.clock.now() < startedAt + LEASE_MS * 1.5) {
          t.clock.advance(HEARTBEAT_MS);
          if (transactional) continue;
          await eventually(
            async () => (await t.job(jobId)).lease?.expiresAt === t.clock.now() + LEASE_MS,
            `the heartbeat at +${t.clock.now() - startedAt} ms while the verify hook runs ` +
              "extends the lease to now + leaseMs",
          );
          await expectNothingClaimed(b, "B while the verify hook's lease is kept alive");
        }
        const bRun = track(b.runDueJobs());
        await turnsUntil(() => bRun.settled, 20);
        gate.resolve();
        assertEquals(await settleWithin(bRun.promise, "B's run"), 0, "B never ran the job");
        await settleWithin(draining.promise, "drain after the verify hook was released");
        assertEquals((await t.job(jobId)).state, "succeeded", "final state");
        assertEquals(t.handler.verifications.length, 1, "verify calls (never run twice)");
      } finally {
        gate.resolve();
      }
    },
  },
];

// ---------------------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------------------

const verifyCases: ConformanceCase[] = [
  {
    name: "verify: a corrupted stored chunk fails the job without retry before it is applied",
    hooks: ["corruptChunk"],
    async run(t) {
      const chunks = textChunks(3, "corrupt");
      const sealed = await t.uploadAndSeal(chunks);
      await t.harness.oracle!.corruptChunk!(t.scope, sealed.source.sourceId, 1);
      await t.harness.drain();
      const failed = await t.job(sealed.job.jobId);
      assertEquals(failed.state, "failed", "state");
      assertEquals(failed.error?.code, "E_SYNC_CHUNK_CHECKSUM_MISMATCH", "error code");
      assertEquals(failed.error?.retryable, false, "error retryable");
      assertEquals(failed.cursor, 1, "cursor (chunk 0 applied)");
      assertEquals(failed.appliedBytes, chunks[0].length, "appliedBytes");
      assertEquals(indexes(t.handler.calls), [0], "the handler never saw the corrupt chunk");
      t.clock.advance(60 * 60 * 1000);
      await t.harness.drain();
      assertEquals(indexes(t.handler.calls), [0], "apply calls later (not retried)");
      assertEquals(await t.job(failed.jobId), failed, "failed job never changes");
    },
  },
  {
    name: "verify: a throwing verify hook fails the job with E_SYNC_VERIFICATION_FAILED",
    async run(t) {
      t.handler.onVerify(() => {
        throw new Error("message m-3 is missing");
      });
      const sealed = await t.uploadAndSeal(textChunks(2, "verify-fails"));
      await t.harness.drain();
      const failed = await t.job(sealed.job.jobId);
      assertEquals(failed.state, "failed", "state");
      assertEquals(failed.error?.code, "E_SYNC_VERIFICATION_FAILED", "error code");
      assertEquals(failed.error?.retryable, false, "error retryable");
      assert(
        failed.error?.message.includes("message m-3 is missing"),
        `error message keeps the hook's message: ${failed.error?.message}`,
      );
      assertEquals(failed.cursor, 2, "cursor");
      assertEquals(t.handler.verifications.length, 1, "verify calls");
      t.clock.advance(60 * 60 * 1000);
      await t.harness.drain();
      assertEquals(t.handler.verifications.length, 1, "verify calls later (not retried)");
      assertEquals(await t.job(failed.jobId), failed, "failed job never changes");
    },
  },
  {
    name: "verify: the verify hook sees the fully applied job and the sealed manifest",
    async run(t) {
      const chunks = textChunks(3, "verify-sees");
      const up = await t.upload(chunks);
      const manifest = { ...up.manifest, data: { keys: ["k1", "k2", "k3"] } };
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: up.source.sourceId,
        manifest,
      });
      const seen: unknown[] = [];
      t.handler.onVerify((context) => {
        seen.push({
          state: context.job.state,
          cursor: context.job.cursor,
          totalChunks: context.job.totalChunks,
          appliedBytes: context.job.appliedBytes,
          manifest: structuredClone(context.manifest),
          sourceId: context.source.sourceId,
        });
      });
      await t.harness.drain();
      assertEquals(seen, [{
        state: "verifying",
        cursor: 3,
        totalChunks: 3,
        appliedBytes: manifest.byteCount,
        manifest,
        sourceId: up.source.sourceId,
      }], "what the verify hook saw");
      assertEquals((await t.job(job.jobId)).state, "succeeded", "final state");
    },
  },
  {
    name: "verify: an empty source verifies and succeeds without applying anything",
    async run(t) {
      const sealed = await t.uploadAndSeal([]);
      assertEquals(sealed.job.totalChunks, 0, "totalChunks");
      await t.harness.drain();
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "state");
      assertEquals([done.cursor, done.appliedBytes], [0, 0], "cursor and appliedBytes");
      assertEquals(t.handler.calls.length, 0, "apply calls");
      assertEquals(t.handler.verifications.length, 1, "verify calls");
      assertEquals(t.handler.verifications[0].cursor, 0, "cursor seen by verify");
    },
  },
];

/** Job cases: apply, retry, cancel, lease, verify. */
export const jobCases: readonly ConformanceCase[] = [
  ...applyCases,
  ...retryCases,
  ...cancelCases,
  ...leaseCases,
  ...verifyCases,
];
