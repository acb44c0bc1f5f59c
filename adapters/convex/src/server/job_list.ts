/**
 * `listJobs` on the job indexes: newest first (`createdAt`, then `jobId`, descending),
 * keyset-paginated. Each filter combination has its own index, so a page reads only the
 * jobs it returns.
 *
 * @module
 */

import type { JobListQuery } from "@zakstam/codex-sync-engine";
import type { JobDoc, SyncDbReader } from "./schema.ts";

type JobIndex = "by_created" | "by_conversation" | "by_state" | "by_conversation_state";

/** The slice of Convex's index range builder this module uses, over any job index. */
interface Range {
  eq(field: string, value: unknown): Range;
  lt(field: string, value: unknown): Range;
}

function indexFor(query: JobListQuery): JobIndex {
  if (query.conversationId !== undefined) {
    return query.state !== undefined ? "by_conversation_state" : "by_conversation";
  }
  return query.state !== undefined ? "by_state" : "by_created";
}

function filtered(range: Range, query: JobListQuery): Range {
  let r = range.eq("scope", query.scope);
  if (query.conversationId !== undefined) r = r.eq("conversationId", query.conversationId);
  if (query.state !== undefined) r = r.eq("state", query.state);
  return r;
}

async function page(
  db: SyncDbReader,
  query: JobListQuery,
  bound: (range: Range) => Range,
  limit: number,
): Promise<JobDoc[]> {
  // The four indexes share the (filters…, createdAt, jobId) shape, which the typed
  // builder cannot express for a union of index names.
  return await db.query("syncJobs")
    .withIndex(
      indexFor(query),
      (range) => bound(filtered(range as unknown as Range, query)) as never,
    )
    .order("desc")
    .take(limit);
}

/** Up to `query.limit` job documents, newest first, strictly after `query.after`. */
export async function listJobDocs(db: SyncDbReader, query: JobListQuery): Promise<JobDoc[]> {
  const after = query.after;
  if (after === undefined) return await page(db, query, (r) => r, query.limit);
  const sameTime = await page(
    db,
    query,
    (r) => r.eq("createdAt", after.createdAt).lt("jobId", after.jobId),
    query.limit,
  );
  if (sameTime.length >= query.limit) return sameTime;
  const older = await page(
    db,
    query,
    (r) => r.lt("createdAt", after.createdAt),
    query.limit - sameTime.length,
  );
  return [...sameTime, ...older];
}
