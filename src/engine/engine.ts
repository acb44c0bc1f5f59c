/**
 * {@link SyncEngine}: the whole lifecycle over an adapter's store. An adapter builds one
 * engine over its store and exposes it (plus its capabilities) as a `SyncAdapter`.
 *
 * @module
 */

import type {
  ConversationLookup,
  OneCallUpload,
  PayloadRelease,
  SourceAbandon,
  SyncOperations,
} from "../contracts/adapter.ts";
import type { Clock } from "../contracts/clock.ts";
import type {
  AppendResult,
  ChunkInfo,
  GcReport,
  Job,
  Page,
  ReleasePayloadsResult,
  SealResult,
  Source,
  UploadSourceResult,
} from "../contracts/domain.ts";
import type { SyncHandler } from "../contracts/handler.ts";
import type {
  AbandonSourceInput,
  AppendChunkInput,
  CancelJobInput,
  CreateSourceInput,
  GcInput,
  GetJobInput,
  GetLatestSourceInput,
  GetSourceInput,
  ListChunksInput,
  ListJobsInput,
  ReleasePayloadsInput,
  SealSourceInput,
  UploadSourceInput,
  WaitForTerminalInput,
} from "../contracts/inputs.ts";
import type { SyncStore } from "../contracts/store.ts";
import { systemClock } from "../clock.ts";
import type { RandomSource } from "../policy/backoff.ts";
import { type PolicyOverrides, resolvePolicy, type SyncPolicy } from "../policy/policy.ts";
import type { EngineContext } from "./context.ts";
import { SourceOperations } from "./operations.ts";
import { releasePayloads } from "./release.ts";
import { waitForTerminal } from "./wait.ts";
import { UploadCache } from "./upload_cache.ts";
import { RecentSources } from "./recent_sources.ts";

/** Source records kept as guesses for one-step extensions (about a kilobyte each). */
const RECENT_SOURCES = 1024;
import { JobRunner, type RunDueJobsOptions, type RunJobOptions } from "./worker.ts";

/** How to build a {@link SyncEngine}. */
export interface SyncEngineOptions<TExtras extends object> {
  /** The adapter's storage primitives. */
  store: SyncStore<TExtras>;
  /** The host's handler that applies chunks. */
  handler: SyncHandler<TExtras>;
  /** Overrides of the default policy. */
  policy?: PolicyOverrides;
  /** Time source (default: the system clock). */
  clock?: Clock;
  /** Randomness for backoff jitter (default `Math.random`). */
  random?: RandomSource;
  /** Id generator for sources and jobs (default `crypto.randomUUID`). */
  generateId?: () => string;
  /** Default lease owner name of this engine's worker. */
  workerId?: string;
}

/** The lifecycle, written once over an adapter's store primitives. */
export class SyncEngine<TExtras extends object = Record<never, never>>
  implements SyncOperations, OneCallUpload, ConversationLookup, SourceAbandon, PayloadRelease {
  /** The resolved policy. */
  readonly policy: SyncPolicy;
  /** The clock the engine runs on. */
  readonly clock: Clock;
  readonly #ctx: EngineContext<TExtras>;
  readonly #operations: SourceOperations<TExtras>;
  readonly #runner: JobRunner<TExtras>;

  constructor(options: SyncEngineOptions<TExtras>) {
    this.policy = resolvePolicy(options.policy);
    this.clock = options.clock ?? systemClock;
    this.#ctx = {
      store: options.store,
      handler: options.handler,
      policy: this.policy,
      clock: this.clock,
      random: options.random ?? Math.random,
      generateId: options.generateId ?? (() => crypto.randomUUID()),
      uploads: new UploadCache(this.policy.uploadCacheBytes),
      recentSources: new RecentSources(RECENT_SOURCES),
    };
    this.#operations = new SourceOperations(this.#ctx);
    this.#runner = new JobRunner(
      this.#ctx,
      options.workerId ?? `worker-${crypto.randomUUID().slice(0, 8)}`,
    );
  }

  createSource(input: CreateSourceInput): Promise<Source> {
    return this.#operations.createSource(input);
  }

  appendChunk(input: AppendChunkInput): Promise<AppendResult> {
    return this.#operations.appendChunk(input);
  }

  listChunks(input: ListChunksInput): Promise<Page<ChunkInfo>> {
    return this.#operations.listChunks(input);
  }

  sealSource(input: SealSourceInput): Promise<SealResult> {
    return this.#operations.sealSource(input);
  }

  uploadSource(input: UploadSourceInput): Promise<UploadSourceResult> {
    return this.#operations.uploadSource(input);
  }

  abandonSource(input: AbandonSourceInput): Promise<Source> {
    return this.#operations.abandonSource(input);
  }

  getLatestSource(input: GetLatestSourceInput): Promise<Source | null> {
    return this.#operations.getLatestSource(input);
  }

  /**
   * Drops the chunk bytes of a verified, current source, keeping their metadata (the
   * store must implement `releaseChunkPayloads`); see `PayloadRelease`.
   */
  releasePayloads(input: ReleasePayloadsInput): Promise<ReleasePayloadsResult> {
    return releasePayloads(this.#ctx, input);
  }

  getSource(input: GetSourceInput): Promise<Source> {
    return this.#operations.getSource(input);
  }

  getJob(input: GetJobInput): Promise<Job> {
    return this.#operations.getJob(input);
  }

  listJobs(input: ListJobsInput): Promise<Page<Job>> {
    return this.#operations.listJobs(input);
  }

  cancelJob(input: CancelJobInput): Promise<Job> {
    return this.#operations.cancelJob(input);
  }

  waitForTerminal(input: WaitForTerminalInput): Promise<Job> {
    return waitForTerminal(this.#ctx, input);
  }

  gc(input?: GcInput): Promise<GcReport> {
    return this.#operations.gc(input);
  }

  /** Claims the earliest due job under a fresh lease, if any. */
  claimNextJob(owner?: string): Promise<Job | undefined> {
    return this.#runner.claimNextJob(owner);
  }

  /** Runs a job this worker claimed until it ends, fails an attempt or loses its lease. */
  runClaimedJob(job: Job, options?: RunJobOptions): Promise<Job> {
    return this.#runner.runClaimedJob(job, options);
  }

  /** Claims and runs due jobs until none is due now; returns how many were run. */
  runDueJobs(options?: RunDueJobsOptions): Promise<number> {
    return this.#runner.runDueJobs(options);
  }
}
