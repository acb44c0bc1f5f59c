/**
 * Input shapes of every adapter operation, as TypeScript types and zod schemas.
 * Schemas check shape only; size limits depend on the policy and are checked by
 * `policy/validation`.
 *
 * @module
 */

import { z } from "zod";
import type { JobState, JsonValue, Manifest } from "./domain.ts";
import { JOB_STATES } from "./domain.ts";

/** Input of `createSource`. */
export interface CreateSourceInput {
  scope: string;
  conversationId: string;
  /** Caller-chosen id (lets an interrupted upload resume); generated when absent. */
  sourceId?: string;
  metadata?: JsonValue;
  /**
   * Makes the source an extension of this sealed source of the same scope and
   * conversation: the base's chunks become its chunks `0..k-1` by reference, and only
   * chunks from index `k` (the base's chunk count) are appended.
   */
  baseSourceId?: string;
}

/** Input of `appendChunk`. */
export interface AppendChunkInput {
  scope: string;
  sourceId: string;
  index: number;
  bytes: Uint8Array;
  /** Lowercase hex SHA-256 the caller computed; the engine re-hashes and compares. */
  sha256: string;
  itemCount?: number;
}

/** Input of `sealSource`. */
export interface SealSourceInput {
  scope: string;
  sourceId: string;
  manifest: Manifest;
}

/** One chunk of an {@link UploadSourceInput}. */
export interface UploadChunkInput {
  index: number;
  bytes: Uint8Array;
  /** Lowercase hex SHA-256 the caller computed; the engine re-hashes and compares. */
  sha256: string;
  itemCount?: number;
}

/**
 * Input of `uploadSource`: a whole small source in one call (create, append, seal).
 * The chunks together carry at most one chunk's worth of bytes (`maxChunkBytes`).
 */
export interface UploadSourceInput {
  scope: string;
  conversationId: string;
  /** Caller-chosen id (a repeated call resumes or returns the sealed source). */
  sourceId?: string;
  metadata?: JsonValue;
  /** As in {@link CreateSourceInput}: the chunks then start at the base's chunk count. */
  baseSourceId?: string;
  chunks: UploadChunkInput[];
  manifest: Manifest;
}

/** Input of `abandonSource`. */
export interface AbandonSourceInput {
  scope: string;
  sourceId: string;
}

/** Input of `releasePayloads`. */
export interface ReleasePayloadsInput {
  scope: string;
  sourceId: string;
}

/** Input of `getLatestSource`. */
export interface GetLatestSourceInput {
  scope: string;
  conversationId: string;
}

/** Input of `getSource`. */
export interface GetSourceInput {
  scope: string;
  sourceId: string;
}

/** Input of `listChunks` (pages of stored chunk digests, index order). */
export interface ListChunksInput {
  scope: string;
  sourceId: string;
  cursor?: string;
  limit?: number;
}

/** Input of `getJob`. */
export interface GetJobInput {
  scope: string;
  jobId: string;
}

/** Input of `listJobs`: newest first, paginated. */
export interface ListJobsInput {
  scope: string;
  conversationId?: string;
  state?: JobState;
  cursor?: string;
  limit?: number;
}

/** Input of `cancelJob`. */
export interface CancelJobInput {
  scope: string;
  jobId: string;
  reason?: string;
}

/** The longest wait a `waitForTerminal` may ask for (the largest timer delay). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** Input of `waitForTerminal`. */
export interface WaitForTerminalInput {
  scope: string;
  jobId: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Input of `gc`. */
export interface GcInput {
  /** At most this many sources are expired or purged in one pass (default 1000). */
  limit?: number;
}

/** A lone surrogate: no id may hold one, nor a NUL (every backend stores ids as text). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/**
 * The longest id a policy may allow: longer text is refused by the id length limit
 * without being scanned.
 */
export const MAX_ID_LENGTH = 64 * 1024;
const text = z.string().min(1).refine(
  (value) =>
    value.length > MAX_ID_LENGTH || (!value.includes("\u0000") && !LONE_SURROGATE.test(value)),
  { message: "must not contain NUL or a lone surrogate" },
);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const pageLimit = z.number().int().min(1).max(1000);
const bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, {
  message: "expected a Uint8Array",
});
const jsonValue = z.custom<JsonValue>(() => true);

