/**
 * Broken adapters for proving the conformance suite catches bugs: the memory store or
 * the adapter surface with one seeded defect each.
 */

import type { ConformanceFactory, SuiteTarget } from "../../conformance/mod.ts";
import { MemoryStore } from "../../memory/mod.ts";
import { sha256Hex } from "../../src/checksum.ts";
import type { SyncAdapter } from "../../src/contracts/adapter.ts";
import type { StoreTransaction, SyncStore } from "../../src/contracts/store.ts";
import { bindOperations } from "../../src/engine/bind.ts";
import { SyncEngine } from "../../src/engine/engine.ts";
import { MEMORY_HOOKS, memoryOracle } from "./memory_harness.ts";

/** Replaces some transaction operations of a store. */
export type TransactionPatch = (tx: StoreTransaction) => Partial<StoreTransaction>;

/** A store whose transactions have some operations replaced. */
function patchStore(store: MemoryStore, patch: TransactionPatch): SyncStore {
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
}

function mutantFactory(mutant: Mutant): ConformanceFactory {
  return ({ handler, policy, clock, random }) => {
    const memory = new MemoryStore();
    const store = mutant.store ? patchStore(memory, mutant.store) : memory;
    const engine = new SyncEngine({ store, handler, policy, clock, random, workerId: "main" });
    const base: SyncAdapter = {
      capabilities: ["concurrent-workers", "one-call-upload", "extensions"],
      ...bindOperations(engine),
    };
    const adapter = mutant.adapter ? { ...base, ...mutant.adapter(base) } : base;
    return Promise.resolve({
      adapter,
      drain: async () => {
        while (await engine.runDueJobs() > 0) { /* until idle */ }
      },
      newWorker: (owner) =>
        new SyncEngine({ store, handler, policy, clock, random, workerId: owner }),
      oracle: memoryOracle(memory),
      close: () => Promise.resolve(),
    });
  };
}

/** The suite target of a mutant. */
export function mutantTarget(mutant: Mutant): SuiteTarget {
  return {
    factory: mutantFactory(mutant),
    capabilities: ["concurrent-workers", "one-call-upload", "extensions"],
    hooks: MEMORY_HOOKS,
  };
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
];
