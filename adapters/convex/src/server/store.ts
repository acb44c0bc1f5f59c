/**
 * The engine's store primitives over a Convex function's database. One store serves one
 * function invocation: every `transaction` it runs belongs to the invocation's single
 * Convex transaction, which is serialisable, so locks are plain reads (Convex retries a
 * mutation that conflicts with a concurrent one).
 *
 * Convex cannot roll back part of a mutation. A transaction body that throws after
 * writing is undone by compensating writes where every write it made can be (inserts and
 * replacements: the engine retries a seal that must lock more first this way); otherwise
 * (a deletion, a release, the host's writes) it poisons the store (`failure`): the
 * function wrapper must then throw, so that Convex rolls the whole mutation back.
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
import { isPendingRelease, pendingReleaseOf, releaseChunkBytes } from "./release.ts";
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

/** A compensating write that undoes one write of a transaction (and its cache entry). */
type Undo = () => Promise<void>;

/** One transaction's view; `wrote` records whether it changed anything. */
interface TransactionState {
  wrote: boolean;
  /** Undoes the transaction's writes, run last to first. */
  undo: Undo[];
  /** Some write cannot be undone: a throw must roll the whole mutation back. */
  irreversible: boolean;
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
    if (!this.#current) return;
    this.#current.wrote = true;
    this.#current.irreversible = true;
  }

  async transaction<T>(fn: (tx: StoreTransaction<TExtras>) => Promise<T>): Promise<T> {
    const state: TransactionState = { wrote: false, undo: [], irreversible: false };
    const outer = this.#current;
    this.#current = state;
    try {
      return await fn(this.#view(state));
    } catch (error) {
      if (state.wrote) await this.#rollBack(state, error);
      throw error;
    } finally {
      this.#current = outer;
      if (outer && state.wrote) {
        outer.wrote = true;
        outer.undo.push(...state.undo);
        outer.irreversible ||= state.irreversible;
      }
    }
  }

  /** Undoes a failed transaction's writes, or poisons the store when they cannot be. */
  async #rollBack(state: TransactionState, error: unknown): Promise<void> {
    if (state.irreversible) {
      this.#failure ??= { error };
      return;
    }
    try {
      for (const undo of state.undo.reverse()) await undo();
      state.wrote = false;
      state.undo = [];
    } catch {
      this.#failure ??= { error };
    }
  }

  /** Clients learn of job changes through Convex query subscriptions, not through this. */
  subscribeJob(_scope: string, _jobId: string, _listener: () => void): () => void {
    return () => {};
  }

