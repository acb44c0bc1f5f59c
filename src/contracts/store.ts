/**
 * The storage primitives an adapter provides and the engine runs its lifecycle on.
 * An adapter owns storage, transactions, locking, scheduling and change notification;
 * it never re-implements validation, retry or verification — those live in the engine.
 *
 * Every method is keyed by `scope`: a record of another scope does not exist.
 *
 * @module
 */

import type { Chunk, ChunkInfo, Job, JobState, Source } from "./domain.ts";

/** Position in a newest-first job listing. */
export interface JobListPosition {
  createdAt: number;
  jobId: string;
}

/** A query over jobs, newest first (`createdAt` desc, then `jobId` desc). */
export interface JobListQuery {
  scope: string;
  conversationId?: string;
  state?: JobState;
  /** Only jobs strictly after this position in the ordering. */
  after?: JobListPosition;
  limit: number;
}

/** A source record as read without a lock, and what to write in its place. */
export interface SourceUpdate {
  read: Source;
  write: Source;
}

/** What {@link SyncStore.insertSealedExtension} stores, and the reads it rests on. */
export interface SealedExtension {
  /** The sealed extension (its `base` names the base it continues). */
  source: Source;
  /** Its own chunks, stored in its chunk home. */
  chunks: readonly Chunk[];
  /** Its job, starting after `baseJob`. */
  job: Job;
  /** The base, then its chunk home's root when that is another source. */
  updates: readonly SourceUpdate[];
  /** The base's job as read: succeeded, and still the conversation's newest. */
  baseJob: Job;
}

/**
 * Operations inside one transaction. Writes become visible to others only at commit;
 * a transaction that throws leaves no trace.
 */
export interface StoreTransaction<TExtras extends object = Record<never, never>> {
  /** Adapter extras merged into the handler's context (e.g. the SQL transaction). */
  readonly extras: TExtras;

  getSource(scope: string, sourceId: string): Promise<Source | undefined>;
  /** Reads the source and locks it against other writers until the transaction ends. */
  lockSource(scope: string, sourceId: string): Promise<Source | undefined>;
  /** Inserts a new source; false (and nothing written) when the key already exists. */
  insertSource(source: Source): Promise<boolean>;
  updateSource(source: Source): Promise<void>;

  getChunkInfo(scope: string, sourceId: string, index: number): Promise<ChunkInfo | undefined>;
  /** The chunk with its bytes; undefined when missing or its bytes were released. */
  getChunk(scope: string, sourceId: string, index: number): Promise<Chunk | undefined>;
  /** Stores a chunk. The engine owns `chunk.bytes` (its own copy): the store may keep them. */
  insertChunk(scope: string, sourceId: string, chunk: Chunk): Promise<void>;
  /** Chunks with `index > afterIndex`, ascending, at most `limit`. */
  listChunkInfos(
    scope: string,
    sourceId: string,
    afterIndex: number,
    limit: number,
  ): Promise<ChunkInfo[]>;
  /**
   * Deletes the source's chunks with `index >= fromIndex` (every chunk when omitted);
   * returns how many were deleted.
   */
  deleteChunks(scope: string, sourceId: string, fromIndex?: number): Promise<number>;
  /**
   * Optional (capability `release-payloads`): drops the bytes of the source's chunks
   * with `fromIndex <= index < toIndex`, in one statement where the backend has them;
   * their info (`getChunkInfo`, `listChunkInfos`) stays and `getChunk` answers undefined.
   * `deleteChunks` deletes released chunks like any other.
   */
  releaseChunkPayloads?(
    scope: string,
    sourceId: string,
    fromIndex: number,
    toIndex: number,
  ): Promise<void>;

  getJob(scope: string, jobId: string): Promise<Job | undefined>;
  /** Reads the job and locks it against other writers until the transaction ends. */
  lockJob(scope: string, jobId: string): Promise<Job | undefined>;
  insertJob(job: Job): Promise<void>;
  /** Writes the job; the adapter notifies its waiters and scheduler after commit. */
  updateJob(job: Job): Promise<void>;
  listJobs(query: JobListQuery): Promise<Job[]>;
  /** Non-terminal jobs of one conversation (for supersede), locked for update. */
  listActiveJobs(scope: string, conversationId: string): Promise<Job[]>;

  /**
   * One non-terminal job with `runAt <= now`, earliest `runAt` first, locked against
   * other claimers for the rest of this transaction (`FOR UPDATE SKIP LOCKED`).
   */
  findClaimableJob(now: number, hints?: ClaimHints): Promise<Job | undefined>;

  /** Collecting sources with `expiresAt <= now`, at most `limit`, locked (skip locked). */
  listExpiredSources(now: number, limit: number): Promise<Source[]>;
  /**
   * Sources whose chunks are not yet purged and whose job ended (or, for failed and
   * expired sources, which were last updated) at or before `endedBefore`; locked
   * (skip locked).
   */
  listPurgeableSources(endedBefore: number, limit: number): Promise<Source[]>;
}

