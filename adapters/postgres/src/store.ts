/**
 * The engine's store primitives on PostgreSQL. Transactions run at READ COMMITTED; every
 * record the engine changes is first read with `SELECT … FOR UPDATE` (lockSource,
 * lockJob, listActiveJobs under a per-conversation advisory lock), so writers of one
 * record are serialised and the engine's read-modify-write is safe. Claiming and gc use
 * `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows.
 *
 * Lock order is sources, then jobs (seal locks its source, then the conversation's
 * jobs; gc locks a source, then marks its job), so no two transactions deadlock on them.
 *
 * @module
 */

import {
  type Chunk,
  type ChunkInfo,
  type ClaimHints,
  type Job,
  type JobListener,
  type JobListQuery,
  type KnownJob,
  type SealedExtension,
  type Source,
  type StoreTransaction,
  SyncError,
  type SyncStore,
} from "@zakstam/codex-sync-engine";
import { chunkHomeOf } from "@zakstam/codex-sync-engine/state";
import type { PostgresDriver, SqlExecutor, SqlRow } from "./driver.ts";
import { toBackendError } from "./errors.ts";
import type { TableNames } from "./names.ts";
import type { JobNotifications } from "./notifications.ts";
import { CallBatches } from "./call_batches.ts";
import {
  checkJobKey,
  chunkInfoOf,
  chunkListParams,
  chunkOf,
  chunkParams,
  jobUpdateParams,
  jobUpdateRows,
  newJobParams,
  oneStepBatchParams,
  oneStepBytes,
  type OneStepCall,
  recordOf,
  SEALED_EXTENSION_BYTES_AT,
  SEALED_SOURCE_BYTES_AT,
  sealedExtensionReads,
  sourceParams,
  storableKey,
} from "./records.ts";
import { type StoreStatements, storeStatements } from "./statements.ts";

/**
 * What the host's handler receives besides the job: `sql` runs statements in the very
 * transaction that commits the chunk's progress, so the host's writes and the job's
 * cursor commit (or roll back) together. Valid only while the handler runs.
 */
// A type alias, not an interface: it then fits handlers typed for any extras record.
export type PostgresExtras = {
  sql: SqlExecutor;
};

function closedError(): SyncError {
  return new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "postgres adapter is closed", {
    retryable: false,
  });
}

const jobKey = (job: Job): string => `${job.scope.length}:${job.scope}:${job.jobId}`;
const sourceCacheKey = (scope: string, sourceId: string): string =>
  `s${scope.length}:${scope}:${sourceId}`;
const chunkCacheKey = (scope: string, sourceId: string, index: number): string =>
  `c${scope.length}:${scope}:${sourceId.length}:${sourceId}:${index}`;

/** The advisory lock seals of one conversation take turns on (see `lockConversation`). */
function conversationLockKey(names: TableNames, scope: string, conversationId: string): string {
  return `codex-sync-engine:conversation:${names.schema}.${names.prefix}:` +
    `${scope.length}:${scope}:${conversationId}`;
}

/**
 * Due jobs a claiming transaction reads (and locks) at once, with their sources, then the
 * chunks at their cursors: claiming a batch of short jobs costs two statements rather than
 * three per job.
 */
export const CLAIM_READ_AHEAD = 8;

/**
 * One-step uploads per statement at most, their chunk bytes at most (a larger upload goes
 * alone), and such statements in flight at once per store and kind (new sources,
 * extensions).
 */
export const ONE_STEP_BATCHES = {
  maxItems: 64,
  maxWeight: 4 * 1024 * 1024,
  maxInFlight: 2,
} as const;

