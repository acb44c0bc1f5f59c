/**
 * Pure source transitions (DESIGN §3).
 *
 * @module
 */

import type {
  JsonValue,
  Manifest,
  RecordedError,
  Source,
  SourceBase,
} from "../contracts/domain.ts";
import { SyncError } from "../errors.ts";
import { snapshotJson } from "../policy/validation.ts";

/** The arguments of a new source. */
export interface NewSourceInput {
  sourceId: string;
  scope: string;
  conversationId: string;
  metadata?: JsonValue;
  now: number;
  ttlMs: number;
}

/** A source just created: `collecting`, nothing received. */
export function newSource(input: NewSourceInput): Source {
  const source: Source = {
    sourceId: input.sourceId,
    scope: input.scope,
    conversationId: input.conversationId,
    state: "collecting",
    received: { chunkCount: 0, byteCount: 0 },
    createdAt: input.now,
    updatedAt: input.now,
    expiresAt: input.now + input.ttlMs,
  };
  if (input.metadata !== undefined) source.metadata = input.metadata;
  return source;
}

/** True for a collecting source whose TTL has run out at `now`. */
export function isPastTtl(source: Source, now: number): boolean {
  return source.state === "collecting" && source.expiresAt <= now;
}

/**
 * Why `source` cannot take chunks or a seal at `now`, or undefined when it can.
 * A collecting source past its TTL answers `E_SYNC_SOURCE_EXPIRED` (the caller then
 * persists the expiry).
 */
export function collectingRefusal(source: Source, now: number): SyncError | undefined {
  if (source.state === "expired" || isPastTtl(source, now)) {
    return new SyncError("E_SYNC_SOURCE_EXPIRED", `source ${source.sourceId} has expired`, {
      details: { sourceId: source.sourceId },
    });
  }
  if (source.state !== "collecting") {
    return new SyncError(
      "E_SYNC_SOURCE_NOT_COLLECTING",
      `source ${source.sourceId} is ${source.state}, not collecting`,
      { details: { sourceId: source.sourceId, state: source.state } },
    );
  }
  return undefined;
}

/** The source after one more chunk of `byteLength` bytes was stored. */
export function recordAppend(source: Source, byteLength: number, now: number): Source {
  return {
    ...source,
    received: {
      chunkCount: source.received.chunkCount + 1,
      byteCount: source.received.byteCount + byteLength,
    },
    updatedAt: now,
  };
}

/** The source after a successful seal that created job `jobId`. */
export function sealSucceeded(
  source: Source,
  manifest: Manifest,
  jobId: string,
  now: number,
): Source {
  return { ...source, state: "sealed", manifest, jobId, sealedAt: now, updatedAt: now };
}

/** The source after a failed seal: `failed`, with the error and the offending manifest. */
export function sealFailed(
  source: Source,
  manifest: Manifest,
  error: RecordedError,
  now: number,
): Source {
  return { ...source, state: "failed", manifest, error, updatedAt: now };
}

/** The source after its TTL ran out: `expired`, chunks purged. */
export function expireSource(source: Source, now: number): Source {
  return {
    ...source,
    state: "expired",
    error: {
      code: "E_SYNC_SOURCE_EXPIRED",
      message: `source ${source.sourceId} expired before it was sealed`,
      retryable: false,
    },
    updatedAt: now,
    chunksPurgedAt: now,
  };
}

/** The source after retention deleted its chunks. */
export function markChunksPurged(source: Source, now: number): Source {
  return { ...source, chunksPurgedAt: now, updatedAt: now };
}

/** Longest error message kept in a record (a handler may throw megabytes of text). */
export const MAX_RECORDED_MESSAGE = 4096;

/** Largest serialised `details` kept in a record. */
export const MAX_RECORDED_DETAILS_BYTES = 16 * 1024;

/**
 * Records a {@link SyncError} as a JSON-safe {@link RecordedError} of bounded size: a
 * longer message is cut (its original length noted), details that are not JSON data or
 * too large are replaced by a note.
 */
export function recordError(error: SyncError): RecordedError {
  const { message } = error;
  const recorded: RecordedError = {
    code: error.code,
    message: message.length <= MAX_RECORDED_MESSAGE
      ? message
      : `${message.slice(0, MAX_RECORDED_MESSAGE)}… (cut from ${message.length} characters)`,
    retryable: error.retryable,
  };
  if (error.details !== undefined) {
    try {
      recorded.details = snapshotJson(
        "recordError",
        "details",
        error.details,
        MAX_RECORDED_DETAILS_BYTES,
      ).value as Record<string, unknown>;
    } catch (refusal) {
      recorded.details = { omitted: (refusal as SyncError).message };
    }
  }
  return recorded;
}

/** The source id under which `source`'s chunks are stored (shared along an extension chain). */
export function chunkHomeOf(source: Source): string {
  return source.chunkHome ?? source.sourceId;
}

/**
 * A new collecting source made an extension of the sealed `base`: the base's chunks are
 * its chunks `0..k-1` (received already), stored in the base's chunk home, and
 * `prefixDigestState` is the composite state over them.
 */
export function extendSource(source: Source, base: Source, prefixDigestState: string): Source {
  const manifest = base.manifest!;
  const reused: SourceBase = {
    sourceId: base.sourceId,
    chunkCount: manifest.chunkCount,
    byteCount: manifest.byteCount,
  };
  if (manifest.itemCount !== undefined) reused.itemCount = manifest.itemCount;
  return {
    ...source,
    received: { chunkCount: manifest.chunkCount, byteCount: manifest.byteCount },
    base: reused,
    chunkHome: chunkHomeOf(base),
    digestState: prefixDigestState,
  };
}

/** `source` with `key` removed (an optional bookkeeping field cleared). */
export function withoutField<K extends keyof Source>(source: Source, key: K): Source {
  const copy = { ...source };
  delete copy[key];
  return copy;
}
