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
  type Job,
  type JobListQuery,
  type Source,
  type StoreTransaction,
  SyncError,
  type SyncStore,
} from "@zakstam/codex-sync-engine";
import type { PostgresDriver, SqlExecutor, SqlRow } from "./driver.ts";
import { toBackendError } from "./errors.ts";
import type { TableNames } from "./names.ts";
import type { JobNotifications } from "./notifications.ts";
import {
  chunkInfoOf,
  chunkOf,
  chunkParams,
  jobUpdateParams,
  newJobParams,
  recordOf,
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

/** The operations of one open transaction. */
class PostgresTransaction implements StoreTransaction<PostgresExtras> {
  readonly extras: PostgresExtras;
  readonly #tx: SqlExecutor;
  readonly #sql: StoreStatements;
  readonly #names: TableNames;
  readonly #notifications: JobNotifications;
  /** Jobs written, announced after commit. */
  readonly written = new Map<string, Job>();
  #ended = false;

  constructor(
    tx: SqlExecutor,
    sql: StoreStatements,
    names: TableNames,
    notifications: JobNotifications,
  ) {
    this.#tx = tx;
    this.#sql = sql;
    this.#names = names;
    this.#notifications = notifications;
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
    try {
      return await this.#tx.query(text, params);
    } catch (error) {
      throw toBackendError(error, operation);
    }
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
    return this.#oneRecord("getSource", this.#sql.getSource, this.#sourceKey(scope, sourceId));
  }

  lockSource(scope: string, sourceId: string): Promise<Source | undefined> {
    return this.#oneRecord("lockSource", this.#sql.lockSource, this.#sourceKey(scope, sourceId));
  }

  async insertSource(source: Source): Promise<boolean> {
    const rows = await this.#query("insertSource", this.#sql.insertSource, sourceParams(source));
    return rows.length > 0;
  }

  async updateSource(source: Source): Promise<void> {
    await this.#query("updateSource", this.#sql.updateSource, sourceParams(source));
    if (source.chunksPurgedAt !== undefined && source.jobId !== undefined) {
      // Takes the source's ended job out of the gc index.
      await this.#query("updateSource", this.#sql.markJobChunksPurged, [
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
    const [row] = await this.#query("getChunkInfo", this.#sql.getChunkInfo, [
      ...this.#sourceKey(scope, sourceId),
      index,
    ]);
    return row ? chunkInfoOf(row) : undefined;
  }

  async getChunk(scope: string, sourceId: string, index: number): Promise<Chunk | undefined> {
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
    await this.#query("releaseChunkPayloads", this.#sql.releaseChunkPayloads, [
      ...this.#sourceKey(scope, sourceId),
      fromIndex,
      toIndex,
    ]);
  }

  async insertChunk(scope: string, sourceId: string, chunk: Chunk): Promise<void> {
    await this.#query("insertChunk", this.#sql.insertChunk, chunkParams(scope, sourceId, chunk));
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
    await this.#query("insertJob", this.#sql.insertJob, [
      ...newJobParams(job),
      this.#notifications.channel,
      this.#notifications.payload(job),
    ]);
    this.written.set(jobKey(job), job);
  }

  async updateJob(job: Job): Promise<void> {
    await this.#query("updateJob", this.#sql.updateJob, [
      ...jobUpdateParams(job),
      this.#notifications.channel,
      this.#notifications.payload(job),
    ]);
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
    await this.#query("listActiveJobs", this.#sql.lockConversation, [
      `codex-sync-engine:conversation:${this.#names.schema}.${this.#names.prefix}:` +
      `${scope.length}:${scope}:${conversationId}`,
    ]);
    return await this.#records("listActiveJobs", this.#sql.listActiveJobs, key);
  }

  findClaimableJob(now: number): Promise<Job | undefined> {
    return this.#oneRecord("findClaimableJob", this.#sql.findClaimableJob, [now]);
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
  #closed = false;

  constructor(driver: PostgresDriver, names: TableNames, notifications: JobNotifications) {
    this.concurrentTransactions = driver.concurrentTransactions === true;
    this.#driver = driver;
    this.names = names;
    this.#sql = storeStatements(names);
    this.#notifications = notifications;
  }

  async transaction<T>(fn: (tx: StoreTransaction<PostgresExtras>) => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    let view: PostgresTransaction | undefined;
    let thrown: { error: unknown } | undefined;
    let result: T;
    try {
      result = await this.#driver.transaction(async (tx) => {
        view = new PostgresTransaction(tx, this.#sql, this.names, this.#notifications);
        try {
          return await fn(view);
        } catch (error) {
          thrown = { error };
          throw error;
        } finally {
          view.end();
        }
      });
    } catch (error) {
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
    const view = new PostgresTransaction(this.#driver, this.#sql, this.names, this.#notifications);
    try {
      return await fn(view);
    } finally {
      view.end();
    }
  }

  subscribeJob(scope: string, jobId: string, listener: () => void): () => void {
    return this.#notifications.subscribeJob(scope, jobId, listener);
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
