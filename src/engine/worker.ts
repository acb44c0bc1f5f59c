/**
 * The job step: claim with a lease and fencing token, read, re-hash, apply through the
 * host's handler (inside the commit transaction where the store allows it, else with a
 * heartbeat), commit, retry with backoff, verify, terminal.
 *
 * @module
 */

import { sha256Hex } from "../checksum.ts";
import type { Chunk, Job, Manifest, RecordedError, Source } from "../contracts/domain.ts";
import type { ClaimHints, StoreTransaction } from "../contracts/store.ts";
import { SyncError } from "../errors.ts";
import { backoffDelay } from "../policy/backoff.ts";
import { type JobEvent, transitionJob } from "../state/job.ts";
import { chunkHomeOf, recordError } from "../state/source.ts";
import { type EngineContext, readOnce } from "./context.ts";
import { releasedChunksOf } from "./current.ts";

/** Options of {@link JobRunner.runClaimedJob}. */
export interface RunJobOptions {
  /**
   * Stop after this many steps, a step being one chunk applied or the verification. A
   * backend that runs one step per transaction passes 1; the job stays claimed.
   */
  maxSteps?: number;
}

/** Options of {@link JobRunner.runDueJobs}. */
export interface RunDueJobsOptions {
  /** Lease owner name (default: the engine's worker id). */
  owner?: string;
  /** Stop after this many jobs. */
  maxJobs?: number;
  /** Stop claiming new jobs once aborted. */
  signal?: AbortSignal;
  /**
   * End the run as soon as a pass runs out of due jobs, instead of looking once more in a
   * new transaction. For a caller woken by every job write (a background worker): a job
   * that became due during the pass wakes it again.
   */
  endWhenDrained?: boolean;
}

/** The lease a claim handed to this worker. */
interface Claim {
  scope: string;
  jobId: string;
  token: number;
}

/** What a worker step learnt: the job as now stored, and whether the worker still holds it. */
interface StepResult {
  job: Job;
  holding: boolean;
}

/** What a thrown value says about itself; a getter that throws says nothing. */
function readThrown(error: unknown): { retryable: boolean; message: string } {
  let retryable = true;
  let message = "the handler threw a value that cannot be read";
  try {
    retryable = !(typeof error === "object" && error !== null &&
      (error as { retryable?: unknown }).retryable === false);
  } catch { /* a throwing getter: retryable, like any handler error */ }
  try {
    message = error instanceof Error ? String(error.message) : String(error);
  } catch { /* keep the generic message */ }
  return { retryable, message };
}

function handlerFailure(error: unknown, index: number): SyncError {
  const { retryable, message } = readThrown(error);
  return new SyncError("E_SYNC_HANDLER_FAILED", `handler failed on chunk ${index}: ${message}`, {
    retryable,
    cause: error,
    details: { index },
  });
}

/** `job` when it is running under `claim`'s lease, else undefined. */
function heldRunning(job: Job | undefined, claim: Claim): Job | undefined {
  return job?.state === "running" && job.lease?.token === claim.token ? job : undefined;
}

/** Jobs failed on claim (abandoned leases out of attempts) before one claim gives up. */
const MAX_FAILED_ON_CLAIM = 100;

/** A handler failure inside a claiming transaction, thrown to roll that transaction back. */
class HandlerThrew extends Error {
  constructor(readonly failure: RecordedError) {
    super(failure.message);
  }
}

/** Runs jobs for one engine. */
export class JobRunner<TExtras extends object> {
  readonly #ctx: EngineContext<TExtras>;
  readonly #owner: string;
  /** A store reading chunks ahead skips the bytes this engine holds (`#readChunk`). */
  readonly #claimHints: ClaimHints;

