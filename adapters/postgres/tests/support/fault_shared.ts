/** What the fault test and its worker processes share. */

import type { PolicyOverrides } from "@zakstam/codex-sync-engine";

/**
 * A short lease, so jobs of killed workers are taken over within seconds; generous
 * retries, since a kill is not a failed attempt but a store error may be.
 */
export const FAULT_POLICY: PolicyOverrides = {
  leaseMs: 1_500,
  heartbeatMs: 500,
  retry: { maxAttempts: 20, baseDelayMs: 50, factor: 2, maxDelayMs: 500 },
};

/** A small seeded PRNG (mulberry32): the chaos of a failing run can be replayed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
