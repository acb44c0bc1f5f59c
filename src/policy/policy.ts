/**
 * The engine's tunables with their defaults (DESIGN §3).
 *
 * @module
 */

import { MAX_ID_LENGTH } from "../contracts/inputs.ts";
import { SyncError } from "../errors.ts";

/** Per-chunk retry schedule. */
export interface RetryPolicy {
  /** Attempts per chunk, the first included (default 8). */
  maxAttempts: number;
  /** Delay before the first retry, in ms (default 500). */
  baseDelayMs: number;
  /** Growth per retry (default 2). */
  factor: number;
  /** Cap on the delay before jitter, in ms (default 30 000). */
  maxDelayMs: number;
}

/** Size limits, all checked before anything is stored. */
export interface Limits {
  /** Bytes per chunk (default 1 MiB). */
  maxChunkBytes: number;
  /** Chunks per source (default 100 000). */
  maxChunksPerSource: number;
  /** Bytes per source (default 1 GiB). */
  maxSourceBytes: number;
  /** Serialised source metadata, in UTF-8 bytes (default 16 KiB). */
  maxMetadataBytes: number;
  /** Serialised manifest `data`, in UTF-8 bytes (default 1 MiB). */
  maxManifestDataBytes: number;
  /** Characters in an id or scope (default 256). */
  maxIdLength: number;
}

/** Everything the engine lets a host tune. */
export interface SyncPolicy {
  retry: RetryPolicy;
  limits: Limits;
  /** Lease length of a claimed job, in ms (default 30 000). */
  leaseMs: number;
  /** Interval of lease extension while a handler runs, in ms (default leaseMs / 3). */
  heartbeatMs: number;
  /** Life of a collecting source before it expires, in ms (default 24 h). */
  sourceTtlMs: number;
  /** How long chunks are kept after their job ended, in ms (default 7 days). */
  retentionMs: number;
  /** Sealing a source cancels older non-terminal jobs of its conversation (default on). */
  supersede: boolean;
  /**
   * Where the store applies inside its transaction: how many jobs with at most one chunk
   * left one transaction claims, applies and verifies (default 32; 1 claims them one by
   * one). A batch also stops once it applied `limits.maxChunkBytes` bytes.
   */
  shortJobBatchSize: number;
  /**
   * Bytes of chunks this engine hashed and stored that it keeps until its own worker
   * applies them, so they are applied without being read back and hashed again (default
   * 64 MiB; 0 reads every chunk back from storage). Chunks read from storage are always
   * hashed before they are applied.
   */
  uploadCacheBytes: number;
}

/** A partial policy; nested groups merge over the defaults. */
export interface PolicyOverrides {
  retry?: Partial<RetryPolicy>;
  limits?: Partial<Limits>;
  leaseMs?: number;
  heartbeatMs?: number;
  sourceTtlMs?: number;
  retentionMs?: number;
  supersede?: boolean;
  shortJobBatchSize?: number;
  uploadCacheBytes?: number;
}

/** The default retry schedule. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 8,
  baseDelayMs: 500,
  factor: 2,
  maxDelayMs: 30_000,
});

/** The default limits. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxChunkBytes: 1024 * 1024,
  maxChunksPerSource: 100_000,
  maxSourceBytes: 1024 * 1024 * 1024,
  maxMetadataBytes: 16 * 1024,
  maxManifestDataBytes: 1024 * 1024,
  maxIdLength: 256,
});

/** The default policy. */
export const DEFAULT_POLICY: Readonly<SyncPolicy> = Object.freeze({
  retry: DEFAULT_RETRY_POLICY,
  limits: DEFAULT_LIMITS,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  sourceTtlMs: 24 * 60 * 60 * 1000,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  supersede: true,
  shortJobBatchSize: 32,
  uploadCacheBytes: 64 * 1024 * 1024,
});

function positive(name: string, value: number, integer: boolean): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value <= 0 ||
    (integer && !Number.isSafeInteger(value))
  ) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `policy.${name} must be a positive ${integer ? "integer" : "number"}`,
      { details: { field: name } },
    );
  }
  return value;
}

/** `group` without its undefined entries, so they do not hide the defaults. */
function defined<T extends object>(group: Partial<T> | undefined): Partial<T> {
  return Object.fromEntries(
    Object.entries(group ?? {}).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

/** Merges overrides over the defaults and validates the result. */
export function resolvePolicy(overrides: PolicyOverrides = {}): SyncPolicy {
  const retry = { ...DEFAULT_RETRY_POLICY, ...defined(overrides.retry) };
  const limits = { ...DEFAULT_LIMITS, ...defined(overrides.limits) };
  const leaseMs = overrides.leaseMs ?? DEFAULT_POLICY.leaseMs;
  const policy: SyncPolicy = {
    retry,
    limits,
    leaseMs,
    heartbeatMs: overrides.heartbeatMs ?? leaseMs / 3,
    sourceTtlMs: overrides.sourceTtlMs ?? DEFAULT_POLICY.sourceTtlMs,
    retentionMs: overrides.retentionMs ?? DEFAULT_POLICY.retentionMs,
    supersede: overrides.supersede ?? DEFAULT_POLICY.supersede,
    shortJobBatchSize: overrides.shortJobBatchSize ?? DEFAULT_POLICY.shortJobBatchSize,
    uploadCacheBytes: overrides.uploadCacheBytes ?? DEFAULT_POLICY.uploadCacheBytes,
  };
  positive("retry.maxAttempts", retry.maxAttempts, true);
  positive("retry.baseDelayMs", retry.baseDelayMs, false);
  positive("retry.factor", retry.factor, false);
  positive("retry.maxDelayMs", retry.maxDelayMs, false);
  for (const [name, value] of Object.entries(limits)) positive(`limits.${name}`, value, true);
  positive("leaseMs", policy.leaseMs, false);
  positive("heartbeatMs", policy.heartbeatMs, false);
  positive("sourceTtlMs", policy.sourceTtlMs, false);
  positive("retentionMs", policy.retentionMs, false);
  positive("shortJobBatchSize", policy.shortJobBatchSize, true);
  if (!Number.isSafeInteger(policy.uploadCacheBytes) || policy.uploadCacheBytes < 0) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      "policy.uploadCacheBytes must be a non-negative integer",
      { details: { field: "uploadCacheBytes" } },
    );
  }
  if (limits.maxIdLength > MAX_ID_LENGTH) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `policy.limits.maxIdLength must be at most ${MAX_ID_LENGTH}`,
      { details: { field: "limits.maxIdLength" } },
    );
  }
  if (policy.heartbeatMs >= policy.leaseMs) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "policy.heartbeatMs must be below leaseMs", {
      details: { field: "heartbeatMs" },
    });
  }
  return policy;
}
