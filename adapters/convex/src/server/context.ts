/**
 * What every server function shares: the resolved options, and the engine over a store
 * bound to one invocation.
 *
 * @module
 */

import {
  type Clock,
  type PolicyOverrides,
  type RandomSource,
  SyncEngine,
  type SyncHandler,
  systemClock,
} from "@zakstam/codex-sync-engine";
import type { GenericDataModel, GenericMutationCtx, GenericQueryCtx } from "convex/server";
import { convexPolicy } from "../limits.ts";
import type { SyncDbReader } from "./schema.ts";
import { convexScheduler, type WorkerReference, type WorkerScheduler } from "./scheduler.ts";
import { ConvexStore } from "./store.ts";

/** What the host's handler finds in its context besides the job: the mutation's `ctx`. */
export interface ConvexHandlerExtras<DataModel extends GenericDataModel = GenericDataModel> {
  /** The worker mutation's context: writes through `ctx.db` commit with the chunk's progress. */
  ctx: GenericMutationCtx<DataModel>;
}

/** The operations a host authorizes. */
export type SyncOperationName =
  | "createSource"
  | "appendChunk"
  | "sealSource"
  | "uploadSource"
  | "getSource"
  | "getLatestSource"
  | "listChunks"
  | "getJob"
  | "listJobs"
  | "cancelJob"
  | "abandonSource"
  | "releasePayloads"
  | "gc";

/** One call to authorize: the operation and, except for `gc`, the scope it touches. */
export interface AuthorizeRequest {
  operation: SyncOperationName;
  scope?: string;
}

/** How to build the sync functions. */
export interface SyncFunctionsOptions<DataModel extends GenericDataModel = GenericDataModel> {
  /** The host's handler; `ctx.ctx` is the worker mutation's context (transactional apply). */
  handler: SyncHandler<ConvexHandlerExtras<DataModel>>;
  /**
   * The exported worker, e.g. `() => internal.sync.worker` (a function, so that the
   * module's own generated types do not refer to themselves).
   */
  worker: WorkerReference | (() => WorkerReference);
  /**
   * Called before every public operation; throw to refuse it (a thrown `SyncError`
   * keeps its code across the hop). Typically checks that the caller owns `scope`.
   */
  authorize(ctx: GenericQueryCtx<DataModel>, request: AuthorizeRequest): void | Promise<void>;
  /** Policy overrides, over the Convex default limits (`CONVEX_DEFAULT_LIMITS`). */
  policy?: PolicyOverrides;
  /** Time source of the engine (default the system clock). */
  clock?: Clock;
  /** Randomness of the backoff jitter (default `Math.random`). */
  random?: RandomSource;
  /** Where worker runs are requested (default Convex's scheduler). */
  scheduler?: WorkerScheduler;
}

/** The options with their defaults applied. */
export interface ServerConfig<DataModel extends GenericDataModel> {
  handler: SyncHandler<ConvexHandlerExtras<DataModel>>;
  authorize: SyncFunctionsOptions<DataModel>["authorize"];
  policy: PolicyOverrides;
  clock: Clock;
  random: RandomSource;
  scheduler: WorkerScheduler;
  worker: () => WorkerReference;
}

/** Resolves the options. */
export function serverConfig<DataModel extends GenericDataModel>(
  options: SyncFunctionsOptions<DataModel>,
): ServerConfig<DataModel> {
  const worker = typeof options.worker === "function"
    ? options.worker
    : () => options.worker as WorkerReference;
  const clock = options.clock ?? systemClock;
  return {
    handler: options.handler,
    authorize: options.authorize,
    policy: convexPolicy(options.policy),
    clock,
    random: options.random ?? Math.random,
    scheduler: options.scheduler ?? convexScheduler(worker, clock),
    worker,
  };
}

/** The lease owner the worker's claims carry. */
export const WORKER_OWNER = "convex-worker";

/** An engine over a store bound to one invocation. */
export interface Invocation<TExtras extends object> {
  store: ConvexStore<TExtras>;
  engine: SyncEngine<TExtras>;
}

/**
 * The engine and store of a mutation invocation; `handlerFor` picks the engine's handler
 * (default the host's) knowing the store.
 */
export function mutationInvocation<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
  ctx: GenericMutationCtx<DataModel>,
  handlerFor: (
    store: ConvexStore<ConvexHandlerExtras<DataModel>>,
  ) => SyncHandler<ConvexHandlerExtras<DataModel>> = () => config.handler,
): Invocation<ConvexHandlerExtras<DataModel>> {
  const store = new ConvexStore<ConvexHandlerExtras<DataModel>>(
    ctx.db as unknown as SyncDbReader,
    { ctx },
    {
      requestSweep: () =>
        config.scheduler.schedule(
          ctx as unknown as GenericMutationCtx<GenericDataModel>,
          config.clock.now(),
          { task: { kind: "sweep" } },
        ),
    },
  );
  return { store, engine: engineOver(config, store, handlerFor(store)) };
}

const NO_HANDLER: SyncHandler = {
  apply() {
    throw new Error("queries never apply chunks");
  },
};

/** The engine and store of a query invocation (read-only). */
export function queryInvocation<DataModel extends GenericDataModel>(
  config: ServerConfig<DataModel>,
  ctx: GenericQueryCtx<DataModel>,
): Invocation<Record<never, never>> {
  const store = new ConvexStore<Record<never, never>>(ctx.db as unknown as SyncDbReader, {});
  return { store, engine: engineOver(config, store, NO_HANDLER) };
}

function engineOver<TExtras extends object>(
  config: Pick<ServerConfig<GenericDataModel>, "policy" | "clock" | "random">,
  store: ConvexStore<TExtras>,
  handler: SyncHandler<TExtras>,
): SyncEngine<TExtras> {
  return new SyncEngine({
    store,
    handler,
    // An engine lives for one invocation, and no invocation both uploads a chunk and
    // applies it: an upload cache would only hold bytes until the invocation ends.
    policy: { ...config.policy, uploadCacheBytes: 0 },
    clock: config.clock,
    random: config.random,
    workerId: WORKER_OWNER,
  });
}
