/**
 * Pure job transitions (DESIGN §3): no I/O, no clock, no randomness. Time and computed
 * backoff arrive in the events.
 *
 * @module
 */

import { extendComposite, finishComposite } from "../checksum.ts";
import type { Job, JobBase, Manifest, RecordedError } from "../contracts/domain.ts";
import { isTerminalJobState } from "../contracts/domain.ts";
import { SyncError } from "../errors.ts";

/** A worker takes the job (fresh lease, fencing token + 1). */
export interface ClaimEvent {
  type: "claim";
  now: number;
  owner: string;
  leaseMs: number;
  /**
   * Attempts a chunk may take. Taking over an expired lease counts as one: its holder
   * crashed or stalled mid-step, and a chunk that kills every worker must not loop forever.
   */
  maxAttempts: number;
}

/** The worker holding `token` extends its lease. */
export interface HeartbeatEvent {
  type: "heartbeat";
  now: number;
  token: number;
  leaseMs: number;
}

/** The chunk at `index` (= cursor) was applied; `sha256` is its re-hashed digest. */
export interface ChunkAppliedEvent {
  type: "chunkApplied";
  now: number;
  token: number;
  index: number;
  byteLength: number;
  sha256: string;
  leaseMs: number;
}

/** Applying the current chunk failed. `retryDelayMs` is the backoff for this failure. */
export interface ChunkFailedEvent {
  type: "chunkFailed";
  now: number;
  token: number;
  error: RecordedError;
  maxAttempts: number;
  retryDelayMs: number;
}

/** Terminal verification; `hookError` is set when the host's verify hook failed. */
export interface VerifyEvent {
  type: "verify";
  now: number;
  token: number;
  manifest: Manifest;
  hookError?: RecordedError;
}

/** Cancellation by a user (`E_SYNC_JOB_CANCELLED`) or by a newer source (`..._SUPERSEDED`). */
export interface CancelEvent {
  type: "cancel";
  now: number;
  error: RecordedError;
}

/** Everything that can happen to a job. */
export type JobEvent =
  | ClaimEvent
  | HeartbeatEvent
  | ChunkAppliedEvent
  | ChunkFailedEvent
  | VerifyEvent
  | CancelEvent;

/** Result of a transition: the next job, or why the event is refused. */
export type JobTransition = { ok: true; job: Job } | { ok: false; error: SyncError };

/** The arguments of a new job. */
export interface NewJobInput {
  jobId: string;
  scope: string;
  sourceId: string;
  conversationId: string;
  totalChunks: number;
  now: number;
  /** Composite state of zero chunks (`EMPTY_COMPOSITE_STATE`). */
  emptyDigestState: string;
  /**
   * Progress the job starts from: the base's applied job (its chunk count, bytes and
   * applied composite state). Absent: from chunk 0.
   */
  start?: JobStart;
}

/** Where the job of an extension starts when it builds on its base's applied job. */
export interface JobStart {
  base: JobBase;
  appliedBytes: number;
  appliedDigestState: string;
}

/** A job just created by a seal: `queued`, due now. */
export function newJob(input: NewJobInput): Job {
  const job: Job = {
    jobId: input.jobId,
    scope: input.scope,
    sourceId: input.sourceId,
    conversationId: input.conversationId,
    state: "queued",
    cursor: 0,
    totalChunks: input.totalChunks,
    appliedBytes: 0,
    attempt: 0,
    runAt: input.now,
    leaseToken: 0,
    appliedDigestState: input.emptyDigestState,
    createdAt: input.now,
    updatedAt: input.now,
  };
  const { start } = input;
  if (start) {
    job.base = { ...start.base };
    job.cursor = start.base.chunkCount;
    job.appliedBytes = start.appliedBytes;
    job.appliedDigestState = start.appliedDigestState;
  }
  return job;
}

/** True when a worker may claim `job` at `now`. */
export function isClaimable(job: Job, now: number): boolean {
  return !isTerminalJobState(job.state) && job.runAt <= now;
}

function refuse(code: "E_SYNC_LEASE_LOST", message: string, job: Job): JobTransition {
  return {
    ok: false,
    error: new SyncError(code, message, { details: { jobId: job.jobId, state: job.state } }),
  };
}

function holdsLease(job: Job, token: number): boolean {
  return !isTerminalJobState(job.state) && job.lease !== undefined && job.lease.token === token;
}

function withoutLease(job: Job): Job {
  const { lease: _lease, ...rest } = job;
  return rest;
}

/**
 * Checks applied progress against the manifest: chunk count, byte count and the
 * composite of the applied (re-hashed) digests. Returns the failure, if any.
 */
export function checkAppliedAgainstManifest(
  job: Job,
  manifest: Manifest,
): RecordedError | undefined {
  const problems: string[] = [];
  if (job.cursor !== manifest.chunkCount) {
    problems.push(`applied ${job.cursor} chunks, manifest has ${manifest.chunkCount}`);
  }
  if (job.appliedBytes !== manifest.byteCount) {
    problems.push(`applied ${job.appliedBytes} bytes, manifest has ${manifest.byteCount}`);
  }
  const appliedDigest = finishComposite(job.appliedDigestState);
  if (appliedDigest !== manifest.digest) {
    problems.push(
      `composite of applied chunks is ${appliedDigest}, manifest has ${manifest.digest}`,
    );
  }
  if (problems.length === 0) return undefined;
  return {
    code: "E_SYNC_VERIFICATION_FAILED",
    message: `verification failed: ${problems.join("; ")}`,
    retryable: false,
  };
}

