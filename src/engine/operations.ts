/**
 * The runtime-facing operations: create, append, seal, read, list, cancel, gc.
 * Written once over the store primitives; adapters never re-implement these rules.
 *
 * @module
 */

import { EMPTY_COMPOSITE_STATE, sha256Hex } from "../checksum.ts";
import type {
  AppendResult,
  ChunkInfo,
  GcReport,
  Job,
  Manifest,
  Page,
  RecordedError,
  SealResult,
  Source,
} from "../contracts/domain.ts";
import {
  type AppendChunkInput,
  appendChunkInputSchema,
  type CancelJobInput,
  cancelJobInputSchema,
  type CreateSourceInput,
  createSourceInputSchema,
  type GcInput,
  gcInputSchema,
  type GetJobInput,
  getJobInputSchema,
  type GetSourceInput,
  getSourceInputSchema,
  type ListChunksInput,
  listChunksInputSchema,
  type ListJobsInput,
  listJobsInputSchema,
  type SealSourceInput,
  sealSourceInputSchema,
} from "../contracts/inputs.ts";
import type { StoreTransaction } from "../contracts/store.ts";
import { SyncError } from "../errors.ts";
import { canonicalJson, checkIdLengths, checkJsonField, parseInput } from "../policy/validation.ts";
import { newJob, transitionJob } from "../state/job.ts";
import { ManifestCheck } from "../state/manifest.ts";
import {
  collectingRefusal,
  expireSource,
  isPastTtl,
  markChunksPurged,
  newSource,
  recordAppend,
  recordError,
  sealFailed,
  sealSucceeded,
} from "../state/source.ts";
import { commitThenSettle, type EngineContext, type Outcome } from "./context.ts";
import {
  decodeChunkCursor,
  decodeJobCursor,
  encodeChunkCursor,
  encodeJobCursor,
} from "./paging.ts";

const CHUNK_PAGE = 1000;
const DEFAULT_JOB_PAGE = 50;
const DEFAULT_GC_LIMIT = 1000;

/** A missing record and a record of another scope answer the same. */
export function sourceNotFound(sourceId: string): SyncError {
  return new SyncError("E_SYNC_SOURCE_NOT_FOUND", `source ${sourceId} not found`, {
    details: { sourceId },
  });
}

/** A missing job and a job of another scope answer the same. */
export function jobNotFound(jobId: string): SyncError {
  return new SyncError("E_SYNC_JOB_NOT_FOUND", `job ${jobId} not found`, { details: { jobId } });
}

function chunkInfo(chunk: ChunkInfo): ChunkInfo {
  const info: ChunkInfo = {
    index: chunk.index,
    byteLength: chunk.byteLength,
    sha256: chunk.sha256,
  };
  if (chunk.itemCount !== undefined) info.itemCount = chunk.itemCount;
  return info;
}

function sameManifest(a: Manifest | undefined, b: Manifest): boolean {
  return a !== undefined && canonicalJson(a) === canonicalJson(b);
}

/** The source/job operations of {@link SyncOperations}, over an {@link EngineContext}. */
export class SourceOperations<TExtras extends object> {
  readonly #ctx: EngineContext<TExtras>;

  constructor(ctx: EngineContext<TExtras>) {
    this.#ctx = ctx;
  }

