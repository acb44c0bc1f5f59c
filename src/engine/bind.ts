/**
 * The operations of an engine as a plain object of bound functions: the part of a
 * `SyncAdapter` every adapter exposes unchanged.
 *
 * @module
 */

import type {
  ConversationLookup,
  OneCallUpload,
  PayloadRelease,
  SourceAbandon,
  SyncOperations,
} from "../contracts/adapter.ts";

/** Everything an engine-backed adapter exposes. */
export type BoundOperations =
  & SyncOperations
  & OneCallUpload
  & ConversationLookup
  & SourceAbandon
  & PayloadRelease;

/**
 * `engine`'s operations, bound, ready to spread into an adapter object (which then
 * declares the `one-call-upload` and `extensions` capabilities, and `release-payloads`
 * where its store implements `releaseChunkPayloads`). It also carries `abandonSource`.
 */
export function bindOperations(engine: BoundOperations): BoundOperations {
  return {
    getLatestSource: (input) => engine.getLatestSource(input),
    abandonSource: (input) => engine.abandonSource(input),
    releasePayloads: (input) => engine.releasePayloads(input),
    uploadSource: (input) => engine.uploadSource(input),
    createSource: (input) => engine.createSource(input),
    appendChunk: (input) => engine.appendChunk(input),
    listChunks: (input) => engine.listChunks(input),
    sealSource: (input) => engine.sealSource(input),
    getSource: (input) => engine.getSource(input),
    getJob: (input) => engine.getJob(input),
    listJobs: (input) => engine.listJobs(input),
    cancelJob: (input) => engine.cancelJob(input),
    waitForTerminal: (input) => engine.waitForTerminal(input),
    gc: (input) => engine.gc(input),
  };
}
