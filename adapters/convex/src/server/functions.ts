/**
 * The function builders: the Convex functions a host exports from its `convex/` folder.
 * Each one authorizes, builds the engine over a store bound to its invocation, runs one
 * engine operation and encodes the result for the wire.
 *
 * @module
 */

import {
  gcInputSchema,
  isSyncError,
  type Job,
  type JsonValue,
  parseInput,
  type SealResult,
  type SyncError,
  toSyncError,
  type UploadSourceInput,
} from "@zakstam/codex-sync-engine";
import {
  type GenericDataModel,
  type GenericMutationCtx,
  type GenericQueryCtx,
  internalMutationGeneric,
  mutationGeneric,
  queryGeneric,
  type RegisteredMutation,
  type RegisteredQuery,
} from "convex/server";
import { ConvexError, v } from "convex/values";
import {
  jobToWire,
  manifestFromWire,
  parseJsonText,
  sourceToWire,
  syncErrorToWire,
} from "../codec.ts";
import { checkUploadChunkCount, CONVEX_MAX_GC_SOURCES } from "../limits.ts";
import type {
  AbandonSourceArgs,
  AppendChunkArgs,
  AppendResultWire,
  CancelJobArgs,
  CreateSourceArgs,
  GcArgs,
  GcReport,
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
  WorkerArgs,
  WorkerReport,
} from "../wire.ts";
import type { ChunkInfo } from "@zakstam/codex-sync-engine";
import {
  type ConvexHandlerExtras,
  type Invocation,
  mutationInvocation,
  queryInvocation,
  type ServerConfig,
  serverConfig,
  type SyncFunctionsOptions,
  type SyncOperationName,
} from "./context.ts";
import {
  appendResultWire,
  chunkInfo,
  gcReport,
  jobState,
  jobWire,
  manifestWire,
  mutationResultOf,
  pageOf,
  releasePayloadsResultWire,
  sealResultWire,
  sourceWire,
  uploadChunkWire,
  uploadSourceResultWire,
  workerArgs,
  workerReport,
} from "./validators.ts";
import { workerHandler } from "./worker.ts";

/** The functions a host exports (each under the same name). */
export interface SyncFunctions {
  createSource: RegisteredMutation<"public", CreateSourceArgs, Promise<MutationResult<SourceWire>>>;
  appendChunk: RegisteredMutation<
    "public",
    AppendChunkArgs,
    Promise<MutationResult<AppendResultWire>>
  >;
  sealSource: RegisteredMutation<"public", SealSourceArgs, Promise<MutationResult<SealResultWire>>>;
  /** Create, append and seal of a small source in one mutation (optional for a host to export). */
  uploadSource: RegisteredMutation<
    "public",
    UploadSourceArgs,
    Promise<MutationResult<UploadSourceResultWire>>
  >;
  cancelJob: RegisteredMutation<"public", CancelJobArgs, Promise<MutationResult<JobWire>>>;
  /** Expires a collecting source at once (a client giving up on an upload). */
  abandonSource: RegisteredMutation<
    "public",
    AbandonSourceArgs,
    Promise<MutationResult<SourceWire>>
  >;
  /**
   * Drops the chunk bytes of a verified, current source (capability `release-payloads`);
   * what does not fit the mutation is hidden at once and dropped by the worker's sweep.
   */
  releasePayloads: RegisteredMutation<
    "public",
    ReleasePayloadsArgs,
    Promise<MutationResult<ReleasePayloadsResultWire>>
  >;
  gc: RegisteredMutation<"public", GcArgs, Promise<MutationResult<GcReport>>>;
  getSource: RegisteredQuery<"public", GetSourceArgs, Promise<SourceWire>>;
  /** The conversation's latest sealed source with its chunks, or null (capability `extensions`). */
  getLatestSource: RegisteredQuery<"public", GetLatestSourceArgs, Promise<SourceWire | null>>;
  listChunks: RegisteredQuery<"public", ListChunksArgs, Promise<PageWire<ChunkInfo>>>;
  getJob: RegisteredQuery<"public", GetJobArgs, Promise<JobWire>>;
  listJobs: RegisteredQuery<"public", ListJobsArgs, Promise<PageWire<JobWire>>>;
  /** Internal: runs job steps and background sweeps; scheduled by the others. */
  worker: RegisteredMutation<"internal", WorkerArgs, Promise<WorkerReport>>;
}

type Extras<DataModel extends GenericDataModel> = ConvexHandlerExtras<DataModel>;

/**
 * Runs one engine operation in a mutation. An engine error is returned as a value so
 * that what the engine committed before raising it stays committed; an error thrown out
 * of a transaction that had written (or any unexpected error) is thrown instead, so that
 * Convex rolls the whole mutation back.
 */
