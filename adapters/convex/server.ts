/**
 * The Convex side of `@zakstam/codex-sync-engine-convex`: the tables a host spreads into
 * its schema and the functions it exports from its `convex/` folder.
 *
 * ```ts
 * // convex/schema.ts
 * import { defineSchema } from "convex/server";
 * import { syncTables } from "@zakstam/codex-sync-engine-convex/server";
 * export default defineSchema({ ...syncTables, messages: defineTable({ … }) });
 *
 * // convex/sync.ts
 * import { defineSyncFunctions } from "@zakstam/codex-sync-engine-convex/server";
 * import { internal } from "./_generated/api";
 * import type { DataModel } from "./_generated/dataModel";
 *
 * export const {
 *   createSource, appendChunk, sealSource, uploadSource, cancelJob, abandonSource,
 *   releasePayloads, gc, getSource, getLatestSource, listChunks, getJob, listJobs, worker,
 * } = defineSyncFunctions<DataModel>({
 *   worker: () => internal.sync.worker,
 *   authorize: async (ctx, { scope }) => { … throw unless the caller owns scope … },
 *   handler: {
 *     async apply(chunk, { ctx, job }) {
 *       // ctx.db writes commit atomically with this chunk's progress
 *     },
 *   },
 * });
 * ```
 *
 * @module
 */

export {
  type AuthorizeRequest,
  type ConvexHandlerExtras,
  type SyncFunctionsOptions,
  type SyncOperationName,
  WORKER_OWNER,
} from "./src/server/context.ts";
export { defineSyncFunctions, type SyncFunctions } from "./src/server/functions.ts";
export { SYNC_TABLE_NAMES, type SyncTables, syncTables } from "./src/server/schema.ts";
export {
  convexScheduler,
  type WorkerReference,
  type WorkerScheduler,
} from "./src/server/scheduler.ts";
export {
  CONVEX_DEFAULT_LIMITS,
  CONVEX_MAX_CHUNK_BYTES,
  CONVEX_MAX_CHUNKS_PER_SOURCE,
  CONVEX_MAX_GC_SOURCES,
  CONVEX_MAX_MANIFEST_DATA_BYTES,
  CONVEX_MAX_UPLOAD_CHUNKS,
  convexPolicy,
} from "./src/limits.ts";
export type * from "./src/wire.ts";
