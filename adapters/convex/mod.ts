/**
 * @zakstam/codex-sync-engine-convex — the sync engine on Convex. The runtime side lives
 * here: a `SyncAdapter` that calls the host's sync functions through a Convex client.
 * The Convex side (tables and functions) is `@zakstam/codex-sync-engine-convex/server`.
 *
 * ```ts
 * import { ConvexClient } from "convex/browser";
 * import { syncConversation } from "@zakstam/codex-sync-engine";
 * import {
 *   CONVEX_MAX_CHUNK_BYTES,
 *   createConvexSyncAdapter,
 * } from "@zakstam/codex-sync-engine-convex";
 * import { api } from "../convex/_generated/api";
 *
 * const adapter = createConvexSyncAdapter({
 *   client: new ConvexClient(process.env.CONVEX_URL!),
 *   functions: api.sync,
 * });
 * await syncConversation(adapter, {
 *   scope: "user-42",
 *   conversationId: "conv-1",
 *   payload: records,
 *   chunkSize: CONVEX_MAX_CHUNK_BYTES,
 * });
 * ```
 *
 * @module
 */

export {
  type ConvexSyncAdapterOptions,
  type ConvexSyncFunctionReferences,
  createConvexSyncAdapter,
  DEFAULT_POLL_INTERVAL_MS,
  type UploadSourceReference,
} from "./src/client/adapter.ts";
export { callError, type ConvexFunctionCaller } from "./src/client/caller.ts";
export {
  jobFromWire,
  jobToWire,
  sourceFromWire,
  sourceToWire,
  syncErrorFromWire,
  syncErrorToWire,
} from "./src/codec.ts";
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
