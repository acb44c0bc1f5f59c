/**
 * The runtime side: chunk a conversation snapshot, upload it in parallel (resumable),
 * seal it with a computed manifest and await the backend's verified terminal state.
 *
 * ```ts
 * import { syncConversation } from "@zakstam/codex-sync-engine/client";
 *
 * const { job } = await syncConversation(adapter, {
 *   scope: "user-1",
 *   conversationId: "conv-1",
 *   payload: turns, // JSON records, bytes, or a stream of bytes
 * });
 * ```
 *
 * @module
 */

export { syncConversation, type SyncConversationResult } from "./sync.ts";
export {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_CONCURRENCY,
  type SyncConversationOptions,
} from "./options.ts";
export type {
  DoneProgressEvent,
  ReusedProgressEvent,
  SealedProgressEvent,
  SyncProgressEvent,
  TransferCount,
  UploadProgressEvent,
  WaitingProgressEvent,
} from "./progress.ts";
export {
  type ByteSource,
  chunkBytes,
  chunkRecords,
  encodeLines,
  packLines,
  type PayloadChunk,
  type RecordSource,
} from "./chunker.ts";
export { type PayloadContent, type PayloadFormat, type SyncPayload } from "./payload.ts";
export type { PieceSource } from "./pieces.ts";
