/**
 * Cases: the lifecycle around jobs — waiting, listing, garbage collection, durability
 * across restarts, concurrency races and scale.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import type { GcReport, Job, JobState, Manifest } from "../../src/contracts/domain.ts";
import type { ListJobsInput } from "../../src/contracts/inputs.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, SUITE_POLICY } from "../context.ts";
import { textChunks, tinyChunks } from "../payloads.ts";
import { type ConformanceCase, type ConformanceWorker, DEFAULT_SCALE_CHUNKS } from "../types.ts";
import { newWorker, nextTurn, settleWithin, track, turnsUntil } from "./jobs.ts";

/** How many workers the crash-loop case lets die: the suite's maxAttempts. */
const SUITE_MAX_ATTEMPTS = (SUITE_POLICY.retry as { maxAttempts: number }).maxAttempts;

const TTL_MS = SUITE_POLICY.sourceTtlMs!;
const RETENTION_MS = SUITE_POLICY.retentionMs!;
const ZERO_GC: GcReport = { expiredSources: 0, purgedSources: 0, deletedChunks: 0 };

function newestFirst(a: Job, b: Job): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.jobId < b.jobId ? 1 : a.jobId > b.jobId ? -1 : 0;
}

function ids(jobs: readonly Job[]): string[] {
  return jobs.map((job) => job.jobId);
}

/** Every job of a listing, following `nextCursor` (bounded, so a loop cannot hang). */
async function listAll(
  t: CaseContext,
  input: Omit<ListJobsInput, "cursor">,
  onPage?: (page: number) => Promise<void>,
): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await t.adapter.listJobs({ ...input, ...(cursor ? { cursor } : {}) });
    if (input.limit !== undefined) {
      assert(result.items.length <= input.limit, `page ${page} has more than limit items`);
    }
    out.push(...result.items);
    if (result.nextCursor === undefined) return out;
    cursor = result.nextCursor;
    await onPage?.(page);
  }
  throw new Error("listJobs never ended");
}

/** Appends `indexes` of `chunks` to an existing source, in parallel. */
async function appendParallel(
  t: CaseContext,
  sourceId: string,
  chunks: readonly Uint8Array[],
  digests: readonly string[],
  indexes: readonly number[],
): Promise<boolean[]> {
  const results = await Promise.all(indexes.map((index) =>
    t.adapter.appendChunk({
      scope: t.scope,
      sourceId,
      index,
      bytes: chunks[index],
      sha256: digests[index],
    })
  ));
  return results.map((result) => result.appended);
}

/** The sealed source's chunks as applied, job by job. */
function appliedByJob(t: CaseContext): Map<string, number[]> {
  const byJob = new Map<string, number[]>();
  for (const call of t.handler.applied) {
    const list = byJob.get(call.jobId) ?? [];
    list.push(call.index);
    byJob.set(call.jobId, list);
  }
  return byJob;
}

async function chunkCount(t: CaseContext, sourceId: string): Promise<number> {
  return await t.harness.oracle!.chunkCount!(t.scope, sourceId);
}

// ---------------------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------------------

const waitCases: ConformanceCase[] = [
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
        t.adapter.waitForTerminal({
          scope: t.scope,
          jobId: before.jobId,
          signal: AbortSignal.abort(),
        }),
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
        t.adapter.waitForTerminal({ scope: t.scope, jobId: "no-such-job", timeoutMs: 1_000 }),
        "E_SYNC_JOB_NOT_FOUND",
      );
      await expectSyncError(
        t.adapter.waitForTerminal({
          scope: t.otherScope,
          jobId: sealed.job.jobId,
          timeoutMs: 1_000,
        }),
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
];

// ---------------------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------------------

/** Seals one job per entry of `offsets` (ms after now), in that order. */
async function sealJobsAt(t: CaseContext, offsets: readonly number[]): Promise<Job[]> {
  const start = t.clock.now();
  const jobs: Job[] = [];
  for (const offset of offsets) {
    t.clock.set(start + offset);
    jobs.push((await t.uploadAndSeal(textChunks(1, `list-${jobs.length}`))).job);
  }
  return jobs;
}