  /** Creates a collecting source; the same id and conversation returns the existing one. */
  async createSource(input: CreateSourceInput): Promise<Source> {
    const op = "createSource";
    const args = parseInput(createSourceInputSchema, input, op);
    const { limits } = this.#ctx.policy;
    checkIdLengths(limits, op, {
      scope: args.scope,
      conversationId: args.conversationId,
      sourceId: args.sourceId,
    });
    if (args.metadata !== undefined) {
      checkJsonField(op, "metadata", args.metadata, limits.maxMetadataBytes);
    }
    const sourceId = args.sourceId ?? this.#ctx.generateId();
    const now = this.#ctx.clock.now();
    return await commitThenSettle(this.#ctx.store, async (tx): Promise<Outcome<Source>> => {
      const existing = await tx.lockSource(args.scope, sourceId);
      if (existing) {
        if (existing.conversationId === args.conversationId) return { value: existing };
        return {
          error: new SyncError(
            "E_SYNC_INVALID_ARGUMENT",
            `createSource: source ${sourceId} belongs to another conversation`,
            { details: { sourceId } },
          ),
        };
      }
      const source = newSource({
        sourceId,
        scope: args.scope,
        conversationId: args.conversationId,
        metadata: args.metadata,
        now,
        ttlMs: this.#ctx.policy.sourceTtlMs,
      });
      if (await tx.insertSource(source)) return { value: source };
      // Another transaction created it first: answer as if it had been there.
      const raced = await tx.lockSource(args.scope, sourceId);
      if (raced?.conversationId === args.conversationId) return { value: raced };
      return {
        error: new SyncError(
          "E_SYNC_INVALID_ARGUMENT",
          `createSource: source ${sourceId} belongs to another conversation`,
          { details: { sourceId } },
        ),
      };
    });
  }

  /** Hashes and stores one immutable chunk. */
  async appendChunk(input: AppendChunkInput): Promise<AppendResult> {
    const op = "appendChunk";
    const args = parseInput(appendChunkInputSchema, input, op);
    const { limits } = this.#ctx.policy;
    checkIdLengths(limits, op, { scope: args.scope, sourceId: args.sourceId });
    if (args.bytes.length === 0) {
      throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${op}: bytes must not be empty`);
    }
    if (args.bytes.length > limits.maxChunkBytes) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: chunk is ${args.bytes.length} bytes, more than the limit of ${limits.maxChunkBytes}`,
        { details: { limit: limits.maxChunkBytes, actual: args.bytes.length } },
      );
    }
    if (args.index >= limits.maxChunksPerSource) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: index ${args.index} is beyond the limit of ${limits.maxChunksPerSource} chunks`,
        { details: { limit: limits.maxChunksPerSource, index: args.index } },
      );
    }
    // Own copy: the caller may reuse its buffer once the promise settles.
    const bytes = args.bytes.slice();
    const sha256 = await sha256Hex(bytes);
    if (sha256 !== args.sha256) {
      throw new SyncError(
        "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
        `${op}: chunk ${args.index} hashes to ${sha256}, not the declared ${args.sha256}`,
        { details: { index: args.index, expected: args.sha256, actual: sha256 } },
      );
    }
    const now = this.#ctx.clock.now();
    return await commitThenSettle(this.#ctx.store, async (tx): Promise<Outcome<AppendResult>> => {
      const source = await tx.lockSource(args.scope, args.sourceId);
      if (!source) return { error: sourceNotFound(args.sourceId) };
      const refusal = await this.#refuseUnlessCollecting(tx, source, now);
      if (refusal) return { error: refusal };
      const existing = await tx.getChunkInfo(args.scope, args.sourceId, args.index);
      if (existing) {
        if (
          existing.sha256 === sha256 && existing.byteLength === bytes.length &&
          existing.itemCount === args.itemCount
        ) {
          return { value: { appended: false, chunk: chunkInfo(existing), source } };
        }
        return {
          error: new SyncError(
            "E_SYNC_CHUNK_CONFLICT",
            `${op}: chunk ${args.index} is already stored with other content`,
            { details: { index: args.index, stored: existing.sha256, offered: sha256 } },
          ),
        };
      }
      if (source.received.byteCount + bytes.length > limits.maxSourceBytes) {
        return {
          error: new SyncError(
            "E_SYNC_LIMIT_EXCEEDED",
            `${op}: source would exceed the limit of ${limits.maxSourceBytes} bytes`,
            { details: { limit: limits.maxSourceBytes } },
          ),
        };
      }
      const chunk: ChunkInfo = { index: args.index, byteLength: bytes.length, sha256 };
      if (args.itemCount !== undefined) chunk.itemCount = args.itemCount;
      await tx.insertChunk(args.scope, args.sourceId, { ...chunk, bytes });
      const updated = recordAppend(source, bytes.length, now);
      await tx.updateSource(updated);
      return { value: { appended: true, chunk, source: updated } };
    });
  }

  /** Stored chunk digests in index order. */
  async listChunks(input: ListChunksInput): Promise<Page<ChunkInfo>> {
    const args = parseInput(listChunksInputSchema, input, "listChunks");
    checkIdLengths(this.#ctx.policy.limits, "listChunks", {
      scope: args.scope,
      sourceId: args.sourceId,
    });
    const after = args.cursor === undefined ? -1 : decodeChunkCursor(args.cursor);
    const limit = args.limit ?? CHUNK_PAGE;
    return await this.#ctx.store.transaction(async (tx) => {
      const source = await tx.getSource(args.scope, args.sourceId);
      if (!source) throw sourceNotFound(args.sourceId);
      const rows = await tx.listChunkInfos(args.scope, args.sourceId, after, limit + 1);
      const items = rows.slice(0, limit).map(chunkInfo);
      const page: Page<ChunkInfo> = { items };
      if (rows.length > limit) page.nextCursor = encodeChunkCursor(items[items.length - 1].index);
      return page;
    });
  }

  /** Checks the stored chunks against the manifest (fail closed) and creates the job. */
  async sealSource(input: SealSourceInput): Promise<SealResult> {
    const op = "sealSource";
    const args = parseInput(sealSourceInputSchema, input, op);
    const { limits } = this.#ctx.policy;
    checkIdLengths(limits, op, { scope: args.scope, sourceId: args.sourceId });
    if (args.manifest.data !== undefined) {
      checkJsonField(op, "manifest.data", args.manifest.data, limits.maxManifestDataBytes);
    }
    const manifest = args.manifest;
    const now = this.#ctx.clock.now();
    return await commitThenSettle(this.#ctx.store, async (tx): Promise<Outcome<SealResult>> => {
      const source = await tx.lockSource(args.scope, args.sourceId);
      if (!source) return { error: sourceNotFound(args.sourceId) };
      if (source.state === "sealed" && sameManifest(source.manifest, manifest)) {
        const job = source.jobId === undefined
          ? undefined
          : await tx.getJob(source.scope, source.jobId);
        if (!job) {
          return { error: new SyncError("E_SYNC_INTERNAL", `sealed source has no job`) };
        }
        return { value: { source, job } };
      }
      const refusal = await this.#refuseUnlessCollecting(tx, source, now);
      if (refusal) return { error: refusal };
      const mismatch = await this.#checkAgainstManifest(tx, source, manifest);
      if (mismatch) {
        await tx.updateSource(sealFailed(source, manifest, recordError(mismatch), now));
        return { error: mismatch };
      }
      const job = newJob({
        jobId: this.#ctx.generateId(),
        scope: source.scope,
        sourceId: source.sourceId,
        conversationId: source.conversationId,
        totalChunks: manifest.chunkCount,
        now,
        emptyDigestState: EMPTY_COMPOSITE_STATE,
      });
      if (this.#ctx.policy.supersede) await this.#supersede(tx, source, job.jobId, now);
      await tx.insertJob(job);
      const sealed = sealSucceeded(source, manifest, job.jobId, now);
      await tx.updateSource(sealed);
      return { value: { source: sealed, job } };
    });
  }

  /** Reads a source. */
  async getSource(input: GetSourceInput): Promise<Source> {
    const args = parseInput(getSourceInputSchema, input, "getSource");
    checkIdLengths(this.#ctx.policy.limits, "getSource", {
      scope: args.scope,
      sourceId: args.sourceId,
    });
    const source = await this.#ctx.store.transaction((tx) =>
      tx.getSource(args.scope, args.sourceId)
    );
    if (!source) throw sourceNotFound(args.sourceId);
    return source;
  }

  /** Reads a job. */
  async getJob(input: GetJobInput): Promise<Job> {
    const args = parseInput(getJobInputSchema, input, "getJob");
    checkIdLengths(this.#ctx.policy.limits, "getJob", { scope: args.scope, jobId: args.jobId });
    const job = await this.#ctx.store.transaction((tx) => tx.getJob(args.scope, args.jobId));
    if (!job) throw jobNotFound(args.jobId);
    return job;
  }

  /** Jobs newest first (`createdAt`, then `jobId`, descending), paginated. */
  async listJobs(input: ListJobsInput): Promise<Page<Job>> {
    const args = parseInput(listJobsInputSchema, input, "listJobs");
    checkIdLengths(this.#ctx.policy.limits, "listJobs", {
      scope: args.scope,
      conversationId: args.conversationId,
    });
    const limit = args.limit ?? DEFAULT_JOB_PAGE;
    const after = args.cursor === undefined ? undefined : decodeJobCursor(args.cursor);
    const rows = await this.#ctx.store.transaction((tx) =>
      tx.listJobs({
        scope: args.scope,
        conversationId: args.conversationId,
        state: args.state,
        after,
        limit: limit + 1,
      })
    );
    const items = rows.slice(0, limit);
    const page: Page<Job> = { items };
    if (rows.length > limit) {
      const last = items[items.length - 1];
      page.nextCursor = encodeJobCursor({ createdAt: last.createdAt, jobId: last.jobId });
    }
    return page;
  }

  /** Cancels a non-terminal job; a terminal job is returned as it is. */
  async cancelJob(input: CancelJobInput): Promise<Job> {
    const args = parseInput(cancelJobInputSchema, input, "cancelJob");
    checkIdLengths(this.#ctx.policy.limits, "cancelJob", { scope: args.scope, jobId: args.jobId });
    const now = this.#ctx.clock.now();
    return await this.#ctx.store.transaction(async (tx) => {
      const job = await tx.lockJob(args.scope, args.jobId);
      if (!job) throw jobNotFound(args.jobId);
      const error: RecordedError = {
        code: "E_SYNC_JOB_CANCELLED",
        message: args.reason ? `cancelled: ${args.reason}` : "cancelled on request",
        retryable: false,
      };
      const next = transitionJob(job, { type: "cancel", now, error });
      if (!next.ok) throw next.error;
      if (next.job !== job) await tx.updateJob(next.job);
      return next.job;
    });
  }

  /** Expires collecting sources past their TTL and purges chunks past retention. */
  async gc(input: GcInput = {}): Promise<GcReport> {
    const args = parseInput(gcInputSchema, input, "gc");
    const limit = args.limit ?? DEFAULT_GC_LIMIT;
    const now = this.#ctx.clock.now();
    const report: GcReport = { expiredSources: 0, purgedSources: 0, deletedChunks: 0 };
    await this.#ctx.store.transaction(async (tx) => {
      for (const source of await tx.listExpiredSources(now, limit)) {
        report.deletedChunks += await this.#expire(tx, source, now);
        report.expiredSources++;
      }
    });
    const endedBefore = now - this.#ctx.policy.retentionMs;
    await this.#ctx.store.transaction(async (tx) => {
      for (const source of await tx.listPurgeableSources(endedBefore, limit)) {
        report.deletedChunks += await tx.deleteChunks(source.scope, source.sourceId);
        await tx.updateSource(markChunksPurged(source, now));
        report.purgedSources++;
      }
    });
    return report;
  }

  /** Why the source cannot take chunks or a seal; persists a lazy expiry. */
  async #refuseUnlessCollecting(
    tx: StoreTransaction<TExtras>,
    source: Source,
    now: number,
  ): Promise<SyncError | undefined> {
    const refusal = collectingRefusal(source, now);
    if (refusal && isPastTtl(source, now)) await this.#expire(tx, source, now);
    return refusal;
  }

  async #expire(tx: StoreTransaction<TExtras>, source: Source, now: number): Promise<number> {
    const deleted = await tx.deleteChunks(source.scope, source.sourceId);
    await tx.updateSource(expireSource(source, now));
    return deleted;
  }

  async #checkAgainstManifest(
    tx: StoreTransaction<TExtras>,
    source: Source,
    manifest: Manifest,
  ): Promise<SyncError | undefined> {
    const check = new ManifestCheck(manifest);
    for (;;) {
      const page = await tx.listChunkInfos(
        source.scope,
        source.sourceId,
        check.lastIndex,
        CHUNK_PAGE,
      );
      for (const chunk of page) check.add(chunk);
      if (page.length < CHUNK_PAGE) break;
    }
    return check.finish();
  }

  async #supersede(
    tx: StoreTransaction<TExtras>,
    source: Source,
    newJobId: string,
    now: number,
  ): Promise<void> {
    const error: RecordedError = {
      code: "E_SYNC_JOB_SUPERSEDED",
      message: `superseded by job ${newJobId} of source ${source.sourceId}`,
      retryable: false,
      details: { jobId: newJobId, sourceId: source.sourceId },
    };
    for (const job of await tx.listActiveJobs(source.scope, source.conversationId)) {
      const next = transitionJob(job, { type: "cancel", now, error });
      if (next.ok && next.job !== job) await tx.updateJob(next.job);
    }
  }
}