/** The operations of one open transaction. */
class PostgresTransaction implements StoreTransaction<PostgresExtras> {
  readonly extras: PostgresExtras;
  readonly #tx: SqlExecutor;
  readonly #sql: StoreStatements;
  readonly #names: TableNames;
  /** Jobs written, announced after commit. */
  readonly written = new Map<string, Job>();
  /** Due jobs read ahead, locked, not yet handed out (see `findClaimableJob`). */
  #claimable: Job[] | undefined;
  /** Whether the read ahead found every job that was due. */
  #claimableAll = false;
  /** Sources and chunk rows read with the due jobs, each handed out once. */
  readonly #readAhead = new Map<string, Source | SqlRow>();
  readonly #pipelined: boolean;
  /** Writes sent and not yet answered. */
  readonly #inFlight = new Set<Promise<void>>();
  /**
   * Job updates held back, pipelined only: sent as one statement in front of the next
   * statement of any kind (see {@link PostgresTransaction.sendHeldWrites}).
   */
  readonly #heldJobUpdates = new Map<string, Job>();
  /** The first write that failed: the transaction is aborted, nothing after it ran. */
  #writeFailed: { error: SyncError } | undefined;
  #ended = false;

  /**
   * `pipelined`: writes whose replies the engine does not read are sent without waiting
   * for them (see {@link PostgresDriver.pipelines}); `settle` then tells how they ended.
   */
  constructor(tx: SqlExecutor, sql: StoreStatements, names: TableNames, pipelined = false) {
    this.#tx = tx;
    this.#sql = sql;
    this.#names = names;
    this.#pipelined = pipelined;
    this.extras = {
      sql: {
        query: <R extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]) => {
          if (this.#ended) {
            return Promise.reject(
              new SyncError(
                "E_SYNC_INTERNAL",
                "ctx.sql used after its transaction ended (keep it within the handler call)",
              ),
            );
          }
          try {
            this.sendHeldWrites();
          } catch (error) {
            return Promise.reject(error);
          }
          return tx.query<R>(text, params);
        },
      },
    };
  }

  /** Refuses further use of `extras.sql`. */
  end(): void {
    this.#ended = true;
  }

  async #query(operation: string, text: string, params: readonly unknown[]): Promise<SqlRow[]> {
    this.sendHeldWrites();
    if (this.#writeFailed) throw this.#writeFailed.error;
    try {
      return await this.#tx.query(text, params);
    } catch (error) {
      // After a failed write, a statement fails only because the transaction is aborted.
      const failed = this.#writeFailed as { error: SyncError } | undefined;
      throw failed?.error ?? toBackendError(error, operation);
    }
  }

  /**
   * A write (or lock) whose reply nothing reads. Pipelined, it is sent at once and not waited for:
   * the statements after it on the connection run after it (and see it), and once it
   * fails none of them runs, COMMIT included (the server rolls back instead).
   */
  async #write(operation: string, text: string, params: readonly unknown[]): Promise<void> {
    if (!this.#pipelined) {
      await this.#query(operation, text, params);
      return;
    }
    this.sendHeldWrites();
    this.#send(operation, text, params);
  }

  /**
   * Sends what this transaction still holds back; before COMMIT. Job updates made back to
   * back (no statement between them) go as one statement: what a batch of short jobs
   * claimed from the read ahead and finished together writes.
   */
  sendHeldWrites(): void {
    if (this.#heldJobUpdates.size === 0) return;
    const jobs = [...this.#heldJobUpdates.values()];
    this.#heldJobUpdates.clear();
    if (jobs.length === 1) this.#send("updateJob", this.#sql.updateJob, jobUpdateParams(jobs[0]));
    else this.#send("updateJob", this.#sql.updateJobs, [jobUpdateRows(jobs)]);
  }

  /** A pipelined write, sent now. */
  #send(operation: string, text: string, params: readonly unknown[]): void {
    if (this.#writeFailed) throw this.#writeFailed.error;
    const reply: Promise<void> = this.#tx.query(text, params).then(
      () => {
        this.#inFlight.delete(reply);
      },
      (error) => {
        this.#inFlight.delete(reply);
        this.#writeFailed ??= { error: toBackendError(error, operation) };
      },
    );
    this.#inFlight.add(reply);
  }

  /** Waits for the pipelined writes; throws the first failure (then nothing committed). */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    if (this.#writeFailed) throw this.#writeFailed.error;
  }

  async #oneRecord<T extends Source | Job>(
    operation: string,
    text: string,
    params: readonly unknown[],
  ): Promise<T | undefined> {
    const [row] = await this.#query(operation, text, params);
    return row ? recordOf<T>(row) : undefined;
  }

  async #records<T extends Source | Job>(
    operation: string,
    text: string,
    params: readonly unknown[],
  ): Promise<T[]> {
    return (await this.#query(operation, text, params)).map((row) => recordOf<T>(row));
  }

  #sourceKey(scope: string, sourceId: string): string[] {
    return [storableKey("scope", scope), storableKey("sourceId", sourceId)];
  }

  getSource(scope: string, sourceId: string): Promise<Source | undefined> {
    const ahead = this.#takeAhead(sourceCacheKey(scope, sourceId));
    if (ahead) return Promise.resolve(ahead as Source);
    return this.#oneRecord("getSource", this.#sql.getSource, this.#sourceKey(scope, sourceId));
  }

  /**
   * A record read ahead in this transaction, once. Served only by plain reads (never by
   * locking ones), and dropped by any write of sources or chunks in this transaction: a
   * plain read at READ COMMITTED sees what was committed when its statement began, and
   * the read ahead began earlier in the same transaction, with nothing written since.
   */
  #takeAhead(key: string): Source | SqlRow | undefined {
    const value = this.#readAhead.get(key);
    if (value !== undefined) this.#readAhead.delete(key);
    return value;
  }

  lockSource(scope: string, sourceId: string): Promise<Source | undefined> {
    return this.#oneRecord("lockSource", this.#sql.lockSource, this.#sourceKey(scope, sourceId));
  }

  async insertSource(source: Source): Promise<boolean> {
    this.#readAhead.clear();
    const rows = await this.#query("insertSource", this.#sql.insertSource, sourceParams(source));
    return rows.length > 0;
  }

  async updateSource(source: Source): Promise<void> {
    this.#readAhead.clear();
    await this.#write("updateSource", this.#sql.updateSource, sourceParams(source));
    if (source.chunksPurgedAt !== undefined && source.jobId !== undefined) {
      // Takes the source's ended job out of the gc index.
      await this.#write("updateSource", this.#sql.markJobChunksPurged, [
        source.scope,
        source.jobId,
      ]);
    }
  }

  async getChunkInfo(
    scope: string,
    sourceId: string,
    index: number,
  ): Promise<ChunkInfo | undefined> {
    // The engine reads only the info of a chunk it still holds (its upload cache).
    const ahead = this.#takeAhead(chunkCacheKey(scope, sourceId, index));
    if (ahead) return chunkInfoOf(ahead as SqlRow);
    const [row] = await this.#query("getChunkInfo", this.#sql.getChunkInfo, [
      ...this.#sourceKey(scope, sourceId),
      index,
    ]);
    return row ? chunkInfoOf(row) : undefined;
  }

  async getChunk(scope: string, sourceId: string, index: number): Promise<Chunk | undefined> {
    const ahead = this.#takeAhead(chunkCacheKey(scope, sourceId, index)) as SqlRow | undefined;
    if (ahead?.with_bytes) return chunkOf(ahead);
    const [row] = await this.#query("getChunk", this.#sql.getChunk, [
      ...this.#sourceKey(scope, sourceId),
      index,
    ]);
    return row ? chunkOf(row) : undefined;
  }

  async releaseChunkPayloads(
    scope: string,
    sourceId: string,
    fromIndex: number,
    toIndex: number,
  ): Promise<void> {
    this.#readAhead.clear();
    await this.#write("releaseChunkPayloads", this.#sql.releaseChunkPayloads, [
      ...this.#sourceKey(scope, sourceId),
      fromIndex,
      toIndex,
    ]);
  }

  async insertChunk(scope: string, sourceId: string, chunk: Chunk): Promise<void> {
    this.#readAhead.clear();
    await this.#write("insertChunk", this.#sql.insertChunk, chunkParams(scope, sourceId, chunk));
  }

  async listChunkInfos(
    scope: string,
    sourceId: string,
    afterIndex: number,
    limit: number,
  ): Promise<ChunkInfo[]> {
    const rows = await this.#query("listChunkInfos", this.#sql.listChunkInfos, [
      ...this.#sourceKey(scope, sourceId),
      afterIndex,
      limit,
    ]);
    return rows.map(chunkInfoOf);
  }

  async deleteChunks(scope: string, sourceId: string, fromIndex?: number): Promise<number> {
    this.#readAhead.clear();
    const key = this.#sourceKey(scope, sourceId);
    // Chunk indexes start at 0: deleting from 0 (or below) is deleting them all.
    const [row] = fromIndex === undefined || fromIndex <= 0
      ? await this.#query("deleteChunks", this.#sql.deleteChunks, key)
      : await this.#query("deleteChunks", this.#sql.deleteChunksFrom, [
        ...key,
        Math.ceil(fromIndex),
      ]);
    return Number(row.deleted);
  }

  getJob(scope: string, jobId: string): Promise<Job | undefined> {
    return this.#oneRecord("getJob", this.#sql.getJob, [
      storableKey("scope", scope),
      storableKey("jobId", jobId),
    ]);
  }

  lockJob(scope: string, jobId: string): Promise<Job | undefined> {
    return this.#oneRecord("lockJob", this.#sql.lockJob, [
      storableKey("scope", scope),
      storableKey("jobId", jobId),
    ]);
  }

  async insertJob(job: Job): Promise<void> {
    this.#dropClaimable(job);
    await this.#write("insertJob", this.#sql.insertJob, newJobParams(job));
    this.written.set(jobKey(job), job);
  }

  async updateJob(job: Job): Promise<void> {
    this.#dropClaimable(job);
    if (this.#pipelined) {
      checkJobKey(job);
      const key = jobKey(job);
      // A later update of the same job replaces the held one.
      this.#heldJobUpdates.delete(key);
      this.#heldJobUpdates.set(key, job);
      this.written.set(key, job);
      return;
    }
    await this.#write("updateJob", this.#sql.updateJob, jobUpdateParams(job));
    this.written.set(jobKey(job), job);
  }

  listJobs(query: JobListQuery): Promise<Job[]> {
    const params: unknown[] = [storableKey("scope", query.scope)];
    if (query.conversationId !== undefined) {
      params.push(storableKey("conversationId", query.conversationId));
    }
    if (query.state !== undefined) params.push(query.state);
    if (query.after !== undefined) {
      params.push(query.after.createdAt, storableKey("jobId", query.after.jobId));
    }
    params.push(query.limit);
    const text = this.#sql.listJobs({
      conversationId: query.conversationId !== undefined,
      state: query.state !== undefined,
      after: query.after !== undefined,
    });
    return this.#records("listJobs", text, params);
  }

  async listActiveJobs(scope: string, conversationId: string): Promise<Job[]> {
    const key = [storableKey("scope", scope), storableKey("conversationId", conversationId)];
    // Nothing reads the lock's reply: pipelined, the SELECT goes out behind it and takes
    // its snapshot once the lock is held (the server runs them one after the other).
    await this.#write("listActiveJobs", this.#sql.lockConversation, [
      conversationLockKey(this.#names, scope, conversationId),
    ]);
    return await this.#records("listActiveJobs", this.#sql.listActiveJobs, key);
  }

  /**
   * The earliest due job, locked. Due jobs are read ahead, up to {@link CLAIM_READ_AHEAD}
   * locked at once with their sources (and their next chunks: the bytes only of those the
   * engine does not hold), handed out in claim order; once those are handed out, the next
   * call reads again, unless the read ahead found every job that was due (then nothing
   * was due when it began: undefined, like a read then).
   */
  async findClaimableJob(now: number, hints?: ClaimHints): Promise<Job | undefined> {
    if (this.#claimable === undefined || (this.#claimable.length === 0 && !this.#claimableAll)) {
      await this.#readClaimable(now, hints);
    }
    return this.#claimable!.shift();
  }

  async #readClaimable(now: number, hints: ClaimHints | undefined): Promise<void> {
    const rows = await this.#query("findClaimableJob", this.#sql.prefetchClaimableJobs, [
      now,
      CLAIM_READ_AHEAD,
    ]);
    this.#claimable = [];
    this.#claimableAll = rows.length < CLAIM_READ_AHEAD;
    // The chunk each job applies next, where its source keeps its chunks. Only a guess: a
    // chunk not read here is read by getChunk.
    const wanted: Array<{ scope: string; source_id: string; idx: number; with_bytes: boolean }> =
      [];
    for (const row of rows) {
      const job = recordOf<Job>(row);
      this.#claimable.push(job);
      if (typeof row.source_record !== "string") continue;
      const source = JSON.parse(row.source_record) as Source;
      this.#readAhead.set(sourceCacheKey(job.scope, job.sourceId), source);
      if (source.manifest && job.cursor < job.totalChunks) {
        const home = chunkHomeOf(source);
        wanted.push({
          scope: job.scope,
          source_id: home,
          idx: job.cursor,
          with_bytes: !hints?.holdsChunk(job.scope, home, job.cursor),
        });
      }
    }
    if (wanted.length === 0) return;
    const chunks = await this.#query("getChunk", this.#sql.getChunksByKeys, [
      JSON.stringify(wanted),
    ]);
    for (const chunk of chunks) {
      const key = chunkCacheKey(
        chunk.scope as string,
        chunk.source_id as string,
        Number(chunk.idx),
      );
      this.#readAhead.set(key, chunk);
    }
  }

  /** A job written here is no longer handed out as read ahead. */
  #dropClaimable(job: Job): void {
    if (!this.#claimable) return;
    const key = jobKey(job);
    this.#claimable = this.#claimable.filter((due) => jobKey(due) !== key);
  }

  listExpiredSources(now: number, limit: number): Promise<Source[]> {
    return this.#records("listExpiredSources", this.#sql.listExpiredSources, [now, limit]);
  }

  async listPurgeableSources(endedBefore: number, limit: number): Promise<Source[]> {
    // Failed and expired sources count from their last update, sealed ones from the end
    // of their job: two index scans, at most `limit` sources in all.
    const ended = await this.#records<Source>(
      "listPurgeableSources",
      this.#sql.listEndedSources,
      [endedBefore, limit],
    );
    if (ended.length >= limit) return ended;
    const ofEndedJobs = await this.#records<Source>(
      "listPurgeableSources",
      this.#sql.listSourcesOfEndedJobs,
      [endedBefore, limit - ended.length],
    );
    return [...ended, ...ofEndedJobs];
  }
}