const listCases: ConformanceCase[] = [
  {
    name: "list: jobs come newest first, ties broken by jobId descending",
    async run(t) {
      const jobs = await sealJobsAt(t, [0, 1_000, 2_000, 3_000, 3_000, 3_000, 3_000, 4_000]);
      const expected = [...jobs].sort(newestFirst);
      const page = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(ids(page.items), ids(expected), "listing order");
      assertEquals(page.nextCursor, undefined, "a single page has no nextCursor");
      assertEquals(page.items[0].createdAt, t.clock.now(), "the newest job comes first");
      const again = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(ids(again.items), ids(page.items), "the order is stable");
    },
  },
  {
    name: "list: pagination with a limit returns every job exactly once",
    async run(t) {
      const jobs = await sealJobsAt(t, [0, 1_000, 1_000, 1_000, 2_000, 3_000, 3_000]);
      const expected = ids([...jobs].sort(newestFirst));
      for (const limit of [1, 2, 3, 7, 50]) {
        const all = await listAll(t, { scope: t.scope, limit });
        assertEquals(ids(all), expected, `pages of ${limit}`);
      }
      // Writes between pages neither repeat nor skip a job: a newer job sorts before the
      // cursor, and jobs changing state keep their place.
      let added = false;
      const all = await listAll(t, { scope: t.scope, limit: 3 }, async (page) => {
        if (page !== 0) return;
        t.clock.advance(1_000);
        await t.uploadAndSeal(textChunks(1, "late"));
        added = true;
        await t.harness.drain();
      });
      assert(added, "the listing had a second page");
      assertEquals(ids(all), expected, "pages while jobs are added and run");
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items.length, 8, "jobs in all");
    },
  },
  {
    name: "list: filters by conversation and by state, within the scope only",
    async run(t) {
      const conversation1 = t.newConversationId();
      const conversation2 = t.newConversationId();
      const conversation3 = t.newConversationId();
      const chunks = textChunks(1, "filter");
      const sealAt = async (conversationId: string, scope = t.scope) => {
        t.clock.advance(1_000);
        return (await t.uploadAndSeal(chunks, { conversationId, scope })).job;
      };
      const j1 = await sealAt(conversation1);
      const j2 = await sealAt(conversation1); // supersedes j1
      const j3 = await sealAt(conversation2);
      const j4 = await sealAt(conversation3);
      const other = await sealAt(conversation1, t.otherScope);
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === j4.jobId) throw nonRetryable(new Error("fatal"));
      });
      await t.harness.drain();
      const j5 = await sealAt(conversation2);
      const list = async (filter: Partial<ListJobsInput>, scope = t.scope) =>
        ids((await t.adapter.listJobs({ scope, ...filter })).items);
      assertEquals(await list({}), ids([j5, j4, j3, j2, j1]), "all jobs of the scope");
      assertEquals(await list({ conversationId: conversation1 }), ids([j2, j1]), "conversation 1");
      assertEquals(await list({ conversationId: conversation2 }), ids([j5, j3]), "conversation 2");
      assertEquals(await list({ conversationId: "no-such-conversation" }), [], "unknown");
      assertEquals(await list({ state: "queued" }), ids([j5]), "queued");
      assertEquals(await list({ state: "succeeded" }), ids([j3, j2]), "succeeded");
      assertEquals(await list({ state: "failed" }), ids([j4]), "failed");
      assertEquals(await list({ state: "cancelled" }), ids([j1]), "cancelled");
      assertEquals(await list({ state: "running" }), [], "running");
      assertEquals(
        await list({ conversationId: conversation2, state: "succeeded" }),
        ids([j3]),
        "conversation 2 and succeeded",
      );
      assertEquals(await list({}, t.otherScope), ids([other]), "the other scope");
      assertEquals(
        await list({ conversationId: conversation1, state: "succeeded" }, t.otherScope),
        ids([other]),
        "the other scope, filtered",
      );
      const filteredPages = await listAll(t, { scope: t.scope, state: "succeeded", limit: 1 });
      assertEquals(ids(filteredPages), ids([j3, j2]), "filtered pages");
    },
  },
  {
    name: "list: malformed cursors and out-of-range limits are E_SYNC_INVALID_ARGUMENT",
    async run(t) {
      await sealJobsAt(t, [0, 1, 2]);
      for (const cursor of ["not-a-cursor", "", "j", "jabc:x", "i0", "%%%"]) {
        await expectSyncError(
          () => t.adapter.listJobs({ scope: t.scope, cursor }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      for (const limit of [0, 1001, -1, 2.5, Number.NaN]) {
        await expectSyncError(
          () => t.adapter.listJobs({ scope: t.scope, limit }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      await expectSyncError(
        () => t.adapter.listJobs({ scope: t.scope, state: "bogus" as JobState }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals((await t.adapter.listJobs({ scope: t.scope, limit: 1 })).items.length, 1, "1");
      assertEquals(
        (await t.adapter.listJobs({ scope: t.scope, limit: 1000 })).items.length,
        3,
        "limit 1000",
      );
    },
  },
];

// ---------------------------------------------------------------------------------------
// gc
// ---------------------------------------------------------------------------------------

const gcCases: ConformanceCase[] = [
  {
    name: "gc: a collecting source past its TTL expires and its chunks are deleted",
    hooks: ["chunkCount"],
    async run(t) {
      const t0 = t.clock.now();
      const { source } = await t.upload(textChunks(3, "ttl"));
      assertEquals(source.expiresAt, t0 + TTL_MS, "expiresAt = createdAt + TTL");
      t.clock.set(t0 + TTL_MS - 1);
      assertEquals(await t.adapter.gc(), ZERO_GC, "gc before the TTL");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId })).state,
        "collecting",
        "state before the TTL",
      );
      assertEquals(await chunkCount(t, source.sourceId), 3, "chunks before the TTL");
      t.clock.set(t0 + TTL_MS + 1);
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
      t.clock.set(endedAt + RETENTION_MS + TTL_MS + 1);
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
      t.clock.set(t0 + TTL_MS + 1);
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
];

// ---------------------------------------------------------------------------------------
// durability
// ---------------------------------------------------------------------------------------

const durabilityCases: ConformanceCase[] = [
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
    name:
      "lease: a chunk whose every worker dies fails the job after maxAttempts (no endless loop)",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "crash-loop"));
      for (let death = 1; death <= SUITE_MAX_ATTEMPTS; death++) {
        const claimed = await newWorker(t, `dies-${death}`).claimNextJob();
        assert(claimed?.lease !== undefined, `worker ${death} claims the job`);
        assertEquals(claimed.attempt, death - 1, `attempts counted before worker ${death}`);
        // The worker dies holding the lease: it never commits nor renews it.
        t.clock.set(claimed.lease.expiresAt);
      }
      const next = await newWorker(t, "survivor").claimNextJob();
      assertEquals(next, undefined, "nothing left to claim");
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "failed", "job state");
      assertEquals(done.attempt, SUITE_MAX_ATTEMPTS, "attempts");
      assertEquals(done.error?.code, "E_SYNC_LEASE_LOST", "error code");
      assertEquals(done.error?.retryable, false, "final");
      assertEquals(t.handler.calls.length, 0, "no handler ran");
    },
  },
];

