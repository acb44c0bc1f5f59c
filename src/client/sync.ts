/**
 * `syncConversation`: the one call that copies a conversation snapshot into a backend
 * and resolves once the backend has applied and verified it.
 *
 * @module
 */

import type { SyncAdapter } from "../contracts/adapter.ts";
import { compositeState, hexDigestToBytes, IncrementalSha256, sha256Hex } from "../checksum.ts";
import type { Job, Manifest, SealResult, Source } from "../contracts/domain.ts";
import type {
  UploadChunkInput,
  UploadSourceInput,
  WaitForTerminalInput,
} from "../contracts/inputs.ts";
import { Capability } from "../contracts/capabilities.ts";
import { type SyncError, toSyncError } from "../errors.ts";
import { extensionStart, matchBase, type PlannedExtension } from "./extension.ts";
import { abortedError, linkAbort, raceSignal } from "./abort.ts";
import { requireSucceeded } from "./job_outcome.ts";
import { listAllChunks, type OpenedSource, openSource } from "./open_source.ts";
import {
  type ResolvedSyncOptions,
  resolveSyncOptions,
  type SyncConversationOptions,
} from "./options.ts";
import type { PayloadChunk } from "./chunker.ts";
import { chunkUnits, isRereadable, openPayload, payloadChunks, payloadUnits } from "./payload.ts";
import { type TransferCount, TransferTally } from "./progress.ts";
import { withRetry } from "./retry.ts";
import { peekSmallPayload } from "./small_payload.ts";
import { uploadChunks, type UploadStart, type UploadTotals } from "./upload.ts";
import { chunkIndexRefusal, sourceBytesRefusal } from "../policy/validation.ts";

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
  /** Chunks taken over by reference from the base (an extension); zero otherwise. */
  reused: TransferCount;
  /** The base the source extends, when it is an extension. */
  base?: Source;
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
    const resolved = resolveSyncOptions(options, adapter ?? {});
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
  const { payload, limits } = options;
  if (payload instanceof Uint8Array && options.appendTo === undefined) {
    // A known length: refused before anything is sent.
    const refusal = sourceBytesRefusal(limits, "syncConversation", payload.length) ??
      chunkIndexRefusal(
        limits,
        "syncConversation",
        Math.ceil(payload.length / options.chunkSize) - 1,
      );
    if (refusal) throw refusal;
  }
  const extension = await planExtension(adapter, options, signal);
  if (extension) {
    try {
      return await syncChunks(adapter, options, extension.tail, extension, signal);
    } catch (error) {
      // The base was extended or purged meanwhile (refused before anything was stored):
      // the payload goes up whole instead.
      if (options.appendTo !== undefined || !isBaseRefusal(error, extension.base, options)) {
        throw error;
      }
    }
  }
  const chunks = payloadChunks(options.payload, options.format, options.chunkSize);
  return await syncChunks(adapter, options, chunks, undefined, signal);
}

/**
 * The extension to upload, if any: of `appendTo` (the payload is its tail), or of the
 * conversation's latest source when the payload starts with all of its chunks.
 */
async function planExtension(
  adapter: SyncAdapter,
  options: ResolvedSyncOptions,
  signal: AbortSignal,
): Promise<PlannedExtension | undefined> {
  const { scope, conversationId, chunkSize, format } = options;
  const call = <T>(operation: () => Promise<T>) => callBackend(operation, options, signal);
  if (options.appendTo !== undefined) {
    const sourceId = options.appendTo;
    const base = await call(() => adapter.getSource({ scope, sourceId }));
    // The engine checks the base again, whatever the client says of it.
    const digestState = base.state === "sealed"
      ? base.digestState ??
        compositeState((await listAllChunks(adapter, base, call)).map((info) => info.sha256))
      : "";
    const start = extensionStart(base, digestState);
    const units = await payloadUnits(openPayload(options.payload, format), format, chunkSize);
    return { base, start, tail: chunkUnits(units, chunkSize, start.chunkCount) };
  }
  const getLatestSource = adapter.getLatestSource?.bind(adapter);
  if (
    !options.extend || !getLatestSource ||
    !adapter.capabilities?.includes(Capability.extensions) || !isRereadable(options.payload)
  ) {
    return undefined;
  }
  const base = await call(() => getLatestSource({ scope, conversationId }));
  if (!base?.manifest || base.state !== "sealed") return undefined;
  const infos = await listAllChunks(adapter, base, call);
  if (infos.length !== base.manifest.chunkCount) return undefined;
  const units = await payloadUnits(openPayload(options.payload, format), format, chunkSize);
  return await matchBase(units, base, infos, chunkSize);
}

