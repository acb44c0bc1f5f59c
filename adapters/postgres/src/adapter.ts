/**
 * `createPostgresAdapter`: the engine over a {@link PostgresStore}, on a server
 * (postgres.js) or embedded (PGlite), with the schema migrated, change notification
 * listening, and a background worker (auto mode) or `drain()` (manual mode).
 *
 * @module
 */

import {
  bindOperations,
  Capability,
  type Clock,
  type ConversationLookup,
  type OneCallUpload,
  type PayloadRelease,
  type PolicyOverrides,
  type RandomSource,
  type SyncAdapter,
  SyncEngine,
  SyncError,
  type SyncHandler,
  systemClock,
} from "@zakstam/codex-sync-engine";
import type { PostgresDriver } from "./driver.ts";
import { toBackendError } from "./errors.ts";
import { migrate } from "./migrations.ts";
import { type TableLocation, type TableNames, tableNames } from "./names.ts";
import { type JobNoticeListener, JobNotifications } from "./notifications.ts";
import { createPGliteDriver, type PGliteSettings } from "./pglite.ts";
import { createPostgresJsDriver, type PostgresJsOptions } from "./postgresjs.ts";
import { type PostgresExtras, PostgresStore } from "./store.ts";
import { JobWorker } from "./worker.ts";

/** Default period of the safety-net poll for waiters and the worker. */
export const DEFAULT_POLL_INTERVAL_MS = 5_000;

/**
 * How to build a Postgres adapter. Storage is one of `driver`, `connectionString` or
 * `dataDir`; with none of them the adapter runs on an in-memory PGlite.
 */
export interface PostgresAdapterOptions extends TableLocation {
  /** The host's handler; `ctx.sql` runs in the transaction that commits each chunk. */
  handler: SyncHandler<PostgresExtras>;
  /** A driver you manage (it is not closed by `close()`). */
  driver?: PostgresDriver;
  /** A PostgreSQL server, through a postgres.js pool the adapter owns. */
  connectionString?: string;
  /** postgres.js options for `connectionString` (`max`, `ssl`, …). */
  connectionOptions?: PostgresJsOptions;
  /** An embedded PGlite database persisted to this directory, owned by the adapter. */
  dataDir?: string;
  /** More options for the embedded PGlite (when neither `driver` nor `connectionString`). */
  pgliteOptions?: PGliteSettings;
  /** Policy overrides (lease, retries, limits, retention). */
  policy?: PolicyOverrides;
  /** Time source of the engine, timers and polls (default: the system clock). */
  clock?: Clock;
  /** Randomness for backoff jitter. */
  random?: RandomSource;
  /** Id generator for sources and jobs. */
  generateId?: () => string;
  /** Lease owner name of this adapter's worker (default: random). */
  workerId?: string;
  /** `auto` (default): a background worker runs due jobs. `manual`: only `drain()` does. */
  mode?: "auto" | "manual";
  /** Jobs the background worker runs at once (default 1). */
  concurrency?: number;
  /** Safety-net poll period for waiters and the worker, in ms (default 5 000). */
  pollIntervalMs?: number;
  /**
   * Told about failures of background work: job runs (they are retried) and NOTIFY
   * statements (their notifications are lost; waiters and workers elsewhere poll).
   */
  onWorkerError?: (error: unknown) => void;
}

/** The Postgres adapter: a {@link SyncAdapter} plus control over its worker. */
export interface PostgresAdapter extends SyncAdapter {
  /** Always present: this adapter declares `one-call-upload`. */
  uploadSource: OneCallUpload["uploadSource"];
  /** Always present: this adapter declares `extensions`. */
  getLatestSource: ConversationLookup["getLatestSource"];
  /** Always present: this adapter declares `release-payloads`. */
  releasePayloads: PayloadRelease["releasePayloads"];
  /** The largest chunk `appendChunk` accepts (the policy's limit). */
  readonly maxChunkBytes: number;
  /** The engine behind the adapter (`claimNextJob`, `runClaimedJob`, `runDueJobs`). */
  readonly engine: SyncEngine<PostgresExtras>;
  /** The store (build more engines over it for more workers in this process). */
  readonly store: PostgresStore;
  /** The driver the adapter runs on. */
  readonly driver: PostgresDriver;
  /** The tables the adapter uses. */
  readonly tables: TableNames;
  /**
   * Calls `listener` after every committed job write in the adapter's tables, from this
   * process or another (a notice), and with `undefined` when the listening connection
   * was re-established (notices sent meanwhile are lost: look again). Returns the
   * unsubscribe. The same notifications wake the adapter's waiters and worker.
   */
  onJobWrite(listener: JobNoticeListener): () => void;
  /** Runs due work until none is due now; returns how many job runs it made. */
  drain(): Promise<number>;
  /** Starts the background worker (already running in auto mode). */
  startWorker(): void;
  /** Stops the background worker and waits for the jobs it is running. */
  stopWorker(): Promise<void>;
  /** Stops the worker, stops listening and closes the driver if the adapter opened it. */
  close(): Promise<void>;
}

