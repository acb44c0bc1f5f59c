/**
 * Backend failures as `SyncError`s: a lost or refused connection, a server shutting
 * down or starting up, too many connections, a serialization failure or a deadlock is
 * `E_SYNC_BACKEND_UNAVAILABLE` (retryable: the same call may succeed later); text the
 * database cannot store is `E_SYNC_INVALID_ARGUMENT`; anything else `E_SYNC_INTERNAL`.
 *
 * @module
 */

import { isSyncError, SyncError, toSyncError } from "@zakstam/codex-sync-engine";

/** SQLSTATEs that end the session: it is gone, or was never established. */
const SESSION_LOST_SQLSTATES = new Set([
  "53300", // too_many_connections
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down, recovering)
]);

/** SQLSTATEs after which the same statement may succeed on a later attempt. */
const RETRY_SQLSTATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available
]);

/** SQLSTATEs for text PostgreSQL cannot hold (a NUL character, say). */
const UNSTORABLE_TEXT_SQLSTATES = new Set(["22021", "22P05"]);

/** Client-side connection failures (Node/Deno socket errors, postgres.js codes). */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

function codeOf(error: unknown): string | undefined {
  const code = typeof error === "object" && error !== null
    ? (error as { code?: unknown }).code
    : undefined;
  return typeof code === "string" ? code : undefined;
}

/**
 * True when `error` means the database session is gone (or could not be opened): the
 * connection was refused, reset or closed, or the server is shutting down or starting.
 */
export function isConnectionLost(error: unknown): boolean {
  const code = codeOf(error);
  if (code === undefined) return false;
  // Class 08: connection exception.
  return code.startsWith("08") || SESSION_LOST_SQLSTATES.has(code) ||
    CONNECTION_ERROR_CODES.has(code);
}

/** True when `error` says the database could not be reached or asked to be retried. */
export function isTransientBackendError(error: unknown): boolean {
  const code = codeOf(error);
  return isConnectionLost(error) || (code !== undefined && RETRY_SQLSTATES.has(code));
}

/**
 * Maps whatever a driver threw to a `SyncError` (a `SyncError` is returned unchanged).
 * `operation` names what was attempted, for the message.
 */
export function toBackendError(error: unknown, operation: string): SyncError {
  if (isSyncError(error)) return toSyncError(error);
  const code = codeOf(error);
  const reason = error instanceof Error ? error.message : String(error);
  const details = code === undefined ? { operation } : { operation, backendCode: code };
  if (isTransientBackendError(error)) {
    return new SyncError(
      "E_SYNC_BACKEND_UNAVAILABLE",
      `${operation}: postgres unavailable: ${reason}`,
      { cause: error, details },
    );
  }
  if (code !== undefined && UNSTORABLE_TEXT_SQLSTATES.has(code)) {
    return new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${operation}: postgres cannot store this text: ${reason}`,
      { cause: error, details },
    );
  }
  return new SyncError("E_SYNC_INTERNAL", `${operation}: postgres error: ${reason}`, {
    cause: error,
    details,
  });
}
