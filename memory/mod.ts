/**
 * The in-memory reference adapter.
 *
 * @module
 */

export { createMemoryAdapter, type MemoryAdapter, type MemoryAdapterOptions } from "./adapter.ts";
export { type JobWriteListener, MemoryStore, type MemoryOracle } from "./store.ts";
