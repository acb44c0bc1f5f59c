/**
 * The engine's store primitives over a Convex function's database. One store serves one
 * function invocation: every `transaction` it runs belongs to the invocation's single
 * Convex transaction, which is serialisable, so locks are plain reads (Convex retries a
 * mutation that conflicts with a concurrent one).
 *
 * Convex cannot roll back part of a mutation. A transaction body that throws after
 * writing therefore poisons the store (`failure`): the function wrapper must then throw,
 * so that Convex rolls the whole mutation back.
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
import { toArrayBuffer } from "../bytes.ts";
import { listJobDocs } from "./job_list.ts";
import { defaultDeleteBudget, type DeleteBudget, deleteChunkDocs } from "./purge.ts";
import {
  chunkInfoOf,
  jobFields,
  jobOf,
  NEW_SOURCE_BOOKKEEPING,
  type SourceBookkeeping,
  sourceFields,
  sourceOf,
} from "./records.ts";
import type { ChunkDoc, JobDoc, SourceDoc, SyncDbReader, SyncDbWriter } from "./schema.ts";

/** How a store is set up. */
export interface ConvexStoreOptions {
  /** Asks for a background sweep of chunk documents a deletion could not remove at once. */
  requestSweep?: () => Promise<void>;
  /** Chunks this invocation may delete at once (default {@link defaultDeleteBudget}). */
  deleteBudget?: DeleteBudget;
}

// Non-terminal jobs of one conversation: with supersede (the default) each seal leaves
// one, so this bound is never reached in practice.
const ACTIVE_JOBS_BOUND = 256;

const keyOf = (scope: string, id: string): string => `${scope.length}:${scope}:${id}`;

function missing(what: string): SyncError {
  return new SyncError("E_SYNC_INTERNAL", `${what} is not stored`);
}

/** One transaction's view; `wrote` records whether it changed anything. */
interface TransactionState {
  wrote: boolean;
}

/** A {@link SyncStore} over one Convex function invocation. */
export class ConvexStore<TExtras extends object> implements SyncStore<TExtras> {
  readonly transactionalApply = true;
  readonly #db: SyncDbReader;
  readonly #extras: TExtras;
  readonly #options: ConvexStoreOptions;
  readonly #budget: DeleteBudget;
  // Documents read or written by this invocation: all its transactions are one Convex
  // transaction, so a cached document is current until this store changes it.
  readonly #sources = new Map<string, SourceDoc | null>();
  readonly #jobs = new Map<string, JobDoc | null>();
  #current: TransactionState | undefined;
  #failure: { error: unknown } | undefined;
  #sweepRequested = false;

  /** `db` is a mutation's writer, or a query's reader (then every write throws). */
  constructor(db: SyncDbReader, extras: TExtras, options: ConvexStoreOptions = {}) {
    this.#db = db;
    this.#extras = extras;
    this.#options = options;
    this.#budget = options.deleteBudget ?? defaultDeleteBudget();
  }

  /** Set when a transaction body threw after writing: the invocation must roll back. */
  get failure(): { error: unknown } | undefined {
    return this.#failure;
  }

  /** Records that code outside the store (the host's handler) may have written. */
  markForeignWrites(): void {
    if (this.#current) this.#current.wrote = true;
  }

  async transaction<T>(fn: (tx: StoreTransaction<TExtras>) => Promise<T>): Promise<T> {
    const state: TransactionState = { wrote: false };
    const outer = this.#current;
    this.#current = state;
    try {
      return await fn(this.#view(state));
    } catch (error) {
      if (state.wrote) this.#failure ??= { error };
      throw error;
    } finally {
      this.#current = outer;
      if (outer && state.wrote) outer.wrote = true;
    }
  }

  /** Clients learn of job changes through Convex query subscriptions, not through this. */
  subscribeJob(_scope: string, _jobId: string, _listener: () => void): () => void {
    return () => {};
  }

  #writer(state: TransactionState): SyncDbWriter {
    const db = this.#db as Partial<SyncDbWriter>;
    if (typeof db.insert !== "function") {
      throw new SyncError("E_SYNC_INTERNAL", "write attempted in a read-only Convex query");
    }
    state.wrote = true;
    return db as SyncDbWriter;
  }

  async #sourceDoc(scope: string, sourceId: string): Promise<SourceDoc | null> {
    const key = keyOf(scope, sourceId);
    const cached = this.#sources.get(key);
    if (cached !== undefined) return cached;
    const doc = await this.#db.query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", scope).eq("sourceId", sourceId))
      .unique();
    this.#sources.set(key, doc);
    return doc;
  }

