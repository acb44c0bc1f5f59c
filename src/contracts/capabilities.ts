/**
 * Capability flags an adapter declares; conformance cases that need one are skipped,
 * by name, where it is absent.
 *
 * @module
 */

/** Typed capability constants. */
export const Capability = {
  /** Records survive a restart of the adapter (and of its process). */
  durable: "durable",
  /** Several workers may run jobs against the same store at once. */
  concurrentWorkers: "concurrent-workers",
  /** The handler runs inside the transaction that commits the job's progress. */
  transactionalApply: "transactional-apply",
  /** `uploadSource` creates, appends and seals a small source in one atomic call. */
  oneCallUpload: "one-call-upload",
  /** Sources extend a sealed base by reference, and `getLatestSource` finds the base. */
  extensions: "extensions",
  /**
   * `releasePayloads` drops the chunk bytes of a verified, current source while keeping
   * their metadata, so the next extension of it starts at its chunk count.
   */
  releasePayloads: "release-payloads",
} as const;

/** One capability flag. */
export type Capability = typeof Capability[keyof typeof Capability];

/** Every capability flag. */
export const ALL_CAPABILITIES: readonly Capability[] = Object.values(Capability);
