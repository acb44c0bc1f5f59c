/**
 * Domain records: sources, chunks, manifests and jobs (DESIGN §3).
 *
 * @module
 */

import type { SyncErrorCode } from "../errors.ts";

/** Lifecycle of a source. */
export type SourceState = "collecting" | "sealed" | "failed" | "expired";

/** Every source state. */
export const SOURCE_STATES: readonly SourceState[] = [
  "collecting",
  "sealed",
  "failed",
  "expired",
];

/** Lifecycle of a job. */
export type JobState =
  | "queued"
  | "running"
  | "retry_wait"
  | "verifying"
  | "succeeded"
  | "failed"
  | "cancelled";

/** Every job state. */
export const JOB_STATES: readonly JobState[] = [
  "queued",
  "running",
  "retry_wait",
  "verifying",
  "succeeded",
  "failed",
  "cancelled",
];

/** Job states that never change again. */
export const TERMINAL_JOB_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled"];

/** True for succeeded, failed and cancelled. */
export function isTerminalJobState(state: JobState): boolean {
  return state === "succeeded" || state === "failed" || state === "cancelled";
}

/** JSON-safe values (metadata and manifest data). */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A recorded failure on a source or job. */
export interface RecordedError {
  code: SyncErrorCode;
  message: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

/** What the runtime declares about a finished source. */
export interface Manifest {
  /** Number of chunks, indexes `0..chunkCount-1`. */
  chunkCount: number;
  /** Sum of the chunks' byte lengths. */
  byteCount: number;
  /** Composite digest, see README "Composite digest". */
  digest: string;
  /** Sum of the chunks' item counts, when the runtime counts items. */
  itemCount?: number;
  /** A domain manifest, for the host's `verify` hook (e.g. expected message keys). */
  data?: JsonValue;
}

/** What an extension reuses of its base: the base's chunks `0..chunkCount-1`. */
export interface SourceBase {
  /** The sealed source this one extends. */
  sourceId: string;
  /** Chunks reused by reference (all of the base's chunks). */
  chunkCount: number;
  /** Their bytes. */
  byteCount: number;
  /** Their items, when every reused chunk counts items. */
  itemCount?: number;
}

/** A source: the immutable upload of one conversation snapshot. */
export interface Source {
  sourceId: string;
  scope: string;
  conversationId: string;
  state: SourceState;
  received: { chunkCount: number; byteCount: number };
  manifest?: Manifest;
  jobId?: string;
  error?: RecordedError;
  metadata?: JsonValue;
  createdAt: number;
  updatedAt: number;
  sealedAt?: number;
  expiresAt: number;
  /** When the chunks were deleted by retention or expiry. */
  chunksPurgedAt?: number;
  /** Set on an extension: the base whose chunks it reuses as its first chunks. */
  base?: SourceBase;
  /**
   * Engine bookkeeping: the source id under which this source's chunks are stored, when
   * not its own (an extension stores its new chunks after its base's, in the same home).
   */
  chunkHome?: string;
  /** Engine bookkeeping: the extension that continues this source's chunk home. */
  extendedBy?: string;
  /** Engine bookkeeping, on a chunk home: how many sources using it keep their chunks. */
  homeRefs?: number;
  /** Engine bookkeeping: the composite-digest state over all chunks, saved at seal. */
  digestState?: string;
  /**
   * When `releasePayloads` dropped the bytes of this source's chunks (their digests,
   * sizes and item counts stay): no job may read them again.
   */
  payloadsReleasedAt?: number;
  /**
   * Engine bookkeeping, on a chunk home: its chunks `0..releasedChunks-1` have no bytes
   * any more (released by `releasePayloads` of a source using the home).
   */
  releasedChunks?: number;
}

/** A stored chunk without its bytes. */
export interface ChunkInfo {
  index: number;
  byteLength: number;
  /** Lowercase hex SHA-256 of the bytes, computed by the engine. */
  sha256: string;
  itemCount?: number;
}

/** A stored chunk with its bytes. */
export interface Chunk extends ChunkInfo {
  bytes: Uint8Array;
}

/** A job's lease: who runs it, with which fencing token, until when. */
export interface Lease {
  owner: string;
  /** Fencing token: incremented at every claim; a commit must present the current one. */
  token: number;
  expiresAt: number;
}

/** The applied job an extension's job builds on (it starts at cursor `chunkCount`). */
export interface JobBase {
  /** The extension's base source. */
  sourceId: string;
  /** The base's job, which succeeded and was the conversation's last applied snapshot. */
  jobId: string;
  /** Chunks the base's job applied: the first chunk this job applies has this index. */
  chunkCount: number;
}

/** A job: the application of one sealed source through the host's handler. */
export interface Job {
  jobId: string;
  scope: string;
  sourceId: string;
  conversationId: string;
  state: JobState;
  /** Chunks applied so far; the next chunk to apply has this index. */
  cursor: number;
  totalChunks: number;
  appliedBytes: number;
  /** Failed attempts on the current chunk. */
  attempt: number;
  /** Earliest time a worker may claim the job. */
  runAt: number;
  lease?: Lease;
  /** Last fencing token handed out (kept after the lease is released). */
  leaseToken: number;
  /** Running composite-digest state over the applied chunks' re-hashed digests (opaque). */
  appliedDigestState: string;
  error?: RecordedError;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  completedAt?: number;
  /** Set when the job builds on its base's applied job and starts at its chunk count. */
  base?: JobBase;
}

/** A page of results. `nextCursor` is absent on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** Outcome of an append. */
export interface AppendResult {
  /** False when the same chunk was already stored (idempotent retry). */
  appended: boolean;
  chunk: ChunkInfo;
  source: Source;
}

/** Outcome of a seal. */
export interface SealResult {
  source: Source;
  job: Job;
}

/** What `uploadSource` returns: the sealed source, its job, and what was stored anew. */
export interface UploadSourceResult extends SealResult {
  /** Per input chunk, in input order: false when the source already held it. */
  appended: boolean[];
}

/** Outcome of `releasePayloads`. */
export interface ReleasePayloadsResult {
  /** The source, with `payloadsReleasedAt` set. */
  source: Source;
  /** Chunks whose bytes this call dropped (0 when an earlier call, or a later link's, did). */
  releasedChunks: number;
}

/** Counts reported by a garbage-collection pass. */
export interface GcReport {
  /** Collecting sources past their TTL, now `expired`. */
  expiredSources: number;
  /** Sources whose chunks were deleted because their job ended long enough ago. */
  purgedSources: number;
  /** Chunks deleted in all. */
  deletedChunks: number;
}
