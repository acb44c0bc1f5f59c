/**
 * Options of `syncConversation`, their defaults and their validation.
 *
 * @module
 */

import type { Clock } from "../contracts/clock.ts";
import type { JsonValue } from "../contracts/domain.ts";
import { systemClock } from "../clock.ts";
import { SyncError } from "../errors.ts";
import type { RandomSource } from "../policy/backoff.ts";
import { DEFAULT_POLICY, type Limits, resolvePolicy, type RetryPolicy } from "../policy/policy.ts";
import { checkIdLengths, parseInput, snapshotJson } from "../policy/validation.ts";
import { createSourceInputSchema, MAX_TIMEOUT_MS } from "../contracts/inputs.ts";
import { assertChunkSize } from "./chunker.ts";
import { assertPayload, type PayloadFormat, type SyncPayload } from "./payload.ts";
import type { SyncProgressEvent } from "./progress.ts";
import type { RetrySettings } from "./retry.ts";

/** Default bytes per chunk: 1 MiB, the default chunk limit of the engine. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/** Default number of chunks uploaded at once. */
export const DEFAULT_CONCURRENCY = 4;

/** Options of `syncConversation`. */
export interface SyncConversationOptions {
  /** The owner (tenant/user) the source and job belong to. */
  scope: string;
  conversationId: string;
  /** The snapshot to copy: bytes, byte pieces, or JSON records. */
  payload: SyncPayload;
  /** Forces the encoding; by default the payload's first item decides. */
  format?: PayloadFormat;
  /**
   * Id of the source to upload into. When it exists the upload resumes (chunks stored
   * with the same digest are skipped; a sealed source is sealed again, returning its
   * job); when it does not, it is created with this id.
   */
  sourceId?: string;
  /** Stored on the source when it is created. */
  metadata?: JsonValue;
  /** The manifest's domain `data`, for the handler's verify hook. */
  manifestData?: JsonValue;
  /** Bytes per chunk (default 1 MiB, or the adapter's `maxChunkBytes` when smaller). */
  chunkSize?: number;
  /** Chunks uploaded at once (default 4); memory stays ≤ chunkSize × (concurrency + 1). */
  concurrency?: number;
  /** Retry schedule of backend calls, over `DEFAULT_RETRY_POLICY`. */
  retry?: Partial<RetryPolicy>;
  /** Time source of the backoff waits (default the system clock). */
  clock?: Clock;
  /** Jitter source of the backoff (default `Math.random`). */
  random?: RandomSource;
  /** Stops the sync with `E_SYNC_ABORTED`; the source stays resumable, the job is never cancelled. */
  signal?: AbortSignal;
  /** Called synchronously at each step; a listener that throws fails the sync. */
  onProgress?: (event: SyncProgressEvent) => void;
  /** Longest wait for the job to end, in ms (`E_SYNC_TIMEOUT` after it). */
  waitTimeoutMs?: number;
  /**
   * Extend the conversation's latest source when the payload starts with all of its
   * chunks (default true): only the rest is uploaded and applied. Needs an adapter with
   * the `extensions` capability and a payload that can be read twice (a `Uint8Array`,
   * an array, or a function returning the payload); otherwise the payload goes up whole.
   */
  extend?: boolean;
  /**
   * Id of a sealed source that this payload continues: the payload holds only what
   * follows that source's content, and is uploaded as its extension without reading
   * the prefix again (for a caller that knows it only appended, like a file watcher).
   */
  appendTo?: string;
}

/** Options with every default applied. */
export interface ResolvedSyncOptions {
  scope: string;
  conversationId: string;
  payload: SyncPayload;
  format?: PayloadFormat;
  sourceId?: string;
  metadata?: JsonValue;
  manifestData?: JsonValue;
  chunkSize: number;
  concurrency: number;
  retry: RetrySettings;
  signal?: AbortSignal;
  onProgress: (event: SyncProgressEvent) => void;
  waitTimeoutMs?: number;
  /** The adapter's limits (or the defaults), enforced before anything is uploaded. */
  limits: Readonly<Limits>;
  extend: boolean;
  appendTo?: string;
}

function invalid(field: string, message: string): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", `${field} ${message}`, { details: { field } });
}

function requireText(field: string, value: unknown): void {
  if (typeof value !== "string" || value.length === 0) {
    throw invalid(field, "must be a non-empty string");
  }
}