  async #jobDoc(scope: string, jobId: string): Promise<JobDoc | null> {
    const key = keyOf(scope, jobId);
    const cached = this.#jobs.get(key);
    if (cached !== undefined) return cached;
    const doc = await this.#db.query("syncJobs")
      .withIndex("by_key", (range) => range.eq("scope", scope).eq("jobId", jobId))
      .unique();
    this.#jobs.set(key, doc);
    return doc;
  }

  /** The source's document when its chunks are readable (not deleted, even logically). */
  async #chunkOwner(scope: string, sourceId: string): Promise<SourceDoc | undefined> {
    const doc = await this.#sourceDoc(scope, sourceId);
    return doc && !doc.purgePending ? doc : undefined;
  }

  async #chunkDoc(scope: string, sourceId: string, index: number): Promise<ChunkDoc | null> {
    const owner = await this.#chunkOwner(scope, sourceId);
    if (!owner) return null;
    return await this.#db.query("syncChunks")
      .withIndex("by_source", (range) => range.eq("source", owner._id).eq("index", index))
      .unique();
  }

  async #putSource(
    state: TransactionState,
    doc: SourceDoc,
    fields: Omit<SourceDoc, "_id" | "_creationTime">,
  ): Promise<void> {
    await this.#writer(state).replace(doc._id, fields);
    this.#sources.set(keyOf(doc.scope, doc.sourceId), {
      ...fields,
      _id: doc._id,
      _creationTime: doc._creationTime,
    });
  }

  async #patchBookkeeping(
    state: TransactionState,
    doc: SourceDoc,
    patch: Partial<SourceBookkeeping>,
  ): Promise<void> {
    const { _id: _, _creationTime: __, ...fields } = doc;
    await this.#putSource(state, doc, { ...fields, ...patch });
  }

  /** A sealed source's chunks become purgeable when its job ends. */
  async #jobEnded(state: TransactionState, job: Job): Promise<void> {
    const source = await this.#sourceDoc(job.scope, job.sourceId);
    if (
      !source || source.state !== "sealed" || source.jobId !== job.jobId ||
      source.chunksPurgedAt !== undefined
    ) {
      return;
    }
    await this.#patchBookkeeping(state, source, {
      purgeable: true,
      purgeAt: job.completedAt ?? job.updatedAt,
    });
  }

  async #requestSweep(): Promise<void> {
    if (this.#sweepRequested) return;
    this.#sweepRequested = true;
    if (!this.#options.requestSweep) {
      throw new SyncError("E_SYNC_INTERNAL", "chunk deletion needs a sweep, none is configured");
    }
    await this.#options.requestSweep();
  }

  #view(state: TransactionState): StoreTransaction<TExtras> {
    const view: StoreTransaction<TExtras> = {
      extras: this.#extras,

      getSource: async (scope, sourceId) => {
        const doc = await this.#sourceDoc(scope, sourceId);
        return doc ? sourceOf(doc) : undefined;
      },
      lockSource: (scope, sourceId) => view.getSource(scope, sourceId),
      insertSource: async (source) => {
        if (await this.#sourceDoc(source.scope, source.sourceId)) return false;
        const fields = sourceFields(source, NEW_SOURCE_BOOKKEEPING);
        const id = await this.#writer(state).insert("syncSources", fields);
        const created = await this.#db.get(id);
        this.#sources.set(keyOf(source.scope, source.sourceId), created);
        return true;
      },
      updateSource: async (source) => {
        const doc = await this.#sourceDoc(source.scope, source.sourceId);
        if (!doc) throw missing(`source ${source.sourceId}`);
        await this.#putSource(state, doc, sourceFields(source, doc));
      },

      getChunkInfo: async (scope, sourceId, index) => {
        const doc = await this.#chunkDoc(scope, sourceId, index);
        return doc ? chunkInfoOf(doc) : undefined;
      },
      getChunk: async (scope, sourceId, index): Promise<Chunk | undefined> => {
        const doc = await this.#chunkDoc(scope, sourceId, index);
        if (!doc) return undefined;
        const stored = await this.#db.get(doc.bytes);
        if (!stored) return undefined;
        return { ...chunkInfoOf(doc), bytes: new Uint8Array(stored.bytes) };
      },
      insertChunk: async (scope, sourceId, chunk) => {
        const owner = await this.#sourceDoc(scope, sourceId);
        if (!owner) throw missing(`source ${sourceId}`);
        const db = this.#writer(state);
        const bytes = await db.insert("syncChunkBytes", { bytes: toArrayBuffer(chunk.bytes) });
        await db.insert("syncChunks", {
          source: owner._id,
          index: chunk.index,
          byteLength: chunk.byteLength,
          sha256: chunk.sha256,
          bytes,
          ...(chunk.itemCount === undefined ? {} : { itemCount: chunk.itemCount }),
        });
        await this.#patchBookkeeping(state, owner, { storedChunks: owner.storedChunks + 1 });
      },
      listChunkInfos: async (scope, sourceId, afterIndex, limit): Promise<ChunkInfo[]> => {
        const owner = await this.#chunkOwner(scope, sourceId);
        if (!owner) return [];
        const docs = await this.#db.query("syncChunks")
          .withIndex("by_source", (range) => range.eq("source", owner._id).gt("index", afterIndex))
          .take(limit);
        return docs.map(chunkInfoOf);
      },
      deleteChunks: async (scope, sourceId) => {
        const owner = await this.#sourceDoc(scope, sourceId);
        if (!owner || (owner.storedChunks === 0 && !owner.purgePending)) return 0;
        const deleted = owner.storedChunks;
        const done = await deleteChunkDocs(this.#writer(state), owner._id, this.#budget);
        await this.#patchBookkeeping(state, owner, { storedChunks: 0, purgePending: !done });
        if (!done) await this.#requestSweep();
        return deleted;
      },

      getJob: async (scope, jobId) => {
        const doc = await this.#jobDoc(scope, jobId);
        return doc ? jobOf(doc) : undefined;
      },
      lockJob: (scope, jobId) => view.getJob(scope, jobId),
      insertJob: async (job) => {
        const id = await this.#writer(state).insert("syncJobs", jobFields(job));
        this.#jobs.set(keyOf(job.scope, job.jobId), await this.#db.get(id));
      },
      updateJob: async (job) => {
        const doc = await this.#jobDoc(job.scope, job.jobId);
        if (!doc) throw missing(`job ${job.jobId}`);
        const fields = jobFields(job);
        await this.#writer(state).replace(doc._id, fields);
        this.#jobs.set(keyOf(job.scope, job.jobId), {
          ...fields,
          _id: doc._id,
          _creationTime: doc._creationTime,
        });
        if (doc.active && !fields.active) await this.#jobEnded(state, job);
      },
      listJobs: async (query: JobListQuery) => (await listJobDocs(this.#db, query)).map(jobOf),
      listActiveJobs: async (scope, conversationId) => {
        const docs = await this.#db.query("syncJobs")
          .withIndex(
            "by_conversation_active",
            (range) =>
              range.eq("scope", scope).eq("conversationId", conversationId).eq("active", true),
          )
          .take(ACTIVE_JOBS_BOUND);
        return docs.map((doc) => this.#remember(doc));
      },

      findClaimableJob: async (now) => {
        const doc = await this.#db.query("syncJobs")
          .withIndex("by_due", (range) => range.eq("active", true).lte("runAt", now))
          .first();
        return doc ? this.#remember(doc) : undefined;
      },

      listExpiredSources: async (now, limit): Promise<Source[]> => {
        const docs = await this.#db.query("syncSources")
          .withIndex("by_expiry", (range) => range.eq("state", "collecting").lte("expiresAt", now))
          .take(limit);
        return docs.map((doc) => this.#rememberSource(doc));
      },
      listPurgeableSources: async (endedBefore, limit): Promise<Source[]> => {
        const docs = await this.#db.query("syncSources")
          .withIndex("by_purge", (range) => range.eq("purgeable", true).lte("purgeAt", endedBefore))
          .take(limit);
        return docs.map((doc) => this.#rememberSource(doc));
      },
    };
    return view;
  }

  #remember(doc: JobDoc): Job {
    this.#jobs.set(keyOf(doc.scope, doc.jobId), doc);
    return jobOf(doc);
  }

  #rememberSource(doc: SourceDoc): Source {
    this.#sources.set(keyOf(doc.scope, doc.sourceId), doc);
    return sourceOf(doc);
  }
}