async function inMutation<DataModel extends GenericDataModel, T, W>(
  config: ServerConfig<DataModel>,
  ctx: GenericMutationCtx<DataModel>,
  request: { operation: SyncOperationName; scope?: string },
  run: (invocation: Invocation<Extras<DataModel>>) => Promise<T>,
  encode: (value: T) => W,
): Promise<MutationResult<W>> {
  const invocation = mutationInvocation(config, ctx);
  try {
    await config.authorize(ctx, request);
    return { ok: true, value: encode(await run(invocation)) };
  } catch (error) {
    const failure = invocation.store.failure;
    if (failure || !isSyncError(error)) {
      throw new ConvexError(syncErrorToWire(toSyncError(failure?.error ?? error)));
    }
    return { ok: false, error: syncErrorToWire(error as SyncError) };
  }
}

/** Runs one engine operation in a query; errors become `ConvexError`s with the wire error. */
async function inQuery<DataModel extends GenericDataModel, T, W>(
  config: ServerConfig<DataModel>,
  ctx: GenericQueryCtx<DataModel>,
  request: { operation: SyncOperationName; scope?: string },
  run: (invocation: Invocation<Record<never, never>>) => Promise<T>,
  encode: (value: T) => W,
): Promise<W> {
  try {
    await config.authorize(ctx, request);
    return encode(await run(queryInvocation(config, ctx)));
  } catch (error) {
    throw new ConvexError(syncErrorToWire(toSyncError(error)));
  }
}

const identity = <T>(value: T): T => value;

/** `args` with its `metadataJson` parsed back into `metadata`. */
function withMetadata<T extends { metadataJson?: string }>(
  args: T,
): Omit<T, "metadataJson"> & { metadata?: JsonValue } {
  const { metadataJson, ...rest } = args;
  return metadataJson === undefined
    ? rest
    : { ...rest, metadata: parseJsonText(metadataJson, "metadata") };
}

/** The engine's input of `uploadSource`, from its wire arguments. */
function uploadInput(args: UploadSourceArgs): UploadSourceInput {
  const { chunks, manifest, ...rest } = withMetadata(args);
  return {
    ...rest,
    chunks: chunks.map((chunk) => ({ ...chunk, bytes: new Uint8Array(chunk.bytes) })),
    manifest: manifestFromWire(manifest),
  };
}

function sealResultToWire(sealed: SealResult): SealResultWire {
  return { source: sourceToWire(sealed.source), job: jobToWire(sealed.job) };
}

/**
 * Builds the sync functions. Export every one from a module of the host's `convex/`
 * folder, e.g. `convex/sync.ts`:
 *
 * ```ts
 * export const { createSource, appendChunk, sealSource, uploadSource, cancelJob,
 *   abandonSource, releasePayloads, gc,
 *   getSource, getLatestSource, listChunks, getJob, listJobs, worker } =
 *   defineSyncFunctions<DataModel>({
 *   handler, authorize, worker: () => internal.sync.worker,
 * });
 * ```
 */