/** Schema of {@link Manifest}. */
export const manifestSchema: z.ZodType<Manifest> = z.strictObject({
  chunkCount: count,
  byteCount: count,
  digest: z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256 digest"),
  itemCount: count.optional(),
  data: jsonValue.optional(),
});

/** Schema of {@link CreateSourceInput}. */
export const createSourceInputSchema: z.ZodType<CreateSourceInput> = z.strictObject({
  scope: text,
  conversationId: text,
  sourceId: text.optional(),
  metadata: jsonValue.optional(),
  baseSourceId: text.optional(),
});

/** Schema of {@link AppendChunkInput}. */
export const appendChunkInputSchema: z.ZodType<AppendChunkInput> = z.strictObject({
  scope: text,
  sourceId: text,
  index: count,
  bytes,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256 digest"),
  itemCount: count.optional(),
});

/** Schema of {@link SealSourceInput}. */
export const sealSourceInputSchema: z.ZodType<SealSourceInput> = z.strictObject({
  scope: text,
  sourceId: text,
  manifest: manifestSchema,
});

/** Schema of {@link UploadChunkInput}. */
export const uploadChunkInputSchema: z.ZodType<UploadChunkInput> = z.strictObject({
  index: count,
  bytes,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex SHA-256 digest"),
  itemCount: count.optional(),
});

/** Schema of {@link UploadSourceInput}. */
export const uploadSourceInputSchema: z.ZodType<UploadSourceInput> = z.strictObject({
  scope: text,
  conversationId: text,
  sourceId: text.optional(),
  metadata: jsonValue.optional(),
  baseSourceId: text.optional(),
  chunks: z.array(uploadChunkInputSchema),
  manifest: manifestSchema,
});

/** Schema of {@link GetSourceInput}. */
export const getSourceInputSchema: z.ZodType<GetSourceInput> = z.strictObject({
  scope: text,
  sourceId: text,
});

/** Schema of {@link AbandonSourceInput}. */
export const abandonSourceInputSchema: z.ZodType<AbandonSourceInput> = z.strictObject({
  scope: text,
  sourceId: text,
});

/** Schema of {@link ReleasePayloadsInput}. */
export const releasePayloadsInputSchema: z.ZodType<ReleasePayloadsInput> = z.strictObject({
  scope: text,
  sourceId: text,
});

/** Schema of {@link GetLatestSourceInput}. */
export const getLatestSourceInputSchema: z.ZodType<GetLatestSourceInput> = z.strictObject({
  scope: text,
  conversationId: text,
});

/** Schema of {@link ListChunksInput}. */
export const listChunksInputSchema: z.ZodType<ListChunksInput> = z.strictObject({
  scope: text,
  sourceId: text,
  cursor: z.string().optional(),
  limit: pageLimit.optional(),
});

/** Schema of {@link GetJobInput}. */
export const getJobInputSchema: z.ZodType<GetJobInput> = z.strictObject({
  scope: text,
  jobId: text,
});

/** Schema of {@link ListJobsInput}. */
export const listJobsInputSchema: z.ZodType<ListJobsInput> = z.strictObject({
  scope: text,
  conversationId: text.optional(),
  state: z.enum(JOB_STATES as [JobState, ...JobState[]]).optional(),
  cursor: z.string().optional(),
  limit: pageLimit.optional(),
});

/** Schema of {@link CancelJobInput}. */
export const cancelJobInputSchema: z.ZodType<CancelJobInput> = z.strictObject({
  scope: text,
  jobId: text,
  reason: z.string().max(1024).optional(),
});

/** Schema of {@link WaitForTerminalInput}. */
export const waitForTerminalInputSchema: z.ZodType<WaitForTerminalInput> = z.strictObject({
  scope: text,
  jobId: text,
  timeoutMs: z.number().min(0).max(MAX_TIMEOUT_MS).optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal, {
    message: "expected an AbortSignal",
  }).optional(),
});

/** Schema of {@link GcInput}. */
export const gcInputSchema: z.ZodType<GcInput> = z.strictObject({
  limit: z.number().int().min(1).max(100_000).optional(),
});
