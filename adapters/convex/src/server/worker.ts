/**
 * The worker: one step of one job per run (a chunk applied, or the verification), then
 * the next run is scheduled: at once to continue under the same lease, at `runAt` after
 * a failed attempt.
 *
 * The step runs as a sub-transaction (the worker calling itself with `attempt: true`):
 * if the host's code fails, its writes roll back with the step, and the worker then
 * replays the step in its own transaction with a stand-in handler that fails the same
 * way without running host code. The engine records the failure (retry with backoff, or
 * failed) exactly as it would have, and the committed history holds a host's writes
 * only together with the progress they belong to.
 *
 * @module
 */

import { type Job, nonRetryable, type SyncHandler } from "@zakstam/codex-sync-engine";
import type { GenericDataModel, GenericMutationCtx } from "convex/server";
import { ConvexError } from "convex/values";
import type { WorkerArgs, WorkerReport, WorkerTask } from "../wire.ts";
import {
  type ConvexHandlerExtras,
  type Invocation,
  mutationInvocation,
  type ServerConfig,
} from "./context.ts";
import { defaultDeleteBudget, sweepPendingChunks } from "./purge.ts";
import { sweepPendingReleases } from "./release.ts";
import type { SyncDbWriter } from "./schema.ts";

/** How the host's code failed in an attempt, enough to fail the same way again. */
type HostFailure = {
  message: string;
  retryable: boolean;
};

/** `ConvexError` data that rolls an attempt back and hands its failure to the replay. */
type AttemptFailed = {
  kind: "attemptFailed";
  failure: HostFailure;
};

function describe(error: unknown): HostFailure {
  const message = error instanceof Error ? error.message : String(error);
  const retryable = !(typeof error === "object" && error !== null &&
    (error as { retryable?: unknown }).retryable === false);
  return { message, retryable };
}

function failureOf(error: unknown): HostFailure {
  const data = (error as { data?: unknown } | null)?.data as Partial<AttemptFailed> | undefined;
  if (data?.kind === "attemptFailed" && data.failure) return data.failure;
  // Anything else rolled the attempt back too (a bug, a Convex limit): the step is
  // retried like a failed handler, as the engine does when its store fails.
  return describe(error);
}

/** A handler that fails like the attempt did, without running host code. */
function replayOf<TExtras extends object>(failure: HostFailure): SyncHandler<TExtras> {
  const fail = (): never => {
    const error = new Error(failure.message);
    throw failure.retryable ? error : nonRetryable(error);
  };
  return { apply: fail, verify: fail };
}

/** The host's handler, reporting its failures and the writes it may make. */
function watched<DataModel extends GenericDataModel>(
  host: SyncHandler<ConvexHandlerExtras<DataModel>>,
  onRun: () => void,
  onFailure: (failure: HostFailure) => void,
): SyncHandler<ConvexHandlerExtras<DataModel>> {
  const run = async (call: () => void | Promise<void>) => {
    onRun();
    try {
      await call();
    } catch (error) {
      onFailure(describe(error));
      throw error;
    }
  };
  const handler: SyncHandler<ConvexHandlerExtras<DataModel>> = {
    apply: (chunk, context) => run(() => host.apply(chunk, context)),
  };
  const verify = host.verify?.bind(host);
  if (verify) handler.verify = (context) => run(() => verify(context));
  return handler;
}

async function heldJob<TExtras extends object>(
  { store }: Invocation<TExtras>,
  task: Extract<WorkerTask, { kind: "continue" }>,
): Promise<Job | undefined> {
  const job = await store.transaction((tx) => tx.getJob(task.scope, task.jobId));
  const held = job?.lease?.token === task.token &&
    (job.state === "running" || job.state === "verifying");
  return held ? job : undefined;
}

/** Continues the held job, or claims the earliest due one, and runs one step of it. */
async function step<TExtras extends object>(
  invocation: Invocation<TExtras>,
  task: WorkerTask | undefined,
): Promise<WorkerReport> {
  const { engine } = invocation;
  let job = task?.kind === "continue" ? await heldJob(invocation, task) : undefined;
  job ??= await engine.claimNextJob();
  if (!job?.lease) return { kind: "idle" };
  const token = job.lease.token;
  const after = await engine.runClaimedJob(job, { maxSteps: 1 });
  return {
    kind: "ran",
    scope: after.scope,
    jobId: after.jobId,
    state: after.state,
    token,
    holding: after.lease?.token === token,
    runAt: after.runAt,
  };
}

/** The step with the host's handler, inside the caller's sub-transaction. */
async function attempt<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
  ctx: GenericMutationCtx<DataModel>,
  task: WorkerTask | undefined,
): Promise<WorkerReport> {
  let failure: HostFailure | undefined;
  const invocation = mutationInvocation(
    config,
    ctx,
    (store) =>
      watched(config.handler, () => store.markForeignWrites(), (seen) => (failure ??= seen)),
  );
  const report = await step(invocation, task);
  const { store } = invocation;
  failure ??= store.failure && describe(store.failure.error);
  if (failure) {
    const data: AttemptFailed = { kind: "attemptFailed", failure };
    throw new ConvexError(data);
  }
  return report;
}

async function runStep<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
  ctx: GenericMutationCtx<DataModel>,
  task: WorkerTask | undefined,
): Promise<WorkerReport> {
  const args: WorkerArgs = task ? { task, attempt: true } : { attempt: true };
  try {
    return await ctx.runMutation(config.worker(), args);
  } catch (error) {
    const replay = replayOf<ConvexHandlerExtras<DataModel>>(failureOf(error));
    return await step(mutationInvocation(config, ctx, () => replay), task);
  }
}

async function scheduleNext<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
  ctx: GenericMutationCtx<DataModel>,
  report: WorkerReport,
): Promise<void> {
  const schedule = (at: number, args: WorkerArgs) =>
    config.scheduler.schedule(ctx as unknown as GenericMutationCtx<GenericDataModel>, at, args);
  const now = config.clock.now();
  if (report.kind === "idle") return;
  if (report.kind === "swept") {
    if (report.remaining) await schedule(now, { task: { kind: "sweep" } });
    return;
  }
  if (report.holding && (report.state === "running" || report.state === "verifying")) {
    const { scope, jobId, token } = report;
    await schedule(now, { task: { kind: "continue", scope, jobId, token } });
  } else if (report.state === "retry_wait") {
    await schedule(report.runAt, {});
  } else {
    // The job ended or went elsewhere: look for other due work.
    await schedule(now, {});
  }
}

/**
 * One sweep run: pending deletions first, then pending payload releases, within one
 * transaction's budget; whether work remains.
 */
async function sweep(db: SyncDbWriter): Promise<boolean> {
  const budget = defaultDeleteBudget();
  const deletions = await sweepPendingChunks(db, budget);
  const releases = await sweepPendingReleases(db, budget);
  return deletions.remaining || releases.remaining;
}

/** The worker mutation's handler. */
export function workerHandler<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
): (ctx: GenericMutationCtx<DataModel>, args: WorkerArgs) => Promise<WorkerReport> {
  return async (ctx, args) => {
    if (args.attempt) return await attempt(config, ctx, args.task);
    let report: WorkerReport;
    if (args.task?.kind === "sweep") {
      report = { kind: "swept", remaining: await sweep(ctx.db as unknown as SyncDbWriter) };
    } else {
      report = await runStep(config, ctx, args.task);
    }
    await scheduleNext(config, ctx, report);
    return report;
  };
}
