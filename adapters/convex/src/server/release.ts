/**
 * Dropping chunk bytes within a transaction's budget (`releasePayloads`). A chunk document
 * stays with its digest and size; its bytes document is deleted and its `bytes` field
 * removed. What does not fit is left to the background sweep (the worker's `sweep` task);
 * until then the source's pending release (`releaseFrom`..`releaseTo`) makes those chunks
 * read as released, so no job reads bytes a release has dropped.
 *
 * @module
 */

import type { GenericId } from "convex/values";
import { type DeleteBudget, PAGE } from "./purge.ts";
import type { SourceDoc, SyncDbWriter } from "./schema.ts";

/** What one {@link releaseChunkBytes} call did. */
export interface ReleasedChunkBytes {
  /** No chunk document with bytes is left in the range. */
  done: boolean;
  /** Every chunk document in the range with an index below this one has no bytes. */
  next: number;
}

/** The pending release of `doc`, if any: the chunk index range still to drop bytes from. */
export function pendingReleaseOf(doc: SourceDoc): { from: number; to: number } | undefined {
  const { releasePending, releaseFrom, releaseTo } = doc;
  if (!releasePending || releaseFrom === undefined || releaseTo === undefined) return undefined;
  return { from: releaseFrom, to: releaseTo };
}

/** Whether chunk `index` of `doc` reads as released because of a pending release. */
export function isPendingRelease(doc: SourceDoc, index: number): boolean {
  const pending = pendingReleaseOf(doc);
  return pending !== undefined && index >= pending.from && index < pending.to;
}

/**
 * Drops the bytes of the chunk documents of `source` with `fromIndex <= index < toIndex`,
 * lowest index first, while `budget` lasts. Every document visited costs one unit of
 * `budget.chunks` (released ones too, so a range already released is still bounded);
 * dropped bytes count against `budget.bytes`.
 */
export async function releaseChunkBytes(
  db: SyncDbWriter,
  source: GenericId<"syncSources">,
  budget: DeleteBudget,
  fromIndex: number,
  toIndex: number,
): Promise<ReleasedChunkBytes> {
  const range = (from: number) =>
    db.query("syncChunks")
      .withIndex(
        "by_source",
        (r) => r.eq("source", source).gte("index", from).lt("index", toIndex),
      );
  let next = fromIndex;
  while (budget.chunks > 0 && budget.bytes > 0) {
    const page = await range(next).take(Math.min(PAGE, budget.chunks));
    if (page.length === 0) return { done: true, next: toIndex };
    for (const chunk of page) {
      if (chunk.bytes !== undefined) {
        await db.delete(chunk.bytes);
        // `undefined` removes the field.
        await db.patch(chunk._id, { bytes: undefined });
        budget.bytes -= chunk.byteLength;
      }
      next = chunk.index + 1;
      budget.chunks--;
      if (budget.chunks <= 0 || budget.bytes <= 0) break;
    }
  }
  const left = await range(next).first();
  return left === null ? { done: true, next: toIndex } : { done: false, next };
}

/**
 * One sweep step: drops what the budget allows of the bytes pending release (sources
 * marked `releasePending`, from their `releaseFrom` on); reports whether any remain.
 */
export async function sweepPendingReleases(
  db: SyncDbWriter,
  budget: DeleteBudget,
): Promise<{ remaining: boolean }> {
  const pending = () =>
    db.query("syncSources")
      .withIndex("by_pending_release", (range) => range.eq("releasePending", true))
      .first();
  let source = await pending();
  while (source !== null && budget.chunks > 0 && budget.bytes > 0) {
    const range = pendingReleaseOf(source);
    const result = range
      ? await releaseChunkBytes(db, source._id, budget, range.from, range.to)
      : { done: true, next: 0 };
    if (!result.done) {
      await db.patch(source._id, { releaseFrom: result.next });
      return { remaining: true };
    }
    await db.patch(source._id, {
      releasePending: undefined,
      releaseFrom: undefined,
      releaseTo: undefined,
    });
    source = await pending();
  }
  return { remaining: source !== null };
}
