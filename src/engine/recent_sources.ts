/**
 * Source records as this engine's one-step uploads last stored them, kept (a bounded
 * number, the oldest dropped first) as guesses for its next one-step extension: the next
 * link of a live conversation extends the source the engine just stored, in the chunk
 * home whose root it just updated, so the step can be built without reading either.
 *
 * Only a guess: the step stores nothing unless every record it was built from is still
 * stored exactly so, and a declined step drops the guesses it used and is built again from
 * reads. A stale entry (another process wrote the record since) costs one declined
 * statement, never a wrong write.
 *
 * @module
 */

import type { Source } from "../contracts/domain.ts";

function keyOf(scope: string, sourceId: string): string {
  return `${scope.length}:${scope}:${sourceId}`;
}

/** A bounded map from (scope, sourceId) to the record a one-step upload stored. */
export class RecentSources {
  readonly #max: number;
  /** Map order is insertion order: the oldest first. */
  readonly #records = new Map<string, Source>();

  constructor(max: number) {
    this.#max = max;
  }

  /** How many records are held. */
  get size(): number {
    return this.#records.size;
  }

  /** The record as this engine last stored it, if it still holds it. */
  get(scope: string, sourceId: string): Source | undefined {
    return this.#records.get(keyOf(scope, sourceId));
  }

  /** Keeps records a step just committed (replacing older ones of the same sources). */
  remember(sources: Iterable<Source>): void {
    for (const source of sources) {
      const key = keyOf(source.scope, source.sourceId);
      this.#records.delete(key);
      this.#records.set(key, source);
    }
    for (const key of this.#records.keys()) {
      if (this.#records.size <= this.#max) break;
      this.#records.delete(key);
    }
  }

  /** Drops a record that may no longer be what is stored. */
  forget(scope: string, sourceId: string): void {
    this.#records.delete(keyOf(scope, sourceId));
  }
}
