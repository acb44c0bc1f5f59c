/** What the fault test and its worker processes share. */

import type { PolicyOverrides } from "@zakstam/codex-sync-engine";

/**
 * A short lease, so jobs of killed workers are taken over within seconds; generous
 * retries, since every kill mid-step costs that step an attempt (its lease is lost).
 */
export const FAULT_POLICY: PolicyOverrides = {
  leaseMs: 1_500,
  heartbeatMs: 500,
  retry: { maxAttempts: 20, baseDelayMs: 50, factor: 2, maxDelayMs: 500 },
};

/** Seeded, so the chaos of a failing run can be replayed. */
export { mulberry32 } from "../../../../scripts/seeded_random.ts";
