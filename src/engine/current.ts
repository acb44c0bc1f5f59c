/**
 * Whether a sealed source is its conversation's current applied snapshot: the one rule
 * behind an extension's job starting at its base's chunk count and behind releasing a
 * source's chunk payloads.
 *
 * @module
 */

import type { Job, Source } from "../contracts/domain.ts";
import type { StoreTransaction } from "../contracts/store.ts";
import { chunkHomeOf } from "../state/source.ts";

/** Why a source is not its conversation's current applied snapshot. */
export type NotCurrentReason = "job-active" | "not-verified" | "not-current";

/** The source's succeeded job, or why the source is not the current applied snapshot. */
export type CurrentApplied = { job: Job } | { reason: NotCurrentReason };

/**
 * The job that applied `source`, when it succeeded, is the conversation's newest job (no
 * other job created at or after it) and `active` (the conversation's non-terminal jobs,
 * read under lock) is empty.
 */
export async function currentApplied<TExtras extends object>(
  tx: StoreTransaction<TExtras>,
  source: Source,
  active: readonly Job[],
): Promise<CurrentApplied> {
  if (active.length > 0) return { reason: "job-active" };
  const job = source.jobId === undefined ? undefined : await tx.getJob(source.scope, source.jobId);
  if (job?.state !== "succeeded") return { reason: "not-verified" };
  const [newest, next] = await tx.listJobs({
    scope: source.scope,
    conversationId: source.conversationId,
    limit: 2,
  });
  if (newest?.jobId !== job.jobId || (next && next.createdAt >= job.createdAt)) {
    return { reason: "not-current" };
  }
  return { job };
}

/** How many leading chunks of `source`'s chunk home have no bytes any more (as stored). */
export async function releasedChunksOf<TExtras extends object>(
  tx: StoreTransaction<TExtras>,
  source: Source,
): Promise<number> {
  return (await tx.getSource(source.scope, chunkHomeOf(source)))?.releasedChunks ?? 0;
}
