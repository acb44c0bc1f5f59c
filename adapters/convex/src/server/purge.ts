/**
 * Deleting chunk documents within a transaction's budget. What does not fit is left to
 * the background sweep (the worker's `sweep` task), which deletes the rest in further
 * transactions; until then the source's `purgePending` flag hides those chunks.
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

const PAGE = 64;

/**
 * Deletes the chunk documents (digests and bytes) of `source` while `budget` lasts;
 * true when none is left.
 */
export async function deleteChunkDocs(
  db: SyncDbWriter,
  source: GenericId<"syncSources">,
  budget: DeleteBudget,
): Promise<boolean> {
  while (budget.chunks > 0 && budget.bytes > 0) {
    const page = await db.query("syncChunks")
      .withIndex("by_source", (range) => range.eq("source", source))
      .take(Math.min(PAGE, budget.chunks));
    if (page.length === 0) return true;
    for (const chunk of page) {
      await db.delete(chunk.bytes);
      await db.delete(chunk._id);
      budget.chunks--;
      budget.bytes -= chunk.byteLength;
      if (budget.chunks <= 0 || budget.bytes <= 0) break;
    }
  }
  const left = await db.query("syncChunks")
    .withIndex("by_source", (range) => range.eq("source", source))
    .first();
  return left === null;
}

/**
 * One sweep step: deletes what the budget allows of the chunks of sources marked
 * `purgePending`; reports whether any remain.
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
    if (!await deleteChunkDocs(db, source._id, budget)) return { remaining: true };
    await db.patch(source._id, { purgePending: false });
    source = await pending();
  }
  return { remaining: source !== null };
}
