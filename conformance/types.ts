/**
 * The conformance suite's contract with an adapter under test.
 *
 * @module
 */

import type { SyncAdapter } from "../src/contracts/adapter.ts";
import type { Capability } from "../src/contracts/capabilities.ts";
import type { Chunk, Job, Source } from "../src/contracts/domain.ts";
import type { ApplyContext, SyncHandler, VerifyContext } from "../src/contracts/handler.ts";
import type { ManualClock } from "../src/clock.ts";
import type { RandomSource } from "../src/policy/backoff.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";

/** A worker over the same store as the adapter (adapters with concurrent workers). */
export interface ConformanceWorker {
  /** Claims the earliest due job under a fresh lease. */
  claimNextJob(): Promise<Job | undefined>;
  /** Runs a job this worker claimed. */
  runClaimedJob(job: Job): Promise<Job>;
  /** Claims and runs due jobs until none is due now. */
  runDueJobs(): Promise<number>;
}

/** Direct reads of (and faults in) the backend, bypassing the engine. All optional. */
export interface ConformanceOracle {
  /** The stored chunk, bytes included. */
  readChunk?(scope: string, sourceId: string, index: number): Promise<Chunk | undefined>;
  /** How many chunks of the source are stored. */
  chunkCount?(scope: string, sourceId: string): Promise<number>;
  /** Damages the stored bytes of a chunk without touching its digest. */
  corruptChunk?(scope: string, sourceId: string, index: number): Promise<void>;
  /** The stored source record. */
  readSource?(scope: string, sourceId: string): Promise<Source | undefined>;
  /** The stored job record. */
  readJob?(scope: string, jobId: string): Promise<Job | undefined>;
}

/**
 * Another adapter instance over the same storage, as another process would open it: its
 * own engine, connections, caches and notifications (`ConformanceHarness.peer`).
 */
export interface ConformancePeer {
  /** The other instance's adapter. */
  adapter: SyncAdapter;
  /** A worker of the other instance (adapters with concurrent workers). */
  worker?: ConformanceWorker;
  /** Closes the other instance (the harness's own adapter stays open). */
  close(): Promise<void>;
}

/**
 * Effects the suite's handler writes through the handler's context, in the backend's
 * transaction where the adapter applies in one (`transactional-apply`), and reads back
 * as committed. Proves exactly-once effects: a write whose attempt failed must vanish.
 */
export interface ConformanceEffects {
  /**
   * Writes `effect` through what the adapter spread into `context` (for example an
   * insert through `ctx.sql`, or `ctx.db` in a Convex mutation). Called from `apply`
   * or `verify`; must not wait for anything but that write.
   */
  write(
    context: (ApplyContext | VerifyContext) & Record<string, unknown>,
    effect: string,
  ): Promise<void>;
  /** Every committed effect, in any order (duplicates included). */
  read(): Promise<string[]>;
}

/** What a factory returns: the adapter under test plus the suite's hooks into it. */
export interface ConformanceHarness {
  adapter: SyncAdapter;
  /** Runs due work until idle (nothing due at the clock's current time). */
  drain(): Promise<void>;
  /** Another worker over the same store (required by `concurrent-workers`). */
  newWorker?(owner: string): ConformanceWorker;
  /** Closes and reopens the adapter over the same storage (required by `durable`). */
  restart?(): Promise<SyncAdapter>;
  oracle?: ConformanceOracle;
  /**
   * Opens another adapter instance over the same storage (hook `peer`): cases check that
   * a cancel or a claim made through it fences the first instance's worker, which must
   * read the stored record, not what it remembers.
   */
  peer?(owner: string): Promise<ConformancePeer>;
  /** Effects written through the handler's context (hook `effects`). */
  effects?: ConformanceEffects;
  /**
   * Chunks of the `scale:` case's source (default {@link DEFAULT_SCALE_CHUNKS}). A test
   * double whose every query scans all documents (convex-test) may choose fewer: there
   * the case would time the double, not the adapter.
   */
  scaleChunks?: number;
  /** Releases everything the harness holds. */
  close(): Promise<void>;
}

/** Chunks of the `scale:` case's source unless the harness says otherwise. */
export const DEFAULT_SCALE_CHUNKS = 5_000;

/** What the suite hands a factory for each case. */
export interface ConformanceFactoryInput {
  /** The suite's handler; the adapter must route every chunk through it. */
  handler: SyncHandler<Record<string, unknown>>;
  /** Policy the adapter's engine must use. */
  policy: PolicyOverrides;
  /** The controllable clock the adapter's engine must use. */
  clock: ManualClock;
  /** Randomness the adapter's engine must use for backoff jitter. */
  random: RandomSource;
}

/** Builds a fresh, isolated adapter under test. */
export type ConformanceFactory = (input: ConformanceFactoryInput) => Promise<ConformanceHarness>;

/** Hooks a case needs beyond the adapter itself. */
export type HarnessHook =
  | "newWorker"
  | "restart"
  | "peer"
  | "effects"
  | keyof ConformanceOracle;

/** One named case. */
export interface ConformanceCase {
  name: string;
  /** Capabilities the case needs; it is skipped, by name, where one is absent. */
  requires?: readonly Capability[];
  /** Harness hooks the case needs; it is skipped where one is absent. */
  hooks?: readonly HarnessHook[];
  /**
   * The case's deadline in case deadlines (`SuiteTarget.caseTimeoutMs`), for a case that
   * is slow by design (the scale case). Default 1.
   */
  timeoutFactor?: number;
  /** Policy the case's adapter runs with, over the suite's (`SUITE_POLICY`). */
  policy?: PolicyOverrides;
  run(context: import("./context.ts").CaseContext): Promise<void>;
}
