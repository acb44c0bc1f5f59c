/**
 * The host's handler: how the chunks of a source become the host's records.
 *
 * @module
 */

import type { Chunk, Job, JobBase, Manifest, Source } from "./domain.ts";

/** What the handler is told about the chunk it applies. */
export interface ApplyContext {
  /** The job snapshot before this chunk is committed (`cursor` = this chunk's index). */
  job: Job;
  source: Source;
  manifest: Manifest;
  /** Aborted when the job is cancelled or its lease is lost while the handler runs. */
  signal: AbortSignal;
  /**
   * Set when the job builds on its base's applied job (`job.base`): the chunks before
   * `base.chunkCount` were applied by that job and are not applied again.
   */
  base?: JobBase;
}

/** What the handler's verify hook is told. */
export interface VerifyContext {
  job: Job;
  source: Source;
  manifest: Manifest;
  signal: AbortSignal;
}

/**
 * The host's handler. `TExtras` are adapter extras merged into each context: an adapter
 * with transactional apply passes its transaction there, so the host's writes commit
 * atomically with the job's progress.
 *
 * Throwing from `apply` fails the attempt with retryable `E_SYNC_HANDLER_FAILED`,
 * unless the thrown value has `retryable: false` (see `nonRetryable`). Throwing from
 * `verify` fails the job with `E_SYNC_VERIFICATION_FAILED`.
 */
export interface SyncHandler<TExtras extends object = Record<never, never>> {
  apply(chunk: Chunk, context: ApplyContext & TExtras): void | Promise<void>;
  verify?(context: VerifyContext & TExtras): void | Promise<void>;
}
