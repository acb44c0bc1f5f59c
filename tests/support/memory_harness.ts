/**
 * The memory adapter as a conformance target: manual mode, shared store for extra
 * workers, oracle reads through the store.
 */

import type { ConformanceFactory, ConformanceHarness, SuiteTarget } from "../../conformance/mod.ts";
import { createMemoryAdapter, type MemoryAdapter, MemoryStore } from "../../memory/mod.ts";
import { SyncEngine } from "../../src/engine/engine.ts";
import type { SyncAdapter } from "../../src/contracts/adapter.ts";

/** Wraps the adapter (used by the mutation tests to seed bugs). */
export type AdapterWrapper = (adapter: MemoryAdapter) => SyncAdapter;

/** A factory building a fresh memory adapter per case. */
export function memoryFactory(wrap: AdapterWrapper = (adapter) => adapter): ConformanceFactory {
  return ({ handler, policy, clock, random }): Promise<ConformanceHarness> => {
    const store = new MemoryStore();
    const adapter = createMemoryAdapter({
      handler,
      policy,
      clock,
      random,
      store,
      mode: "manual",
      workerId: "main",
    });
    return Promise.resolve({
      adapter: wrap(adapter),
      drain: async () => {
        await adapter.drain();
      },
      newWorker: (owner) =>
        new SyncEngine({ store, handler, policy, clock, random, workerId: owner }),
      oracle: {
        readChunk: (scope, sourceId, index) =>
          Promise.resolve(store.oracle.chunk(scope, sourceId, index)),
        chunkCount: (scope, sourceId) => Promise.resolve(store.oracle.chunkCount(scope, sourceId)),
        corruptChunk: (scope, sourceId, index) => {
          store.oracle.corruptChunk(scope, sourceId, index);
          return Promise.resolve();
        },
        readSource: (scope, sourceId) => Promise.resolve(store.oracle.source(scope, sourceId)),
        readJob: (scope, jobId) => Promise.resolve(store.oracle.job(scope, jobId)),
      },
      close: () => adapter.close(),
    });
  };
}

/** The memory adapter as a suite target. */
export function memoryTarget(wrap?: AdapterWrapper): SuiteTarget {
  return {
    factory: memoryFactory(wrap),
    capabilities: ["concurrent-workers"],
    hooks: ["newWorker", "readChunk", "chunkCount", "corruptChunk", "readSource", "readJob"],
  };
}
