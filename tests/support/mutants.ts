/**
 * Broken adapters for proving the conformance suite catches bugs: the memory store (or
 * the memory store made transactional) or the adapter surface with one seeded defect
 * each. Each mutant names the case that must catch it.
 */

import type {
  ConformanceFactory,
  ConformanceHarness,
  HarnessHook,
  SuiteTarget,
} from "../../conformance/mod.ts";
import { MemoryStore } from "../../memory/mod.ts";
import { EMPTY_COMPOSITE_STATE, sha256Hex } from "../../src/checksum.ts";
import type { SyncAdapter } from "../../src/contracts/adapter.ts";
import type { Capability } from "../../src/contracts/capabilities.ts";
import { isTerminalJobState, type Job, type Source } from "../../src/contracts/domain.ts";
import type { SyncHandler } from "../../src/contracts/handler.ts";
import type { StoreTransaction, SyncStore } from "../../src/contracts/store.ts";
import { bindOperations } from "../../src/engine/bind.ts";
import { SyncEngine } from "../../src/engine/engine.ts";
import { isSyncError } from "../../src/errors.ts";
import { MEMORY_HOOKS, memoryOracle } from "./memory_harness.ts";
import { memoryEffects, TransactionalMemoryStore } from "./transactional_memory.ts";

/** Replaces some transaction operations of a store. */
export type TransactionPatch = (tx: StoreTransaction) => Partial<StoreTransaction>;

/** A store whose transactions have some operations replaced. */
function patchStore(store: SyncStore, patch: TransactionPatch): SyncStore {
  return {
    transactionalApply: store.transactionalApply,
    subscribeJob: (scope, jobId, listener) => store.subscribeJob(scope, jobId, listener),
    // Object.create keeps what the transaction inherits (a transactional store's view).
    transaction: (fn) => store.transaction((tx) => fn(Object.assign(Object.create(tx), patch(tx)))),
  };
}

/** One seeded defect. */
export interface Mutant {
  name: string;
  /** The case (a name prefix) that must catch it: the mutant runs that case only. */
  caughtBy: string;
  /** Defect in the store primitives. */
  store?: TransactionPatch;
  /**
   * Defect in the store primitives that keeps state (a cache, a key map): a fresh patch
   * for each store instance — the adapter, each peer, and the adapter after a restart.
   */
  perStore?: () => TransactionPatch;
  /**
   * Defect in the store beyond its transactions (notification, commit); `transactional`
   * is the memory store made transactional, on a transactional mutant.
   */
  wrapStore?: (
    store: SyncStore,
    memory: MemoryStore,
    transactional?: TransactionalMemoryStore,
  ) => SyncStore;
  /** Defect in the adapter surface. */
  adapter?: (adapter: SyncAdapter) => Partial<SyncAdapter>;
  /** Defect in what the engine hands the host's handler. */
  handler?: (handler: SuiteHandler) => SuiteHandler;
  /**
   * The target declares `durable` and a `restart` hook (a new engine over the same memory
   * store); this defect appears in the store primitives only after a restart.
   */
  afterRestart?: TransactionPatch;
  /**
   * Over the memory store made transactional (`transactional-apply`, the handler in the
   * store's transaction); with the `effects` hook unless `effects` is false.
   */
  transactional?: boolean;
  effects?: boolean;
}

type SuiteHandler = SyncHandler<Record<string, unknown>>;

const BASE_CAPABILITIES: readonly Capability[] = [
  "concurrent-workers",
  "one-call-upload",
  "extensions",
  "release-payloads",
];

function mutantFactory(mutant: Mutant): ConformanceFactory {
  return ({ handler: suiteHandler, policy, clock, random }) => {
    const memory = new MemoryStore();
    const transactional = mutant.transactional ? new TransactionalMemoryStore(memory) : undefined;
    const base = (transactional ?? memory) as SyncStore;
    const handler = mutant.handler ? mutant.handler(suiteHandler) : suiteHandler;
    let restarted = false;
    /** A store instance as one process opens it: the defects, fresh state. */
    const openStore = (): SyncStore => {
      let store = base;
      if (mutant.store) store = patchStore(store, mutant.store);
      if (mutant.perStore) store = patchStore(store, mutant.perStore());
      if (restarted && mutant.afterRestart) store = patchStore(store, mutant.afterRestart);
      return mutant.wrapStore ? mutant.wrapStore(store, memory, transactional) : store;
    };
    const open = (over: SyncStore, workerId: string) =>
      new SyncEngine({ store: over, handler, policy, clock, random, workerId });
    const target = mutantTarget(mutant);
    const surface = (engine: SyncEngine<Record<string, unknown>>): SyncAdapter => {
      const base: SyncAdapter = { capabilities: target.capabilities, ...bindOperations(engine) };
      return mutant.adapter ? { ...base, ...mutant.adapter(base) } : base;
    };
    let current = openStore();
    let engine = open(current, "main");
    const harness: ConformanceHarness = {
      adapter: surface(engine),
      drain: async () => {
        while (await engine.runDueJobs() > 0) { /* until idle */ }
      },
      newWorker: (owner) => open(current, owner),
      peer: (owner) => {
        const peer = open(openStore(), owner);
        return Promise.resolve({
          adapter: surface(peer),
          worker: peer,
          close: () => Promise.resolve(),
        });
      },
      restart: target.capabilities.includes("durable")
        ? () => {
          restarted = true;
          current = openStore();
          engine = open(current, "main");
          return Promise.resolve(surface(engine));
        }
        : undefined,
      oracle: memoryOracle(memory),
      close: () => Promise.resolve(),
    };
    if (transactional && mutant.effects !== false) harness.effects = memoryEffects(transactional);
    return Promise.resolve(harness);
  };
}

