/**
 * Convex-sized limits. A Convex document holds at most 1 MiB and a transaction reads at
 * most 16 MiB and 32 000 documents; each default below keeps one operation inside one
 * transaction (see the README's "Limits" section for the arithmetic).
 *
 * @module
 */

import {
  DEFAULT_LIMITS,
  type Limits,
  type PolicyOverrides,
  SyncError,
} from "@zakstam/codex-sync-engine";

/**
 * Largest chunk: its bytes are one document, which Convex caps at 1 MiB including the
 * document's own fields. Pass it as `chunkSize` to `syncConversation`.
 */
export const CONVEX_MAX_CHUNK_BYTES = 1024 * 1024 - 1024;

/**
 * Most chunks per source: a seal reads one small digest document per chunk in a single
 * mutation (Convex: at most 32 000 documents read per transaction).
 */
export const CONVEX_MAX_CHUNKS_PER_SOURCE = 16_384;

/** Largest manifest `data`: it lives in the source document (1 MiB in all). */
export const CONVEX_MAX_MANIFEST_DATA_BYTES = 256 * 1024;

/**
 * Most sources a `gc` pass expires, and most it purges: each is read whole in the gc
 * mutation, and a sealed source may carry up to 256 KiB of manifest data.
 */
export const CONVEX_MAX_GC_SOURCES = 32;

/**
 * Most chunks one `uploadSource` call carries: Convex arrays hold at most 8 192 elements,
 * and each chunk is two documents written (of 16 000 per transaction). Their bytes together
 * stay within `maxChunkBytes`, far below Convex's argument size limit.
 */
export const CONVEX_MAX_UPLOAD_CHUNKS = 4096;

/** Refuses an `uploadSource` call with more chunks than {@link CONVEX_MAX_UPLOAD_CHUNKS}. */
export function checkUploadChunkCount(count: number): void {
  if (count <= CONVEX_MAX_UPLOAD_CHUNKS) return;
  throw new SyncError(
    "E_SYNC_LIMIT_EXCEEDED",
    `uploadSource: ${count} chunks, more than one Convex call's limit of ` +
      `${CONVEX_MAX_UPLOAD_CHUNKS}; upload them with appendChunk`,
    { details: { limit: CONVEX_MAX_UPLOAD_CHUNKS, actual: count } },
  );
}

/** The engine's default limits, lowered to what Convex documents and transactions hold. */
export const CONVEX_DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  ...DEFAULT_LIMITS,
  maxChunkBytes: CONVEX_MAX_CHUNK_BYTES,
  maxChunksPerSource: CONVEX_MAX_CHUNKS_PER_SOURCE,
  maxManifestDataBytes: CONVEX_MAX_MANIFEST_DATA_BYTES,
});

/** `overrides` over the Convex default limits (other defaults are the engine's). */
export function convexPolicy(overrides: PolicyOverrides = {}): PolicyOverrides {
  return { ...overrides, limits: { ...CONVEX_DEFAULT_LIMITS, ...overrides.limits } };
}
