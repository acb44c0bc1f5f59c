/**
 * The runtime side: a `SyncAdapter` that calls the host's sync functions through a
 * Convex client.
 *
 * @module
 */

import {
  type AppendResult,
  Capability,
  type ChunkInfo,
  type Clock,
  type GcReport,
  type Job,
  type Page,
  type ReleasePayloadsResult,
  type SealResult,
  type Source,
  type SyncAdapter,
  systemClock,
  type UploadSourceInput,
  type UploadSourceResult,
} from "@zakstam/codex-sync-engine";
import type { DefaultFunctionArgs, FunctionReference } from "convex/server";
import { jobFromWire, sourceFromWire, syncErrorFromWire } from "../codec.ts";
import type {
  AbandonSourceArgs,
  AppendChunkArgs,
  AppendResultWire,
  CancelJobArgs,
  CreateSourceArgs,
  GcArgs,
  GetJobArgs,
  GetLatestSourceArgs,
  GetSourceArgs,
  JobWire,
  ListChunksArgs,
  ListJobsArgs,
  MutationResult,
  PageWire,
  ReleasePayloadsArgs,
  ReleasePayloadsResultWire,
  SealResultWire,
  SealSourceArgs,
  SourceWire,
  UploadSourceArgs,
  UploadSourceResultWire,
} from "../wire.ts";
import {
  abandonSourceArgs,
  appendChunkArgs,
  cancelJobArgs,
  createSourceArgs,
  gcArgs,
  getJobArgs,
  getLatestSourceArgs,
  getSourceArgs,
  listChunksArgs,
  listJobsArgs,
  releasePayloadsArgs,
  sealSourceArgs,
  uploadSourceArgs,
} from "./args.ts";
import { CONVEX_MAX_CHUNK_BYTES } from "../limits.ts";
import { callError, type ConvexFunctionCaller } from "./caller.ts";
import { waitForTerminal } from "./wait.ts";

type Mutation<Args extends DefaultFunctionArgs, Result> = FunctionReference<
  "mutation",
  "public",
  Args,
  MutationResult<Result>
>;
type Query<Args extends DefaultFunctionArgs, Result> = FunctionReference<
  "query",
  "public",
  Args,
  Result
>;

/** References to the host's exported sync functions: typically its `api.sync`. */
export interface ConvexSyncFunctionReferences {
  createSource: Mutation<CreateSourceArgs, SourceWire>;
  appendChunk: Mutation<AppendChunkArgs, AppendResultWire>;
  sealSource: Mutation<SealSourceArgs, SealResultWire>;
  cancelJob: Mutation<CancelJobArgs, JobWire>;
  abandonSource: Mutation<AbandonSourceArgs, SourceWire>;
  releasePayloads: Mutation<ReleasePayloadsArgs, ReleasePayloadsResultWire>;
  gc: Mutation<GcArgs, GcReport>;
  getSource: Query<GetSourceArgs, SourceWire>;
  getLatestSource: Query<GetLatestSourceArgs, SourceWire | null>;
  listChunks: Query<ListChunksArgs, PageWire<ChunkInfo>>;
  getJob: Query<GetJobArgs, JobWire>;
  listJobs: Query<ListJobsArgs, PageWire<JobWire>>;
}

/** Reference to the host's exported `uploadSource` mutation, e.g. `api.sync.uploadSource`. */
export type UploadSourceReference = Mutation<UploadSourceArgs, UploadSourceResultWire>;

/** How to build a Convex adapter. */
export interface ConvexSyncAdapterOptions {
  /** A `ConvexClient` (waits use its subscriptions) or a `ConvexHttpClient` (waits poll). */
  client: ConvexFunctionCaller;
  /** The host's sync functions, e.g. `api.sync`. */
  functions: ConvexSyncFunctionReferences;
  /**
   * The host's `uploadSource`, e.g. `api.sync.uploadSource`, when it exports it: the
   * adapter then offers `uploadSource` (capability `one-call-upload`), which
   * `syncConversation` uses for payloads of one chunk. Given apart from `functions`
   * because a generated `api` names every function at runtime, exported or not.
   */
  uploadSource?: UploadSourceReference;
  /** Time source of wait timeouts and polling (default the system clock). */
  clock?: Clock;
  /** Interval of `waitForTerminal`'s polling when the client has no subscriptions (default 1 s). */
  pollIntervalMs?: number;
  /**
   * The server's chunk limit, announced to clients so `syncConversation` sizes chunks to
   * fit (default `CONVEX_MAX_CHUNK_BYTES`; set it if the server's policy lowers it).
   */
  maxChunkBytes?: number;
}

