/**
 * Turning a terminal job into the sync's outcome: only `succeeded` is a success.
 *
 * @module
 */

import type { Job } from "../contracts/domain.ts";
import { SyncError, type SyncErrorCode } from "../errors.ts";

/**
 * Returns `job` when it succeeded; otherwise throws a `SyncError` with `details.job`:
 * `E_SYNC_JOB_SUPERSEDED` or `E_SYNC_JOB_CANCELLED` for a cancelled job,
 * `E_SYNC_JOB_FAILED` for a failed one, `E_SYNC_INTERNAL` for one not terminal at all.
 */
export function requireSucceeded(job: Job): Job {
  if (job.state === "succeeded") return job;
  let code: SyncErrorCode;
  if (job.state === "cancelled") {
    code = job.error?.code === "E_SYNC_JOB_SUPERSEDED"
      ? "E_SYNC_JOB_SUPERSEDED"
      : "E_SYNC_JOB_CANCELLED";
  } else if (job.state === "failed") {
    code = "E_SYNC_JOB_FAILED";
  } else {
    code = "E_SYNC_INTERNAL";
  }
  const cause = job.error ? `: ${job.error.code}: ${job.error.message}` : "";
  const verb = code === "E_SYNC_INTERNAL" ? "is still" : "ended";
  throw new SyncError(code, `job ${job.jobId} ${verb} ${job.state}${cause}`, {
    details: { job, jobId: job.jobId, state: job.state, error: job.error },
  });
}