/** The PostgreSQL store: the engine's primitives over one set of tables. */
export class PostgresStore implements SyncStore<PostgresExtras> {
  /** The host's handler runs inside the transaction that commits the chunk. */
  readonly transactionalApply = true;
  /** A pooled server runs other transactions while a handler runs (PGlite does not). */
  readonly concurrentTransactions: boolean;
  /** The tables this store works on. */
  readonly names: TableNames;
  readonly #driver: PostgresDriver;
  readonly #sql: StoreStatements;
  readonly #notifications: JobNotifications;
  readonly #sealedSources: CallBatches<OneStepCall, boolean>;
  readonly #sealedExtensions: CallBatches<OneStepCall, boolean>;
  #closed = false;

  constructor(driver: PostgresDriver, names: TableNames, notifications: JobNotifications) {
    this.concurrentTransactions = driver.concurrentTransactions === true;
    this.#driver = driver;
    this.names = names;
    this.#sql = storeStatements(names);
    this.#notifications = notifications;
    this.#sealedSources = this.#oneStepBatches(
      this.#sql.insertSealedSource,
      this.#sql.insertSealedSources,
    );
    this.#sealedExtensions = this.#oneStepBatches(
      this.#sql.insertSealedExtension,
      this.#sql.insertSealedExtensions,
    );
  }

  /** One-step calls of `one`, those that arrive together as one call of `many`. */
  #oneStepBatches(one: string, many: string): CallBatches<OneStepCall, boolean> {
    const driver = this.#driver;
    return new CallBatches({
      runOne: async (call) => {
        const [row] = await driver.query(one, call.params);
        return row.stored === true;
      },
      runMany: async (calls) => {
        const [row] = await driver.query(many, oneStepBatchParams(calls));
        return (row.stored as unknown[]).map((stored) => stored === true);
      },
      weight: oneStepBytes,
      lockOrder: (call) => call.lockKey,
      ...ONE_STEP_BATCHES,
    });
  }

  async transaction<T>(fn: (tx: StoreTransaction<PostgresExtras>) => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    let view: PostgresTransaction | undefined;
    let thrown: { error: unknown } | undefined;
    let result: T;
    try {
      result = await this.#driver.transaction(async (tx) => {
        view = new PostgresTransaction(tx, this.#sql, this.names, this.#driver.pipelines);
        try {
          const result = await fn(view);
          view.sendHeldWrites();
          return result;
        } catch (error) {
          thrown = { error };
          throw error;
        } finally {
          view.end();
        }
      });
      // COMMIT went out behind the pipelined writes: had one failed, the server rolled
      // the transaction back instead.
      await view!.settle();
    } catch (error) {
      await view?.settle().catch(() => {});
      // The body's own error passes through unchanged (the engine tells a handler's
      // failure from a lost lease by it); BEGIN/COMMIT failures become SyncErrors.
      if (thrown !== undefined && error === thrown.error) throw error;
      throw toBackendError(error, "transaction");
    }
    this.#notifications.publish(view!.written.values());
    return result;
  }

  /** One plain read as a single statement on the pool: no BEGIN, no COMMIT. */
  async readOnce<T>(fn: (reader: StoreTransaction<PostgresExtras>) => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    const view = new PostgresTransaction(this.#driver, this.#sql, this.names);
    try {
      return await fn(view);
    } finally {
      view.end();
    }
  }

  /**
   * One statement, committed on its own (migration 3's function), or one statement for
   * the uploads that arrived while others were in flight (migration 4's); announces the
   * job.
   */
  async insertSealedSource(source: Source, chunks: readonly Chunk[], job: Job): Promise<boolean> {
    if (this.#closed) throw closedError();
    const lockKey = conversationLockKey(this.names, source.scope, source.conversationId);
    const params = [
      lockKey,
      ...sourceParams(source),
      ...chunkListParams(chunks),
      ...newJobParams(job),
    ];
    const call = { params, bytesAt: SEALED_SOURCE_BYTES_AT, lockKey };
    return await this.#oneStep(this.#sealedSources, call, job, "insertSealedSource");
  }

  /**
   * One statement, committed on its own (migration 6's function), or one statement for
   * the steps that arrived while others were in flight (migration 7's); announces the job.
   */
  async insertSealedExtension(extension: SealedExtension): Promise<boolean> {
    if (this.#closed) throw closedError();
    const { source, chunks, job } = extension;
    const lockKey = conversationLockKey(this.names, source.scope, source.conversationId);
    const params = [
      lockKey,
      ...sealedExtensionReads(extension.updates, extension.baseJob),
      ...sourceParams(source),
      storableKey("sourceId", chunkHomeOf(source)),
      ...chunkListParams(chunks),
      ...newJobParams(job),
    ];
    const call = { params, bytesAt: SEALED_EXTENSION_BYTES_AT, lockKey };
    return await this.#oneStep(this.#sealedExtensions, call, job, "insertSealedExtension");
  }

  async #oneStep(
    batches: CallBatches<OneStepCall, boolean>,
    call: OneStepCall,
    job: Job,
    operation: string,
  ): Promise<boolean> {
    let stored: boolean;
    try {
      stored = await batches.call(call);
    } catch (error) {
      throw toBackendError(error, operation);
    }
    if (stored) this.#notifications.publish([job]);
    return stored;
  }

  subscribeJob(scope: string, jobId: string, listener: JobListener): () => void {
    return this.#notifications.subscribeJob(scope, jobId, listener);
  }

  knownJob(scope: string, jobId: string): KnownJob | undefined {
    return this.#notifications.knownJob(scope, jobId);
  }

  /** Earliest `runAt` of the non-terminal jobs (a due retry or a lease expiry), if any. */
  async nextRunAt(): Promise<number | undefined> {
    if (this.#closed) throw closedError();
    try {
      const [row] = await this.#driver.query(this.#sql.nextRunAt);
      return row ? Number(row.run_at) : undefined;
    } catch (error) {
      throw toBackendError(error, "nextRunAt");
    }
  }

  /** Refuses every later call with a non-retryable `E_SYNC_BACKEND_UNAVAILABLE`. */
  close(): void {
    this.#closed = true;
  }
}
