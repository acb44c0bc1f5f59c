/**
 * `waitForTerminal`: woken by the store's change notification, bounded by a timeout on
 * the injected clock and by an `AbortSignal`. Never changes the job.
 *
 * @module
 */

import type { Job, JobState } from "../contracts/domain.ts";
import { isTerminalJobState } from "../contracts/domain.ts";
import { type WaitForTerminalInput, waitForTerminalInputSchema } from "../contracts/inputs.ts";
import { SyncError, toSyncError } from "../errors.ts";
import { checkIdLengths, parseInput } from "../policy/validation.ts";
import { type EngineContext, readOnce } from "./context.ts";
import { jobNotFound } from "./operations.ts";

function aborted(jobId: string): SyncError {
  return new SyncError("E_SYNC_ABORTED", `wait for job ${jobId} was aborted`, {
    details: { jobId },
  });
}

/** Resolves with the job once it is terminal. */
export async function waitForTerminal<TExtras extends object>(
  ctx: EngineContext<TExtras>,
  input: WaitForTerminalInput,
): Promise<Job> {
  const args = parseInput(waitForTerminalInputSchema, input, "waitForTerminal");
  checkIdLengths(ctx.policy.limits, "waitForTerminal", { scope: args.scope, jobId: args.jobId });
  const { scope, jobId, signal, timeoutMs } = args;
  if (signal?.aborted) throw aborted(jobId);
  return await new Promise<Job>((resolve, reject) => {
    let settled = false;
    let timer: unknown;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      unsubscribe();
      if (timer !== undefined) ctx.clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    const onAbort = () => finish(() => reject(aborted(jobId)));
    const check = async () => {
      try {
        const job = await readOnce(ctx.store, (tx) => tx.getJob(scope, jobId));
        if (!job) finish(() => reject(jobNotFound(jobId)));
        else if (isTerminalJobState(job.state)) finish(() => resolve(job));
      } catch (error) {
        finish(() => reject(toSyncError(error)));
      }
    };
    // What the store tells (a notice, or what it knows): a terminal record is final, any
    // other says the job is not done yet (as does a state that is not terminal); anything
    // else is a prompt to read.
    const consider = (job?: Job, state?: JobState) => {
      if (job && isTerminalJobState(job.state)) finish(() => resolve(job));
      else if (!job && (state === undefined || isTerminalJobState(state))) void check();
    };
    // Subscribe before the first read so a change between the two is not missed.
    const unsubscribe = ctx.store.subscribeJob(scope, jobId, consider);
    // Asked after subscribing, like the read: a change after the answer is announced.
    const known = ctx.store.knownJob?.(scope, jobId);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = ctx.clock.setTimeout(
        () =>
          finish(() =>
            reject(
              new SyncError(
                "E_SYNC_TIMEOUT",
                `job ${jobId} did not finish within ${timeoutMs} ms`,
                { details: { jobId, timeoutMs } },
              ),
            )
          ),
        timeoutMs,
      );
    }
    consider(known?.job, known?.state);
  });
}