/** The suite target of a mutant. */
export function mutantTarget(mutant: Mutant): SuiteTarget {
  const capabilities: Capability[] = [...BASE_CAPABILITIES];
  const hooks: HarnessHook[] = [...MEMORY_HOOKS];
  if (mutant.afterRestart !== undefined) {
    capabilities.push("durable");
    hooks.push("restart");
  }
  if (mutant.transactional) {
    capabilities.push("transactional-apply");
    if (mutant.effects !== false) hooks.push("effects");
  }
  return { factory: mutantFactory(mutant), capabilities, hooks };
}

/**
 * The unbroken memory store with a restart hook (a new engine over the same store): the
 * control for mutants that break only after a restart.
 */
export const DURABLE_CONTROL: Mutant = {
  name: "control: a restart opens a new engine over the same memory store",
  caughtBy: "",
  afterRestart: () => ({}),
};

/**
 * The unbroken memory store made transactional, with the effects and restart hooks: the
 * control for the transactional mutants.
 */
export const TRANSACTIONAL_CONTROL: Mutant = {
  name: "control: the memory store made transactional",
  caughtBy: "",
  afterRestart: () => ({}),
  transactional: true,
};

/**
 * A store whose release keeps the bytes (it only says they are released): not a defect,
 * the control proving the `release:` cases ask for nothing a client cannot observe.
 */
export const KEEPS_BYTES_CONTROL: Mutant = {
  name: "control: releaseChunkPayloads keeps the bytes",
  caughtBy: "",
  store: () => ({ releaseChunkPayloads: () => Promise.resolve() }),
  afterRestart: () => ({}),
};

/** A source record as an adapter that forgot the extension fields would read it back. */
function withoutExtensionFields(source: Source | undefined): Source | undefined {
  if (!source) return source;
  const { base: _base, chunkHome: _home, digestState: _state, ...rest } = source;
  return rest;
}

/** A job record without its `base` (as a backend lacking the column reads it back). */
function withoutJobBase(job: Job | undefined): Job | undefined {
  if (!job) return job;
  const { base: _base, ...rest } = job;
  return rest;
}

/** The other suite scope (mutants that look across scopes). */
function otherScope(scope: string): string {
  return scope === "scope-a" ? "scope-b" : "scope-a";
}

/** The non-terminal jobs of both suite scopes, oldest first (mutants that pick a claim). */
async function activeJobsOldestFirst(tx: StoreTransaction): Promise<Job[]> {
  const jobs: Job[] = [];
  for (const scope of ["scope-a", "scope-b"]) {
    jobs.push(...await tx.listJobs({ scope, limit: 100_000 }));
  }
  return jobs.filter((job) => !isTerminalJobState(job.state)).sort((a, b) =>
    a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0)
  );
}

/** A store instance that fences commits with the jobs it wrote itself, when it has them. */
function rememberingStore(reads: readonly ("getJob" | "lockJob")[]): () => TransactionPatch {
  return () => {
    const remembered = new Map<string, Job>();
    const key = (scope: string, jobId: string) => `${scope.length}:${scope}:${jobId}`;
    return (tx) => {
      const remember = async (job: Job, write: (job: Job) => Promise<void>) => {
        await write(job);
        remembered.set(key(job.scope, job.jobId), structuredClone(job));
      };
      const patch: Partial<StoreTransaction> = {
        insertJob: (job) => remember(job, (j) => tx.insertJob(j)),
        updateJob: (job) => remember(job, (j) => tx.updateJob(j)),
      };
      for (const read of reads) {
        patch[read] = async (scope: string, jobId: string) => {
          const known = remembered.get(key(scope, jobId));
          return known ? structuredClone(known) : await tx[read](scope, jobId);
        };
      }
      return patch;
    };
  };
}

