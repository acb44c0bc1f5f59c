/**
 * The in-memory reference adapter: the engine over a {@link MemoryStore}, with a
 * scheduler that runs due jobs on the injected clock (auto mode) or only when told to
 * (manual mode, `drain()`).
 *
 * @module
 */

import type {
  ConversationLookup,
  OneCallUpload,
  PayloadRelease,
  SyncAdapter,
} from "../src/contracts/adapter.ts";
import { Capability } from "../src/contracts/capabilities.ts";
import type { Clock } from "../src/contracts/clock.ts";
import type { SyncHandler } from "../src/contracts/handler.ts";
import { isTerminalJobState } from "../src/contracts/domain.ts";
import { bindOperations } from "../src/engine/bind.ts";
import { SyncEngine } from "../src/engine/engine.ts";
import type { RandomSource } from "../src/policy/backoff.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";
import { MemoryStore } from "./store.ts";

/** How to build a memory adapter. */
export interface MemoryAdapterOptions {
  /** The host's handler. */
  handler: SyncHandler;
  /** Policy overrides. */
  policy?: PolicyOverrides;
  /** Time source (default: the system clock). */
  clock?: Clock;
  /** Randomness for backoff jitter. */
  random?: RandomSource;
  /** Id generator for sources and jobs. */
  generateId?: () => string;
  /** `auto` (default): due jobs run on timers. `manual`: only `drain()` runs them. */
  mode?: "auto" | "manual";
  /** Lease owner name of this adapter's worker. */
  workerId?: string;
  /** Share a store with other adapters (several workers over one store). */
  store?: MemoryStore;
  /** Told about errors the background worker could not attribute to a job. */
  onWorkerError?: (error: unknown) => void;
}

/** The memory adapter: a {@link SyncAdapter} plus control over its worker. */
export interface MemoryAdapter extends SyncAdapter {
  /** Always present: this adapter declares `one-call-upload`. */
  uploadSource: OneCallUpload["uploadSource"];
  /** Always present: this adapter declares `extensions`. */
  getLatestSource: ConversationLookup["getLatestSource"];
  /** Always present: this adapter declares `release-payloads`. */
  releasePayloads: PayloadRelease["releasePayloads"];
  /** The engine behind the adapter. */
  readonly engine: SyncEngine;
  /** The store (shareable, and with an oracle for tests). */
  readonly store: MemoryStore;
  /** Runs due work until none is due now; returns how many job runs it made. */
  drain(): Promise<number>;
  /** Stops scheduling and waits for the work in progress. */
  close(): Promise<void>;
}

const CAPABILITIES = [
  Capability.concurrentWorkers,
  Capability.oneCallUpload,
  Capability.extensions,
  Capability.releasePayloads,
] as const;

/** Builds an in-memory adapter. */
export function createMemoryAdapter(options: MemoryAdapterOptions): MemoryAdapter {
  const store = options.store ?? new MemoryStore();
  const engine = new SyncEngine({
    store,
    handler: options.handler,
    policy: options.policy,
    clock: options.clock,
    random: options.random,
    generateId: options.generateId,
    workerId: options.workerId,
  });
  const clock = engine.clock;
  const auto = (options.mode ?? "auto") === "auto";
  let closed = false;
  let running: Promise<number> | undefined;
  let rerun = false;
  let timer: unknown;
  let timerAt = Infinity;

  const schedule = (runAt: number | undefined) => {
    if (closed || runAt === undefined || runAt >= timerAt) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timerAt = runAt;
    timer = clock.setTimeout(wake, Math.max(0, runAt - clock.now()));
  };

  // After a run the timer follows what is due next, and nothing when nothing is: a
  // claimed job's lease expiry must not keep a finished program alive until it passes.
  const reschedule = () => {
    const next = store.nextDueAt();
    if (next === timerAt) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    timerAt = Infinity;
    schedule(next);
  };

  const runLoop = (): Promise<number> => {
    if (running) {
      rerun = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      do {
        rerun = false;
        total += await engine.runDueJobs();
      } while (rerun && !closed);
      return total;
    })().finally(() => {
      running = undefined;
      if (auto) reschedule();
    });
    return running;
  };

  function wake(): void {
    timer = undefined;
    timerAt = Infinity;
    if (closed) return;
    runLoop().catch((error) => options.onWorkerError?.(error));
  }

  const unsubscribe = auto
    ? store.onJobWrite((job) => {
      if (!isTerminalJobState(job.state)) schedule(job.runAt);
    })
    : () => {};

  return {
    capabilities: CAPABILITIES,
    maxChunkBytes: engine.policy.limits.maxChunkBytes,
    limits: engine.policy.limits,
    engine,
    store,
    ...bindOperations(engine),
    async drain() {
      let total = 0;
      for (;;) {
        const ran = await runLoop();
        total += ran;
        if (ran === 0) return total;
      }
    },
    async close() {
      closed = true;
      unsubscribe();
      if (timer !== undefined) clock.clearTimeout(timer);
      await running?.catch(() => 0);
    },
  };
}
