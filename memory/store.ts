/**
 * The in-memory store: the reference implementation of the store primitives.
 * Transactions are serialised by a mutex and rolled back with an undo log; readers get
 * copies, so nothing outside a transaction can change a stored record.
 *
 * @module
 */

import type { Chunk, ChunkInfo, Job, Source } from "../src/contracts/domain.ts";
import { isTerminalJobState } from "../src/contracts/domain.ts";
import type {
  JobListener,
  JobListQuery,
  StoreTransaction,
  SyncStore,
} from "../src/contracts/store.ts";

type Key = string;

const key = (scope: string, id: string): Key => `${scope.length}:${scope}:${id}`;

/** A stored chunk; without `bytes` once its payload was released. */
type StoredChunk = ChunkInfo & { bytes?: Uint8Array };

/** Per-source chunk storage: chunks by index plus the indexes kept sorted. */
interface ChunkTable {
  byIndex: Map<number, StoredChunk>;
  sorted: number[];
}

function insertSorted(sorted: number[], index: number): void {
  if (sorted.length === 0 || sorted[sorted.length - 1] < index) {
    sorted.push(index);
    return;
  }
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < index) lo = mid + 1;
    else hi = mid;
  }
  sorted.splice(lo, 0, index);
}

/** First position in `sorted` holding a value greater than `after`. */
function firstAfter(sorted: number[], after: number): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function compareNewestFirst(a: Job, b: Job): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.jobId < b.jobId ? 1 : a.jobId > b.jobId ? -1 : 0;
}

/** A copy of the chunk with its bytes; undefined when missing or released. */
function copyChunk(chunk: StoredChunk | undefined): Chunk | undefined {
  return chunk?.bytes ? { ...chunk, bytes: chunk.bytes.slice() } : undefined;
}

function info(chunk: StoredChunk): ChunkInfo {
  const out: ChunkInfo = { index: chunk.index, byteLength: chunk.byteLength, sha256: chunk.sha256 };
  if (chunk.itemCount !== undefined) out.itemCount = chunk.itemCount;
  return out;
}

/** Listener told about every committed job write (for schedulers). */
export type JobWriteListener = (job: Job) => void;

function conversationKeyOf(scope: string, conversationId: string): string {
  return JSON.stringify([scope, conversationId]);
}

/** The in-memory store. Several engines may share one (concurrent workers). */
export class MemoryStore implements SyncStore {
  readonly transactionalApply = false;
  readonly #sources = new Map<Key, Source>();
  readonly #chunks = new Map<Key, ChunkTable>();
  readonly #jobs = new Map<Key, Job>();
  readonly #activeJobs = new Set<Key>();
  readonly #jobsByScope = new Map<string, Set<Key>>();
  /** Jobs of one conversation, so a conversation's listing does not walk its scope's jobs. */
  readonly #jobsByConversation = new Map<string, Set<Key>>();
  readonly #jobListeners = new Map<Key, Set<JobListener>>();
  readonly #writeListeners = new Set<JobWriteListener>();
  #lock: Promise<void> = Promise.resolve();

