/**
 * `waitForTerminal` across the wire: woken by a query subscription where the client has
 * one, else by polling `getJob` on the injected clock. Bounded by `timeoutMs` on that
 * clock and by an `AbortSignal`; never changes the job.
 *
 * @module
 */

import {
  type Clock,
  isTerminalJobState,
  type Job,
  parseInput,
  SyncError,
  type WaitForTerminalInput,
  waitForTerminalInputSchema,
} from "@zakstam/codex-sync-engine";
import type { FunctionReference } from "convex/server";
import { jobFromWire } from "../codec.ts";
import type { GetJobArgs, JobWire } from "../wire.ts";
import { callError, type ConvexFunctionCaller } from "./caller.ts";

/** What a wait needs. */
export interface WaitDependencies {
  caller: ConvexFunctionCaller;
  getJob: FunctionReference<"query", "public", GetJobArgs, JobWire>;
  clock: Clock;
  pollIntervalMs: number;
}

function aborted(jobId: string): SyncError {
  return new SyncError("E_SYNC_ABORTED", `wait for job ${jobId} was aborted`, {
    details: { jobId },
  });
}

function timedOut(jobId: string, timeoutMs: number): SyncError {
  return new SyncError("E_SYNC_TIMEOUT", `job ${jobId} did not finish within ${timeoutMs} ms`, {
    details: { jobId, timeoutMs },
  });
}

/** Resolves with the job once it is terminal. */
export async function waitForTerminal(
  deps: WaitDependencies,
  input: WaitForTerminalInput,
): Promise<Job> {
  const { scope, jobId, signal, timeoutMs } = parseInput(
    waitForTerminalInputSchema,
    input,
    "waitForTerminal",
  );
  if (signal?.aborted) throw aborted(jobId);
  const { caller, clock } = deps;
  const args: GetJobArgs = { scope, jobId };
  return await new Promise<Job>((resolve, reject) => {
    let settled = false;
    let unsubscribe: (() => unknown) | undefined;
    let timeoutTimer: unknown;
    let pollTimer: unknown;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      unsubscribe?.();
      if (timeoutTimer !== undefined) clock.clearTimeout(timeoutTimer);
      if (pollTimer !== undefined) clock.clearTimeout(pollTimer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    const onAbort = () => finish(() => reject(aborted(jobId)));
    const onResult = (result: unknown) => {
      const job = jobFromWire(result as JobWire);
      if (isTerminalJobState(job.state)) finish(() => resolve(job));
    };
    const onError = (error: unknown) => finish(() => reject(callError(error)));

    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timeoutTimer = clock.setTimeout(
        () => finish(() => reject(timedOut(jobId, timeoutMs))),
        timeoutMs,
      );
    }
    if (caller.onUpdate) {
      const stop = caller.onUpdate(deps.getJob, args, onResult, onError);
      // The first result may arrive before `onUpdate` returns.
      if (settled) stop();
      else unsubscribe = stop;
      return;
    }
    const poll = async () => {
      try {
        onResult(await caller.query(deps.getJob, args));
      } catch (error) {
        onError(error);
      }
      if (!settled) pollTimer = clock.setTimeout(() => void poll(), deps.pollIntervalMs);
    };
    void poll();
  });
}
