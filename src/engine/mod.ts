/**
 * The lifecycle engine adapters build on.
 *
 * @module
 */

export { bindOperations } from "./bind.ts";
export { SyncEngine, type SyncEngineOptions } from "./engine.ts";
export type { RunDueJobsOptions, RunJobOptions } from "./worker.ts";
