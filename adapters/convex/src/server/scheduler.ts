/**
 * Where the worker's next run is requested. In a deployment that is Convex's scheduler;
 * a test backend may record the request instead and run the worker on its own clock.
 *
 * @module
 */

import type { Clock } from "@zakstam/codex-sync-engine";
import type {
  FunctionReference,
  FunctionVisibility,
  GenericDataModel,
  GenericMutationCtx,
} from "convex/server";
import type { WorkerArgs, WorkerReport } from "../wire.ts";

/** A reference to the host's exported worker mutation (e.g. `internal.sync.worker`). */
export type WorkerReference = FunctionReference<
  "mutation",
  FunctionVisibility,
  WorkerArgs,
  WorkerReport
>;

/** Requests worker runs. */
export interface WorkerScheduler {
  /** Runs the worker with `args` at `at` (ms on the engine's clock), or soon after. */
  schedule(
    ctx: GenericMutationCtx<GenericDataModel>,
    at: number,
    args: WorkerArgs,
  ): Promise<void>;
}

/** Convex's scheduler: `ctx.scheduler.runAfter` on the worker, from `clock`'s now. */
export function convexScheduler(worker: () => WorkerReference, clock: Clock): WorkerScheduler {
  return {
    async schedule(ctx, at, args) {
      await ctx.scheduler.runAfter(Math.max(0, at - clock.now()), worker(), args);
    },
  };
}
