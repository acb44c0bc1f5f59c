/**
 * Retry backoff: `min(cap, base·factor^(attempt-1))`, scaled by a jitter in [0.5, 1.0).
 *
 * @module
 */

import type { RetryPolicy } from "./policy.ts";

/** A source of uniform numbers in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/**
 * The delay before retry number `attempt` (1 = first retry), in whole ms.
 * Deterministic for a given `random`; an out-of-range random value is clamped.
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: RandomSource): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  const raw = policy.baseDelayMs * Math.pow(policy.factor, exponent);
  const capped = Math.min(policy.maxDelayMs, Number.isFinite(raw) ? raw : policy.maxDelayMs);
  const sample = random();
  const unit = Number.isFinite(sample) ? Math.min(Math.max(sample, 0), 1 - Number.EPSILON) : 0;
  return Math.floor(capped * (0.5 + unit / 2));
}

/** True while another attempt is allowed after `failedAttempts` failures. */
export function canRetry(failedAttempts: number, policy: RetryPolicy): boolean {
  return failedAttempts < policy.maxAttempts;
}
