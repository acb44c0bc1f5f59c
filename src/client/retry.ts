/**
 * Retrying a backend call on retryable `SyncError`s, with the policy's backoff slept on
 * the injected clock.
 *
 * @module
 */

import type { Clock } from "../contracts/clock.ts";
import { toSyncError } from "../errors.ts";
import { backoffDelay, canRetry, type RandomSource } from "../policy/backoff.ts";
import type { RetryPolicy } from "../policy/policy.ts";
import { sleep } from "./abort.ts";

/** How and on what to wait between attempts. */
export interface RetrySettings {
  policy: RetryPolicy;
  clock: Clock;
  random: RandomSource;
}

/**
 * Runs `operation` until it succeeds, fails with a non-retryable error, or has been
 * tried `policy.maxAttempts` times (the last error is rethrown). Aborting `signal`
 * stops the waiting with `signal.reason`.
 */
export async function withRetry<T>(
  operation: () => Promise<T>,
  settings: RetrySettings,
  signal: AbortSignal,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    if (signal.aborted) throw signal.reason;
    try {
      return await operation();
    } catch (thrown) {
      const error = toSyncError(thrown);
      if (!error.retryable || !canRetry(attempt, settings.policy) || signal.aborted) throw error;
      await sleep(settings.clock, backoffDelay(attempt, settings.policy, settings.random), signal);
    }
  }
}
