/**
 * What every part of the engine shares: the store, the host's handler, the policy and
 * the injected sources of time, randomness and ids.
 *
 * @module
 */

import type { Clock } from "../contracts/clock.ts";
import type { SyncHandler } from "../contracts/handler.ts";
import type { StoreTransaction, SyncStore } from "../contracts/store.ts";
import type { RandomSource } from "../policy/backoff.ts";
import type { SyncPolicy } from "../policy/policy.ts";
import type { SyncError } from "../errors.ts";
import type { UploadCache } from "./upload_cache.ts";
import type { RecentSources } from "./recent_sources.ts";

/** The engine's dependencies, resolved. */
export interface EngineContext<TExtras extends object> {
  store: SyncStore<TExtras>;
  handler: SyncHandler<TExtras>;
  policy: SyncPolicy;
  clock: Clock;
  random: RandomSource;
  generateId: () => string;
  /** Chunks this engine stored, until its worker applies them. */
  uploads: UploadCache;
  /** Source records this engine's one-step uploads stored: guesses for the next step. */
  recentSources: RecentSources;
}

/** A transaction body's outcome: a value, or an error to throw after committing. */
export type Outcome<T> = { value: T } | { error: SyncError };

/**
 * Runs `fn` in a transaction that commits even when the outcome is an error (a failed
 * seal or a lazy expiry must persist), then returns the value or throws the error.
 */
export async function commitThenSettle<TExtras extends object, T>(
  store: SyncStore<TExtras>,
  fn: (tx: StoreTransaction<TExtras>) => Promise<Outcome<T>>,
): Promise<T> {
  const outcome = await store.transaction(fn);
  if ("error" in outcome) throw outcome.error;
  return outcome.value;
}

/** Runs a single plain read through the store's cheapest path (see `SyncStore.readOnce`). */
export function readOnce<TExtras extends object, T>(
  store: SyncStore<TExtras>,
  fn: (reader: StoreTransaction<TExtras>) => Promise<T>,
): Promise<T> {
  return store.readOnce ? store.readOnce(fn) : store.transaction(fn);
}
