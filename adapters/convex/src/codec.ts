/**
 * Conversions between the engine's records and their wire shapes, used on both sides of
 * the Convex boundary.
 *
 * @module
 */

import {
  type Job,
  type JobBase,
  type JsonValue,
  type Manifest,
  type RecordedError,
  type Source,
  type SourceBase,
  SyncError,
  type SyncErrorCode,
  syncErrorFromJSON,
} from "@zakstam/codex-sync-engine";
import type {
  JobWire,
  ManifestWire,
  RecordedErrorWire,
  SourceWire,
  SyncErrorWire,
} from "./wire.ts";

/** Parses JSON text that this package wrote; malformed text is `E_SYNC_INVALID_ARGUMENT`. */
export function parseJsonText(text: string, field: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${field} is not valid JSON text`, {
      details: { field },
    });
  }
}

/** A manifest as it travels. */
export function manifestToWire(manifest: Manifest): ManifestWire {
  const wire: ManifestWire = {
    chunkCount: manifest.chunkCount,
    byteCount: manifest.byteCount,
    digest: manifest.digest,
  };
  if (manifest.itemCount !== undefined) wire.itemCount = manifest.itemCount;
  if (manifest.data !== undefined) wire.dataJson = JSON.stringify(manifest.data);
  return wire;
}

/** A manifest back from the wire. */
export function manifestFromWire(wire: ManifestWire): Manifest {
  const manifest: Manifest = {
    chunkCount: wire.chunkCount,
    byteCount: wire.byteCount,
    digest: wire.digest,
  };
  if (wire.itemCount !== undefined) manifest.itemCount = wire.itemCount;
  if (wire.dataJson !== undefined) manifest.data = parseJsonText(wire.dataJson, "manifest.data");
  return manifest;
}

/** A recorded error as it travels. */
export function recordedErrorToWire(error: RecordedError): RecordedErrorWire {
  const wire: RecordedErrorWire = {
    code: error.code,
    message: error.message,
    retryable: error.retryable,
  };
  if (error.details !== undefined) wire.detailsJson = JSON.stringify(error.details);
  return wire;
}

/** A recorded error back from the wire. */
export function recordedErrorFromWire(wire: RecordedErrorWire): RecordedError {
  const error: RecordedError = {
    code: wire.code as SyncErrorCode,
    message: wire.message,
    retryable: wire.retryable,
  };
  if (wire.detailsJson !== undefined) {
    error.details = parseJsonText(wire.detailsJson, "error.details") as Record<string, unknown>;
  }
  return error;
}

/** A copy of an extension's base (the same shape on both sides). */
function sourceBaseCopy(base: SourceBase): SourceBase {
  const copy: SourceBase = {
    sourceId: base.sourceId,
    chunkCount: base.chunkCount,
    byteCount: base.byteCount,
  };
  if (base.itemCount !== undefined) copy.itemCount = base.itemCount;
  return copy;
}

/** A copy of a job's base (the same shape on both sides). */
function jobBaseCopy(base: JobBase): JobBase {
  return { sourceId: base.sourceId, jobId: base.jobId, chunkCount: base.chunkCount };
}

/**
 * The extension and release fields of a source, copied from `from` onto `to` (absent
 * ones stay absent). Wire and record spell them alike.
 */
function copyExtensionFields(from: Source | SourceWire, to: Source | SourceWire): void {
  if (from.base !== undefined) to.base = sourceBaseCopy(from.base);
  if (from.chunkHome !== undefined) to.chunkHome = from.chunkHome;
  if (from.extendedBy !== undefined) to.extendedBy = from.extendedBy;
  if (from.homeRefs !== undefined) to.homeRefs = from.homeRefs;
  if (from.digestState !== undefined) to.digestState = from.digestState;
  if (from.payloadsReleasedAt !== undefined) to.payloadsReleasedAt = from.payloadsReleasedAt;
  if (from.releasedChunks !== undefined) to.releasedChunks = from.releasedChunks;
}

/** A source as it travels. */
export function sourceToWire(source: Source): SourceWire {
  const wire: SourceWire = {
    sourceId: source.sourceId,
    scope: source.scope,
    conversationId: source.conversationId,
    state: source.state,
    received: { chunkCount: source.received.chunkCount, byteCount: source.received.byteCount },
    createdAt: source.createdAt,
    updatedAt: source.updatedAt,
    expiresAt: source.expiresAt,
  };
  if (source.manifest !== undefined) wire.manifest = manifestToWire(source.manifest);
  if (source.jobId !== undefined) wire.jobId = source.jobId;
  if (source.error !== undefined) wire.error = recordedErrorToWire(source.error);
  if (source.metadata !== undefined) wire.metadataJson = JSON.stringify(source.metadata);
  if (source.sealedAt !== undefined) wire.sealedAt = source.sealedAt;
  if (source.chunksPurgedAt !== undefined) wire.chunksPurgedAt = source.chunksPurgedAt;
  copyExtensionFields(source, wire);
  return wire;
}

/** A source back from the wire (extra fields, such as storage bookkeeping, are dropped). */
export function sourceFromWire(wire: SourceWire): Source {
  const source: Source = {
    sourceId: wire.sourceId,
    scope: wire.scope,
    conversationId: wire.conversationId,
    state: wire.state,
    received: { chunkCount: wire.received.chunkCount, byteCount: wire.received.byteCount },
    createdAt: wire.createdAt,
    updatedAt: wire.updatedAt,
    expiresAt: wire.expiresAt,
  };
  if (wire.manifest !== undefined) source.manifest = manifestFromWire(wire.manifest);
  if (wire.jobId !== undefined) source.jobId = wire.jobId;
  if (wire.error !== undefined) source.error = recordedErrorFromWire(wire.error);
  if (wire.metadataJson !== undefined) {
    source.metadata = parseJsonText(wire.metadataJson, "metadata");
  }
  if (wire.sealedAt !== undefined) source.sealedAt = wire.sealedAt;
  if (wire.chunksPurgedAt !== undefined) source.chunksPurgedAt = wire.chunksPurgedAt;
  copyExtensionFields(wire, source);
  return source;
}

/** A job as it travels. */
export function jobToWire(job: Job): JobWire {
  const wire: JobWire = {
    jobId: job.jobId,
    scope: job.scope,
    sourceId: job.sourceId,
    conversationId: job.conversationId,
    state: job.state,
    cursor: job.cursor,
    totalChunks: job.totalChunks,
    appliedBytes: job.appliedBytes,
    attempt: job.attempt,
    runAt: job.runAt,
    leaseToken: job.leaseToken,
    appliedDigestState: job.appliedDigestState,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
  if (job.lease !== undefined) {
    wire.lease = { owner: job.lease.owner, token: job.lease.token, expiresAt: job.lease.expiresAt };
  }
  if (job.error !== undefined) wire.error = recordedErrorToWire(job.error);
  if (job.startedAt !== undefined) wire.startedAt = job.startedAt;
  if (job.completedAt !== undefined) wire.completedAt = job.completedAt;
  if (job.base !== undefined) wire.base = jobBaseCopy(job.base);
  return wire;
}

/** A job back from the wire (extra fields, such as storage bookkeeping, are dropped). */
export function jobFromWire(wire: JobWire): Job {
  const job: Job = {
    jobId: wire.jobId,
    scope: wire.scope,
    sourceId: wire.sourceId,
    conversationId: wire.conversationId,
    state: wire.state,
    cursor: wire.cursor,
    totalChunks: wire.totalChunks,
    appliedBytes: wire.appliedBytes,
    attempt: wire.attempt,
    runAt: wire.runAt,
    leaseToken: wire.leaseToken,
    appliedDigestState: wire.appliedDigestState,
    createdAt: wire.createdAt,
    updatedAt: wire.updatedAt,
  };
  if (wire.lease !== undefined) {
    job.lease = {
      owner: wire.lease.owner,
      token: wire.lease.token,
      expiresAt: wire.lease.expiresAt,
    };
  }
  if (wire.error !== undefined) job.error = recordedErrorFromWire(wire.error);
  if (wire.startedAt !== undefined) job.startedAt = wire.startedAt;
  if (wire.completedAt !== undefined) job.completedAt = wire.completedAt;
  if (wire.base !== undefined) job.base = jobBaseCopy(wire.base);
  return job;
}

/** A `SyncError` as it travels. */
export function syncErrorToWire(error: SyncError): SyncErrorWire {
  const wire: SyncErrorWire = {
    name: "SyncError",
    code: error.code,
    message: error.message,
    retryable: error.retryable,
  };
  if (error.details !== undefined) wire.detailsJson = JSON.stringify(error.details);
  return wire;
}

/** True for a {@link SyncErrorWire} (e.g. the data of a caught `ConvexError`). */
export function isSyncErrorWire(value: unknown): value is SyncErrorWire {
  if (typeof value !== "object" || value === null) return false;
  const wire = value as Partial<Record<keyof SyncErrorWire, unknown>>;
  return wire.name === "SyncError" && typeof wire.code === "string" &&
    typeof wire.message === "string" && typeof wire.retryable === "boolean";
}

/** A `SyncError` back from the wire (an unknown code becomes `E_SYNC_INTERNAL`). */
export function syncErrorFromWire(wire: SyncErrorWire): SyncError {
  let details: unknown;
  if (wire.detailsJson !== undefined) {
    try {
      details = JSON.parse(wire.detailsJson);
    } catch {
      details = undefined;
    }
  }
  return syncErrorFromJSON({
    name: "SyncError",
    code: wire.code,
    message: wire.message,
    retryable: wire.retryable,
    details,
  });
}
