/**
 * @zakstam/codex-sync-engine — copy a whole agent conversation into any durable backend
 * and prove the copy complete.
 *
 * - Runtime side: {@link syncConversation} chunks, uploads, seals and awaits a source.
 * - Backend side: {@link SyncEngine} runs the lifecycle over an adapter's store; the
 *   memory adapter (`./memory`) is the reference, the suite (`./conformance`) the proof.
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/contracts/mod.ts";
export {
  bytesToHex,
  compositeDigest,
  EMPTY_COMPOSITE_STATE,
  extendComposite,
  finishComposite,
  hexDigestToBytes,
  IncrementalSha256,
  isHexDigest,
  sha256Hex,
} from "./src/checksum.ts";
export { ManualClock, systemClock } from "./src/clock.ts";
export * from "./src/policy/mod.ts";
export * from "./src/engine/mod.ts";
export * from "./src/client/mod.ts";