  constructor(ctx: EngineContext<TExtras>, owner: string) {
    this.#ctx = ctx;
    this.#owner = owner;
    this.#claimHints = {
      holdsChunk: (scope, sourceId, index) => ctx.uploads.has(scope, sourceId, index),
    };
  }

  /** Claims the earliest due job, if any: `running` (or `verifying`) under a fresh lease. */
  async claimNextJob(owner: string = this.#owner): Promise<Job | undefined> {
    const now = this.#ctx.clock.now();
    return await this.#ctx.store.transaction(async (tx) => {
      const claimed = (await this.#claimIn(tx, now, owner))?.claimed;
      if (claimed) await tx.updateJob(claimed);
      return claimed;
    });
  }

  #claimEvent(now: number, owner: string): JobEvent {
    const { leaseMs, retry } = this.#ctx.policy;
    return { type: "claim", now, owner, leaseMs, maxAttempts: retry.maxAttempts };
  }

  /**
   * Finds and claims the earliest due job inside `tx` (the claim not yet written). A due
   * job whose abandoned lease used up its last attempt is written `failed` on the way.
   */
  async #claimIn(
    tx: StoreTransaction<TExtras>,
    now: number,
    owner: string,
  ): Promise<{ found: Job; claimed: Job } | undefined> {
    for (let skipped = 0; skipped < MAX_FAILED_ON_CLAIM; skipped++) {
      const found = await tx.findClaimableJob(now, this.#claimHints);
      if (!found) return undefined;
      const next = transitionJob(found, this.#claimEvent(now, owner));
      if (!next.ok) return undefined;
      if (next.job.lease) return { found, claimed: next.job };
      await tx.updateJob(next.job);
    }
    return undefined;
  }

  /**
   * Claims and runs due jobs until none is due; returns how many jobs were run. Where the
   * store applies in its transaction, due jobs with at most one chunk left are claimed,
   * applied and finished together, up to `policy.shortJobBatchSize` per transaction (one
   * commit for the batch); any other job is claimed and then run step by step.
   */
  async runDueJobs(options: RunDueJobsOptions = {}): Promise<number> {
    const owner = options.owner ?? this.#owner;
    const maxJobs = options.maxJobs ?? Infinity;
    let count = 0;
    while (count < maxJobs && !options.signal?.aborted) {
      const pass = await this.#claimAndFinishShort(owner, maxJobs - count, options.signal);
      count += pass.jobs;
      if (pass.unfinished) await this.runClaimedJob(pass.unfinished);
      else if (pass.jobs === 0 || (pass.drained && options.endWhenDrained)) break;
    }
    return count;
  }

  /**
   * Claims due jobs in one transaction, finishing each one that can be finished there,
   * until `room` jobs, the batch size or a batch's bytes are reached, nothing is due
   * (`drained`), or a job needs the step-by-step path: that one is returned claimed, as
   * `unfinished`.
   *
   * A handler failure rolls the whole transaction back: the failed attempt is recorded
   * for the job that failed, and the batch's other jobs are due again, their effects
   * undone with the claims.
   */
  async #claimAndFinishShort(
    owner: string,
    room: number,
    signal: AbortSignal | undefined,
  ): Promise<{ jobs: number; unfinished?: Job; drained?: boolean }> {
    const { store, clock, policy } = this.#ctx;
    const batchSize = store.transactionalApply ? Math.min(room, policy.shortJobBatchSize) : 1;
    let found: Job | undefined;
    try {
      return await store.transaction(async (tx) => {
        let jobs = 0;
        let appliedBytes = 0;
        while (jobs < batchSize && appliedBytes < policy.limits.maxChunkBytes) {
          if (jobs > 0 && signal?.aborted) break;
          const claim = await this.#claimIn(tx, clock.now(), owner);
          if (!claim) return { jobs, drained: true };
          found = claim.found;
          const { claimed } = claim;
          const finished = store.transactionalApply && claimed.totalChunks - claimed.cursor <= 1
            ? await this.#finishInTransaction(tx, claimed)
            : undefined;
          await tx.updateJob(finished ?? claimed);
          jobs++;
          if (!finished) return { jobs, unfinished: claimed };
          appliedBytes += finished.appliedBytes - claimed.appliedBytes;
        }
        return { jobs };
      });
    } catch (error) {
      if (!(error instanceof HandlerThrew) || !found) throw error;
      // The transaction rolled back the claims with the handler's writes: claim the job
      // that failed again and record its failed attempt, unless another worker moved it.
      await this.#recordShortFailure(found, owner, error.failure);
      return { jobs: 1 };
    }
  }

  /**
   * Applies the job's last chunk and verifies it, inside the claiming transaction, and
   * returns the terminal job; undefined (nothing run) when the step-by-step path must
   * deal with the job (its source, or its chunk, is missing or damaged).
   */
  async #finishInTransaction(
    tx: StoreTransaction<TExtras>,
    claimed: Job,
  ): Promise<Job | undefined> {
    const { handler, clock, policy } = this.#ctx;
    const token = claimed.lease?.token ?? 0;
    const source = await tx.getSource(claimed.scope, claimed.sourceId);
    const manifest = source?.manifest;
    if (!source || !manifest) return undefined;
    let job = claimed;
    if (job.state === "running" && job.cursor < job.totalChunks) {
      const { chunk, verified } = await this.#readChunk(
        tx,
        job.scope,
        chunkHomeOf(source),
        job.cursor,
      );
      if (!chunk || chunk.bytes.length !== chunk.byteLength) return undefined;
      const sha256 = verified ? chunk.sha256 : await sha256Hex(chunk.bytes);
      if (sha256 !== chunk.sha256) return undefined;
      try {
        await handler.apply(chunk, {
          ...tx.extras,
          job,
          source,
          manifest,
          signal: new AbortController().signal,
          base: job.base,
        });
      } catch (error) {
        throw new HandlerThrew(recordError(handlerFailure(error, chunk.index)));
      }
      const next = transitionJob(job, {
        type: "chunkApplied",
        now: clock.now(),
        token,
        index: chunk.index,
        byteLength: chunk.bytes.length,
        sha256,
        leaseMs: policy.leaseMs,
      });
      if (!next.ok) throw next.error;
      job = next.job;
    }
    if (job.state !== "verifying") {
      // After its last chunk a job verifies; returning here would commit the handler's
      // writes without the progress that records them.
      if (job !== claimed) throw new SyncError("E_SYNC_INTERNAL", "applied job is not verifying");
      return undefined;
    }
    const hookError = await this.#runVerifyHook(job, source, manifest, tx.extras);
    const verified = transitionJob(job, {
      type: "verify",
      now: clock.now(),
      token,
      manifest,
      hookError,
    });
    if (!verified.ok) throw verified.error;
    return verified.job;
  }

  /** Records a failed attempt of a job whose claim was rolled back, if no one moved it. */
  async #recordShortFailure(found: Job, owner: string, error: RecordedError): Promise<void> {
    const { store, clock } = this.#ctx;
    await store.transaction(async (tx) => {
      const current = await tx.lockJob(found.scope, found.jobId);
      const unchanged = current !== undefined && current.updatedAt === found.updatedAt &&
        current.state === found.state && current.lease?.token === found.lease?.token;
      if (!unchanged) return;
      const now = clock.now();
      const claimed = transitionJob(current, this.#claimEvent(now, owner));
      if (!claimed.ok || !claimed.job.lease) return;
      const failed = transitionJob(
        claimed.job,
        this.#failureEvent(claimed.job, claimed.job.lease.token, error, now),
      );
      if (failed.ok) await tx.updateJob(failed.job);
    });
  }

  /**
   * Applies chunks of a job this worker claimed, from its cursor, until it is done,
   * fails an attempt, loses its lease, or `maxSteps` steps were run. Returns the job as
   * last seen.
   */
  async runClaimedJob(job: Job, options: RunJobOptions = {}): Promise<Job> {
    if (!job.lease) throw new SyncError("E_SYNC_LEASE_LOST", "job is not claimed");
    const claim: Claim = { scope: job.scope, jobId: job.jobId, token: job.lease.token };
    const source = await readOnce(this.#ctx.store, (tx) => tx.getSource(job.scope, job.sourceId));
    if (!source?.manifest) {
      return (await this.#fail(claim, job, {
        code: "E_SYNC_INTERNAL",
        message: `source ${job.sourceId} of job ${job.jobId} is missing or unsealed`,
        retryable: false,
      })).job;
    }
    let step: StepResult = { job, holding: true };
    let steps = 0;
    const maxSteps = options.maxSteps ?? Infinity;
    while (
      step.holding && step.job.state === "running" && step.job.cursor < step.job.totalChunks &&
      steps < maxSteps
    ) {
      step = await this.#applyNextChunk(claim, step.job, source, source.manifest);
      steps++;
    }
    if (step.holding && step.job.state === "verifying" && steps < maxSteps) {
      step = await this.#verify(claim, step.job, source, source.manifest);
    }
    return step.job;
  }

  /**
   * The chunk at `index` of a chunk home: the bytes this engine hashed and stored itself
   * while it still holds them and the store still has a chunk with their digest there
   * (`verified`: not hashed again), else the stored chunk, which the caller hashes.
   */
  async #readChunk(
    tx: StoreTransaction<TExtras>,
    scope: string,
    home: string,
    index: number,
  ): Promise<{ chunk: Chunk | undefined; verified: boolean }> {
    const { uploads } = this.#ctx;
    if (uploads.has(scope, home, index)) {
      const chunk = uploads.take(scope, home, await tx.getChunkInfo(scope, home, index));
      if (chunk) return { chunk, verified: true };
    }
    return { chunk: await tx.getChunk(scope, home, index), verified: false };
  }

  async #applyNextChunk(
    claim: Claim,
    job: Job,
    source: Source,
    manifest: Manifest,
  ): Promise<StepResult> {
    const index = job.cursor;
    const read = await this.#ctx.store.transaction(async (tx) => {
      const { chunk, verified } = await this.#readChunk(tx, job.scope, chunkHomeOf(source), index);
      return {
        current: await tx.getJob(claim.scope, claim.jobId),
        chunk,
        verified,
        // Only where the chunk is gone: were its bytes released on purpose?
        released: chunk ? false : index < await releasedChunksOf(tx, source),
        extras: tx.extras,
      };
    });
    // A worker whose lease was taken over must not run the handler even once more.
    if (read.current?.lease?.token !== claim.token) {
      return { job: read.current ?? job, holding: false };
    }
    const chunk = read.chunk;
    if (!chunk && read.released) {
      return await this.#fail(claim, job, {
        code: "E_SYNC_SOURCE_EXPIRED",
        message: `chunk ${index} of source ${job.sourceId}: its payload was released ` +
          `(releasePayloads) and cannot be applied again; upload a full source`,
        retryable: false,
        details: { index, sourceId: job.sourceId },
      });
    }
    if (!chunk) {
      return await this.#fail(claim, job, {
        code: "E_SYNC_INTERNAL",
        message: `chunk ${index} of source ${job.sourceId} is missing from storage`,
        retryable: false,
        details: { index },
      });
    }
    const actual = read.verified ? chunk.sha256 : await sha256Hex(chunk.bytes);
    if (actual !== chunk.sha256 || chunk.bytes.length !== chunk.byteLength) {
      return await this.#fail(claim, job, {
        code: "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
        message: `stored chunk ${index} is corrupt: it hashes to ${actual}, not ${chunk.sha256}`,
        retryable: false,
        details: { index, expected: chunk.sha256, actual },
      });
    }
    const applied: JobEvent = {
      type: "chunkApplied",
      now: 0,
      token: claim.token,
      index,
      byteLength: chunk.bytes.length,
      sha256: actual,
      leaseMs: this.#ctx.policy.leaseMs,
    };
    if (this.#ctx.store.transactionalApply) {
      return await this.#applyInTransaction(claim, job, chunk, source, manifest, applied);
    }
    const watch = this.#watchLease(claim);
    try {
      await this.#ctx.handler.apply(chunk, {
        ...read.extras,
        job,
        source,
        manifest,
        signal: watch.signal,
        base: job.base,
      });
    } catch (error) {
      watch.stop();
      return await this.#fail(claim, job, recordError(handlerFailure(error, index)));
    }
    watch.stop();
    return await this.#commit(claim, job, applied);
  }

  async #applyInTransaction(
    claim: Claim,
    job: Job,
    chunk: Chunk,
    source: Source,
    manifest: Manifest,
    applied: JobEvent,
  ): Promise<StepResult> {
    const { store } = this.#ctx;
    const controller = new AbortController();
    // Where other transactions run meanwhile, the job's row is not held during the
    // handler: a cancel or a heartbeat commits at once (the watch aborts the handler on a
    // cancel), and the lease is checked again under the lock before progress commits.
    const watch = store.concurrentTransactions ? this.#watchLease(claim) : undefined;
    const signal = watch?.signal ?? controller.signal;
    let handlerError: unknown;
    let handlerThrew = false;
    try {
      return await store.transaction(async (tx) => {
        const current = watch
          ? heldRunning(await tx.getJob(claim.scope, claim.jobId), claim)
          : await this.#currentHeld(tx, claim);
        if (!current) throw new SyncError("E_SYNC_LEASE_LOST", "lease lost before apply");
        try {
          await this.#ctx.handler.apply(chunk, {
            ...tx.extras,
            job: current,
            source,
            manifest,
            signal,
            base: current.base,
          });
        } catch (error) {
          handlerThrew = true;
          handlerError = error;
          throw error;
        }
        watch?.stop();
        const held = watch ? await this.#currentHeld(tx, claim) : current;
        if (!held) throw new SyncError("E_SYNC_LEASE_LOST", "lease lost while applying");
        const next = transitionJob(held, { ...applied, now: this.#ctx.clock.now() });
        if (!next.ok) throw next.error;
        await tx.updateJob(next.job);
        return { job: next.job, holding: next.job.lease?.token === claim.token };
      });
    } catch (error) {
      watch?.stop();
      controller.abort();
      if (handlerThrew) {
        return await this.#fail(claim, job, recordError(handlerFailure(handlerError, job.cursor)));
      }
      if (error instanceof SyncError && error.code === "E_SYNC_LEASE_LOST") {
        return { job: await this.#read(claim) ?? job, holding: false };
      }
      // The store failed (e.g. the connection dropped): the transaction rolled back, so
      // the attempt is retried like a handler failure.
      const failure = error instanceof SyncError ? error : handlerFailure(error, job.cursor);
      return await this.#fail(claim, job, recordError(failure));
    }
  }

  async #verify(claim: Claim, job: Job, source: Source, manifest: Manifest): Promise<StepResult> {
    if (this.#ctx.store.transactionalApply) {
      // The job row stays locked while the hook runs: no cancel or claim can interleave.
      return await this.#ctx.store.transaction(async (tx) => {
        const current = await this.#currentHeld(tx, claim);
        if (!current) {
          return { job: await tx.getJob(claim.scope, claim.jobId) ?? job, holding: false };
        }
        const hookError = await this.#runVerifyHook(current, source, manifest, tx.extras);
        return await this.#transitionIn(tx, claim, current, {
          type: "verify",
          now: this.#ctx.clock.now(),
          token: claim.token,
          manifest,
          hookError,
        });
      });
    }
    const extras = await this.#ctx.store.transaction((tx) => Promise.resolve(tx.extras));
    const watch = this.#watchLease(claim);
    let hookError: RecordedError | undefined;
    try {
      hookError = await this.#runVerifyHook(job, source, manifest, extras, watch.signal);
    } finally {
      watch.stop();
    }
    return await this.#commit(claim, job, {
      type: "verify",
      now: 0,
      token: claim.token,
      manifest,
      hookError,
    });
  }

  /** The host's verify hook, if any: its failure as the error to record. */
  async #runVerifyHook(
    job: Job,
    source: Source,
    manifest: Manifest,
    extras: TExtras,
    signal: AbortSignal = new AbortController().signal,
  ): Promise<RecordedError | undefined> {
    const verify = this.#ctx.handler.verify?.bind(this.#ctx.handler);
    if (!verify) return undefined;
    try {
      await verify({ ...extras, job, source, manifest, signal });
      return undefined;
    } catch (error) {
      return recordError(
        new SyncError(
          "E_SYNC_VERIFICATION_FAILED",
          `verify hook failed: ${readThrown(error).message}`,
        ),
      );
    }
  }

  /** Records a failed attempt: `retry_wait` after backoff, or `failed`. */
  async #fail(claim: Claim, job: Job, error: RecordedError): Promise<StepResult> {
    return await this.#commit(claim, job, this.#failureEvent(job, claim.token, error, 0));
  }

  /** The event of a failed attempt of `job`, with its backoff drawn now. */
  #failureEvent(job: Job, token: number, error: RecordedError, now: number): JobEvent {
    return {
      type: "chunkFailed",
      now,
      token,
      error,
      maxAttempts: this.#ctx.policy.retry.maxAttempts,
      retryDelayMs: backoffDelay(job.attempt + 1, this.#ctx.policy.retry, this.#ctx.random),
    };
  }

  /** Commits `event` (its `now` filled in at commit time) if the lease still holds. */
  async #commit(claim: Claim, fallback: Job, event: JobEvent): Promise<StepResult> {
    return await this.#ctx.store.transaction(async (tx) => {
      const current = await tx.lockJob(claim.scope, claim.jobId);
      if (!current) return { job: fallback, holding: false };
      return await this.#transitionIn(tx, claim, current, { ...event, now: this.#ctx.clock.now() });
    });
  }

  async #transitionIn(
    tx: StoreTransaction<TExtras>,
    claim: Claim,
    current: Job,
    event: JobEvent,
  ): Promise<StepResult> {
    const next = transitionJob(current, event);
    if (!next.ok) return { job: current, holding: false };
    await tx.updateJob(next.job);
    return { job: next.job, holding: next.job.lease?.token === claim.token };
  }

  async #currentHeld(tx: StoreTransaction<TExtras>, claim: Claim): Promise<Job | undefined> {
    const current = await tx.lockJob(claim.scope, claim.jobId);
    return current?.lease?.token === claim.token ? current : undefined;
  }

  async #read(claim: Claim): Promise<Job | undefined> {
    return await readOnce(this.#ctx.store, (tx) => tx.getJob(claim.scope, claim.jobId));
  }

  /**
   * While a handler runs outside a transaction: extends the lease every heartbeat, and
   * aborts the handler's signal as soon as the job is cancelled or the lease is lost.
   */
  #watchLease(claim: Claim): { signal: AbortSignal; stop: () => void } {
    const controller = new AbortController();
    const { clock, policy, store } = this.#ctx;
    let stopped = false;
    let timer: unknown;
    const lost = () => {
      if (!stopped) controller.abort(new SyncError("E_SYNC_LEASE_LOST", "lease lost"));
    };
    const check = async () => {
      const job = await this.#read(claim).catch(() => undefined);
      if (job && job.lease?.token !== claim.token) lost();
    };
    const unsubscribe = store.subscribeJob(claim.scope, claim.jobId, () => void check());
    const beat = async () => {
      if (stopped) return;
      try {
        const held = await store.transaction(async (tx) => {
          const current = await tx.lockJob(claim.scope, claim.jobId);
          if (!current) return false;
          const next = transitionJob(current, {
            type: "heartbeat",
            now: clock.now(),
            token: claim.token,
            leaseMs: policy.leaseMs,
          });
          if (!next.ok) return false;
          await tx.updateJob(next.job);
          return true;
        });
        if (!held) lost();
      } catch {
        // A failed heartbeat is not fatal: the lease may still hold until it expires.
      }
      if (!stopped) timer = clock.setTimeout(() => void beat(), policy.heartbeatMs);
    };
    timer = clock.setTimeout(() => void beat(), policy.heartbeatMs);
    return {
      signal: controller.signal,
      stop: () => {
        if (stopped) return;
        stopped = true;
        clock.clearTimeout(timer);
        unsubscribe();
      },
    };
  }
}