/**
 * A claim of a job still under an (expired) lease: the holder's step was a failed attempt.
 * Returns the job with that attempt recorded (`failed` once attempts are exhausted), or
 * undefined when the job was not abandoned.
 */
function abandonedAttempt(job: Job, event: ClaimEvent): Job | undefined {
  if (!job.lease) return undefined;
  const attempt = job.attempt + 1;
  const exhausted = attempt >= event.maxAttempts;
  const step = job.state === "verifying" ? "the verification" : `chunk ${job.cursor}`;
  const error: RecordedError = {
    code: "E_SYNC_LEASE_LOST",
    message: `the worker ${job.lease.owner} stopped renewing its lease during ${step} ` +
      `(crashed or stalled); attempt ${attempt} of ${event.maxAttempts}`,
    retryable: !exhausted,
    details: { index: job.cursor, owner: job.lease.owner },
  };
  if (!exhausted) return { ...job, attempt, error };
  return {
    ...withoutLease(job),
    state: "failed",
    attempt,
    error,
    updatedAt: event.now,
    completedAt: event.now,
  };
}

/** Applies `event` to `job`. Terminal jobs absorb every event (cancel is a no-op). */
export function transitionJob(job: Job, event: JobEvent): JobTransition {
  switch (event.type) {
    case "claim": {
      if (!isClaimable(job, event.now)) {
        return refuse("E_SYNC_LEASE_LOST", "job is not claimable now", job);
      }
      const abandoned = abandonedAttempt(job, event);
      if (abandoned?.state === "failed") return { ok: true, job: abandoned };
      const token = job.leaseToken + 1;
      const expiresAt = event.now + event.leaseMs;
      return {
        ok: true,
        job: {
          ...(abandoned ?? job),
          state: job.state === "verifying" || job.cursor >= job.totalChunks
            ? "verifying"
            : "running",
          leaseToken: token,
          lease: { owner: event.owner, token, expiresAt },
          runAt: expiresAt,
          startedAt: job.startedAt ?? event.now,
          updatedAt: event.now,
        },
      };
    }
    case "heartbeat": {
      if (!holdsLease(job, event.token)) {
        return refuse("E_SYNC_LEASE_LOST", "lease lost: heartbeat refused", job);
      }
      const expiresAt = Math.max(job.lease!.expiresAt, event.now + event.leaseMs);
      return {
        ok: true,
        job: {
          ...job,
          lease: { ...job.lease!, expiresAt },
          runAt: expiresAt,
          updatedAt: event.now,
        },
      };
    }
    case "chunkApplied": {
      if (!holdsLease(job, event.token) || job.state !== "running") {
        return refuse("E_SYNC_LEASE_LOST", "lease lost: chunk commit refused", job);
      }
      if (event.index !== job.cursor || job.cursor >= job.totalChunks) {
        return refuse("E_SYNC_LEASE_LOST", "chunk commit out of order", job);
      }
      const cursor = job.cursor + 1;
      const expiresAt = event.now + event.leaseMs;
      const { error: _error, ...rest } = job;
      return {
        ok: true,
        job: {
          ...rest,
          state: cursor === job.totalChunks ? "verifying" : "running",
          cursor,
          appliedBytes: job.appliedBytes + event.byteLength,
          appliedDigestState: extendComposite(job.appliedDigestState, event.sha256),
          attempt: 0,
          lease: { ...job.lease!, expiresAt },
          runAt: expiresAt,
          updatedAt: event.now,
        },
      };
    }
    case "chunkFailed": {
      if (!holdsLease(job, event.token) || job.state !== "running") {
        return refuse("E_SYNC_LEASE_LOST", "lease lost: failure commit refused", job);
      }
      const attempt = job.attempt + 1;
      const released = withoutLease(job);
      if (!event.error.retryable || attempt >= event.maxAttempts) {
        return {
          ok: true,
          job: {
            ...released,
            state: "failed",
            attempt,
            error: event.error,
            updatedAt: event.now,
            completedAt: event.now,
          },
        };
      }
      return {
        ok: true,
        job: {
          ...released,
          state: "retry_wait",
          attempt,
          error: event.error,
          runAt: event.now + event.retryDelayMs,
          updatedAt: event.now,
        },
      };
    }
    case "verify": {
      if (!holdsLease(job, event.token) || job.state !== "verifying") {
        return refuse("E_SYNC_LEASE_LOST", "lease lost: verification commit refused", job);
      }
      const failure = checkAppliedAgainstManifest(job, event.manifest) ?? event.hookError;
      const released = withoutLease(job);
      if (failure) {
        return {
          ok: true,
          job: {
            ...released,
            state: "failed",
            error: { ...failure, code: "E_SYNC_VERIFICATION_FAILED", retryable: false },
            updatedAt: event.now,
            completedAt: event.now,
          },
        };
      }
      return {
        ok: true,
        job: { ...released, state: "succeeded", updatedAt: event.now, completedAt: event.now },
      };
    }
    case "cancel": {
      if (isTerminalJobState(job.state)) return { ok: true, job };
      return {
        ok: true,
        job: {
          ...withoutLease(job),
          state: "cancelled",
          error: event.error,
          updatedAt: event.now,
          completedAt: event.now,
        },
      };
    }
  }
}
