/**
 * The memory adapter as a conformance target: manual mode, shared store for extra
 * workers, oracle reads through the store.
 */

import type {
  ConformanceFactory,
  ConformanceHarness,
  ConformanceOracle,
  HarnessHook,
  SuiteTarget,
} from "../../conformance/mod.ts";
import { createMemoryAdapter, MemoryStore } from "../../memory/mod.ts";
import { SyncEngine } from "../../src/engine/engine.ts";

/** The harness hooks a memory-store harness provides. */
export const MEMORY_HOOKS: readonly HarnessHook[] = [
  "newWorker",
  "peer",
  "readChunk",
  "chunkCount",
  "corruptChunk",
  "readSource",
  "readJob",
];

/** The suite's oracle over a memory store. */
export function memoryOracle(store: MemoryStore): ConformanceOracle {
  return {
    readChunk: (scope, sourceId, index) =>
      Promise.resolve(store.oracle.chunk(scope, sourceId, index)),
    chunkCount: (scope, sourceId) => Promise.resolve(store.oracle.chunkCount(scope, sourceId)),
    corruptChunk: (scope, sourceId, index) => {
      store.oracle.corruptChunk(scope, sourceId, index);
      return Promise.resolve();
    },
    readSource: (scope, sourceId) => Promise.resolve(store.oracle.source(scope, sourceId)),
    readJob: (scope, jobId) => Promise.resolve(store.oracle.job(scope, jobId)),
  };
}

/** A factory building a fresh memory adapter per case. */
export const memoryFactory: ConformanceFactory = (
  { handler, policy, clock, random },
): Promise<ConformanceHarness> => {
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
    adapter,
    drain: async () => {
      await adapter.drain();
    },
    newWorker: (owner) =>
      new SyncEngine({ store, handler, policy, clock, random, workerId: owner }),
    peer: (owner) => {
      // Another adapter over the same store, as a second process sharing it would run.
      const peer = createMemoryAdapter({
        handler,
        policy,
        clock,
        random,
        store,
        mode: "manual",
        workerId: owner,
      });
      return Promise.resolve({ adapter: peer, worker: peer.engine, close: () => peer.close() });
    },
    oracle: memoryOracle(store),
    close: () => adapter.close(),
  });
};

/** The memory adapter as a suite target. */
export function memoryTarget(): SuiteTarget {
  return {
    factory: memoryFactory,
    capabilities: ["concurrent-workers", "one-call-upload", "extensions", "release-payloads"],
    hooks: MEMORY_HOOKS,
  };
}