  /** Runs `fn` alone; its writes are undone if it throws. */
  async transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const previous = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((resolve) => (release = resolve));
    await previous;
    const undo: Array<() => void> = [];
    const written = new Map<Key, Job>();
    try {
      const result = await fn(this.#transactionView(undo, written));
      release();
      for (const [jobKey, job] of written) this.#announce(jobKey, job);
      return result;
    } catch (error) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]();
      release();
      throw error;
    }
  }

  subscribeJob(scope: string, jobId: string, listener: JobListener): () => void {
    const jobKey = key(scope, jobId);
    let listeners = this.#jobListeners.get(jobKey);
    if (!listeners) this.#jobListeners.set(jobKey, listeners = new Set());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.#jobListeners.delete(jobKey);
    };
  }

  /** Earliest `runAt` of the non-terminal jobs, if any. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const jobKey of this.#activeJobs) {
      const runAt = this.#jobs.get(jobKey)!.runAt;
      if (next === undefined || runAt < next) next = runAt;
    }
    return next;
  }

  /** Calls `listener` after every committed job write; returns an unsubscribe. */
  onJobWrite(listener: JobWriteListener): () => void {
    this.#writeListeners.add(listener);
    return () => this.#writeListeners.delete(listener);
  }

  /** Direct access for tests and the conformance suite's oracle (bypasses the engine). */
  readonly oracle: MemoryOracle = {
    chunk: (scope, sourceId, index) =>
      copyChunk(this.#chunks.get(key(scope, sourceId))?.byIndex.get(index)),
    chunkCount: (scope, sourceId) => this.#chunks.get(key(scope, sourceId))?.sorted.length ?? 0,
    corruptChunk: (scope, sourceId, index) => {
      const chunk = this.#chunks.get(key(scope, sourceId))?.byIndex.get(index);
      if (!chunk?.bytes) return false;
      chunk.bytes[0] ^= 0xff;
      return true;
    },
    source: (scope, sourceId) => {
      const source = this.#sources.get(key(scope, sourceId));
      return source ? structuredClone(source) : undefined;
    },
    job: (scope, jobId) => {
      const job = this.#jobs.get(key(scope, jobId));
      return job ? structuredClone(job) : undefined;
    },
    totals: () => {
      let chunks = 0;
      let bytes = 0;
      for (const table of this.#chunks.values()) {
        for (const chunk of table.byIndex.values()) {
          chunks++;
          bytes += chunk.bytes?.length ?? 0;
        }
      }
      return { chunks, bytes, sources: this.#sources.size, jobs: this.#jobs.size };
    },
  };

  #announce(jobKey: Key, job: Job): void {
    for (const listener of [...(this.#jobListeners.get(jobKey) ?? [])]) {
      listener(structuredClone(job));
    }
    for (const listener of [...this.#writeListeners]) listener(structuredClone(job));
  }

  #putJob(jobKey: Key, job: Job, undo: Array<() => void>, written: Map<Key, Job>): void {
    const previous = this.#jobs.get(jobKey);
    const wasActive = this.#activeJobs.has(jobKey);
    const stored = structuredClone(job);
    this.#jobs.set(jobKey, stored);
    if (isTerminalJobState(stored.state)) this.#activeJobs.delete(jobKey);
    else this.#activeJobs.add(jobKey);
    let scopeJobs = this.#jobsByScope.get(job.scope);
    if (!scopeJobs) this.#jobsByScope.set(job.scope, scopeJobs = new Set());
    const wasListed = scopeJobs.has(jobKey);
    scopeJobs.add(jobKey);
    const conversationKey = conversationKeyOf(job.scope, job.conversationId);
    let conversationJobs = this.#jobsByConversation.get(conversationKey);
    if (!conversationJobs) {
      this.#jobsByConversation.set(conversationKey, conversationJobs = new Set());
    }
    conversationJobs.add(jobKey);
    written.set(jobKey, stored);
    undo.push(() => {
      if (previous) this.#jobs.set(jobKey, previous);
      else this.#jobs.delete(jobKey);
      if (wasActive) this.#activeJobs.add(jobKey);
      else this.#activeJobs.delete(jobKey);
      if (!wasListed) {
        scopeJobs.delete(jobKey);
        conversationJobs.delete(jobKey);
      }
      written.delete(jobKey);
    });
  }

  #putSource(source: Source, undo: Array<() => void>): void {
    const sourceKey = key(source.scope, source.sourceId);
    const previous = this.#sources.get(sourceKey);
    this.#sources.set(sourceKey, structuredClone(source));
    undo.push(() => {
      if (previous) this.#sources.set(sourceKey, previous);
      else this.#sources.delete(sourceKey);
    });
  }

  #transactionView(undo: Array<() => void>, written: Map<Key, Job>): StoreTransaction {
    // Transactions run one at a time, so a lock is a plain read.
    const view: StoreTransaction = {
      extras: {},
      getSource: (scope, sourceId) => {
        const source = this.#sources.get(key(scope, sourceId));
        return Promise.resolve(source ? structuredClone(source) : undefined);
      },
      lockSource: (scope, sourceId) => view.getSource(scope, sourceId),
      insertSource: (source) => {
        if (this.#sources.has(key(source.scope, source.sourceId))) return Promise.resolve(false);
        this.#putSource(source, undo);
        return Promise.resolve(true);
      },
      updateSource: (source) => Promise.resolve(this.#putSource(source, undo)),
      getChunkInfo: (scope, sourceId, index) => {
        const chunk = this.#chunks.get(key(scope, sourceId))?.byIndex.get(index);
        return Promise.resolve(chunk ? info(chunk) : undefined);
      },
      getChunk: (scope, sourceId, index) =>
        Promise.resolve(copyChunk(this.#chunks.get(key(scope, sourceId))?.byIndex.get(index))),
      insertChunk: (scope, sourceId, chunk) => {
        const sourceKey = key(scope, sourceId);
        let table = this.#chunks.get(sourceKey);
        const created = !table;
        if (!table) this.#chunks.set(sourceKey, table = { byIndex: new Map(), sorted: [] });
        const target = table;
        // The engine hands over bytes it owns (copied before hashing): kept as they are.
        target.byIndex.set(chunk.index, chunk);
        insertSorted(target.sorted, chunk.index);
        undo.push(() => {
          target.byIndex.delete(chunk.index);
          target.sorted.splice(firstAfter(target.sorted, chunk.index - 1), 1);
          if (created) this.#chunks.delete(sourceKey);
        });
        return Promise.resolve();
      },
      listChunkInfos: (scope, sourceId, afterIndex, limit) => {
        const table = this.#chunks.get(key(scope, sourceId));
        if (!table) return Promise.resolve([]);
        const start = firstAfter(table.sorted, afterIndex);
        const indexes = table.sorted.slice(start, start + limit);
        return Promise.resolve(indexes.map((index) => info(table.byIndex.get(index)!)));
      },
      deleteChunks: (scope, sourceId, fromIndex = 0) => {
        const sourceKey = key(scope, sourceId);
        const table = this.#chunks.get(sourceKey);
        if (!table) return Promise.resolve(0);
        const start = firstAfter(table.sorted, fromIndex - 1);
        if (start === 0) {
          this.#chunks.delete(sourceKey);
          undo.push(() => this.#chunks.set(sourceKey, table));
          return Promise.resolve(table.sorted.length);
        }
        const removed = table.sorted.splice(start);
        const chunks = removed.map((index) => table.byIndex.get(index)!);
        for (const index of removed) table.byIndex.delete(index);
        undo.push(() => {
          for (const chunk of chunks) table.byIndex.set(chunk.index, chunk);
          table.sorted.push(...removed);
        });
        return Promise.resolve(removed.length);
      },
      releaseChunkPayloads: (scope, sourceId, fromIndex, toIndex) => {
        const table = this.#chunks.get(key(scope, sourceId));
        if (!table) return Promise.resolve();
        const start = firstAfter(table.sorted, fromIndex - 1);
        const end = firstAfter(table.sorted, toIndex - 1);
        const kept: StoredChunk[] = [];
        for (const index of table.sorted.slice(start, end)) {
          const chunk = table.byIndex.get(index)!;
          if (!chunk.bytes) continue;
          kept.push(chunk);
          table.byIndex.set(index, info(chunk));
        }
        undo.push(() => {
          for (const chunk of kept) table.byIndex.set(chunk.index, chunk);
        });
        return Promise.resolve();
      },
      getJob: (scope, jobId) => {
        const job = this.#jobs.get(key(scope, jobId));
        return Promise.resolve(job ? structuredClone(job) : undefined);
      },
      lockJob: (scope, jobId) => view.getJob(scope, jobId),
      insertJob: (job) =>
        Promise.resolve(this.#putJob(key(job.scope, job.jobId), job, undo, written)),
      updateJob: (job) =>
        Promise.resolve(this.#putJob(key(job.scope, job.jobId), job, undo, written)),
      listJobs: (query) => Promise.resolve(this.#listJobs(query)),
      listActiveJobs: (scope, conversationId) => {
        const out: Job[] = [];
        for (const jobKey of this.#activeJobs) {
          const job = this.#jobs.get(jobKey)!;
          if (job.scope === scope && job.conversationId === conversationId) {
            out.push(structuredClone(job));
          }
        }
        return Promise.resolve(out);
      },
      findClaimableJob: (now) => {
        let best: Job | undefined;
        for (const jobKey of this.#activeJobs) {
          const job = this.#jobs.get(jobKey)!;
          if (job.runAt <= now && (best === undefined || job.runAt < best.runAt)) best = job;
        }
        return Promise.resolve(best ? structuredClone(best) : undefined);
      },
      listExpiredSources: (now, limit) => {
        const out: Source[] = [];
        for (const source of this.#sources.values()) {
          if (out.length >= limit) break;
          if (source.state === "collecting" && source.expiresAt <= now) {
            out.push(structuredClone(source));
          }
        }
        return Promise.resolve(out);
      },
      listPurgeableSources: (endedBefore, limit) => {
        const out: Source[] = [];
        for (const source of this.#sources.values()) {
          if (out.length >= limit) break;
          if (source.chunksPurgedAt !== undefined) continue;
          const endedAt = this.#endedAt(source);
          if (endedAt !== undefined && endedAt <= endedBefore) out.push(structuredClone(source));
        }
        return Promise.resolve(out);
      },
    };
    return view;
  }

  /** When a source's chunks stopped being needed, if they did. */
  #endedAt(source: Source): number | undefined {
    if (source.state === "failed" || source.state === "expired") return source.updatedAt;
    if (source.state !== "sealed" || source.jobId === undefined) return undefined;
    const job = this.#jobs.get(key(source.scope, source.jobId));
    return job && isTerminalJobState(job.state) ? job.completedAt : undefined;
  }

  #listJobs(query: JobListQuery): Job[] {
    const out: Job[] = [];
    const listed = query.conversationId === undefined
      ? this.#jobsByScope.get(query.scope)
      : this.#jobsByConversation.get(conversationKeyOf(query.scope, query.conversationId));
    for (const jobKey of listed ?? []) {
      const job = this.#jobs.get(jobKey)!;
      if (query.conversationId !== undefined && job.conversationId !== query.conversationId) {
        continue;
      }
      if (query.state !== undefined && job.state !== query.state) continue;
      if (query.after !== undefined && compareNewestFirst(job, query.after as Job) <= 0) continue;
      out.push(job);
    }
    return out.sort(compareNewestFirst).slice(0, query.limit).map((job) => structuredClone(job));
  }
}

/** Reads and faults that bypass the engine, for tests and the conformance oracle. */
export interface MemoryOracle {
  /** The chunk with its bytes; undefined when missing or its payload was released. */
  chunk(scope: string, sourceId: string, index: number): Chunk | undefined;
  chunkCount(scope: string, sourceId: string): number;
  /** Flips the first byte of a stored chunk (simulated storage corruption). */
  corruptChunk(scope: string, sourceId: string, index: number): boolean;
  source(scope: string, sourceId: string): Source | undefined;
  job(scope: string, jobId: string): Job | undefined;
  /** Records stored in all: chunk rows and their bytes, sources and jobs. */
  totals(): { chunks: number; bytes: number; sources: number; jobs: number };
}