/** What the client must know of the adapter to refuse what its engine would refuse. */
export interface AdapterLimits {
  maxChunkBytes?: number;
  limits?: Readonly<Limits>;
}

/**
 * Applies the defaults; throws `E_SYNC_INVALID_ARGUMENT` for a malformed option and
 * `E_SYNC_LIMIT_EXCEEDED` for one the adapter's engine would refuse, by the engine's own
 * rules (ids, metadata, manifest data, timeout) and its limits, before anything is sent.
 */
export function resolveSyncOptions(
  options: SyncConversationOptions,
  adapter: AdapterLimits = {},
): ResolvedSyncOptions {
  if (typeof options !== "object" || options === null) {
    throw invalid("options", "must be an object");
  }
  const limits = adapter.limits ?? DEFAULT_POLICY.limits;
  const adapterMaxChunkBytes = adapter.maxChunkBytes ?? limits.maxChunkBytes;
  requireText("scope", options.scope);
  requireText("conversationId", options.conversationId);
  if (options.sourceId !== undefined) requireText("sourceId", options.sourceId);
  if (options.appendTo !== undefined) requireText("appendTo", options.appendTo);
  // The engine's rules for what a source is created with, applied here first.
  const created = parseInput(createSourceInputSchema, {
    scope: options.scope,
    conversationId: options.conversationId,
    ...(options.sourceId === undefined ? {} : { sourceId: options.sourceId }),
    ...(options.appendTo === undefined ? {} : { baseSourceId: options.appendTo }),
  }, "syncConversation");
  checkIdLengths(limits, "syncConversation", {
    scope: created.scope,
    conversationId: created.conversationId,
    sourceId: created.sourceId,
    appendTo: created.baseSourceId,
  });
  const metadata = options.metadata === undefined
    ? undefined
    : snapshotJson("syncConversation", "metadata", options.metadata, limits.maxMetadataBytes)
      .value;
  const manifestData = options.manifestData === undefined ? undefined : snapshotJson(
    "syncConversation",
    "manifestData",
    options.manifestData,
    limits.maxManifestDataBytes,
  ).value;
  if (options.extend !== undefined && typeof options.extend !== "boolean") {
    throw invalid("extend", "must be a boolean");
  }
  if (
    options.format !== undefined && options.format !== "bytes" &&
    options.format !== "jsonl-records"
  ) {
    throw invalid("format", 'must be "bytes" or "jsonl-records"');
  }
  assertPayload(options.payload, options.format);
  const chunkSize = options.chunkSize ?? Math.min(DEFAULT_CHUNK_SIZE, adapterMaxChunkBytes);
  assertChunkSize(chunkSize);
  if (chunkSize > adapterMaxChunkBytes) {
    throw new SyncError(
      "E_SYNC_LIMIT_EXCEEDED",
      `chunkSize ${chunkSize} is larger than the adapter's limit of ${adapterMaxChunkBytes} bytes`,
      { details: { field: "chunkSize", limit: adapterMaxChunkBytes, actual: chunkSize } },
    );
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency <= 0) {
    throw invalid("concurrency", "must be a positive integer");
  }
  const { waitTimeoutMs, onProgress, random } = options;
  if (
    waitTimeoutMs !== undefined &&
    !(typeof waitTimeoutMs === "number" && waitTimeoutMs >= 0 && waitTimeoutMs <= MAX_TIMEOUT_MS)
  ) {
    throw invalid("waitTimeoutMs", `must be a number of ms from 0 to ${MAX_TIMEOUT_MS}`);
  }
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw invalid("onProgress", "must be a function");
  }
  if (random !== undefined && typeof random !== "function") {
    throw invalid("random", "must be a function");
  }
  return {
    scope: options.scope,
    conversationId: options.conversationId,
    payload: options.payload,
    format: options.format,
    sourceId: options.sourceId,
    metadata,
    manifestData,
    chunkSize,
    limits,
    concurrency,
    retry: {
      policy: resolvePolicy({ retry: options.retry }).retry,
      clock: options.clock ?? systemClock,
      random: random ?? Math.random,
    },
    signal: options.signal,
    onProgress: onProgress ?? (() => {}),
    waitTimeoutMs,
    extend: options.extend ?? true,
    appendTo: options.appendTo,
  };
}