export function defineSyncFunctions<DataModel extends GenericDataModel = GenericDataModel>(
  options: SyncFunctionsOptions<DataModel>,
): SyncFunctions {
  const config = serverConfig(options);
  // A queued job needs a worker run (a repeated seal of a queued job asks again, harmlessly).
  const scheduleIfQueued = async (ctx: GenericMutationCtx<DataModel>, job: Job) => {
    if (job.state !== "queued") return;
    await config.scheduler.schedule(
      ctx as unknown as GenericMutationCtx<GenericDataModel>,
      config.clock.now(),
      {},
    );
  };

  return {
    createSource: mutationGeneric({
      args: {
        scope: v.string(),
        conversationId: v.string(),
        sourceId: v.optional(v.string()),
        metadataJson: v.optional(v.string()),
        baseSourceId: v.optional(v.string()),
      },
      returns: mutationResultOf(sourceWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: CreateSourceArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "createSource", scope: args.scope },
          ({ engine }) => engine.createSource(withMetadata(args)),
          sourceToWire,
        ),
    }),

    appendChunk: mutationGeneric({
      args: {
        scope: v.string(),
        sourceId: v.string(),
        index: v.number(),
        bytes: v.bytes(),
        sha256: v.string(),
        itemCount: v.optional(v.number()),
      },
      returns: mutationResultOf(appendResultWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: AppendChunkArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "appendChunk", scope: args.scope },
          ({ engine }) => engine.appendChunk({ ...args, bytes: new Uint8Array(args.bytes) }),
          (result) => ({ ...result, source: sourceToWire(result.source) }),
        ),
    }),

    sealSource: mutationGeneric({
      args: { scope: v.string(), sourceId: v.string(), manifest: manifestWire },
      returns: mutationResultOf(sealResultWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: SealSourceArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "sealSource", scope: args.scope },
          async ({ engine }) => {
            const sealed = await engine.sealSource({
              ...args,
              manifest: manifestFromWire(args.manifest),
            });
            await scheduleIfQueued(ctx, sealed.job);
            return sealed;
          },
          sealResultToWire,
        ),
    }),

    uploadSource: mutationGeneric({
      args: {
        scope: v.string(),
        conversationId: v.string(),
        sourceId: v.optional(v.string()),
        metadataJson: v.optional(v.string()),
        baseSourceId: v.optional(v.string()),
        chunks: v.array(uploadChunkWire),
        manifest: manifestWire,
      },
      returns: mutationResultOf(uploadSourceResultWire),
      // A refused chunk is thrown inside the engine's transaction: when anything was
      // written before it, `inMutation` throws and Convex rolls the call back whole; a
      // failed seal is returned, so the failed source commits.
      handler: (ctx: GenericMutationCtx<DataModel>, args: UploadSourceArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "uploadSource", scope: args.scope },
          async ({ engine }) => {
            checkUploadChunkCount(args.chunks.length);
            const uploaded = await engine.uploadSource(uploadInput(args));
            await scheduleIfQueued(ctx, uploaded.job);
            return uploaded;
          },
          (uploaded) => ({ ...sealResultToWire(uploaded), appended: uploaded.appended }),
        ),
    }),

    abandonSource: mutationGeneric({
      args: { scope: v.string(), sourceId: v.string() },
      returns: mutationResultOf(sourceWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: AbandonSourceArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "abandonSource", scope: args.scope },
          ({ engine }) => engine.abandonSource(args),
          sourceToWire,
        ),
    }),

    cancelJob: mutationGeneric({
      args: { scope: v.string(), jobId: v.string(), reason: v.optional(v.string()) },
      returns: mutationResultOf(jobWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: CancelJobArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "cancelJob", scope: args.scope },
          ({ engine }) => engine.cancelJob(args),
          jobToWire,
        ),
    }),

    releasePayloads: mutationGeneric({
      args: { scope: v.string(), sourceId: v.string() },
      returns: mutationResultOf(releasePayloadsResultWire),
      handler: (ctx: GenericMutationCtx<DataModel>, args: ReleasePayloadsArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "releasePayloads", scope: args.scope },
          ({ engine }) => engine.releasePayloads(args),
          (released) => ({
            source: sourceToWire(released.source),
            releasedChunks: released.releasedChunks,
          }),
        ),
    }),

    gc: mutationGeneric({
      args: { limit: v.optional(v.number()) },
      returns: mutationResultOf(gcReport),
      handler: (ctx: GenericMutationCtx<DataModel>, args: GcArgs) =>
        inMutation(
          config,
          ctx,
          { operation: "gc" },
          ({ engine }) => {
            // Each source a pass touches is read whole: passes stay Convex-sized.
            const { limit = CONVEX_MAX_GC_SOURCES } = parseInput(gcInputSchema, args, "gc");
            return engine.gc({ limit: Math.min(limit, CONVEX_MAX_GC_SOURCES) });
          },
          identity,
        ),
    }),

    getSource: queryGeneric({
      args: { scope: v.string(), sourceId: v.string() },
      returns: sourceWire,
      handler: (ctx: GenericQueryCtx<DataModel>, args: GetSourceArgs) =>
        inQuery(
          config,
          ctx,
          { operation: "getSource", scope: args.scope },
          ({ engine }) => engine.getSource(args),
          sourceToWire,
        ),
    }),

    getLatestSource: queryGeneric({
      args: { scope: v.string(), conversationId: v.string() },
      returns: v.union(sourceWire, v.null()),
      handler: (ctx: GenericQueryCtx<DataModel>, args: GetLatestSourceArgs) =>
        inQuery(
          config,
          ctx,
          { operation: "getLatestSource", scope: args.scope },
          ({ engine }) => engine.getLatestSource(args),
          (source) => source === null ? null : sourceToWire(source),
        ),
    }),

    listChunks: queryGeneric({
      args: {
        scope: v.string(),
        sourceId: v.string(),
        cursor: v.optional(v.string()),
        limit: v.optional(v.number()),
      },
      returns: pageOf(chunkInfo),
      handler: (ctx: GenericQueryCtx<DataModel>, args: ListChunksArgs) =>
        inQuery(
          config,
          ctx,
          { operation: "listChunks", scope: args.scope },
          ({ engine }) => engine.listChunks(args),
          identity,
        ),
    }),

    getJob: queryGeneric({
      args: { scope: v.string(), jobId: v.string() },
      returns: jobWire,
      handler: (ctx: GenericQueryCtx<DataModel>, args: GetJobArgs) =>
        inQuery(
          config,
          ctx,
          { operation: "getJob", scope: args.scope },
          ({ engine }) => engine.getJob(args),
          jobToWire,
        ),
    }),

    listJobs: queryGeneric({
      args: {
        scope: v.string(),
        conversationId: v.optional(v.string()),
        state: v.optional(jobState),
        cursor: v.optional(v.string()),
        limit: v.optional(v.number()),
      },
      returns: pageOf(jobWire),
      handler: (ctx: GenericQueryCtx<DataModel>, args: ListJobsArgs) =>
        inQuery(
          config,
          ctx,
          { operation: "listJobs", scope: args.scope },
          ({ engine }) => engine.listJobs(args),
          (page) => ({ ...page, items: page.items.map(jobToWire) }),
        ),
    }),

    worker: internalMutationGeneric({
      args: workerArgs,
      returns: workerReport,
      handler: workerHandler(config),
    }),
  };
}
