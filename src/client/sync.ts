/**
 * `syncConversation`: the one call that copies a conversation snapshot into a backend
 * and resolves once the backend has applied and verified it.
 *
 * @module
 */

import type { SyncAdapter } from "../contracts/adapter.ts";
import type { Job, Manifest, Source } from "../contracts/domain.ts";
import type { WaitForTerminalInput } from "../contracts/inputs.ts";
import { toSyncError } from "../errors.ts";
import { abortedError, linkAbort, raceSignal } from "./abort.ts";
import { requireSucceeded } from "./job_outcome.ts";
import { type OpenedSource, openSource } from "./open_source.ts";
import {
  type ResolvedSyncOptions,
  resolveSyncOptions,
  type SyncConversationOptions,
} from "./options.ts";
import { payloadChunks } from "./payload.ts";
import { type TransferCount, TransferTally } from "./progress.ts";
import { withRetry } from "./retry.ts";
import { uploadChunks, type UploadTotals } from "./upload.ts";

/** What a successful sync did. */
export interface SyncConversationResult {
  /** The sealed source. */
  source: Source;
  /** The job, `succeeded`. */
  job: Job;
  /** The manifest the source was sealed with. */
  manifest: Manifest;
  uploaded: TransferCount;
  /** Chunks not uploaded because the source already held them. */
  skipped: TransferCount;
}

/**
 * Chunks `payload`, uploads the chunks in parallel into a source (created when the
 * first chunk is ready, or resumed by `sourceId`), seals it with the manifest computed
 * on the way, and waits for its job. Resolves only when the job `succeeded`; every
 * failure rejects with a `SyncError`: a cancelled job with `E_SYNC_JOB_SUPERSEDED` or
 * `E_SYNC_JOB_CANCELLED`, a failed one with `E_SYNC_JOB_FAILED` (both with
 * `details.job`), an abort with `E_SYNC_ABORTED` (the source stays collecting and
 * resumable; the job, if any, is not cancelled).
 */
export async function syncConversation(
  adapter: SyncAdapter,
  options: SyncConversationOptions,
): Promise<SyncConversationResult> {
  try {
    const resolved = resolveSyncOptions(options, adapter?.maxChunkBytes);
    const abort = linkAbort(resolved.signal, abortedError);
    try {
      return await runSync(adapter, resolved, abort.signal);
    } finally {
      abort.dispose();
    }
  } catch (thrown) {
    throw toSyncError(thrown);
  }
}

async function runSync(
  adapter: SyncAdapter,
  options: ResolvedSyncOptions,
  signal: AbortSignal,
): Promise<SyncConversationResult> {
  if (signal.aborted) throw signal.reason;
  const { scope, retry, onProgress } = options;
  const call = <T>(operation: () => Promise<T>, callSignal: AbortSignal): Promise<T> =>
    raceSignal(withRetry(operation, retry, callSignal), callSignal);

  // Opened by the first chunk, so a payload failing before its first chunk (a record
  // too large) touches nothing; an empty payload opens it just before the seal.
  let opening: Promise<OpenedSource> | undefined;
  const open = (openSignal: AbortSignal): Promise<OpenedSource> =>
    opening ??= openSource(adapter, options, (operation) => call(operation, openSignal));

  const tally = new TransferTally();
  const totals = await uploadChunks(
    payloadChunks(options.payload, options.format, options.chunkSize),
    {
      concurrency: options.concurrency,
      signal,
      store: async (chunk, sha256, uploadSignal) => {
        const opened = await open(uploadSignal);
        const { sourceId } = opened.source;
        const skip = opened.sealed || opened.stored.get(chunk.index) === sha256;
        if (!skip) {
          const input = { scope, sourceId, index: chunk.index, bytes: chunk.bytes, sha256 };
          await withRetry(
            () =>
              adapter.appendChunk(
                chunk.itemCount === undefined ? input : { ...input, itemCount: chunk.itemCount },
              ),
            retry,
            uploadSignal,
          );
        }
        // An append that lands after the sync stopped is not reported.
        if (uploadSignal.aborted) throw uploadSignal.reason;
        onProgress(tally.record(sourceId, chunk, skip));
      },
    },
  );

  const { source } = await open(signal);
  const manifest = manifestOf(totals, options);
  const sealed = await call(
    () => adapter.sealSource({ scope, sourceId: source.sourceId, manifest }),
    signal,
  );
  onProgress({ phase: "sealed", source: sealed.source, manifest, job: sealed.job });
  onProgress({ phase: "waiting", job: sealed.job });
  const job = await waitForJob(adapter, options, sealed.job, signal);
  onProgress({ phase: "done", job });
  requireSucceeded(job);
  return {
    source: sealed.source,
    job,
    manifest,
    uploaded: { ...tally.uploaded },
    skipped: { ...tally.skipped },
  };
}

function manifestOf(totals: UploadTotals, options: ResolvedSyncOptions): Manifest {
  const manifest: Manifest = {
    chunkCount: totals.chunkCount,
    byteCount: totals.byteCount,
    digest: totals.digest,
  };
  const itemCount = totals.itemCount ?? (options.format === "jsonl-records" ? 0 : undefined);
  if (itemCount !== undefined) manifest.itemCount = itemCount;
  if (options.manifestData !== undefined) manifest.data = options.manifestData;
  return manifest;
}

// Not raced against the signal: the adapter's wait honours it and answers with its own
// E_SYNC_ABORTED. A retryable failure waits again, within what is left of the timeout.
function waitForJob(
  adapter: SyncAdapter,
  options: ResolvedSyncOptions,
  job: Job,
  signal: AbortSignal,
): Promise<Job> {
  const { clock } = options.retry;
  const deadline = options.waitTimeoutMs === undefined
    ? undefined
    : clock.now() + options.waitTimeoutMs;
  return withRetry(
    () => {
      const input: WaitForTerminalInput = { scope: options.scope, jobId: job.jobId, signal };
      if (deadline !== undefined) input.timeoutMs = Math.max(0, deadline - clock.now());
      return adapter.waitForTerminal(input);
    },
    options.retry,
    signal,
  );
}
