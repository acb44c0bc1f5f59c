/**
 * Bounded-concurrency upload of a chunk sequence.
 *
 * @module
 */

import { sha256Hex } from "../checksum.ts";
import { SyncError, toSyncError } from "../errors.ts";
import { linkAbort, raceSignal } from "./abort.ts";
import type { PayloadChunk } from "./chunker.ts";
import { OrderedCompositeDigest } from "./ordered_digest.ts";
import type { Limits } from "../policy/policy.ts";
import { chunkIndexRefusal, sourceBytesRefusal } from "../policy/validation.ts";

/** Stores one hashed chunk; `signal` aborts when the upload as a whole stops. */
export type StoreChunk = (
  chunk: PayloadChunk,
  sha256: string,
  signal: AbortSignal,
) => Promise<void>;

/** Options of {@link uploadChunks}. */
export interface UploadChunksOptions {
  /** Chunks stored at once, at most. */
  concurrency: number;
  /** Stops the upload; its reason (a `SyncError`) is what the upload rejects with. */
  signal: AbortSignal;
  store: StoreChunk;
  /** Chunks already in the source before these (an extension's reused chunks). */
  start?: UploadStart;
  /** The adapter's limits: a chunk past them is refused before it is stored. */
  limits?: Readonly<Limits>;
}

/** The chunks a source holds before the uploaded ones: indexes `0..chunkCount-1`. */
export interface UploadStart {
  chunkCount: number;
  byteCount: number;
  itemCount?: number;
  /** Composite-digest state over their digests (`IncrementalSha256.save()`). */
  digestState: string;
}

/** What was uploaded: the figures of the manifest. */
export interface UploadTotals {
  chunkCount: number;
  byteCount: number;
  /** Sum of the chunks' item counts; absent when no chunk carried one. */
  itemCount?: number;
  /** Composite digest of the chunks, in index order. */
  digest: string;
}

/**
 * Hashes and stores every chunk of `chunks`, `concurrency` at a time. The next chunk is
 * pulled only once a slot is free, so at most `concurrency` chunks are held here plus
 * the one the chunker is filling. The first failure (or an abort) stops pulling and
 * storing and rejects at once; stores already running are left to finish on their own.
 */
export async function uploadChunks(
  chunks: AsyncIterable<PayloadChunk>,
  options: UploadChunksOptions,
): Promise<UploadTotals> {
  const stop = linkAbort(options.signal, (parent) => parent.reason);
  const iterator = chunks[Symbol.asyncIterator]();
  const { start } = options;
  const composite = new OrderedCompositeDigest(start);
  const running = new Set<Promise<void>>();
  const totals = {
    chunkCount: start?.chunkCount ?? 0,
    byteCount: start?.byteCount ?? 0,
    itemCount: start?.itemCount,
  };
  let exhausted = false;

  const uploadOne = async (chunk: PayloadChunk): Promise<void> => {
    const sha256 = await sha256Hex(chunk.bytes);
    await options.store(chunk, sha256, stop.signal);
    composite.add(chunk.index, sha256);
  };

  try {
    for (;;) {
      while (running.size >= options.concurrency) {
        await raceSignal(Promise.race(running), stop.signal);
      }
      const next = await raceSignal(iterator.next(), stop.signal);
      if (next.done) {
        exhausted = true;
        break;
      }
      if (stop.signal.aborted) throw stop.signal.reason;
      const chunk = next.value;
      if (chunk.index !== totals.chunkCount) {
        throw new SyncError(
          "E_SYNC_INTERNAL",
          `chunk ${chunk.index} arrived where chunk ${totals.chunkCount} was expected`,
        );
      }
      if (options.limits) {
        const refusal = chunkIndexRefusal(options.limits, "syncConversation", chunk.index) ??
          sourceBytesRefusal(
            options.limits,
            "syncConversation",
            totals.byteCount + chunk.bytes.length,
          );
        if (refusal) throw refusal;
      }
      totals.chunkCount++;
      totals.byteCount += chunk.bytes.length;
      if (chunk.itemCount !== undefined) {
        totals.itemCount = (totals.itemCount ?? 0) + chunk.itemCount;
      }
      const task: Promise<void> = uploadOne(chunk)
        .catch((error) => stop.abort(toSyncError(error)))
        .finally(() => running.delete(task));
      running.add(task);
    }
    await raceSignal(Promise.all(running), stop.signal);
    if (stop.signal.aborted) throw stop.signal.reason;
    const result: UploadTotals = {
      chunkCount: totals.chunkCount,
      byteCount: totals.byteCount,
      digest: composite.digestHex(),
    };
    if (totals.itemCount !== undefined) result.itemCount = totals.itemCount;
    return result;
  } catch (thrown) {
    const error = stop.signal.aborted ? toSyncError(stop.signal.reason) : toSyncError(thrown);
    stop.abort(error);
    throw error;
  } finally {
    stop.dispose();
    // Lets a stream producer know it can stop; not awaited, a pending read may hang.
    if (!exhausted) iterator.return?.().catch(() => {});
  }
}
