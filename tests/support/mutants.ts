/**
 * Broken adapters for proving the conformance suite catches bugs: the memory store or
 * the adapter surface with one seeded defect each.
 */

import type { ConformanceFactory, HarnessHook, SuiteTarget } from "../../conformance/mod.ts";
import { MemoryStore } from "../../memory/mod.ts";
import { EMPTY_COMPOSITE_STATE, sha256Hex } from "../../src/checksum.ts";
import type { SyncAdapter } from "../../src/contracts/adapter.ts";
import type { Capability } from "../../src/contracts/capabilities.ts";
import type { Job, Source } from "../../src/contracts/domain.ts";
import type { SyncHandler } from "../../src/contracts/handler.ts";
import type { StoreTransaction, SyncStore } from "../../src/contracts/store.ts";
import { bindOperations } from "../../src/engine/bind.ts";
import { SyncEngine } from "../../src/engine/engine.ts";
import { MEMORY_HOOKS, memoryOracle } from "./memory_harness.ts";

/** Replaces some transaction operations of a store. */
export type TransactionPatch = (tx: StoreTransaction) => Partial<StoreTransaction>;

/** A store whose transactions have some operations replaced. */
function patchStore(store: SyncStore, patch: TransactionPatch): SyncStore {
  return {
    transactionalApply: store.transactionalApply,
    subscribeJob: (scope, jobId, listener) => store.subscribeJob(scope, jobId, listener),
    transaction: (fn) => store.transaction((tx) => fn({ ...tx, ...patch(tx) })),
  };
}

/** One seeded defect. */
export interface Mutant {
  name: string;
  /** A case whose name starts with this must be among the failures (the right reason). */
  caughtBy: string;
  /** Defect in the store primitives. */
  store?: TransactionPatch;
  /** Defect in the adapter surface. */
  adapter?: (adapter: SyncAdapter) => Partial<SyncAdapter>;
  /** Defect in what the engine hands the host's handler. */
  handler?: (handler: SuiteHandler) => SuiteHandler;
  /**
   * The target declares `durable` and a `restart` hook (a new engine over the same memory
   * store); this defect appears in the store primitives only after a restart.
   */
  afterRestart?: TransactionPatch;
}

type SuiteHandler = SyncHandler<Record<string, unknown>>;

const BASE_CAPABILITIES: readonly Capability[] = [
  "concurrent-workers",
  "one-call-upload",
  "extensions",
];

function mutantFactory(mutant: Mutant): ConformanceFactory {
  return ({ handler: suiteHandler, policy, clock, random }) => {
    const memory = new MemoryStore();
    const store = mutant.store ? patchStore(memory, mutant.store) : memory;
    const handler = mutant.handler ? mutant.handler(suiteHandler) : suiteHandler;
    const open = (over: SyncStore, workerId: string) =>
      new SyncEngine({ store: over, handler, policy, clock, random, workerId });
    const capabilities = mutantTarget(mutant).capabilities;
    const surface = (engine: SyncEngine<Record<string, unknown>>): SyncAdapter => {
      const base: SyncAdapter = { capabilities, ...bindOperations(engine) };
      return mutant.adapter ? { ...base, ...mutant.adapter(base) } : base;
    };
    let current = store;
    let engine = open(current, "main");
    return Promise.resolve({
      adapter: surface(engine),
      drain: async () => {
        while (await engine.runDueJobs() > 0) { /* until idle */ }
      },
      newWorker: (owner) => open(current, owner),
      restart: mutant.afterRestart === undefined ? undefined : () => {
        current = patchStore(store, mutant.afterRestart!);
        engine = open(current, "main");
        return Promise.resolve(surface(engine));
      },
      oracle: memoryOracle(memory),
      close: () => Promise.resolve(),
    });
  };
}

/** The suite target of a mutant. */
export function mutantTarget(mutant: Mutant): SuiteTarget {
  const durable = mutant.afterRestart !== undefined;
  return {
    factory: mutantFactory(mutant),
    capabilities: durable ? [...BASE_CAPABILITIES, "durable"] : BASE_CAPABILITIES,
    hooks: durable ? [...MEMORY_HOOKS, "restart"] as HarnessHook[] : MEMORY_HOOKS,
  };
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
];
