/**
 * Helpers the case files share: async control that never hangs (bounded event-loop
 * turns, deferreds, tracked promises), recording what the handler is told, oracle reads,
 * small upload helpers, and the suite policy's numbers.
 *
 * Time is the suite's manual clock: no helper waits for real time to pass. Where a case
 * must let an adapter's asynchronous work (a notification, a heartbeat write) complete,
 * it yields a bounded number of event-loop turns and fails instead of hanging.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import { Capability } from "../../src/contracts/capabilities.ts";
import type { AppendResult, Chunk, GcReport, Job, Source } from "../../src/contracts/domain.ts";
import type { AppendChunkInput, ListJobsInput } from "../../src/contracts/inputs.ts";
import type { SyncError } from "../../src/errors.ts";
import type { Limits } from "../../src/policy/policy.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, SUITE_POLICY } from "../context.ts";
import type { ConformanceWorker } from "../types.ts";

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

/** The suite's retry policy. */
export const RETRY = SUITE_POLICY.retry!;
/** The suite's lease. */
export const LEASE_MS = SUITE_POLICY.leaseMs!;
/** The suite's heartbeat period. */
export const HEARTBEAT_MS = SUITE_POLICY.heartbeatMs!;

/** The suite's backoff before retry number `attempt`: jitter sample 0.5 → 0.75 × capped. */
export function suiteDelay(attempt: number): number {
  const raw = RETRY.baseDelayMs! * Math.pow(RETRY.factor!, attempt - 1);
  return Math.floor(Math.min(RETRY.maxDelayMs!, raw) * 0.75);
}

/** The chunk indexes of `calls`, in order. */
export function indexes(calls: readonly { index: number }[]): number[] {
  return calls.map((call) => call.index);
}

/** `[0, 1, …, n-1]`. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The suite's limits, resolved. */
export const LIMITS: Limits = SUITE_POLICY.limits as Limits;

/** The suite's source TTL. */
export const SOURCE_TTL_MS: number = SUITE_POLICY.sourceTtlMs as number;

/** Stored chunk count, read through the oracle (case must declare hook `chunkCount`). */
export async function storedChunkCount(
  t: CaseContext,
  sourceId: string,
  scope: string = t.scope,
): Promise<number> {
  const oracle = t.harness.oracle;
  assert(oracle?.chunkCount, "the case needs the chunkCount oracle hook");
  return await oracle.chunkCount(scope, sourceId);
}

/** A stored chunk, read through the oracle (case must declare hook `readChunk`). */
export async function storedChunk(
  t: CaseContext,
  sourceId: string,
  index: number,
  scope: string = t.scope,
): Promise<Chunk | undefined> {
  const oracle = t.harness.oracle;
  assert(oracle?.readChunk, "the case needs the readChunk oracle hook");
  return await oracle.readChunk(scope, sourceId, index);
}

/** A stored source, read through the oracle (case must declare hook `readSource`). */
export async function storedSource(
  t: CaseContext,
  sourceId: string,
  scope: string = t.scope,
): Promise<Source | undefined> {
  const oracle = t.harness.oracle;
  assert(oracle?.readSource, "the case needs the readSource oracle hook");
  return await oracle.readSource(scope, sourceId);
}

/** An error with `id` blanked out, for comparing "wrong scope" with "missing". */
export function errorShape(error: SyncError, id: string): Record<string, unknown> {
  const hide = (text: string) => text.split(id).join("<id>");
  return {
    name: error.name,
    code: error.code,
    retryable: error.retryable,
    message: hide(error.message),
    details: hide(JSON.stringify(error.details ?? null)),
  };
}

/**
 * Fails if `promise` does not settle within `ms` of real time. A guard against a broken
 * adapter hanging the suite, never a sleep: it settles as soon as `promise` does.
 */
export async function within<T>(promise: Promise<T>, label: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** Jobs of one conversation (all pages) in `scope`. */
export async function jobsOf(
  t: CaseContext,
  conversationId: string,
  scope: string = t.scope,
): Promise<Job[]> {
  const jobs: Job[] = [];
  let cursor: string | undefined;
  do {
    const page = await t.adapter.listJobs({ scope, conversationId, cursor });
    jobs.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return jobs;
}

/** Appends one chunk, computing its digest. */
export async function append(
  t: CaseContext,
  sourceId: string,
  index: number,
  bytes: Uint8Array,
  options: { scope?: string; itemCount?: number } = {},
): Promise<AppendResult> {
  const input: AppendChunkInput = {
    scope: options.scope ?? t.scope,
    sourceId,
    index,
    bytes,
    sha256: await sha256Hex(bytes),
  };
  if (options.itemCount !== undefined) input.itemCount = options.itemCount;
  return await t.adapter.appendChunk(input);
}

/** Creates an empty source in `scope` (default the case's scope). */
export async function createSource(
  t: CaseContext,
  options: { scope?: string; conversationId?: string; sourceId?: string } = {},
): Promise<Source> {
  return await t.adapter.createSource({
    scope: options.scope ?? t.scope,
    conversationId: options.conversationId ?? t.newConversationId(),
    sourceId: options.sourceId,
  });
}

/** A source id no case creates. */
export const MISSING_SOURCE = "missing-source-0";
/** A job id no adapter generates. */
export const MISSING_JOB = "missing-job-0";

/** Asserts `other` (wrong scope, record `id`) answers exactly like `missing`. */
export function assertSameAsMissing(
  other: SyncError,
  id: string,
  missing: SyncError,
  missingId: string,
) {
  assertEquals(
    errorShape(other, id),
    errorShape(missing, missingId),
    "error for a record of another scope vs a missing record",
  );
}

/** How many workers the crash-loop cases let die: the suite's maxAttempts. */
export const SUITE_MAX_ATTEMPTS = (SUITE_POLICY.retry as { maxAttempts: number }).maxAttempts;

/** The suite's retention of finished sources' chunks. */
export const RETENTION_MS = SUITE_POLICY.retentionMs!;
/** A gc pass that found nothing to do. */
export const ZERO_GC: GcReport = { expiredSources: 0, purgedSources: 0, deletedChunks: 0 };

/** Newest first: `createdAt` descending, then `jobId` descending. */
export function newestFirst(a: Job, b: Job): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.jobId < b.jobId ? 1 : a.jobId > b.jobId ? -1 : 0;
}

/** The job ids of `jobs`, in order. */
export function ids(jobs: readonly Job[]): string[] {
  return jobs.map((job) => job.jobId);
}

/** Every job of a listing, following `nextCursor` (bounded, so a loop cannot hang). */
export async function listAll(
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
export async function appendParallel(
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
export function appliedByJob(t: CaseContext): Map<string, number[]> {
  const byJob = new Map<string, number[]>();
  for (const call of t.handler.applied) {
    const list = byJob.get(call.jobId) ?? [];
    list.push(call.index);
    byJob.set(call.jobId, list);
  }
  return byJob;
}

/** Stored chunks of a source of the case's scope (hook `chunkCount`). */
export async function chunkCount(t: CaseContext, sourceId: string): Promise<number> {
  return await t.harness.oracle!.chunkCount!(t.scope, sourceId);
}

/** Claims and runs jobs one by one until none is due or `maxJobs` runs were made. */
export async function runAtMost(worker: ConformanceWorker, maxJobs: number): Promise<number> {
  let runs = 0;
  while (runs < maxJobs) {
    const job = await worker.claimNextJob();
    if (!job) break;
    await worker.runClaimedJob(job);
    runs++;
  }
  return runs;
}