  /** The writer for a write that cannot be undone (see {@link TransactionState}). */
  #writer(state: TransactionState): SyncDbWriter {
    const db = this.#undoableWriter(state);
    state.irreversible = true;
    return db;
  }

  /** The writer for a write whose caller records how to undo it in `state.undo`. */
  #undoableWriter(state: TransactionState): SyncDbWriter {
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
    const db = this.#undoableWriter(state);
    const key = keyOf(doc.scope, doc.sourceId);
    await db.replace(doc._id, fields);
    this.#sources.set(key, { ...fields, _id: doc._id, _creationTime: doc._creationTime });
    const { _id: _, _creationTime: __, ...before } = doc;
    state.undo.push(async () => {
      await db.replace(doc._id, before);
      this.#sources.set(key, doc);
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
   * Drops the bytes of `owner`'s chunks from `from` to `to` within the budget, merged with
   * its pending release where the two ranges meet; what is left becomes (or stays) the
   * pending release, for the sweep. A pending release the new range does not meet is
   * finished first, or the call refused (retryable) when that does not fit.
   */
  async #releaseRange(
    state: TransactionState,
    owner: SourceDoc,
    from: number,
    to: number,
  ): Promise<void> {
    let range = { from, to };
    const pending = pendingReleaseOf(owner);
    if (pending && pending.from <= to && from <= pending.to) {
      range = { from: Math.min(from, pending.from), to: Math.max(to, pending.to) };
    } else if (pending) {
      owner = await this.#finishPendingRelease(state, owner);
    }
    const result = await releaseChunkBytes(
      this.#writer(state),
      owner._id,
      this.#budget,
      range.from,
      range.to,
    );
    await this.#patchBookkeeping(
      state,
      owner,
      result.done
        ? { releasePending: undefined, releaseFrom: undefined, releaseTo: undefined }
        : { releasePending: true, releaseFrom: result.next, releaseTo: range.to },
    );
    if (!result.done) await this.#requestSweep();
  }

  /**
   * Finishes `owner`'s pending release within the budget (before a chunk is stored in its
   * range, or another range is released); refused (retryable) when it does not fit: the
   * sweep, requested by the release, goes on, and a retry then succeeds.
   */
  async #finishPendingRelease(state: TransactionState, owner: SourceDoc): Promise<SourceDoc> {
    const pending = pendingReleaseOf(owner);
    if (!pending) return owner;
    const db = this.#writer(state);
    const { done } = await releaseChunkBytes(db, owner._id, this.#budget, pending.from, pending.to);
    if (!done) {
      // Thrown after writing: the mutation rolls back.
      throw new SyncError(
        "E_SYNC_BACKEND_UNAVAILABLE",
        `chunk payloads of ${owner.sourceId} from index ${pending.from} are still being ` +
          `released; retry shortly`,
        { retryable: true, details: { sourceId: owner.sourceId, fromIndex: pending.from } },
      );
    }
    await this.#patchBookkeeping(state, owner, {
      releasePending: undefined,
      releaseFrom: undefined,
      releaseTo: undefined,
    });
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
        const db = this.#undoableWriter(state);
        const key = keyOf(source.scope, source.sourceId);
        const id = await db.insert("syncSources", fields);
        this.#sources.set(key, await this.#db.get(id));
        state.undo.push(async () => {
          await db.delete(id);
          this.#sources.set(key, null);
        });
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
        // Released: its bytes are gone, or are about to be (a pending release).
        if (!doc || doc.bytes === undefined) return undefined;
        const owner = await this.#sourceDoc(scope, sourceId);
        if (!owner || isPendingRelease(owner, index)) return undefined;
        const stored = await this.#db.get(doc.bytes);
        if (!stored) return undefined;
        return { ...chunkInfoOf(doc), bytes: new Uint8Array(stored.bytes) };
      },
      insertChunk: async (scope, sourceId, chunk) => {
        let owner = await this.#sourceDoc(scope, sourceId);
        if (!owner) throw missing(`source ${sourceId}`);
        if (chunk.index >= readableEnd(owner)) owner = await this.#clearPendingRange(state, owner);
        // The sweep must not drop the new chunk's bytes.
        if (isPendingRelease(owner, chunk.index)) {
          owner = await this.#finishPendingRelease(state, owner);
        }
        const db = this.#undoableWriter(state);
        const bytes = await db.insert("syncChunkBytes", { bytes: toArrayBuffer(chunk.bytes) });
        const id = await db.insert("syncChunks", {
          source: owner._id,
          index: chunk.index,
          byteLength: chunk.byteLength,
          sha256: chunk.sha256,
          bytes,
          ...(chunk.itemCount === undefined ? {} : { itemCount: chunk.itemCount }),
        });
        state.undo.push(async () => {
          await db.delete(id);
          await db.delete(bytes);
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

      releaseChunkPayloads: async (scope, sourceId, fromIndex, toIndex) => {
        const owner = await this.#sourceDoc(scope, sourceId);
        const from = Math.max(0, Math.ceil(fromIndex));
        if (!owner || from >= toIndex) return;
        await this.#releaseRange(state, owner, from, toIndex);
      },

      getJob: async (scope, jobId) => {
        const doc = await this.#jobDoc(scope, jobId);
        return doc ? jobOf(doc) : undefined;
      },
      lockJob: (scope, jobId) => view.getJob(scope, jobId),
      insertJob: async (job) => {
        const db = this.#undoableWriter(state);
        const key = keyOf(job.scope, job.jobId);
        const id = await db.insert("syncJobs", jobFields(job));
        this.#jobs.set(key, await this.#db.get(id));
        state.undo.push(async () => {
          await db.delete(id);
          this.#jobs.set(key, null);
        });
      },
      updateJob: async (job) => {
        const doc = await this.#jobDoc(job.scope, job.jobId);
        if (!doc) throw missing(`job ${job.jobId}`);
        const fields = jobFields(job);
        const db = this.#undoableWriter(state);
        const key = keyOf(job.scope, job.jobId);
        await db.replace(doc._id, fields);
        this.#jobs.set(key, { ...fields, _id: doc._id, _creationTime: doc._creationTime });
        const { _id: _, _creationTime: __, ...before } = doc;
        state.undo.push(async () => {
          await db.replace(doc._id, before);
          this.#jobs.set(key, doc);
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
