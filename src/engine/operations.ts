/**
 * The runtime-facing operations: create, append, seal, read, list, cancel, gc.
 * Written once over the store primitives; adapters never re-implement these rules.
 *
 * @module
 */

import { EMPTY_COMPOSITE_STATE, sha256Hex } from "../checksum.ts";
import type {
  AppendResult,
  Chunk,
  ChunkInfo,
  GcReport,
  Job,
  Manifest,
  Page,
  RecordedError,
  SealResult,
  Source,
  UploadSourceResult,
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
  type UploadChunkInput,
  type UploadSourceInput,
  uploadSourceInputSchema,
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
import { commitThenSettle, type EngineContext, type Outcome, readOnce } from "./context.ts";
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

/** Thrown inside an upload's transaction (rolling it back) when its new source exists. */
class SourceCreatedMeanwhile extends Error {}

/** The source/job operations of {@link SyncOperations}, over an {@link EngineContext}. */
export class SourceOperations<TExtras extends object> {
  readonly #ctx: EngineContext<TExtras>;

  constructor(ctx: EngineContext<TExtras>) {
    this.#ctx = ctx;
  }

  /** Creates a collecting source; the same id and conversation returns the existing one. */
  async createSource(input: CreateSourceInput): Promise<Source> {
    const args = parseInput(createSourceInputSchema, input, "createSource");
    this.#checkCreate(args, "createSource");
    const sourceId = args.sourceId ?? this.#ctx.generateId();
    const now = this.#ctx.clock.now();
    return await commitThenSettle(
      this.#ctx.store,
      (tx) => this.#createIn(tx, args, sourceId, now, "createSource"),
    );
  }

  /** Hashes and stores one immutable chunk. */
  async appendChunk(input: AppendChunkInput): Promise<AppendResult> {
    const op = "appendChunk";
    const args = parseInput(appendChunkInputSchema, input, op);
    checkIdLengths(this.#ctx.policy.limits, op, { scope: args.scope, sourceId: args.sourceId });
    const chunk = await this.#receiveChunk(args, op);
    const now = this.#ctx.clock.now();
    return await commitThenSettle(
      this.#ctx.store,
      (tx) => this.#appendIn(tx, args.scope, args.sourceId, chunk, now, op),
    );
  }

  /**
   * Create, append and seal of a small source in one transaction. A refused chunk rolls
   * everything back (not even the source is created); a failed seal commits the failure.
   */
  async uploadSource(input: UploadSourceInput): Promise<UploadSourceResult> {
    const op = "uploadSource";
    const args = parseInput(uploadSourceInputSchema, input, op);
    this.#checkCreate(args, op);
    const manifest = this.#checkManifest(args.manifest, op);
    const { limits } = this.#ctx.policy;
    const totalBytes = args.chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0);
    if (totalBytes > limits.maxChunkBytes) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: the chunks carry ${totalBytes} bytes, more than one call's limit of ` +
          `${limits.maxChunkBytes}; upload them with appendChunk`,
        { details: { limit: limits.maxChunkBytes, actual: totalBytes } },
      );
    }
    const indexes = new Set<number>();
    for (const chunk of args.chunks) {
      if (indexes.has(chunk.index)) {
        throw new SyncError(
          "E_SYNC_INVALID_ARGUMENT",
          `${op}: chunk index ${chunk.index} appears twice`,
          { details: { index: chunk.index } },
        );
      }
      indexes.add(chunk.index);
    }
    const chunks: Chunk[] = [];
    for (const chunk of args.chunks) chunks.push(await this.#receiveChunk(chunk, op));
    const sourceId = args.sourceId ?? this.#ctx.generateId();
    const now = this.#ctx.clock.now();
    const upload = (): Promise<UploadSourceResult> =>
      commitThenSettle(this.#ctx.store, async (tx): Promise<Outcome<UploadSourceResult>> => {
        // A generated id is new; a caller's id may name a source to resume.
        const isNew = args.sourceId === undefined ||
          (await tx.lockSource(args.scope, sourceId)) === undefined;
        if (isNew) return await this.#uploadNew(tx, args, sourceId, chunks, manifest, now);
        const created = await this.#createIn(tx, args, sourceId, now, op);
        if ("error" in created) return created;
        const appended: boolean[] = [];
        if (created.value.state === "collecting") {
          for (const chunk of chunks) {
            const outcome = await this.#appendIn(tx, args.scope, sourceId, chunk, now, op);
            // Thrown, not returned: the transaction rolls back whatever this call stored.
            if ("error" in outcome) throw outcome.error;
            appended.push(outcome.value.appended);
          }
        } else {
          for (const _ of chunks) appended.push(false);
        }
        const sealed = await this.#sealIn(tx, args.scope, sourceId, manifest, now);
        if ("error" in sealed) return sealed;
        return { value: { ...sealed.value, appended } };
      });
    try {
      return await upload();
    } catch (error) {
      // Another call created the same source meanwhile: resume it like any other.
      if (error instanceof SourceCreatedMeanwhile) return await upload();
      throw error;
    }
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
    checkIdLengths(this.#ctx.policy.limits, op, { scope: args.scope, sourceId: args.sourceId });
    const manifest = this.#checkManifest(args.manifest, op);
    const now = this.#ctx.clock.now();
    return await commitThenSettle(
      this.#ctx.store,
      (tx) => this.#sealIn(tx, args.scope, args.sourceId, manifest, now),
    );
  }

  /** Reads a source. */
  async getSource(input: GetSourceInput): Promise<Source> {
    const args = parseInput(getSourceInputSchema, input, "getSource");
    checkIdLengths(this.#ctx.policy.limits, "getSource", {
      scope: args.scope,
      sourceId: args.sourceId,
    });
    const source = await readOnce(this.#ctx.store, (tx) => tx.getSource(args.scope, args.sourceId));
    if (!source) throw sourceNotFound(args.sourceId);
    return source;
  }

  /** Reads a job. */
  async getJob(input: GetJobInput): Promise<Job> {
    const args = parseInput(getJobInputSchema, input, "getJob");
    checkIdLengths(this.#ctx.policy.limits, "getJob", { scope: args.scope, jobId: args.jobId });
    const job = await readOnce(this.#ctx.store, (tx) => tx.getJob(args.scope, args.jobId));
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
    const rows = await readOnce(this.#ctx.store, (tx) =>
      tx.listJobs({
        scope: args.scope,
        conversationId: args.conversationId,
        state: args.state,
        after,
        limit: limit + 1,
      }));
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

  #checkCreate(args: CreateSourceInput, op: string): void {
    const { limits } = this.#ctx.policy;
    checkIdLengths(limits, op, {
      scope: args.scope,
      conversationId: args.conversationId,
      sourceId: args.sourceId,
    });
    if (args.metadata !== undefined) {
      checkJsonField(op, "metadata", args.metadata, limits.maxMetadataBytes);
    }
  }

  #checkManifest(manifest: Manifest, op: string): Manifest {
    if (manifest.data !== undefined) {
      checkJsonField(
        op,
        "manifest.data",
        manifest.data,
        this.#ctx.policy.limits.maxManifestDataBytes,
      );
    }
    return manifest;
  }

  /** Checks a chunk's size and index limits and its digest; returns the engine's own copy. */
  async #receiveChunk(input: UploadChunkInput, op: string): Promise<Chunk> {
    const { limits } = this.#ctx.policy;
    if (input.bytes.length === 0) {
      throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${op}: bytes must not be empty`);
    }
    if (input.bytes.length > limits.maxChunkBytes) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: chunk is ${input.bytes.length} bytes, more than the limit of ${limits.maxChunkBytes}`,
        { details: { limit: limits.maxChunkBytes, actual: input.bytes.length } },
      );
    }
    if (input.index >= limits.maxChunksPerSource) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: index ${input.index} is beyond the limit of ${limits.maxChunksPerSource} chunks`,
        { details: { limit: limits.maxChunksPerSource, index: input.index } },
      );
    }
    // Own copy: the caller may reuse its buffer once the promise settles.
    const bytes = input.bytes.slice();
    const sha256 = await sha256Hex(bytes);
    if (sha256 !== input.sha256) {
      throw new SyncError(
        "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
        `${op}: chunk ${input.index} hashes to ${sha256}, not the declared ${input.sha256}`,
        { details: { index: input.index, expected: input.sha256, actual: sha256 } },
      );
    }
    const chunk: Chunk = { index: input.index, bytes, byteLength: bytes.length, sha256 };
    if (input.itemCount !== undefined) chunk.itemCount = input.itemCount;
    return chunk;
  }

  #newSource(args: CreateSourceInput, sourceId: string, now: number): Source {
    return newSource({
      sourceId,
      scope: args.scope,
      conversationId: args.conversationId,
      metadata: args.metadata,
      now,
      ttlMs: this.#ctx.policy.sourceTtlMs,
    });
  }

  async #createIn(
    tx: StoreTransaction<TExtras>,
    args: CreateSourceInput,
    sourceId: string,
    now: number,
    op: string,
  ): Promise<Outcome<Source>> {
    const otherConversation = (): Outcome<Source> => ({
      error: new SyncError(
        "E_SYNC_INVALID_ARGUMENT",
        `${op}: source ${sourceId} belongs to another conversation`,
        { details: { sourceId } },
      ),
    });
    const existing = await tx.lockSource(args.scope, sourceId);
    if (existing) {
      return existing.conversationId === args.conversationId
        ? { value: existing }
        : otherConversation();
    }
    const source = this.#newSource(args, sourceId, now);
    if (await tx.insertSource(source)) return { value: source };
    // Another transaction created it first: answer as if it had been there.
    const raced = await tx.lockSource(args.scope, sourceId);
    return raced?.conversationId === args.conversationId ? { value: raced } : otherConversation();
  }

  async #appendIn(
    tx: StoreTransaction<TExtras>,
    scope: string,
    sourceId: string,
    chunk: Chunk,
    now: number,
    op: string,
  ): Promise<Outcome<AppendResult>> {
    const { limits } = this.#ctx.policy;
    const source = await tx.lockSource(scope, sourceId);
    if (!source) return { error: sourceNotFound(sourceId) };
    const refusal = await this.#refuseUnlessCollecting(tx, source, now);
    if (refusal) return { error: refusal };
    const existing = await tx.getChunkInfo(scope, sourceId, chunk.index);
    if (existing) {
      if (
        existing.sha256 === chunk.sha256 && existing.byteLength === chunk.byteLength &&
        existing.itemCount === chunk.itemCount
      ) {
        return { value: { appended: false, chunk: chunkInfo(existing), source } };
      }
      return {
        error: new SyncError(
          "E_SYNC_CHUNK_CONFLICT",
          `${op}: chunk ${chunk.index} is already stored with other content`,
          { details: { index: chunk.index, stored: existing.sha256, offered: chunk.sha256 } },
        ),
      };
    }
    if (source.received.byteCount + chunk.byteLength > limits.maxSourceBytes) {
      return {
        error: new SyncError(
          "E_SYNC_LIMIT_EXCEEDED",
          `${op}: source would exceed the limit of ${limits.maxSourceBytes} bytes`,
          { details: { limit: limits.maxSourceBytes } },
        ),
      };
    }
    await tx.insertChunk(scope, sourceId, chunk);
    const updated = recordAppend(source, chunk.byteLength, now);
    await tx.updateSource(updated);
    return { value: { appended: true, chunk: chunkInfo(chunk), source: updated } };
  }

  async #sealIn(
    tx: StoreTransaction<TExtras>,
    scope: string,
    sourceId: string,
    manifest: Manifest,
    now: number,
  ): Promise<Outcome<SealResult>> {
    const source = await tx.lockSource(scope, sourceId);
    if (!source) return { error: sourceNotFound(sourceId) };
    if (source.state === "sealed" && sameManifest(source.manifest, manifest)) {
      const job = source.jobId === undefined
        ? undefined
        : await tx.getJob(source.scope, source.jobId);
      if (!job) return { error: new SyncError("E_SYNC_INTERNAL", `sealed source has no job`) };
      return { value: { source, job } };
    }
    const refusal = await this.#refuseUnlessCollecting(tx, source, now);
    if (refusal) return { error: refusal };
    const mismatch = await this.#checkAgainstManifest(tx, source, manifest);
    return await this.#settleSeal(tx, source, manifest, mismatch, now, (s) => tx.updateSource(s));
  }

  /**
   * A new source, its chunks and its seal, written at once: the source is built in
   * memory by the same transitions the three calls would make, then stored as it ends.
   */
  async #uploadNew(
    tx: StoreTransaction<TExtras>,
    args: UploadSourceInput,
    sourceId: string,
    chunks: readonly Chunk[],
    manifest: Manifest,
    now: number,
  ): Promise<Outcome<UploadSourceResult>> {
    const { limits } = this.#ctx.policy;
    let source = this.#newSource(args, sourceId, now);
    for (const chunk of chunks) source = recordAppend(source, chunk.byteLength, now);
    if (source.received.byteCount > limits.maxSourceBytes) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `uploadSource: source would exceed the limit of ${limits.maxSourceBytes} bytes`,
        { details: { limit: limits.maxSourceBytes } },
      );
    }
    const check = new ManifestCheck(manifest);
    for (const chunk of [...chunks].sort((a, b) => a.index - b.index)) check.add(chunk);
    const sealed = await this.#settleSeal(tx, source, manifest, check.finish(), now, async (s) => {
      if (!(await tx.insertSource(s))) throw new SourceCreatedMeanwhile();
      for (const chunk of chunks) await tx.insertChunk(args.scope, sourceId, chunk);
    });
    if ("error" in sealed) return sealed;
    return { value: { ...sealed.value, appended: chunks.map(() => true) } };
  }

  /**
   * Records a seal's outcome through `write` (which stores the source): failed durably
   * with the mismatch, or sealed with a new job that supersedes the conversation's others.
   */
  async #settleSeal(
    tx: StoreTransaction<TExtras>,
    source: Source,
    manifest: Manifest,
    mismatch: SyncError | undefined,
    now: number,
    write: (source: Source) => Promise<void>,
  ): Promise<Outcome<SealResult>> {
    if (mismatch) {
      await write(sealFailed(source, manifest, recordError(mismatch), now));
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
    const sealed = sealSucceeded(source, manifest, job.jobId, now);
    await write(sealed);
    if (this.#ctx.policy.supersede) await this.#supersede(tx, source, job.jobId, now);
    await tx.insertJob(job);
    return { value: { source: sealed, job } };
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