// ---------------------------------------------------------------------------------------
// concurrency
// ---------------------------------------------------------------------------------------

const concurrencyCases: ConformanceCase[] = [
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

// ---------------------------------------------------------------------------------------
// scale
// ---------------------------------------------------------------------------------------

const scaleCases: ConformanceCase[] = [
  {
    name: "scale: a 5 000-chunk source (or the harness's scaleChunks) uploads, seals and " +
      "applies every chunk once, in order",
    async run(t) {
      const count = t.harness.scaleChunks ?? DEFAULT_SCALE_CHUNKS;
      assert(
        Number.isSafeInteger(count) && count > 0,
        `scaleChunks ${count} is a positive integer`,
      );
      const chunks = tinyChunks(count);
      const { manifest, digests } = await manifestFor(chunks);
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
      });
      const batch = 250;
      for (let start = 0; start < count; start += batch) {
        const appended = await appendParallel(
          t,
          source.sourceId,
          chunks,
          digests,
          Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i),
        );
        assert(appended.every(Boolean), `batch at ${start} stored every chunk`);
      }
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(job.totalChunks, count, "totalChunks");
      await t.harness.drain();
      const done = await t.job(job.jobId);
      assertEquals(done.state, "succeeded", "state");
      assertEquals(done.cursor, count, "cursor");
      assertEquals(done.appliedBytes, manifest.byteCount, "appliedBytes");
      const calls = t.handler.calls;
      assertEquals(calls.length, count, "apply calls");
      for (let i = 0; i < count; i++) {
        if (calls[i].index !== i || !calls[i].ok) {
          assert(false, `call ${i} applied chunk ${calls[i].index} (ok=${calls[i].ok})`);
        }
      }
    },
  },
];

/** Claims and runs jobs one by one until none is due or `maxJobs` runs were made. */
async function runAtMost(worker: ConformanceWorker, maxJobs: number): Promise<number> {
  let runs = 0;
  while (runs < maxJobs) {
    const job = await worker.claimNextJob();
    if (!job) break;
    await worker.runClaimedJob(job);
    runs++;
  }
  return runs;
}

/** Lifecycle cases: wait, list, gc, durability, concurrency, scale. */
export const lifecycleCases: readonly ConformanceCase[] = [
  ...waitCases,
  ...listCases,
  ...gcCases,
  ...durabilityCases,
  ...concurrencyCases,
  ...scaleCases,
];
