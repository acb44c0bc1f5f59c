/**
 * The adapter conformance suite: named, harness-agnostic cases that prove an adapter
 * honours every invariant of the sync lifecycle.
 *
 * ```ts
 * import { test } from "node:test";
 * import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
 * registerConformance(nodeTestRegistrar(test), { factory, capabilities, hooks });
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./runner.ts";
export * from "./assert.ts";
export {
  type AppliedChunk,
  type ApplyScript,
  CaseContext,
  expectSyncError,
  manifestFor,
  ScriptedHandler,
  SUITE_POLICY,
  SUITE_RANDOM_SAMPLE,
  type UploadedSource,
  utf8,
} from "./context.ts";
export { conformanceCases } from "./cases/mod.ts";
export * from "./fixtures.ts";
export { ManualClock } from "../src/clock.ts";
export { ALL_CAPABILITIES, Capability } from "../src/contracts/capabilities.ts";
