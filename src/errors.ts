/**
 * The canonical error family. Every failure the engine, an adapter or the client
 * reports is a {@link SyncError} carrying one of {@link SYNC_ERROR_CODES}.
 *
 * @module
 */

/** Every error code, with whether an error of that code is worth retrying. */
export const SYNC_ERROR_CODES = {
  E_SYNC_INVALID_ARGUMENT: false,
  E_SYNC_LIMIT_EXCEEDED: false,
  E_SYNC_SOURCE_NOT_FOUND: false,
  E_SYNC_SOURCE_NOT_COLLECTING: false,
  E_SYNC_SOURCE_EXPIRED: false,
  E_SYNC_CHUNK_CONFLICT: false,
  E_SYNC_CHUNK_CHECKSUM_MISMATCH: false,
  E_SYNC_CHUNK_INDEX_GAP: false,
  E_SYNC_MANIFEST_MISMATCH: false,
  E_SYNC_SOURCE_CHECKSUM_MISMATCH: false,
  E_SYNC_JOB_NOT_FOUND: false,
  E_SYNC_JOB_SUPERSEDED: false,
  E_SYNC_JOB_CANCELLED: false,
  E_SYNC_JOB_FAILED: false,
  E_SYNC_LEASE_LOST: false,
  E_SYNC_HANDLER_FAILED: true,
  E_SYNC_VERIFICATION_FAILED: false,
  E_SYNC_TIMEOUT: false,
  E_SYNC_ABORTED: false,
  E_SYNC_BACKEND_UNAVAILABLE: true,
  E_SYNC_INTERNAL: false,
} as const;

/** One of the canonical error codes. */
export type SyncErrorCode = keyof typeof SYNC_ERROR_CODES;

/** Options accepted by the {@link SyncError} constructor. */
export interface SyncErrorOptions {
  /** Overrides the code's default retryability. */
  retryable?: boolean;
  /** Structured, JSON-safe context (indexes, expected/actual values, ...). */
  details?: Record<string, unknown>;
  /** The underlying error, if any. */
  cause?: unknown;
}

/** The JSON shape of a {@link SyncError}, for crossing an RPC hop. */
export interface SyncErrorJSON {
  name: "SyncError";
  code: SyncErrorCode;
  message: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

/** True when `code` is one of the canonical codes. */
export function isSyncErrorCode(code: unknown): code is SyncErrorCode {
  return typeof code === "string" && Object.hasOwn(SYNC_ERROR_CODES, code);
}

/** The single error type of the package. */
export class SyncError extends Error {
  /** The canonical code: what callers switch on. */
  readonly code: SyncErrorCode;
  /** Whether repeating the same operation may succeed. */
  readonly retryable: boolean;
  /** Structured context (absent when none was given). */
  declare readonly details?: Record<string, unknown>;

  constructor(code: SyncErrorCode, message: string, options: SyncErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SyncError";
    this.code = code;
    this.retryable = options.retryable ?? SYNC_ERROR_CODES[code];
    if (options.details !== undefined) this.details = options.details;
  }

  /** A JSON-safe representation; {@link syncErrorFromJSON} restores it. */
  toJSON(): SyncErrorJSON {
    const json: SyncErrorJSON = {
      name: "SyncError",
      code: this.code,
      message: this.message,
      retryable: this.retryable,
    };
    if (this.details !== undefined) json.details = this.details;
    return json;
  }
}

/** True for a {@link SyncError}, including one from another copy of this package. */
export function isSyncError(value: unknown): value is SyncError {
  if (value instanceof SyncError) return true;
  return typeof value === "object" && value !== null &&
    (value as { name?: unknown }).name === "SyncError" &&
    isSyncErrorCode((value as { code?: unknown }).code) &&
    typeof (value as { retryable?: unknown }).retryable === "boolean" &&
    typeof (value as { message?: unknown }).message === "string";
}

/**
 * Normalises anything thrown into a {@link SyncError}: a SyncError is returned as is,
 * its JSON form is revived, anything else becomes `E_SYNC_INTERNAL` with the original
 * as `cause`.
 */
export function toSyncError(value: unknown, fallbackMessage = "internal error"): SyncError {
  if (value instanceof SyncError) return value;
  if (isSyncError(value)) return syncErrorFromJSON(value);
  const message = value instanceof Error
    ? value.message
    : typeof value === "string"
    ? value
    : fallbackMessage;
  return new SyncError("E_SYNC_INTERNAL", message, { cause: value });
}

/** Revives a {@link SyncErrorJSON}; an unknown code becomes `E_SYNC_INTERNAL`. */
export function syncErrorFromJSON(json: unknown): SyncError {
  if (typeof json !== "object" || json === null) {
    return new SyncError("E_SYNC_INTERNAL", "malformed error payload", { cause: json });
  }
  const raw = json as Partial<Record<keyof SyncErrorJSON, unknown>>;
  const message = typeof raw.message === "string" ? raw.message : "malformed error payload";
  if (!isSyncErrorCode(raw.code)) {
    return new SyncError("E_SYNC_INTERNAL", message, { cause: json });
  }
  const options: SyncErrorOptions = {};
  if (typeof raw.retryable === "boolean") options.retryable = raw.retryable;
  if (typeof raw.details === "object" && raw.details !== null) {
    options.details = raw.details as Record<string, unknown>;
  }
  return new SyncError(raw.code, message, options);
}

/**
 * Marks an error thrown by a host handler as not worth retrying: the job fails at once
 * instead of backing off. Returns the same error object (wrapped in an `Error` if needed).
 */
export function nonRetryable(error: unknown): Error & { retryable: false } {
  const target = error instanceof Error ? error : new Error(String(error));
  Object.defineProperty(target, "retryable", { value: false, enumerable: true });
  return target as Error & { retryable: false };
}
