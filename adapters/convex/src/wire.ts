/**
 * The shapes that cross the Convex boundary: the arguments and results of the functions
 * a host exports, exactly as its generated `api` types them. Free-form JSON (source
 * metadata, manifest `data`, error `details`) travels as JSON text, because Convex values
 * restrict object keys, array lengths and nesting depth where JSON does not.
 *
 * The shapes are type aliases, not interfaces: Convex requires its values to be
 * assignable to `Record<string, Value>`, which interfaces are not.
 *
 * @module
 */

import type { ChunkInfo, GcReport, JobState, Lease, SourceState } from "@zakstam/codex-sync-engine";

/** A manifest on the wire: `data` as JSON text. */
export type ManifestWire = {
  chunkCount: number;
  byteCount: number;
  digest: string;
  itemCount?: number;
  /** `JSON.stringify(manifest.data)`, when the manifest has data. */
  dataJson?: string;
};

/** A recorded error on the wire: `details` as JSON text. */
export type RecordedErrorWire = {
  code: string;
  message: string;
  retryable: boolean;
  detailsJson?: string;
};

/** An extension's base on the wire (`SourceBase`). */
export type SourceBaseWire = {
  sourceId: string;
  chunkCount: number;
  byteCount: number;
  itemCount?: number;
};

/** A job's base on the wire (`JobBase`). */
export type JobBaseWire = {
  sourceId: string;
  jobId: string;
  chunkCount: number;
};

/** A source on the wire. */
export type SourceWire = {
  sourceId: string;
  scope: string;
  conversationId: string;
  state: SourceState;
  received: { chunkCount: number; byteCount: number };
  manifest?: ManifestWire;
  jobId?: string;
  error?: RecordedErrorWire;
  /** `JSON.stringify(metadata)`, when the source has metadata. */
  metadataJson?: string;
  createdAt: number;
  updatedAt: number;
  sealedAt?: number;
  expiresAt: number;
  chunksPurgedAt?: number;
  /** An extension's base (the source whose chunks it reuses). */
  base?: SourceBaseWire;
  /** Engine bookkeeping of extensions, stored and returned as the engine wrote it. */
  chunkHome?: string;
  extendedBy?: string;
  homeRefs?: number;
  digestState?: string;
  /** When `releasePayloads` dropped the source's chunk bytes. */
  payloadsReleasedAt?: number;
  /** Engine bookkeeping of released payloads, on a chunk home. */
  releasedChunks?: number;
};

/** A job on the wire. */
export type JobWire = {
  jobId: string;
  scope: string;
  sourceId: string;
  conversationId: string;
  state: JobState;
  cursor: number;
  totalChunks: number;
  appliedBytes: number;
  attempt: number;
  runAt: number;
  lease?: Lease;
  leaseToken: number;
  appliedDigestState: string;
  error?: RecordedErrorWire;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  completedAt?: number;
  /** The base's applied job an extension's job builds on. */
  base?: JobBaseWire;
};

/** What `appendChunk` returns. */
export type AppendResultWire = {
  appended: boolean;
  chunk: ChunkInfo;
  source: SourceWire;
};

/** What `sealSource` returns. */
export type SealResultWire = {
  source: SourceWire;
  job: JobWire;
};

/** What `uploadSource` returns: the seal's result, and per input chunk whether it was new. */
export type UploadSourceResultWire = {
  source: SourceWire;
  job: JobWire;
  appended: boolean[];
};

/** A page of results; `nextCursor` is absent on the last page. */
export type PageWire<T> = {
  items: T[];
  nextCursor?: string;
};

/** A `SyncError` on the wire: a mutation's error result, a query's `ConvexError` data. */
export type SyncErrorWire = {
  name: "SyncError";
  code: string;
  message: string;
  retryable: boolean;
  detailsJson?: string;
};

/**
 * What every mutation returns. A mutation reports an engine error as a value rather than
 * throwing it, so that writes the engine means to keep (a failed seal, a lazy expiry)
 * commit: in Convex a thrown error rolls the whole mutation back.
 */
