/**
 * The in-memory reference adapter.
 *
 * @module
 */

export { createMemoryAdapter, type MemoryAdapter, type MemoryAdapterOptions } from "./adapter.ts";
export { type JobWriteListener, type MemoryOracle, MemoryStore } from "./store.ts";
