/**
 * Convex validators of the wire shapes (`../wire.ts`): function arguments, results and
 * the documents built on them. The annotations tie each validator to its wire type, so
 * the two cannot drift apart.
 *
 * @module
 */

import { type GenericValidator, v, type Validator } from "convex/values";
import type {
  AppendResultWire,
  JobBaseWire,
  JobWire,
  ManifestWire,
  RecordedErrorWire,
  ReleasePayloadsResultWire,
  SealResultWire,
  SourceBaseWire,
  SourceWire,
  SyncErrorWire,
  UploadChunkWire,
  UploadSourceResultWire,
  WorkerArgs,
  WorkerReport,
} from "../wire.ts";
import type { ChunkInfo, GcReport } from "@zakstam/codex-sync-engine";

/** A required validator of `T`, whatever its field paths. */
type V<T> = Validator<T, "required", string>;

const sourceState = v.union(
  v.literal("collecting"),
  v.literal("sealed"),
  v.literal("failed"),
  v.literal("expired"),
);

/** Validator of a job state. */
export const jobState = v.union(
  v.literal("queued"),
  v.literal("running"),
  v.literal("retry_wait"),
  v.literal("verifying"),
  v.literal("succeeded"),
  v.literal("failed"),
  v.literal("cancelled"),
);

/** Validator of {@link ManifestWire}. */
export const manifestWire: V<ManifestWire> = v.object({
  chunkCount: v.number(),
  byteCount: v.number(),
  digest: v.string(),
  itemCount: v.optional(v.number()),
  dataJson: v.optional(v.string()),
});

const recordedErrorWire: V<RecordedErrorWire> = v.object({
  code: v.string(),
  message: v.string(),
  retryable: v.boolean(),
  detailsJson: v.optional(v.string()),
});

const sourceBase: V<SourceBaseWire> = v.object({
  sourceId: v.string(),
  chunkCount: v.number(),
  byteCount: v.number(),
  itemCount: v.optional(v.number()),
});

const jobBase: V<JobBaseWire> = v.object({
  sourceId: v.string(),
  jobId: v.string(),
  chunkCount: v.number(),
});

/** The fields of {@link SourceWire}. */
export const sourceWireFields = {
  sourceId: v.string(),
  scope: v.string(),
  conversationId: v.string(),
  state: sourceState,
  received: v.object({ chunkCount: v.number(), byteCount: v.number() }),
  manifest: v.optional(manifestWire),
  jobId: v.optional(v.string()),
  error: v.optional(recordedErrorWire),
  metadataJson: v.optional(v.string()),
  createdAt: v.number(),
  updatedAt: v.number(),
  sealedAt: v.optional(v.number()),
  expiresAt: v.number(),
  chunksPurgedAt: v.optional(v.number()),
  base: v.optional(sourceBase),
  chunkHome: v.optional(v.string()),
  extendedBy: v.optional(v.string()),
  homeRefs: v.optional(v.number()),
  digestState: v.optional(v.string()),
  payloadsReleasedAt: v.optional(v.number()),
  releasedChunks: v.optional(v.number()),
};

/** The fields of {@link JobWire}. */
export const jobWireFields = {
  jobId: v.string(),
  scope: v.string(),
  sourceId: v.string(),
  conversationId: v.string(),
  state: jobState,
  cursor: v.number(),
  totalChunks: v.number(),
  appliedBytes: v.number(),
  attempt: v.number(),
  runAt: v.number(),
  lease: v.optional(v.object({ owner: v.string(), token: v.number(), expiresAt: v.number() })),
  leaseToken: v.number(),
  appliedDigestState: v.string(),
  error: v.optional(recordedErrorWire),
  createdAt: v.number(),
  updatedAt: v.number(),
  startedAt: v.optional(v.number()),
  completedAt: v.optional(v.number()),
  base: v.optional(jobBase),
};

/** Validator of {@link SourceWire}. */
export const sourceWire: V<SourceWire> = v.object(sourceWireFields);

/** Validator of {@link JobWire}. */
export const jobWire: V<JobWire> = v.object(jobWireFields);

/** Validator of a chunk's digest and size. */
export const chunkInfo: V<ChunkInfo> = v.object({
  index: v.number(),
  byteLength: v.number(),
  sha256: v.string(),
  itemCount: v.optional(v.number()),
});

/** Validator of {@link AppendResultWire}. */
export const appendResultWire: V<AppendResultWire> = v.object({
  appended: v.boolean(),
  chunk: chunkInfo,
  source: sourceWire,
});

/** Validator of {@link SealResultWire}. */
export const sealResultWire: V<SealResultWire> = v.object({
  source: sourceWire,
  job: jobWire,
});

/** Validator of {@link UploadSourceResultWire}. */
export const uploadSourceResultWire: V<UploadSourceResultWire> = v.object({
  source: sourceWire,
  job: jobWire,
  appended: v.array(v.boolean()),
});

/** Validator of {@link ReleasePayloadsResultWire}. */
export const releasePayloadsResultWire: V<ReleasePayloadsResultWire> = v.object({
  source: sourceWire,
  releasedChunks: v.number(),
});

/** Validator of {@link UploadChunkWire}. */
export const uploadChunkWire: V<UploadChunkWire> = v.object({
  index: v.number(),
  bytes: v.bytes(),
  sha256: v.string(),
  itemCount: v.optional(v.number()),
});

/** Validator of a gc report. */
export const gcReport: V<GcReport> = v.object({
  expiredSources: v.number(),
  purgedSources: v.number(),
  deletedChunks: v.number(),
});

/** Validator of a page of `item`. */
export function pageOf<T>(item: V<T>): V<{ items: T[]; nextCursor?: string }> {
  return v.object({ items: v.array(item), nextCursor: v.optional(v.string()) });
}

/** Validator of {@link SyncErrorWire}. */
export const syncErrorWire: V<SyncErrorWire> = v.object({
  name: v.literal("SyncError"),
  code: v.string(),
  message: v.string(),
  retryable: v.boolean(),
  detailsJson: v.optional(v.string()),
});

/** Validator of a mutation's result union around `value`. */
export function mutationResultOf<T>(
  value: V<T>,
): V<{ ok: true; value: T } | { ok: false; error: SyncErrorWire }> {
  return v.union(
    v.object({ ok: v.literal(true), value }),
    v.object({ ok: v.literal(false), error: syncErrorWire }),
  );
}

/** Argument validators of the internal worker. */
export const workerArgs = {
  task: v.optional(v.union(
    v.object({
      kind: v.literal("continue"),
      scope: v.string(),
      jobId: v.string(),
      token: v.number(),
    }),
    v.object({ kind: v.literal("sweep") }),
  )),
  attempt: v.optional(v.boolean()),
} satisfies Record<keyof WorkerArgs, GenericValidator>;

/** Validator of {@link WorkerReport}. */
export const workerReport: V<WorkerReport> = v.union(
  v.object({ kind: v.literal("idle") }),
  v.object({ kind: v.literal("swept"), remaining: v.boolean() }),
  v.object({
    kind: v.literal("ran"),
    scope: v.string(),
    jobId: v.string(),
    state: jobState,
    token: v.number(),
    holding: v.boolean(),
    runAt: v.number(),
  }),
);
