/**
 * Domain types, input schemas, the adapter contract, the store primitives and the
 * capability flags.
 *
 * @module
 */

export * from "./domain.ts";
export * from "./inputs.ts";
export * from "./adapter.ts";
export * from "./store.ts";
export * from "./handler.ts";
export * from "./clock.ts";
export * from "./capabilities.ts";
