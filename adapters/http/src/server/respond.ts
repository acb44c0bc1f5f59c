/**
 * Responses: JSON bodies, error bodies with the documented status of each code, and the
 * fixed 401.
 *
 * @module
 */

import { isSyncError, SyncError, toSyncError } from "@zakstam/codex-sync-engine/errors";
import { statusOf } from "../protocol.ts";

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
} as const;

/** A JSON response. */
export function jsonResponse(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), { status, headers: JSON_HEADERS });
}

// Errors whose status is not their code's (415 for a wrong media type, 403 for gc).
const overrides = new WeakMap<SyncError, number>();

/** Marks `error` to be answered with `status` instead of its code's status. */
export function withStatus(error: SyncError, status: number): SyncError {
  overrides.set(error, status);
  return error;
}

/**
 * The response for a failure. A `SyncError` goes out as `{"error": error.toJSON()}` with
 * its code's status; anything else (a bug) as a generic `E_SYNC_INTERNAL`, as does an
 * `E_SYNC_INTERNAL` whose message could reveal internals unless `exposeInternal`.
 */
export function errorResponse(thrown: unknown, exposeInternal: boolean): Response {
  let error: SyncError;
  if (isSyncError(thrown) && (thrown.code !== "E_SYNC_INTERNAL" || exposeInternal)) {
    // A SyncError of another copy of the package (or its JSON form) is revived as ours.
    error = toSyncError(thrown);
  } else {
    error = new SyncError("E_SYNC_INTERNAL", "internal error");
  }
  const status = overrides.get(error) ?? statusOf(error.code);
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (status === 503) headers["retry-after"] = "1";
  return new Response(JSON.stringify({ error: error.toJSON() }), { status, headers });
}

/** The body of every 401: fixed, whatever was wrong with the credentials. */
export const UNAUTHORIZED_BODY: string = JSON.stringify({
  error: {
    name: "SyncError",
    code: "E_SYNC_INVALID_ARGUMENT",
    message: "missing or invalid credentials",
    retryable: false,
  },
});

/** The 401 answered for missing or unknown credentials. */
export function unauthorizedResponse(): Response {
  return new Response(UNAUTHORIZED_BODY, {
    status: 401,
    headers: { ...JSON_HEADERS, "www-authenticate": 'Bearer realm="codex-sync"' },
  });
}