/** A store whose transactions commit what they wrote even when their body throws. */
function withoutRollback(store: SyncStore): SyncStore {
  return {
    transactionalApply: store.transactionalApply,
    subscribeJob: (scope, jobId, listener) => store.subscribeJob(scope, jobId, listener),
    transaction: async (fn) => {
      let failure: { error: unknown } | undefined;
      const result = await store.transaction(async (tx) => {
        try {
          return await fn(tx);
        } catch (error) {
          failure = { error };
          return undefined as never;
        }
      });
      if (failure) throw failure.error;
      return result;
    },
  };
}

/** A source without falsy metadata, as a store writing `metadata || null` keeps it. */
function withoutFalsyMetadata(source: Source): Source {
  if (source.metadata === undefined || source.metadata) return source;
  const { metadata: _metadata, ...rest } = source;
  return rest;
}

/** A source without falsy manifest data. */
function withoutFalsyData(source: Source): Source {
  if (!source.manifest || source.manifest.data === undefined || source.manifest.data) return source;
  const { data: _data, ...manifest } = source.manifest;
  return { ...source, manifest };
}

/** Every seeded defect. */
export const MUTANTS: readonly Mutant[] = [
  {
    name: "accepts a conflicting chunk (index lookup always misses, so it overwrites)",
    caughtBy: "append: other bytes at a stored index conflict",
    store: () => ({ getChunkInfo: () => Promise.resolve(undefined) }),
  },
  {
    name: "ignores scope on source reads",
    caughtBy: "scope: appendChunk in another scope",
    store: (tx) => {
      const anyScope = async (scope: string, sourceId: string) =>
        await tx.getSource(scope, sourceId) ??
          await tx.getSource(scope === "scope-a" ? "scope-b" : "scope-a", sourceId);
      return { getSource: anyScope, lockSource: anyScope };
    },
  },
  {
    name: "skips the chunk digest check (trusts the bytes, rewrites the declared digest)",
    caughtBy: "append: a checksum mismatch is refused",
    adapter: (base) => ({
      appendChunk: async (input) =>
        base.appendChunk({
          ...input,
          sha256: input?.bytes instanceof Uint8Array ? await sha256Hex(input.bytes) : input?.sha256,
        }),
    }),
  },
  {
    name: "re-seal creates a new job (sealed state not read back)",
    caughtBy: "seal: sealing again with the same manifest returns the same job",
    store: (tx) => {
      const forgetful = async (scope: string, sourceId: string) => {
        const source = await tx.getSource(scope, sourceId);
        return source?.state === "sealed" ? { ...source, state: "collecting" as const } : source;
      };
      return { getSource: forgetful, lockSource: forgetful };
    },
  },
  {
    name: "ignores cancel (cancelled state is never written)",
    caughtBy: "cancel: a queued job is cancelled",
    store: (tx) => ({
      updateJob: (job) => job.state === "cancelled" ? Promise.resolve() : tx.updateJob(job),
    }),
  },
  {
    name: "commits with a stale token (a new claim's lease is not persisted)",
    caughtBy: "lease: a stale worker's commits are refused",
    store: (tx) => ({
      updateJob: async (job) => {
        const stored = await tx.getJob(job.scope, job.jobId);
        if (stored?.lease && job.lease && job.lease.token > stored.lease.token) {
          return await tx.updateJob({ ...job, lease: stored.lease });
        }
        return await tx.updateJob(job);
      },
    }),
  },
  {
    name: "applies a chunk twice (progress of odd chunks is not persisted)",
    caughtBy: "apply: a fault-free run applies chunks 0..n-1 in order, each once",
    store: (tx) => ({
      updateJob: async (job) => {
        const stored = await tx.getJob(job.scope, job.jobId);
        if (
          stored && job.cursor === stored.cursor + 1 && job.cursor % 2 === 1 &&
          job.state === "running"
        ) {
          return await tx.updateJob({ ...job, cursor: stored.cursor });
        }
        return await tx.updateJob(job);
      },
    }),
  },
  {
    name: "reports terminal early (wait returns the current snapshot)",
    caughtBy: "wait: resolves with the terminal snapshot once the job finishes",
    adapter: (base) => ({
      waitForTerminal: (input) => base.getJob({ scope: input?.scope, jobId: input?.jobId }),
    }),
  },
  {
    name: "claims a job whose lease is still held",
    caughtBy: "concurrency: racing claims hand a due job to exactly one worker",
    store: (tx) => ({
      findClaimableJob: async (now) => {
        const due = await tx.findClaimableJob(now);
        if (due) return due;
        const leased = await tx.listJobs({ scope: "scope-a", limit: 1000 });
        const running = leased.find((job) => job.state === "running");
        return running ? { ...running, runAt: now } : undefined;
      },
    }),
  },
  {
    name: "failed seal is not persisted (failed state never written)",
    caughtBy: "seal: a gap (chunks 0 and 2 of 3) fails the source durably",
    store: (tx) => ({
      updateSource: (source) =>
        source.state === "failed" ? Promise.resolve() : tx.updateSource(source),
    }),
  },
  {
    name: "gc expires live sources (ignores the TTL)",
    caughtBy: "gc: a collecting source past its TTL expires",
    store: (tx) => ({
      listExpiredSources: (_now, limit) => tx.listExpiredSources(Number.MAX_SAFE_INTEGER, limit),
    }),
  },
  {
    name: "lists jobs oldest first",
    caughtBy: "list: jobs come newest first",
    store: (tx) => ({
      listJobs: async (query) => (await tx.listJobs({ ...query, limit: 100_000 })).reverse(),
    }),
  },
  {
    name: "cancel does not fence the worker (a cancelled job reads back as its worker's)",
    caughtBy: "cancel: a queued job is cancelled and never runs",
    store: (tx) => {
      const unfenced = async (scope: string, jobId: string) => {
        const job = await tx.getJob(scope, jobId);
        if (job?.state !== "cancelled") return job;
        const lease = { owner: "main", token: job.leaseToken, expiresAt: Number.MAX_SAFE_INTEGER };
        return { ...job, state: "running" as const, lease };
      };
      return { getJob: unfenced, lockJob: unfenced };
    },
  },
  // Extension sources (capability `extensions`).
  {
    name: "extensions: getLatestSource ignores the scope (falls back to another scope's source)",
    caughtBy: "extensions: latest: null without a sealed source; another scope",
    adapter: (base) => ({
      getLatestSource: async (input) =>
        await base.getLatestSource!(input) ??
          await base.getLatestSource!({ ...input, scope: otherScope(input.scope) }),
    }),
  },
  {
    name: "extensions: getLatestSource returns a source whose chunks were purged",
    caughtBy: "extensions: latest: a source whose chunks were purged is not returned",
    adapter: (base) => ({
      getLatestSource: async (input) => {
        const jobs = await base.listJobs({ ...input, limit: 8 });
        for (const job of jobs.items) {
          const source = await base.getSource({ scope: input.scope, sourceId: job.sourceId });
          if (source.state === "sealed") return source;
        }
        return null;
      },
    }),
  },
  {
    name: "extensions: listChunks of an extended base lists the extension's chunks too",
    caughtBy: "extensions: list: the base lists exactly its own chunks after it was extended",
    adapter: (base) => ({
      listChunks: async (input) => {
        if (typeof input !== "object" || input === null) return await base.listChunks(input);
        const source = await base.getSource({ scope: input.scope, sourceId: input.sourceId });
        if (source.extendedBy === undefined) return await base.listChunks(input);
        return await base.listChunks({ ...input, sourceId: source.extendedBy });
      },
    }),
  },
  {
    name: "extensions: createSource does not check the base's conversation (adopts it)",
    caughtBy: "extensions: create: a base of another conversation is E_SYNC_INVALID_ARGUMENT",
    adapter: (base) => ({
      createSource: async (input) => {
        if (input?.baseSourceId === undefined) return await base.createSource(input);
        const named = await base.getSource({ scope: input.scope, sourceId: input.baseSourceId });
        return await base.createSource({ ...input, conversationId: named.conversationId });
      },
    }),
  },
  {
    name: "extensions: a base of another scope is found (sealed sources read across scopes)",
    caughtBy: "extensions: create: a missing base or a base of another scope",
    store: (tx) => {
      const sealedAnywhere = async (scope: string, sourceId: string) => {
        const own = await tx.lockSource(scope, sourceId);
        if (own) return own;
        const other = await tx.lockSource(otherScope(scope), sourceId);
        return other?.state === "sealed" ? { ...other, scope } : undefined;
      };
      return { lockSource: sealedAnywhere };
    },
  },
  {
    name: "extensions: appendChunk at a reused index accepts any bytes",
    caughtBy: "extensions: append: a reused index with the base's bytes is not appended",
    adapter: (base) => ({
      appendChunk: async (input) => {
        if (typeof input !== "object" || input === null) return await base.appendChunk(input);
        const source = await base.getSource({ scope: input.scope, sourceId: input.sourceId });
        if (source.base && input.index < source.base.chunkCount) {
          const chunk = {
            index: input.index,
            byteLength: input.bytes.length,
            sha256: input.sha256,
          };
          return { appended: false, chunk, source };
        }
        return await base.appendChunk(input);
      },
    }),
  },
  {
    name: "extensions: the base's extendedBy is never stored (two extensions of one base win)",
    caughtBy: "extensions: create: a base already extended is E_SYNC_CHUNK_CONFLICT",
    store: (tx) => ({
      updateSource: (source) => {
        const { extendedBy: _extendedBy, ...rest } = source;
        return tx.updateSource(rest);
      },
    }),
  },
  {
    name: "extensions: the chunk home's user count is never stored (retention deletes the " +
      "chunks a live extension needs)",
    caughtBy: "extensions: gc: purging a base keeps the chunks its collecting extension needs",
    store: (tx) => ({
      updateSource: (source) => {
        const { homeRefs: _homeRefs, ...rest } = source;
        return tx.updateSource(rest);
      },
    }),
  },
  {
    name: "extensions: deleteChunks ignores fromIndex (an expiring extension deletes its " +
      "base's chunks)",
    caughtBy: "extensions: gc: an expired collecting extension loses only its own chunks",
    store: (tx) => ({ deleteChunks: (scope, sourceId) => tx.deleteChunks(scope, sourceId) }),
  },
  {
    name: "extensions: the saved digest state is not stored (the seal hashes the new chunks only)",
    caughtBy: "extensions: seal: the manifest covers all n chunks",
    store: (tx) => {
      const strip = (source: Source) => {
        const { digestState: _state, ...rest } = source;
        return rest;
      };
      return {
        insertSource: (source) => tx.insertSource(strip(source)),
        updateSource: (source) => tx.updateSource(strip(source)),
      };
    },
  },
  {
    name: "extensions: an extension's job is stored without its start (always applies from 0)",
    caughtBy: "extensions: job: after the base's job succeeded, the job starts at k",
    store: (tx) => ({
      insertJob: (job) => {
        if (!job.base) return tx.insertJob(job);
        const { base: _base, ...rest } = job;
        return tx.insertJob({
          ...rest,
          cursor: 0,
          appliedBytes: 0,
          appliedDigestState: EMPTY_COMPOSITE_STATE,
        });
      },
    }),
  },
  {
    name: "extensions: the handler is not told ctx.base",
    caughtBy: "extensions: job: after the base's job succeeded, the job starts at k",
    handler: (inner) => ({
      apply: (chunk, context) => inner.apply(chunk, { ...context, base: undefined }),
      verify: (context) => inner.verify?.(context),
    }),
  },
  {
    name: "extensions: an expired extension does not free its base (extendedBy never cleared)",
    caughtBy: "extensions: gc: an expired collecting extension loses only its own chunks",
    store: (tx) => ({
      updateSource: async (source) => {
        const stored = await tx.getSource(source.scope, source.sourceId);
        const extendedBy = source.extendedBy ?? stored?.extendedBy;
        return await tx.updateSource(extendedBy === undefined ? source : { ...source, extendedBy });
      },
    }),
  },
  {
    name: "extensions: the newest-job check sees another scope's jobs of the conversation id",
    caughtBy: "extensions: job: a newer job of the same conversation id in another scope",
    store: (tx) => ({
      listJobs: async (query) => {
        if (query.conversationId === undefined || query.limit !== 2) {
          return await tx.listJobs(query);
        }
        const both = [
          ...await tx.listJobs({ ...query, limit: 1000 }),
          ...await tx.listJobs({ ...query, scope: otherScope(query.scope), limit: 1000 }),
        ];
        return both.sort((a, b) => b.createdAt - a.createdAt).slice(0, query.limit);
      },
    }),
  },
  {
    name: "extensions: uploadSource falls back to a full source when the base is refused",
    caughtBy: "extensions: upload: a missing base is refused with E_SYNC_SOURCE_NOT_FOUND",
    adapter: (base) => ({
      uploadSource: async (input) => {
        try {
          return await base.uploadSource!(input);
        } catch (error) {
          if (typeof input !== "object" || input?.baseSourceId === undefined) throw error;
          const { baseSourceId: _base, ...rest } = input;
          return await base.uploadSource!({ ...rest, chunks: [] });
        }
      },
    }),
  },
  {
    name: "extensions: a chain's links do not share one chunk home (a link's chunks are " +
      "looked up under its base's id)",
    caughtBy: "extensions: chain: six links each upload only their new chunks",
    store: (tx) => ({
      insertSource: (source) =>
        tx.insertSource(
          source.base && source.chunkHome !== undefined
            ? { ...source, chunkHome: source.base.sourceId }
            : source,
        ),
    }),
  },
  {
    name: "extensions: a restart drops the extension fields of sources and jobs",
    caughtBy: "extensions: durability: an extension and its base link survive a restart",
    afterRestart: (tx) => ({
      getSource: async (scope, sourceId) =>
        withoutExtensionFields(await tx.getSource(scope, sourceId)),
      lockSource: async (scope, sourceId) =>
        withoutExtensionFields(await tx.lockSource(scope, sourceId)),
      getJob: async (scope, jobId) => withoutJobBase(await tx.getJob(scope, jobId)),
      lockJob: async (scope, jobId) => withoutJobBase(await tx.lockJob(scope, jobId)),
    }),
  },
  // Releasing payloads (capability release-payloads).
  {
    name: "release: releaseChunkPayloads deletes the chunks (their metadata is lost)",
    caughtBy: "release: a verified, current source's payloads are released; its metadata stays",
    store: (tx) => ({
      releaseChunkPayloads: async (scope, sourceId, fromIndex) => {
        await tx.deleteChunks(scope, sourceId, fromIndex);
      },
    }),
  },
  {
    name: "release: an extension of a released source is stored to apply from 0 (over " +
      "released bytes)",
    caughtBy: "release: an extension of a released source starts at k",
    store: (tx) => ({
      insertJob: (job) => {
        if (!job.base) return tx.insertJob(job);
        const { base: _base, ...rest } = job;
        return tx.insertJob({
          ...rest,
          cursor: 0,
          appliedBytes: 0,
          appliedDigestState: EMPTY_COMPOSITE_STATE,
        });
      },
    }),
  },
  {
    name: "release: the chunk home's released count is never stored (an extension that " +
      "would start at 0 is accepted)",
    caughtBy: "release: an extension whose job would start at 0 is refused at create",
    store: (tx) => ({
      updateSource: (source) => {
        const { releasedChunks: _count, ...rest } = source;
        return tx.updateSource(rest);
      },
    }),
  },
  {
    name: "release: the seal reads the released count without the lock (a raced extension's " +
      "job starts at 0)",
    caughtBy: "release: an extension whose base stopped being current before its seal",
    store: (tx) => ({
      getSource: async (scope, sourceId) => {
        const source = await tx.getSource(scope, sourceId);
        if (!source) return source;
        const { releasedChunks: _count, ...rest } = source;
        return rest;
      },
    }),
  },
  {
    name: "release: the conversation's active jobs are not seen (a source is released while " +
      "a job runs)",
    caughtBy: "release: a source that is not sealed, verified and current is refused",
    store: () => ({ listActiveJobs: () => Promise.resolve([]) }),
  },
  {
    name: "release: a restart drops the release fields of sources",
    caughtBy: "release: durability: a released source and its marker survive a restart",
    afterRestart: (tx) => {
      const strip = (source: Source | undefined) => {
        if (!source) return source;
        const { releasedChunks: _count, payloadsReleasedAt: _at, ...rest } = source;
        return rest;
      };
      return {
        getSource: async (scope, sourceId) => strip(await tx.getSource(scope, sourceId)),
        lockSource: async (scope, sourceId) => strip(await tx.lockSource(scope, sourceId)),
      };
    },
  },
  // Issue 12: invariants the suite checks since.
  {
    name: "claims due jobs in creation order, not earliest runAt first",
    caughtBy: "claim: due jobs are claimed earliest runAt first",
    store: (tx) => ({
      findClaimableJob: async (now) =>
        (await activeJobsOldestFirst(tx)).find((job) => job.runAt <= now),
    }),
  },
  {
    name: "looks only at the oldest active job (a job waiting to retry holds back due ones)",
    caughtBy: "claim: a job waiting to retry never holds back another due job",
    store: (tx) => ({
      findClaimableJob: async (now) => {
        const [oldest] = await activeJobsOldestFirst(tx);
        return oldest && oldest.runAt <= now ? oldest : undefined;
      },
    }),
  },
  {
    name: "lists chunks by offset, not by index (sparse indexes skip chunks)",
    caughtBy: "append: listChunks pages by index over sparse, out-of-order indexes",
    store: (tx) => ({
      listChunkInfos: async (scope, sourceId, afterIndex, limit) =>
        (await tx.listChunkInfos(scope, sourceId, -1, Number.MAX_SAFE_INTEGER))
          .slice(afterIndex + 1, afterIndex + 1 + limit),
    }),
  },
  {
    name: "an idempotent re-append reads the stored chunk without its itemCount",
    caughtBy: "append: itemCount (0 included) survives",
    store: (tx) => ({
      getChunkInfo: async (scope, sourceId, index) => {
        const info = await tx.getChunkInfo(scope, sourceId, index);
        if (!info) return info;
        const { itemCount: _itemCount, ...rest } = info;
        return rest;
      },
    }),
  },
  {
    name: "an itemCount of 0 is stored as no itemCount",
    caughtBy: "append: itemCount (0 included) survives",
    store: (tx) => ({
      insertChunk: (scope, sourceId, chunk) => {
        if (chunk.itemCount !== 0) return tx.insertChunk(scope, sourceId, chunk);
        const { itemCount: _itemCount, ...rest } = chunk;
        return tx.insertChunk(scope, sourceId, rest);
      },
    }),
  },
  {
    name: 'source keys join scope and id with \':\' ("a:b"+"c" is "a"+"b:c")',
    caughtBy: "scope: ids that collide once scope and id are joined stay distinct records",
    perStore: () => {
      const owners = new Map<string, { scope: string; sourceId: string }>();
      return (tx) => {
        const owner = (scope: string, sourceId: string) =>
          owners.get(`${scope}:${sourceId}`) ?? { scope, sourceId };
        return {
          getSource: (scope, sourceId) => {
            const key = owner(scope, sourceId);
            return tx.getSource(key.scope, key.sourceId);
          },
          lockSource: (scope, sourceId) => {
            const key = owner(scope, sourceId);
            return tx.lockSource(key.scope, key.sourceId);
          },
          insertSource: async (source) => {
            const key = owner(source.scope, source.sourceId);
            if (key.scope !== source.scope || key.sourceId !== source.sourceId) return false;
            const inserted = await tx.insertSource(source);
            if (inserted) owners.set(`${source.scope}:${source.sourceId}`, key);
            return inserted;
          },
        };
      };
    },
  },
  {
    name: "deleteChunks deletes the source id's chunks in every scope",
    caughtBy: "scope: gc and chunk deletion in one scope never touch another scope's source",
    store: (tx) => ({
      deleteChunks: async (scope, sourceId, fromIndex) => {
        const own = await tx.deleteChunks(scope, sourceId, fromIndex);
        await tx.deleteChunks(otherScope(scope), sourceId, fromIndex);
        return own;
      },
    }),
  },
  {
    name: "gc expires a source only after its expiresAt (the instant itself is not expired)",
    caughtBy: "time: a collecting source expires at exactly expiresAt",
    store: (tx) => ({
      listExpiredSources: (now, limit) => tx.listExpiredSources(now - 1, limit),
    }),
  },
  {
    name: "gc purges only after retention ended (the instant itself is not past retention)",
    caughtBy: "time: retention ends at exactly completedAt + retentionMs",
    store: (tx) => ({
      listPurgeableSources: (endedBefore, limit) => tx.listPurgeableSources(endedBefore - 1, limit),
    }),
  },
  {
    name: "a lease is claimable only after its expiresAt (the instant itself still holds it)",
    caughtBy: "time: a lease is claimable at exactly its expiresAt",
    store: (tx) => ({
      findClaimableJob: async (now) => {
        const job = await tx.findClaimableJob(now);
        return job?.lease && job.runAt >= now ? undefined : job;
      },
    }),
  },
  {
    name: "gc's purge phase ignores limit",
    caughtBy: "gc: each phase (expiry, purge) honours limit",
    store: (tx) => ({
      listPurgeableSources: (endedBefore) => tx.listPurgeableSources(endedBefore, 1_000_000),
    }),
  },
  {
    name: "deleting all of a source's chunks reports 0 deleted (gc under-counts)",
    caughtBy: "gc: each phase (expiry, purge) honours limit",
    store: (tx) => ({
      deleteChunks: async (scope, sourceId, fromIndex) => {
        const deleted = await tx.deleteChunks(scope, sourceId, fromIndex);
        return fromIndex === undefined ? 0 : deleted;
      },
    }),
  },
  {
    name: 'falsy metadata (false, 0, "", null) is not stored',
    caughtBy: "json: metadata and manifest data of every JSON kind round-trip",
    store: (tx) => ({
      insertSource: (source) => tx.insertSource(withoutFalsyMetadata(source)),
      updateSource: (source) => tx.updateSource(withoutFalsyMetadata(source)),
    }),
  },
  {
    name: 'falsy manifest data (false, 0, "", null) is not stored',
    caughtBy: "json: metadata and manifest data of every JSON kind round-trip",
    store: (tx) => ({
      updateSource: (source) => tx.updateSource(withoutFalsyData(source)),
    }),
  },
  {
    name: "supersede skips running jobs (only queued and retry_wait are active)",
    caughtBy: "seal: a newer source supersedes a running job",
    store: (tx) => ({
      listActiveJobs: async (scope, conversationId) =>
        (await tx.listActiveJobs(scope, conversationId)).filter((job) => job.state !== "running"),
    }),
  },
  {
    name: "supersede skips verifying jobs",
    caughtBy: "seal: a newer source supersedes a verifying job",
    store: (tx) => ({
      listActiveJobs: async (scope, conversationId) =>
        (await tx.listActiveJobs(scope, conversationId)).filter((job) => job.state !== "verifying"),
    }),
  },
  {
    name: "a superseded job's change is not notified (its waiters and worker are not woken)",
    caughtBy: "seal: a newer source supersedes a running job",
    wrapStore: (store, memory) => ({
      transactionalApply: store.transactionalApply,
      transaction: (fn) => store.transaction(fn),
      subscribeJob: (scope, jobId, listener) =>
        store.subscribeJob(scope, jobId, () => {
          const job = memory.oracle.job(scope, jobId);
          if (job?.error?.code !== "E_SYNC_JOB_SUPERSEDED") listener();
        }),
    }),
  },
  {
    name: "a restart forgets the attempts of an abandoned lease (a crash loop never ends)",
    caughtBy: "durability: a chunk whose worker dies every time fails the job",
    afterRestart: (tx) => {
      const forget = (job: Job | undefined) => (job?.lease ? { ...job, attempt: 0 } : job);
      return {
        getJob: async (scope, jobId) => forget(await tx.getJob(scope, jobId)),
        lockJob: async (scope, jobId) => forget(await tx.lockJob(scope, jobId)),
        findClaimableJob: async (now) => forget(await tx.findClaimableJob(now)),
      };
    },
  },
  {
    name: "chunk commits keep the claim's lease expiry (a long job runs on an expired lease)",
    caughtBy: "lease: a job outliving its lease renews it at every chunk",
    transactional: true,
    store: (tx) => ({
      updateJob: async (job) => {
        const stored = await tx.getJob(job.scope, job.jobId);
        const held = stored?.lease !== undefined && stored.lease.token === job.lease?.token;
        return await tx.updateJob(
          held ? { ...job, lease: stored!.lease, runAt: stored!.runAt } : job,
        );
      },
    }),
  },
  {
    name: "heartbeats are not persisted",
    caughtBy: "lease: heartbeats renew a blocked handler's lease in the store",
    store: (tx) => ({
      updateJob: async (job) => {
        const stored = await tx.getJob(job.scope, job.jobId);
        const heartbeat = stored?.lease !== undefined && stored.state === job.state &&
          stored.cursor === job.cursor && stored.attempt === job.attempt &&
          stored.lease.token === job.lease?.token &&
          stored.lease.expiresAt !== job.lease.expiresAt;
        if (!heartbeat) await tx.updateJob(job);
      },
    }),
  },
  {
    name: "waitForTerminal takes timeoutMs 0 for no timeout",
    caughtBy: "wait: timeoutMs 0 resolves a terminal job at once",
    adapter: (base) => ({
      waitForTerminal: (input) => {
        if (input?.timeoutMs !== 0) return base.waitForTerminal(input);
        const { timeoutMs: _timeoutMs, ...rest } = input;
        return base.waitForTerminal(rest);
      },
    }),
  },
  {
    name: "waitForTerminal misses an already-aborted signal (waits for an abort event)",
    caughtBy: "wait: an already-aborted signal settles at once",
    adapter: (base) => ({
      waitForTerminal: (input) =>
        base.waitForTerminal(
          input?.signal?.aborted ? { ...input, signal: new AbortController().signal } : input,
        ),
    }),
  },
  {
    name: "waitForTerminal waits forever for an unknown job",
    caughtBy: "wait: an unknown job is E_SYNC_JOB_NOT_FOUND at once",
    adapter: (base) => ({
      waitForTerminal: (input) =>
        base.waitForTerminal(input).catch((error) => {
          if (isSyncError(error) && error.code === "E_SYNC_JOB_NOT_FOUND") {
            return new Promise<Job>(() => {});
          }
          throw error;
        }),
    }),
  },
  {
    name: "a worker's commit checks the job its own instance last wrote, not the stored one",
    caughtBy: "fencing: a cancel made through another adapter instance",
    perStore: rememberingStore(["lockJob"]),
  },
  {
    name: "a worker reads and commits the job its own instance last wrote, not the stored one",
    caughtBy: "fencing: a claim made through another adapter instance",
    perStore: rememberingStore(["getJob", "lockJob"]),
  },
  {
    name: "transactional: a transaction whose body threw commits its writes (no rollback)",
    caughtBy: "transactional apply: a handler that writes its effect then throws",
    transactional: true,
    wrapStore: (store) => withoutRollback(store),
  },
  {
    name: "transactional, without the effects hook: a transaction whose body threw is retried " +
      "(the handler runs twice per attempt)",
    caughtBy: "rollback: a short job failing among others rolls back only itself",
    transactional: true,
    effects: false,
    wrapStore: (store) => ({
      transactionalApply: store.transactionalApply,
      subscribeJob: (scope, jobId, listener) => store.subscribeJob(scope, jobId, listener),
      transaction: async (fn) => {
        try {
          return await store.transaction(fn);
        } catch {
          return await store.transaction(fn);
        }
      },
    }),
  },
  {
    name: "transactional: the handler's effects are written outside the transaction",
    caughtBy: "transactional apply: short jobs run together leave one effect each",
    transactional: true,
    wrapStore: (store, _memory, transactional) => ({
      transactionalApply: store.transactionalApply,
      subscribeJob: (scope, jobId, listener) => store.subscribeJob(scope, jobId, listener),
      transaction: (fn) =>
        store.transaction((tx) =>
          fn(Object.assign(Object.create(tx), {
            extras: { effect: (entry: string) => void transactional!.committed.push(entry) },
          }))
        ),
    }),
  },
];
