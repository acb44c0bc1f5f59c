/**
 * Progress events of `syncConversation`, and the counters behind them.
 *
 * @module
 */

import type { Job, Manifest, Source } from "../contracts/domain.ts";
import type { PayloadChunk } from "./chunker.ts";

/** A number of chunks and their bytes. */
export interface TransferCount {
  chunks: number;
  bytes: number;
}

/** After each chunk: uploaded, or skipped because the source already held it. */
export interface UploadProgressEvent {
  phase: "uploading";
  sourceId: string;
  /** The chunk just finished. */
  index: number;
  /** True when that chunk was already stored and was not uploaded again. */
  skipped: boolean;
  chunksUploaded: number;
  bytesUploaded: number;
  chunksSkipped: number;
  bytesSkipped: number;
}

/** The source was sealed and its job exists. */
export interface SealedProgressEvent {
  phase: "sealed";
  source: Source;
  manifest: Manifest;
  job: Job;
}

/** Waiting for the job to reach a terminal state. */
export interface WaitingProgressEvent {
  phase: "waiting";
  job: Job;
}

/** The job is terminal (whatever its state; only `succeeded` resolves the sync). */
export interface DoneProgressEvent {
  phase: "done";
  job: Job;
}

/** Everything `onProgress` is told, in this order: uploading…, sealed, waiting, done. */
/** Before uploading an extension: what it takes over from its base without uploading. */
export interface ReusedProgressEvent {
  phase: "reused";
  /** The source extended. */
  base: Source;
  /** Chunks reused by reference (the base's chunks `0..chunks-1`). */
  chunks: number;
  bytes: number;
}

export type SyncProgressEvent =
  | ReusedProgressEvent
  | UploadProgressEvent
  | SealedProgressEvent
  | WaitingProgressEvent
  | DoneProgressEvent;

/** Running totals of uploaded and skipped chunks. */
export class TransferTally {
  readonly uploaded: TransferCount = { chunks: 0, bytes: 0 };
  readonly skipped: TransferCount = { chunks: 0, bytes: 0 };

  /** Counts `chunk` and returns the event that reports it. */
  record(sourceId: string, chunk: PayloadChunk, skipped: boolean): UploadProgressEvent {
    const count = skipped ? this.skipped : this.uploaded;
    count.chunks++;
    count.bytes += chunk.bytes.length;
    return {
      phase: "uploading",
      sourceId,
      index: chunk.index,
      skipped,
      chunksUploaded: this.uploaded.chunks,
      bytesUploaded: this.uploaded.bytes,
      chunksSkipped: this.skipped.chunks,
      bytesSkipped: this.skipped.bytes,
    };
  }
}