export type MutationResult<T> = { ok: true; value: T } | { ok: false; error: SyncErrorWire };

/** Arguments of `createSource`. */
export type CreateSourceArgs = {
  scope: string;
  conversationId: string;
  sourceId?: string;
  metadataJson?: string;
  /** Makes the source an extension of this sealed source. */
  baseSourceId?: string;
};

/** Arguments of `appendChunk`: the chunk's bytes as an `ArrayBuffer` (`v.bytes()`). */
export type AppendChunkArgs = {
  scope: string;
  sourceId: string;
  index: number;
  bytes: ArrayBuffer;
  sha256: string;
  itemCount?: number;
};

/** Arguments of `sealSource`. */
export type SealSourceArgs = {
  scope: string;
  sourceId: string;
  manifest: ManifestWire;
};

/** One chunk of `uploadSource`'s arguments: its bytes as an `ArrayBuffer` (`v.bytes()`). */
export type UploadChunkWire = {
  index: number;
  bytes: ArrayBuffer;
  sha256: string;
  itemCount?: number;
};

/**
 * Arguments of `uploadSource`: a whole small source (at most `maxChunkBytes` in all, and
 * `CONVEX_MAX_UPLOAD_CHUNKS` chunks).
 */
export type UploadSourceArgs = {
  scope: string;
  conversationId: string;
  sourceId?: string;
  metadataJson?: string;
  /** Makes the source an extension of this sealed source (chunks from its count on). */
  baseSourceId?: string;
  chunks: UploadChunkWire[];
  manifest: ManifestWire;
};

/** Arguments of `getSource`. */
export type GetSourceArgs = {
  scope: string;
  sourceId: string;
};

/** Arguments of `getLatestSource`. */
export type GetLatestSourceArgs = {
  scope: string;
  conversationId: string;
};

/** Arguments of `listChunks`. */
export type ListChunksArgs = {
  scope: string;
  sourceId: string;
  cursor?: string;
  limit?: number;
};

/** Arguments of `getJob`. */
export type GetJobArgs = {
  scope: string;
  jobId: string;
};

/** Arguments of `listJobs`. */
export type ListJobsArgs = {
  scope: string;
  conversationId?: string;
  state?: JobState;
  cursor?: string;
  limit?: number;
};

/** Arguments of `abandonSource`. */
export type AbandonSourceArgs = {
  scope: string;
  sourceId: string;
};

/** Arguments of `releasePayloads`. */
export type ReleasePayloadsArgs = {
  scope: string;
  sourceId: string;
};

/** What `releasePayloads` returns. */
export type ReleasePayloadsResultWire = {
  source: SourceWire;
  releasedChunks: number;
};

/** Arguments of `cancelJob`. */
export type CancelJobArgs = {
  scope: string;
  jobId: string;
  reason?: string;
};

/** Arguments of `gc`. */
export type GcArgs = {
  limit?: number;
};

/** Re-exported for hosts typing the gc result they read. */
export type { GcReport };

/** One unit of background work the worker is scheduled for. */
export type WorkerTask =
  /** Apply the next step of a job this worker chain holds the lease of. */
  | { kind: "continue"; scope: string; jobId: string; token: number }
  /**
   * Delete chunks whose deletion did not fit in the transaction that asked for it, then
   * drop the chunk bytes a payload release left pending.
   */
  | { kind: "sweep" };

/** Arguments of the internal `worker` mutation. */
export type WorkerArgs = {
  /** Absent: claim the earliest due job. */
  task?: WorkerTask;
  /**
   * Set only when the worker calls itself as a sub-transaction: the step whose host
   * writes must roll back if the host's code fails.
   */
  attempt?: boolean;
};

/** What one worker run did. */
export type WorkerReport =
  | { kind: "idle" }
  | { kind: "swept"; remaining: boolean }
  | {
    kind: "ran";
    scope: string;
    jobId: string;
    state: JobState;
    /** The fencing token the run worked under. */
    token: number;
    /** Whether the run still holds the job's lease. */
    holding: boolean;
    runAt: number;
  };
