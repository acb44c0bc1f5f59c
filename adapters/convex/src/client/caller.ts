/**
 * The slice of a Convex client the adapter calls — `ConvexClient` (with subscriptions)
 * and `ConvexHttpClient` both fit — and how its errors become `SyncError`s.
 *
 * @module
 */

import { isSyncError, SyncError, toSyncError } from "@zakstam/codex-sync-engine";
import type { FunctionReference } from "convex/server";
import { isSyncErrorWire, syncErrorFromWire } from "../codec.ts";

/** What the adapter needs of a Convex client. */
export interface ConvexFunctionCaller {
  query(query: FunctionReference<"query">, args: Record<string, unknown>): Promise<unknown>;
  mutation(
    mutation: FunctionReference<"mutation">,
    args: Record<string, unknown>,
  ): Promise<unknown>;
  /**
   * A query subscription (`ConvexClient.onUpdate`): `callback` receives each new result.
   * Without it, `waitForTerminal` polls.
   */
  onUpdate?(
    query: FunctionReference<"query">,
    args: Record<string, unknown>,
    callback: (result: unknown) => unknown,
    onError?: (error: Error) => unknown,
  ): () => unknown;
}

/**
 * A failed call as a `SyncError`: the server's `SyncError` when it sent one (as
 * `ConvexError` data), else `E_SYNC_BACKEND_UNAVAILABLE` (retryable): every error the
 * sync functions raise themselves arrives as `ConvexError` data, so anything else is the
 * transport or the deployment failing.
 */
export function callError(error: unknown): SyncError {
  if (isSyncError(error)) return toSyncError(error);
  const data = (error as { data?: unknown } | null)?.data;
  if (isSyncErrorWire(data)) return syncErrorFromWire(data);
  const message = error instanceof Error ? error.message : String(error);
  return new SyncError("E_SYNC_BACKEND_UNAVAILABLE", `Convex call failed: ${message}`, {
    cause: error,
  });
}
