/**
 * An in-process Convex backend for tests: `convex-test` over the sync tables, with the
 * sync functions registered as module `sync` (so `sync:worker` etc. resolve) and a
 * scheduler that records worker runs in a table instead of setting real timers. The
 * harness then runs due worker requests on the suite's clock (`runDueWorkers`).
 *
 * The modules map is built by hand: `convex-test` normally gets it from Vite's
 * `import.meta.glob`, which neither Deno nor Bun provide.
 */

import { convexTest } from "convex-test";
import {
  anyApi,
  defineSchema,
  defineTable,
  type FunctionReference,
  type GenericDataModel,
} from "convex/server";
import { v } from "convex/values";
import type {
  ConvexSyncFunctionReferences,
  UploadSourceReference,
  WorkerArgs,
  WorkerReport,
} from "../../mod.ts";
import {
  defineSyncFunctions,
  type SyncFunctions,
  type SyncFunctionsOptions,
  syncTables,
  type WorkerScheduler,
} from "../../server.ts";

/** The test schema: the sync tables, the recorded worker runs, and a host table. */
export const testSchema = defineSchema({
  ...syncTables,
  testWakeups: defineTable({ at: v.number(), args: v.any() }).index("by_at", ["at"]),
  messages: defineTable({ conversationId: v.string(), index: v.number(), text: v.string() })
    .index("by_conversation", ["conversationId", "index"]),
});

/** References to the sync functions as the host's generated `api.sync` would give them. */
export const syncApi = anyApi.sync as unknown as ConvexSyncFunctionReferences;

/** Reference to the one-call upload, as `api.sync.uploadSource`. */
export const uploadSourceRef = anyApi.sync.uploadSource as unknown as UploadSourceReference;

/** Reference to the worker, as `internal.sync.worker`. */
export const workerRef = anyApi.sync.worker as unknown as FunctionReference<
  "mutation",
  "internal",
  WorkerArgs,
  WorkerReport
>;

/** Records worker requests in `testWakeups`, to be run on the test's clock. */
export const recordingScheduler: WorkerScheduler = {
  async schedule(ctx, at, args) {
    await ctx.db.insert("testWakeups", { at, args });
  },
};

/** What the test backend is built from. */
export type TestBackendOptions =
  & Omit<SyncFunctionsOptions<GenericDataModel>, "worker" | "authorize">
  & Partial<Pick<SyncFunctionsOptions<GenericDataModel>, "authorize">>
  & {
    /** Enforce Convex's per-transaction limits (default true). */
    transactionLimits?: boolean;
  };

/** A fresh in-process backend with the sync functions of `options`. */
export function createTestBackend(options: TestBackendOptions) {
  const { transactionLimits = true, ...rest } = options;
  const functions: SyncFunctions = defineSyncFunctions({
    authorize: () => {},
    scheduler: recordingScheduler,
    ...rest,
    worker: () => workerRef,
  });
  return convexTest({
    schema: testSchema,
    modules: {
      "./sync.ts": () => Promise.resolve(functions),
      "./_generated/api.ts": () => Promise.resolve({}),
    },
    transactionLimits,
  });
}

/** A test backend instance. */
export type TestBackend = ReturnType<typeof createTestBackend>;

/**
 * Runs the recorded worker requests due at `now()`, earliest first, until none is due;
 * calls `afterEach` after each run. Returns how many runs were made.
 */
export async function runDueWorkers(
  t: TestBackend,
  now: () => number,
  afterEach: () => Promise<void> = () => Promise.resolve(),
  maxRuns = 100_000,
): Promise<number> {
  for (let runs = 0; runs < maxRuns; runs++) {
    const due = await t.run(async (ctx) => {
      const next = await ctx.db.query("testWakeups")
        .withIndex("by_at", (range) => range.lte("at", now()))
        .first();
      if (next) await ctx.db.delete(next._id);
      return next;
    });
    if (!due) return runs;
    await t.mutation(workerRef, due.args as WorkerArgs);
    await afterEach();
  }
  throw new Error(`worker requests still due after ${maxRuns} runs`);
}
