/**
 * Deleting chunk documents within a transaction's budget. What does not fit is left to
 * the background sweep (the worker's `sweep` task), which deletes the rest in further
 * transactions; until then the source's `purgePending` flag hides those chunks (all of
 * them, or those from `purgeFrom` on: an expired extension's own chunks in a shared home).
 *
 * @module
 */

import type { GenericId } from "convex/values";
import type { SyncDbWriter } from "./schema.ts";

/** How many chunks a transaction may still delete, counted in documents and in bytes. */
export interface DeleteBudget {
  chunks: number;
  bytes: number;
}

/**
 * The deletion budget of one transaction: well inside Convex's 16 000 documents and
 * 16 MiB written per transaction, whatever else the transaction writes.
 */
export function defaultDeleteBudget(): DeleteBudget {
  return { chunks: 512, bytes: 8 * 1024 * 1024 };
}

/** Chunk documents read per query while deleting or releasing. */
export const PAGE = 64;

/** What one {@link deleteChunkDocs} call did. */
export interface DeletedChunkDocs {
  /** No chunk document from `fromIndex` on is left. */
  done: boolean;
  /** Documents deleted with an index below `liveBelow` (the ones still counted live). */
  live: number;
  /** Every document left from `fromIndex` on has at least this index. */
  next: number;
}

/**
 * Deletes the chunk documents (digests and bytes) of `source` with `index >= fromIndex`,
 * lowest index first, while `budget` lasts. Documents at or above `liveBelow` were already
 * deleted logically (an earlier deletion's pending rest); they are removed but not counted.
 */
export async function deleteChunkDocs(
  db: SyncDbWriter,
  source: GenericId<"syncSources">,
  budget: DeleteBudget,
  fromIndex = 0,
  liveBelow = Number.POSITIVE_INFINITY,
): Promise<DeletedChunkDocs> {
  let live = 0;
  let next = fromIndex;
  while (budget.chunks > 0 && budget.bytes > 0) {
    const page = await db.query("syncChunks")
      .withIndex("by_source", (range) => range.eq("source", source).gte("index", next))
      .take(Math.min(PAGE, budget.chunks));
    if (page.length === 0) return { done: true, live, next };
    for (const chunk of page) {
      // A released chunk has no bytes document left.
      if (chunk.bytes !== undefined) {
        await db.delete(chunk.bytes);
        budget.bytes -= chunk.byteLength;
      }
      await db.delete(chunk._id);
      if (chunk.index < liveBelow) live++;
      next = chunk.index + 1;
      budget.chunks--;
      if (budget.chunks <= 0 || budget.bytes <= 0) break;
    }
  }
  const left = await db.query("syncChunks")
    .withIndex("by_source", (range) => range.eq("source", source).gte("index", next))
    .first();
  return { done: left === null, live, next };
}

/**
 * One sweep step: deletes what the budget allows of the chunks of sources marked
 * `purgePending` (those from the source's `purgeFrom` on); reports whether any remain.
 */
export async function sweepPendingChunks(
  db: SyncDbWriter,
  budget: DeleteBudget,
): Promise<{ remaining: boolean }> {
  const pending = () =>
    db.query("syncSources")
      .withIndex("by_pending_purge", (range) => range.eq("purgePending", true))
      .first();
  let source = await pending();
  while (source !== null && budget.chunks > 0 && budget.bytes > 0) {
    const { done } = await deleteChunkDocs(db, source._id, budget, source.purgeFrom ?? 0);
    if (!done) return { remaining: true };
    // `undefined` removes the field.
    await db.patch(source._id, { purgePending: false, purgeFrom: undefined });
    source = await pending();
  }
  return { remaining: source !== null };
}