/** True for the engine refusing `base` as a base (or the source id being taken otherwise). */
function isBaseRefusal(error: unknown, base: Source, options: ResolvedSyncOptions): boolean {
  const { code, details } = error as SyncError;
  if (details === undefined) return false;
  if (code === "E_SYNC_SOURCE_NOT_FOUND") return details.sourceId === base.sourceId;
  if (details.baseSourceId === base.sourceId) {
    return code === "E_SYNC_CHUNK_CONFLICT" || code === "E_SYNC_SOURCE_EXPIRED" ||
      code === "E_SYNC_INVALID_ARGUMENT";
  }
  // A resumed source id that exists with another base (or none): upload it as it is.
  return code === "E_SYNC_INVALID_ARGUMENT" && options.sourceId !== undefined &&
    details.sourceId === options.sourceId && "baseSourceId" in details;
}

/** Uploads `chunks` (after an extension's reused ones), seals, and awaits the job. */
async function syncChunks(
  adapter: SyncAdapter,
  options: ResolvedSyncOptions,
  chunks: AsyncIterable<PayloadChunk>,
  extension: PlannedExtension | undefined,
  signal: AbortSignal,
): Promise<SyncConversationResult> {
  const tally = new TransferTally();
  const reused = {
    chunks: extension?.start.chunkCount ?? 0,
    bytes: extension?.start.byteCount ?? 0,
  };
  if (extension) {
    options.onProgress({ phase: "reused", base: extension.base, ...reused });
  }
  // A payload of at most one chunk goes up in one call where the adapter can do that
  // atomically: one round trip and one commit instead of three.
  const uploadSource = adapter.uploadSource?.bind(adapter);
  const peeked = uploadSource ? await peekSmallPayload(chunks, signal) : undefined;
  const { sealed, manifest } = uploadSource && peeked?.kind === "small"
    ? await uploadWhole(uploadSource, peeked.chunks, options, extension, tally, signal)
    : await uploadInChunks(
      adapter,
      peeked?.kind === "large" ? peeked.chunks : chunks,
      options,
      extension,
      tally,
      signal,
    );
  const { onProgress } = options;
  onProgress({ phase: "sealed", source: sealed.source, manifest, job: sealed.job });
  onProgress({ phase: "waiting", job: sealed.job });
  const job = await waitForJob(adapter, options, sealed.job, signal);
  onProgress({ phase: "done", job });
  requireSucceeded(job);
  const result: SyncConversationResult = {
    source: sealed.source,
    job,
    manifest,
    uploaded: { ...tally.uploaded },
    skipped: { ...tally.skipped },
    reused,
  };
  if (extension) result.base = extension.base;
  return result;
}

/** A sealed source and the manifest it was sealed with. */
interface Uploaded {
  sealed: SealResult;
  manifest: Manifest;
}

/** Runs one backend call with the sync's retries, rejecting as soon as `signal` aborts. */
function callBackend<T>(
  operation: () => Promise<T>,
  options: ResolvedSyncOptions,
  signal: AbortSignal,
): Promise<T> {
  return raceSignal(withRetry(operation, options.retry, signal), signal);
}