/** Default interval of `waitForTerminal`'s polling, in ms. */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;

const CAPABILITIES: readonly Capability[] = [
  Capability.durable,
  Capability.transactionalApply,
  Capability.extensions,
  Capability.releasePayloads,
];

const CAPABILITIES_WITH_UPLOAD: readonly Capability[] = [
  ...CAPABILITIES,
  Capability.oneCallUpload,
];

/** Calls a mutation: its value, or its error thrown as a `SyncError`. */
type Mutate = <Args extends DefaultFunctionArgs, Result>(
  ref: Mutation<Args, Result>,
  args: Args,
) => Promise<Result>;

/** The adapter's `uploadSource`, over the host's mutation. */
function oneCallUpload(
  mutate: Mutate,
  ref: UploadSourceReference,
): (input: UploadSourceInput) => Promise<UploadSourceResult> {
  return async (input) => {
    const result = await mutate(ref, uploadSourceArgs(input));
    return {
      source: sourceFromWire(result.source),
      job: jobFromWire(result.job),
      appended: result.appended,
    };
  };
}

/** Builds a `SyncAdapter` over the host's Convex sync functions. */
export function createConvexSyncAdapter(options: ConvexSyncAdapterOptions): SyncAdapter {
  const { client, functions } = options;
  const clock = options.clock ?? systemClock;

  const mutate: Mutate = async <Args extends DefaultFunctionArgs, Result>(
    ref: Mutation<Args, Result>,
    args: Args,
  ): Promise<Result> => {
    let result: MutationResult<Result>;
    try {
      result = await client.mutation(ref, args) as MutationResult<
        Result
      >;
    } catch (error) {
      throw callError(error);
    }
    if (!result.ok) throw syncErrorFromWire(result.error);
    return result.value;
  };

  const read = async <Args extends DefaultFunctionArgs, Result>(
    ref: Query<Args, Result>,
    args: Args,
  ): Promise<Result> => {
    try {
      return await client.query(ref, args) as Result;
    } catch (error) {
      throw callError(error);
    }
  };

  // Input checks run inside the async operations, so that they reject rather than throw.
  const adapter: SyncAdapter = {
    capabilities: options.uploadSource ? CAPABILITIES_WITH_UPLOAD : CAPABILITIES,
    maxChunkBytes: options.maxChunkBytes ?? CONVEX_MAX_CHUNK_BYTES,
    async createSource(input): Promise<Source> {
      return sourceFromWire(await mutate(functions.createSource, createSourceArgs(input)));
    },
    async appendChunk(input): Promise<AppendResult> {
      const result = await mutate(functions.appendChunk, appendChunkArgs(input));
      return { ...result, source: sourceFromWire(result.source) };
    },
    async listChunks(input): Promise<Page<ChunkInfo>> {
      return await read(functions.listChunks, listChunksArgs(input));
    },
    async sealSource(input): Promise<SealResult> {
      const result = await mutate(functions.sealSource, sealSourceArgs(input));
      return { source: sourceFromWire(result.source), job: jobFromWire(result.job) };
    },
    async getSource(input): Promise<Source> {
      return sourceFromWire(await read(functions.getSource, getSourceArgs(input)));
    },
    async getLatestSource(input): Promise<Source | null> {
      const source = await read(functions.getLatestSource, getLatestSourceArgs(input));
      return source === null ? null : sourceFromWire(source);
    },
    async getJob(input): Promise<Job> {
      return jobFromWire(await read(functions.getJob, getJobArgs(input)));
    },
    async listJobs(input): Promise<Page<Job>> {
      const page = await read(functions.listJobs, listJobsArgs(input));
      return { ...page, items: page.items.map(jobFromWire) };
    },
    async cancelJob(input): Promise<Job> {
      return jobFromWire(await mutate(functions.cancelJob, cancelJobArgs(input)));
    },
    async abandonSource(input): Promise<Source> {
      return sourceFromWire(await mutate(functions.abandonSource, abandonSourceArgs(input)));
    },
    async releasePayloads(input): Promise<ReleasePayloadsResult> {
      const result = await mutate(functions.releasePayloads, releasePayloadsArgs(input));
      return { source: sourceFromWire(result.source), releasedChunks: result.releasedChunks };
    },
    waitForTerminal(input): Promise<Job> {
      return waitForTerminal({
        caller: client,
        getJob: functions.getJob,
        clock,
        pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      }, input);
    },
    async gc(input): Promise<GcReport> {
      return await mutate(functions.gc, gcArgs(input));
    },
  };
  if (options.uploadSource) adapter.uploadSource = oneCallUpload(mutate, options.uploadSource);
  return adapter;
}