/**
 * Told of a committed change of one job: the job as written, when the store has it;
 * else, when it knows, the state the change left the job in (a waiter for the end of a
 * job need not read one it knows unfinished). Neither: look again.
 */
export type JobListener = (job?: Job, state?: JobState) => void;

/** What a store last heard of a job ({@link SyncStore.knownJob}). */
export interface KnownJob {
  /** The state the commit left the job in. */
  state: JobState;
  /** The job as that commit wrote it, where the store heard the record (a copy). */
  job?: Job;
}

/** What the engine tells a store that reads ahead when it finds a claimable job. */
export interface ClaimHints {
  /**
   * True for a chunk whose bytes the engine holds (it stored them itself and asks only
   * for `getChunkInfo` to apply them): a store reading chunks ahead need not read those
   * bytes. A guess as of the call; `getChunk` must still answer with the bytes.
   */
  holdsChunk(scope: string, sourceId: string, index: number): boolean;
}

/** The store an adapter hands to the engine. */
export interface SyncStore<TExtras extends object = Record<never, never>> {
  /**
   * True when `transaction` can hold the host's handler: the engine then applies each
   * chunk inside the transaction that commits the job's progress (exactly-once effects).
   */
  readonly transactionalApply: boolean;
  /**
   * Optional: true when other callers' transactions run while one is open (a pooled
   * server; not an embedded single-connection database). With transactional apply the
   * engine then runs the handler without holding the job's lock: a cancel commits at
   * once and aborts the handler's signal, heartbeats extend the lease from other
   * transactions, and the progress commit locks the job and re-checks the lease (a lost
   * lease rolls the handler's writes back).
   */
  readonly concurrentTransactions?: boolean;
  /** Runs `fn` atomically and serialisably with respect to the records it touches. */
  transaction<T>(fn: (tx: StoreTransaction<TExtras>) => Promise<T>): Promise<T>;
  /**
   * Optional: runs `fn`, which makes exactly one call and only reads (`getSource`,
   * `getJob`, `listJobs`; never a lock or a write), without opening a transaction — one
   * statement is atomic by itself, so a SQL store saves its BEGIN and COMMIT round trips.
   * The engine falls back to {@link SyncStore.transaction} where it is absent.
   */
  readOnce?<T>(fn: (reader: StoreTransaction<TExtras>) => Promise<T>): Promise<T>;
  /**
   * Optional: stores a new sealed source that extends nothing, its chunks and its job
   * (all three built by the engine) in one atomic step, and returns true — or stores
   * nothing and returns false when a source with that id exists or the conversation has
   * a non-terminal job. Under the lock `listActiveJobs` takes, so it is what a
   * transaction doing `insertSource`, `insertChunk`s, `listActiveJobs` (finding none) and
   * `insertJob` would commit; `subscribeJob` listeners hear of the job after the commit.
   * A SQL store does it in one round trip and one commit. The engine uses it for one-call
   * uploads of new sources and runs the transaction when it is absent or returns false.
   */
  insertSealedSource?(source: Source, chunks: readonly Chunk[], job: Job): Promise<boolean>;
  /**
   * Optional: stores a sealed extension whose job starts after its base's, in one atomic
   * step, and returns true — or stores nothing and returns false unless, under the locks
   * the transaction would take (each source of `updates` in the order given, then the lock
   * `listActiveJobs` takes): every `updates[i].read` and `baseJob` is stored exactly as
   * given (the same JSON), the conversation has no non-terminal job and no job but
   * `baseJob` created at or after it, and no source with the extension's id exists. Then
   * it writes each `updates[i].write`, inserts the extension, its chunks (into its chunk
   * home) and its job: what the transaction commits for the same reads. `subscribeJob`
   * listeners hear of the job after the commit. The engine builds every record from what
   * it read without a lock, uses the step for one-call uploads of extensions, and runs the
   * transaction when the store lacks it or returns false.
   */
  insertSealedExtension?(extension: SealedExtension): Promise<boolean>;
  /**
   * Calls `listener` after each commit that changed the job; returns an unsubscribe. The
   * store may hand over the job as that commit wrote it (a copy the listener may keep),
   * or without it the state that commit left the job in; with neither (told to look
   * again) the listener reads the job itself, as it does for a terminal state without
   * the record. Notifications may be lost or reordered across processes, so a listener
   * trusts only a terminal record (which no later commit changes) and otherwise waits
   * for the next.
   */
  subscribeJob(scope: string, jobId: string, listener: JobListener): () => void;
  /**
   * Optional: what this store last heard of a commit of the job — the state it left the
   * job in, and the record where the store heard it — where it can vouch that any later
   * commit of the job reaches a listener subscribed now as {@link SyncStore.subscribeJob}
   * promises (a notice, or a prompt to read); undefined where it cannot, or does not know
   * the job. A waiter subscribes, then asks: a terminal record is its answer, a terminal
   * state without it a reason to read, an unfinished state means the job exists and the
   * waiter need not read it. A store answers from what it heard since its change feed
   * last (re)connected, so it must forget a job when told of a change it cannot place
   * (a prompt to look again).
   */
  knownJob?(scope: string, jobId: string): KnownJob | undefined;
}
