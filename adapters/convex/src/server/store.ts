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
  /**
   * Chunk documents this invocation may read to count what a partial deletion left to the
   * sweep (default {@link COUNT_BUDGET}).
   */
  countBudget?: number;
}

/**
 * Default of {@link ConvexStoreOptions.countBudget}: a quarter of the 32 000 documents a
 * Convex transaction reads.
 */
export const COUNT_BUDGET = 8192;

// Non-terminal jobs of one conversation: with supersede (the default) each seal leaves
// one, so this bound is never reached in practice.
const ACTIVE_JOBS_BOUND = 256;

const keyOf = (scope: string, id: string): string => `${scope.length}:${scope}:${id}`;

function missing(what: string): SyncError {
  return new SyncError("E_SYNC_INTERNAL", `${what} is not stored`);
}

/**
 * The index up to which a source's chunk documents are readable: the chunks from its
 * pending deletion's `purgeFrom` on (all while a whole deletion is pending) are hidden.
 */
function readableEnd(doc: SourceDoc): number {
  return doc.purgePending ? doc.purgeFrom ?? 0 : Number.POSITIVE_INFINITY;
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
  #countBudget: number;
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
    this.#countBudget = options.countBudget ?? COUNT_BUDGET;
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

  async #chunkDoc(scope: string, sourceId: string, index: number): Promise<ChunkDoc | null> {
    const owner = await this.#sourceDoc(scope, sourceId);
    if (!owner || index >= readableEnd(owner)) return null;
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
    const next = { ...fields, ...patch };
    // A field patched to `undefined` is dropped (a replaced document has no undefined).
    for (const key of Object.keys(patch) as (keyof typeof patch)[]) {
      if (patch[key] === undefined) delete next[key];
    }
    await this.#putSource(state, doc, next);
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

  /**
   * Finishes the pending deletion of `owner`'s chunks before a chunk is stored where they
   * were, so that the sweep cannot delete the new one. What does not fit this transaction's
   * budget is refused (retryable): the sweep, requested by the deletion, runs at once, and a
   * retry then succeeds.
   */
  async #clearPendingRange(state: TransactionState, owner: SourceDoc): Promise<SourceDoc> {
    const from = owner.purgeFrom ?? 0;
    const { done } = await deleteChunkDocs(this.#writer(state), owner._id, this.#budget, from);
    if (!done) {
      // Thrown after writing: the mutation rolls back; the sweep already requested goes on.
      throw new SyncError(
        "E_SYNC_BACKEND_UNAVAILABLE",
        `chunks of ${owner.sourceId} from index ${from} are still being deleted; retry shortly`,
        { retryable: true, details: { sourceId: owner.sourceId, fromIndex: from } },
      );
    }
    await this.#patchBookkeeping(state, owner, { purgePending: false, purgeFrom: undefined });
    return (await this.#sourceDoc(owner.scope, owner.sourceId))!;
  }

  /**
   * Live chunk documents of `owner` with `next <= index < end`, read within the count
   * budget; undefined when there are more than it allows.
   */
  async #countLive(owner: SourceDoc, next: number, end: number): Promise<number | undefined> {
    if (next >= end) return 0;
    const docs = await this.#db.query("syncChunks")
      .withIndex("by_source", (range) => {
        const from = range.eq("source", owner._id).gte("index", next);
        return end === Number.POSITIVE_INFINITY ? from : from.lt("index", end);
      })
      .take(this.#countBudget + 1);
    if (docs.length > this.#countBudget) return undefined;
    this.#countBudget -= docs.length;
    return docs.length;
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
        let owner = await this.#sourceDoc(scope, sourceId);
        if (!owner) throw missing(`source ${sourceId}`);
        if (chunk.index >= readableEnd(owner)) owner = await this.#clearPendingRange(state, owner);
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
        const owner = await this.#sourceDoc(scope, sourceId);
        if (!owner) return [];
        const end = readableEnd(owner);
        if (afterIndex + 1 >= end) return [];
        const docs = await this.#db.query("syncChunks")
          .withIndex("by_source", (range) => {
            const after = range.eq("source", owner._id).gt("index", afterIndex);
            return end === Number.POSITIVE_INFINITY ? after : after.lt("index", end);
          })
          .take(limit);
        return docs.map(chunkInfoOf);
      },
      deleteChunks: async (scope, sourceId, fromIndex) => {
        const owner = await this.#sourceDoc(scope, sourceId);
        if (!owner) return 0;
        const from = fromIndex === undefined ? 0 : Math.max(0, Math.ceil(fromIndex));
        // Chunks from `end` on are deleted already (logically): only those below count.
        const end = readableEnd(owner);
        if (from >= end || (owner.storedChunks === 0 && !owner.purgePending)) return 0;
        const result = await deleteChunkDocs(
          this.#writer(state),
          owner._id,
          this.#budget,
          from,
          end,
        );
        let deleted: number;
        if (from === 0) deleted = owner.storedChunks;
        else if (result.done) deleted = result.live;
        else {
          const rest = await this.#countLive(owner, result.next, end);
          // Past the count budget: the chunks below `from` are taken as all stored, as they
          // are in a chunk home (the sealed sources an extension reuses).
          deleted = rest === undefined
            ? Math.min(owner.storedChunks, Math.max(result.live, owner.storedChunks - from))
            : result.live + rest;
        }
        const patch: Partial<SourceBookkeeping> = {
          storedChunks: owner.storedChunks - deleted,
          purgePending: !result.done,
          purgeFrom: result.done || from === 0 ? undefined : from,
        };
        await this.#patchBookkeeping(state, owner, patch);
        if (!result.done) await this.#requestSweep();
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