const CAPABILITIES = [
  Capability.durable,
  Capability.concurrentWorkers,
  Capability.transactionalApply,
  Capability.oneCallUpload,
  Capability.extensions,
  Capability.releasePayloads,
] as const;

function invalid(message: string): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", `createPostgresAdapter: ${message}`);
}

function checkOptions(options: PostgresAdapterOptions): void {
  const storages = [options.driver, options.connectionString, options.dataDir]
    .filter((value) => value !== undefined);
  if (storages.length > 1) {
    throw invalid("give at most one of driver, connectionString and dataDir");
  }
  if (options.connectionOptions !== undefined && options.connectionString === undefined) {
    throw invalid("connectionOptions needs connectionString");
  }
  if (
    options.pgliteOptions !== undefined &&
    (options.driver !== undefined || options.connectionString !== undefined)
  ) {
    throw invalid("pgliteOptions apply to the embedded PGlite only");
  }
  const { concurrency, pollIntervalMs, mode } = options;
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
    throw invalid("concurrency must be an integer of at least 1");
  }
  if (pollIntervalMs !== undefined && !(Number.isFinite(pollIntervalMs) && pollIntervalMs > 0)) {
    throw invalid("pollIntervalMs must be a positive number");
  }
  if (mode !== undefined && mode !== "auto" && mode !== "manual") {
    throw invalid(`mode must be "auto" or "manual"`);
  }
}

async function openDriver(
  options: PostgresAdapterOptions,
): Promise<{ driver: PostgresDriver; owned: boolean }> {
  if (options.driver) return { driver: options.driver, owned: false };
  if (options.connectionString !== undefined) {
    const driver = createPostgresJsDriver({
      connectionString: options.connectionString,
      options: options.connectionOptions,
    });
    return { driver, owned: true };
  }
  try {
    const driver = await createPGliteDriver({
      dataDir: options.dataDir,
      options: options.pgliteOptions,
    });
    return { driver, owned: true };
  } catch (error) {
    throw toBackendError(error, "open PGlite");
  }
}

/**
 * Opens a Postgres adapter: validates the options, applies the schema migrations,
 * starts listening for job writes and, in auto mode, the background worker.
 */
export async function createPostgresAdapter(
  options: PostgresAdapterOptions,
): Promise<PostgresAdapter> {
  checkOptions(options);
  const names = tableNames(options);
  const clock = options.clock ?? systemClock;
  const { driver, owned } = await openDriver(options);
  const notifications = new JobNotifications(
    driver,
    names.channel,
    clock,
    options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    options.onWorkerError,
  );
  try {
    await migrate(driver, names);
    await notifications.start();
  } catch (error) {
    await notifications.close();
    if (owned) await driver.close().catch(() => {});
    throw toBackendError(error, "open postgres adapter");
  }
  const store = new PostgresStore(driver, names, notifications);
  const engine = new SyncEngine<PostgresExtras>({
    store,
    handler: options.handler,
    policy: options.policy,
    clock,
    random: options.random,
    generateId: options.generateId,
    workerId: options.workerId,
  });
  const worker = new JobWorker({
    engine,
    store,
    notifications,
    clock,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    concurrency: options.concurrency ?? 1,
    onError: options.onWorkerError,
  });
  if ((options.mode ?? "auto") === "auto") worker.start();
  let closing: Promise<void> | undefined;
  return {
    capabilities: CAPABILITIES,
    maxChunkBytes: engine.policy.limits.maxChunkBytes,
    limits: engine.policy.limits,
    engine,
    store,
    driver,
    tables: names,
    ...bindOperations(engine),
    onJobWrite: (listener) => notifications.onJob(listener),
    drain: () => worker.drain(),
    startWorker: () => worker.start(),
    stopWorker: () => worker.stop(),
    close: () =>
      closing ??= (async () => {
        await worker.stop();
        await notifications.close();
        store.close();
        if (owned) await driver.close();
      })(),
  };
}
