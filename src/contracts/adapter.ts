/**
 * The public contract every backend adapter implements.
 *
 * @module
 */

import type { Capability } from "./capabilities.ts";
import type {
  AppendResult,
  ChunkInfo,
  GcReport,
  Job,
  Page,
  ReleasePayloadsResult,
  SealResult,
  Source,
  UploadSourceResult,
} from "./domain.ts";
import type { Limits } from "../policy/policy.ts";
import type {
  AbandonSourceInput,
  AppendChunkInput,
  CancelJobInput,
  CreateSourceInput,
  GcInput,
  GetJobInput,
  GetLatestSourceInput,
  GetSourceInput,
  ListChunksInput,
  ListJobsInput,
  ReleasePayloadsInput,
  SealSourceInput,
  UploadSourceInput,
  WaitForTerminalInput,
} from "./inputs.ts";

/** The operations of a sync backend; every failure is a `SyncError`. */
export interface SyncOperations {
  /** Creates a collecting source; the same `sourceId` and conversation returns it again. */
  createSource(input: CreateSourceInput): Promise<Source>;
  /** Stores one immutable chunk (idempotent for the same bytes). */
  appendChunk(input: AppendChunkInput): Promise<AppendResult>;
  /** Stored chunk digests in index order, paginated (for resuming an upload). */
  listChunks(input: ListChunksInput): Promise<Page<ChunkInfo>>;
  /** Validates the source against its manifest and creates its job (fail closed). */
  sealSource(input: SealSourceInput): Promise<SealResult>;
  getSource(input: GetSourceInput): Promise<Source>;
  getJob(input: GetJobInput): Promise<Job>;
  /** Jobs newest first, paginated. */
  listJobs(input: ListJobsInput): Promise<Page<Job>>;
  /** Cancels a non-terminal job; a terminal job is returned unchanged. */
  cancelJob(input: CancelJobInput): Promise<Job>;
  /** Resolves with the job once terminal; `E_SYNC_TIMEOUT` / `E_SYNC_ABORTED` otherwise. */
  waitForTerminal(input: WaitForTerminalInput): Promise<Job>;
  /** Expires stale collecting sources and purges chunks past retention. */
  gc(input?: GcInput): Promise<GcReport>;
}

/**
 * The one-call upload of a small source, for backends that can do it atomically
 * (capability `one-call-upload`): clients use it when the whole payload fits one chunk.
 */
export interface OneCallUpload {
  /**
   * Creates (or resumes) the source, appends the chunks and seals it with the manifest,
   * in one transaction: the same rules as the three calls, and nothing is stored when a
   * chunk is refused. A failed seal leaves the source `failed`, like `sealSource`.
   */
  uploadSource(input: UploadSourceInput): Promise<UploadSourceResult>;
}

/**
 * The lookup a client needs to extend a conversation's latest snapshot (capability
 * `extensions`; `createSource` and `uploadSource` then take `baseSourceId`).
 */
export interface ConversationLookup {
  /**
   * The conversation's newest sealed source whose chunks are still stored (preferring
   * one no other source extends yet), or null when it has none in this scope.
   */
  getLatestSource(input: GetLatestSourceInput): Promise<Source | null>;
}

/** Discarding an upload that will never be sealed (a client that gave up on it). */
export interface SourceAbandon {
  /**
   * Expires a collecting source at once, deleting its chunks (an extension keeps its
   * base's); an expired one is returned as it is; a sealed or failed one is
   * `E_SYNC_SOURCE_NOT_COLLECTING`.
   */
  abandonSource(input: AbandonSourceInput): Promise<Source>;
}

/**
 * Dropping the chunk bytes of a verified, current source (capability `release-payloads`):
 * the store then holds about the data's own size once the host has applied it.
 */
export interface PayloadRelease {
  /**
   * Drops the bytes of the source's `n` chunks, keeping their metadata (`listChunks`,
   * digests, sizes, `digestState`, manifest, jobs). Allowed only when the source is
   * sealed, its job succeeded, that job is the conversation's newest and no job of the
   * conversation is active; else it refuses, changing nothing: `E_SYNC_INVALID_ARGUMENT`
   * (not sealed, not verified, not current, a job active; `details.reason` says which),
   * `E_SYNC_SOURCE_EXPIRED` (expired, or its chunks purged), `E_SYNC_SOURCE_NOT_FOUND`
   * (missing or another scope's). Idempotent: a released source answers again. An extension of a released source is then accepted
   * only where its job starts at the base's chunk count; elsewhere `createSource` (or
   * the seal, after a race) answers `E_SYNC_SOURCE_EXPIRED`.
   */
  releasePayloads(input: ReleasePayloadsInput): Promise<ReleasePayloadsResult>;
}

/** A backend adapter: the operations plus what the backend can guarantee. */
export interface SyncAdapter
  extends
    SyncOperations,
    Partial<OneCallUpload>,
    Partial<ConversationLookup>,
    Partial<SourceAbandon>,
    Partial<PayloadRelease> {
  readonly capabilities: readonly Capability[];
  /** The largest chunk `appendChunk` accepts; clients size their chunks to fit. */
  readonly maxChunkBytes?: number;
  /**
   * The limits the adapter's engine enforces, so a client refuses what would be refused
   * before it uploads anything (defaults assumed when absent).
   */
  readonly limits?: Readonly<Limits>;
}
