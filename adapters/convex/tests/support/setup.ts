/**
 * One test's backend, client and adapter, with worker runs driven by a manual clock.
 */

import { ManualClock } from "@zakstam/codex-sync-engine";
import { clientOver } from "./harness.ts";
import { createTestBackend, runDueWorkers, type TestBackendOptions } from "./backend.ts";

/** A backend with its adapter; `drain()` runs the worker requests due on `clock`. */
export function setup(options: TestBackendOptions & { clock?: ManualClock }) {
  const clock = options.clock ?? new ManualClock();
  const t = createTestBackend({ ...options, clock });
  const { client, adapter } = clientOver(t, clock);
  const drain = () => runDueWorkers(t, () => clock.now(), () => client.refresh());
  return { t, clock, client, adapter, drain };
}
