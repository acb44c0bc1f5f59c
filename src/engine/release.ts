/**
 * `releasePayloads`: drops the chunk bytes of a verified, current source and keeps their
 * metadata, so storage holds about the data's own size once the host has applied it
 * (DESIGN §11). Extensions of the source then start at its chunk count, as they would
 * anyway; an extension that would need the bytes is refused (see `SourceOperations`).
 *
 * @module
 */

import type { ReleasePayloadsResult, Source } from "../contracts/domain.ts";
import { type ReleasePayloadsInput, releasePayloadsInputSchema } from "../contracts/inputs.ts";
import type { StoreTransaction } from "../contracts/store.ts";
import { SyncError } from "../errors.ts";
import { checkIdLengths, parseInput } from "../policy/validation.ts";
import { chunkHomeOf } from "../state/source.ts";
import type { EngineContext } from "./context.ts";
import { currentApplied } from "./current.ts";
import { sourceNotFound } from "./operations.ts";

const OP = "releasePayloads";

/** Why a source's payloads cannot be released (`details.reason`). */
export type ReleaseRefusalReason = "not-sealed" | "not-verified" | "not-current" | "job-active";

function refusal(source: Source, reason: ReleaseRefusalReason, message: string): SyncError {
  return new SyncError(
    "E_SYNC_INVALID_ARGUMENT",
    `${OP}: source ${source.sourceId} ${message}`,
    { details: { sourceId: source.sourceId, reason } },
  );
}

const NOT_CURRENT_MESSAGES: Record<Exclude<ReleaseRefusalReason, "not-sealed">, string> = {
  "not-verified": "has no succeeded job: its chunks are not applied and verified yet",
  "not-current": "is not its conversation's current snapshot: a newer job exists",
  "job-active": "cannot be released while a job of its conversation is active",
};

/** Releases the chunk payloads of a verified, current source (see `PayloadRelease`). */
export async function releasePayloads<TExtras extends object>(
  ctx: EngineContext<TExtras>,
  input: ReleasePayloadsInput,
): Promise<ReleasePayloadsResult> {
  const args = parseInput(releasePayloadsInputSchema, input, OP);
  checkIdLengths(ctx.policy.limits, OP, { scope: args.scope, sourceId: args.sourceId });
  return await ctx.store.transaction(async (tx) => {
    const source = await tx.lockSource(args.scope, args.sourceId);
    if (!source) throw sourceNotFound(args.sourceId);
    if (source.payloadsReleasedAt !== undefined) return { source, releasedChunks: 0 };
    const manifest = source.manifest;
    if (source.state === "expired" || source.chunksPurgedAt !== undefined) {
      throw new SyncError(
        "E_SYNC_SOURCE_EXPIRED",
        `${OP}: source ${source.sourceId} no longer has its chunks stored`,
        { details: { sourceId: source.sourceId } },
      );
    }
    if (source.state !== "sealed" || !manifest) {
      throw refusal(source, "not-sealed", `is ${source.state}, not sealed`);
    }
    // Lock order: the source, its chunk home's root, then the conversation's jobs.
    const home = chunkHomeOf(source);
    const root = home === source.sourceId ? source : await tx.lockSource(source.scope, home);
    if (!root) throw new SyncError("E_SYNC_INTERNAL", `${OP}: chunk home ${home} is missing`);
    const active = await tx.listActiveJobs(source.scope, source.conversationId);
    const current = await currentApplied(tx, source, active);
    if (!("job" in current)) {
      throw refusal(source, current.reason, NOT_CURRENT_MESSAGES[current.reason]);
    }
    const from = root.releasedChunks ?? 0;
    const to = manifest.chunkCount;
    ctx.uploads.drop(source.scope, home);
    if (to > from) await dropPayloads(tx, source.scope, home, from, to);
    const now = ctx.clock.now();
    const released: Source = { ...source, payloadsReleasedAt: now, updatedAt: now };
    const releasedChunks = Math.max(from, to);
    if (root === source) {
      released.releasedChunks = releasedChunks;
    } else if (releasedChunks !== from) {
      await tx.updateSource({ ...root, releasedChunks });
    }
    await tx.updateSource(released);
    return { source: released, releasedChunks: Math.max(0, to - from) };
  });
}

async function dropPayloads<TExtras extends object>(
  tx: StoreTransaction<TExtras>,
  scope: string,
  home: string,
  from: number,
  to: number,
): Promise<void> {
  if (!tx.releaseChunkPayloads) {
    throw new SyncError("E_SYNC_INTERNAL", `${OP}: this adapter's store cannot release payloads`);
  }
  await tx.releaseChunkPayloads(scope, home, from, to);
}