/** The whole (small) payload in one `uploadSource` call. */
async function uploadWhole(
  uploadSource: NonNullable<SyncAdapter["uploadSource"]>,
  chunks: PayloadChunk[],
  options: ResolvedSyncOptions,
  extension: PlannedExtension | undefined,
  tally: TransferTally,
  signal: AbortSignal,
): Promise<Uploaded> {
  const hashed = await Promise.all(
    chunks.map(async (chunk) => ({ chunk, sha256: await sha256Hex(chunk.bytes) })),
  );
  const manifest = manifestOf(totalsOf(hashed, extension?.start), options);
  const input: UploadSourceInput = {
    scope: options.scope,
    conversationId: options.conversationId,
    chunks: hashed.map(({ chunk, sha256 }) => {
      const upload: UploadChunkInput = { index: chunk.index, bytes: chunk.bytes, sha256 };
      if (chunk.itemCount !== undefined) upload.itemCount = chunk.itemCount;
      return upload;
    }),
    manifest,
  };
  if (options.sourceId !== undefined) input.sourceId = options.sourceId;
  if (options.metadata !== undefined) input.metadata = options.metadata;
  if (extension) input.baseSourceId = extension.base.sourceId;
  const uploaded = await callBackend(() => uploadSource(input), options, signal);
  hashed.forEach(({ chunk }, i) => {
    options.onProgress(tally.record(uploaded.source.sourceId, chunk, !uploaded.appended[i]));
  });
  return { sealed: uploaded, manifest };
}

/** Create (or resume), parallel appends, then seal. */
async function uploadInChunks(
  adapter: SyncAdapter,
  chunks: AsyncIterable<PayloadChunk>,
  options: ResolvedSyncOptions,
  extension: PlannedExtension | undefined,
  tally: TransferTally,
  signal: AbortSignal,
): Promise<Uploaded> {
  const { scope, retry, onProgress } = options;
  const target = extension ? { ...options, baseSourceId: extension.base.sourceId } : options;
  // Opened by the first chunk, so a payload failing before its first chunk (a record
  // too large) touches nothing; an empty payload opens it just before the seal.
  let opening: Promise<OpenedSource> | undefined;
  const open = (openSignal: AbortSignal): Promise<OpenedSource> =>
    opening ??= openSource(
      adapter,
      target,
      (operation) => callBackend(operation, options, openSignal),
    );
  const uploading = uploadChunks(chunks, {
    concurrency: options.concurrency,
    signal,
    start: extension?.start,
    limits: options.limits,
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
  });
  const totals = await uploading.catch(async (error: SyncError) => {
    // A payload that can never be sealed (too large, a bad record): discard its source
    // now rather than leave it to expire. An abort or a backend failure keeps it resumable.
    if (opening && isPayloadFault(error)) await abandon(adapter, opening, scope);
    throw error;
  });
  const { source } = await open(signal);
  const manifest = manifestOf(totals, options);
  const sealed = await callBackend(
    () => adapter.sealSource({ scope, sourceId: source.sourceId, manifest }),
    options,
    signal,
  );
  return { sealed, manifest };
}

/** True for an error of the payload itself, which no retry or resume can cure. */
function isPayloadFault(error: SyncError): boolean {
  return error.code === "E_SYNC_LIMIT_EXCEEDED" ||
    (error.code === "E_SYNC_INVALID_ARGUMENT" &&
      (error.details?.recordIndex !== undefined || error.details?.pieceIndex !== undefined));
}

/** Best effort: the adapter expires the source the sync opened (when it can). */
async function abandon(
  adapter: SyncAdapter,
  opening: Promise<OpenedSource>,
  scope: string,
): Promise<void> {
  try {
    const opened = await opening;
    if (opened.sealed || !adapter.abandonSource) return;
    await adapter.abandonSource({ scope, sourceId: opened.source.sourceId });
  } catch {
    // The sync's own error is what the caller needs; the source expires by its TTL.
  }
}

/**
 * The manifest figures of the chunks after `start` (an extension's reused chunks, or
 * none), given in index order with their digests.
 */
function totalsOf(
  hashed: { chunk: PayloadChunk; sha256: string }[],
  start: UploadStart | undefined,
): UploadTotals {
  const composite = start ? IncrementalSha256.restore(start.digestState) : new IncrementalSha256();
  for (const { sha256 } of hashed) composite.update(hexDigestToBytes(sha256));
  const totals: UploadTotals = {
    chunkCount: (start?.chunkCount ?? 0) + hashed.length,
    byteCount: hashed.reduce((sum, { chunk }) => sum + chunk.bytes.length, start?.byteCount ?? 0),
    digest: composite.digestHex(),
  };
  if (start?.itemCount !== undefined) totals.itemCount = start.itemCount;
  for (const { chunk } of hashed) {
    if (chunk.itemCount !== undefined) totals.itemCount = (totals.itemCount ?? 0) + chunk.itemCount;
  }
  return totals;
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
