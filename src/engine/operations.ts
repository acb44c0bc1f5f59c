/**
 * The runtime-facing operations: create, append, seal, read, list, cancel, gc.
 * Written once over the store primitives; adapters never re-implement these rules.
 *
 * @module
 */

import {
  EMPTY_COMPOSITE_STATE,
  hexDigestToBytes,
  IncrementalSha256,
  sha256Hex,
} from "../checksum.ts";
import {
  type AppendResult,
  type Chunk,
  type ChunkInfo,
  type GcReport,
  isTerminalJobState,
  type Job,
  type Manifest,
  type Page,
  type RecordedError,
  type SealResult,
  type Source,
  type UploadSourceResult,
} from "../contracts/domain.ts";
import {
  type AbandonSourceInput,
  abandonSourceInputSchema,
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
  type GetLatestSourceInput,
  getLatestSourceInputSchema,
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
import type { SourceUpdate, StoreTransaction } from "../contracts/store.ts";
import { SyncError } from "../errors.ts";
import {
  canonicalJson,
  checkIdLengths,
  chunkIndexRefusal,
  parseInput,
  snapshotJson,
  sourceBytesRefusal,
} from "../policy/validation.ts";
import { type JobStart, newJob, transitionJob } from "../state/job.ts";
import { type CheckedPrefix, ManifestCheck } from "../state/manifest.ts";
import {
  chunkHomeOf,
  collectingRefusal,
  expireSource,
  extendSource,
  isPastTtl,
  markChunksPurged,
  newSource,
  recordAppend,
  recordError,
  sealFailed,
  sealSucceeded,
  withoutField,
} from "../state/source.ts";
import { commitThenSettle, type EngineContext, type Outcome, readOnce } from "./context.ts";
import { currentApplied, releasedChunksOf } from "./current.ts";
import {
  decodeChunkCursor,
  decodeJobCursor,
  encodeChunkCursor,
  encodeJobCursor,
} from "./paging.ts";

const CHUNK_PAGE = 1000;
/** Newest jobs of a conversation `getLatestSource` looks through. */
const LATEST_SOURCE_SCAN = 8;
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

/**
 * Why `offered` cannot stand at the index of the `stored` chunk: a conflict when the
 * content differs; undefined when it is the same chunk again. A missing stored chunk
 * (a reused index whose chunk is gone) is an internal error.
 */
function storedChunkRefusal(
  stored: ChunkInfo | undefined,
  offered: Chunk,
  op: string,
): SyncError | undefined {
  if (!stored) return new SyncError("E_SYNC_INTERNAL", `reused chunk ${offered.index} is missing`);
  if (
    stored.sha256 === offered.sha256 && stored.byteLength === offered.byteLength &&
    stored.itemCount === offered.itemCount
  ) {
    return undefined;
  }
  return new SyncError(
    "E_SYNC_CHUNK_CONFLICT",
    `${op}: chunk ${offered.index} is already stored with other content`,
    { details: { index: offered.index, stored: stored.sha256, offered: offered.sha256 } },
  );
}

/** What an extension's seal resumes from: its reused chunks, checked when its base sealed. */
function prefixOf(source: Source): CheckedPrefix | undefined {
  if (!source.base) return undefined;
  const prefix: CheckedPrefix = {
    chunkCount: source.base.chunkCount,
    byteCount: source.base.byteCount,
    digestState: source.digestState ?? EMPTY_COMPOSITE_STATE,
  };
  if (source.base.itemCount !== undefined) prefix.itemCount = source.base.itemCount;
  return prefix;
}

/** Why an existing source cannot answer a create that names it, or undefined. */
function existingRefusal(
  existing: Source | undefined,
  args: CreateSourceInput,
  sourceId: string,
  op: string,
): SyncError | undefined {
  if (!existing || existing.conversationId !== args.conversationId) {
    return new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${op}: source ${sourceId} belongs to another conversation`,
      { details: { sourceId } },
    );
  }
  if (existing.base?.sourceId !== args.baseSourceId) {
    return new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${op}: source ${sourceId} exists with another base`,
      { details: { sourceId, baseSourceId: existing.base?.sourceId ?? null } },
    );
  }
  return undefined;
}

/** `input[field]` read as the schema would; a throwing getter or trap is a bad input. */
function readField(input: unknown, field: string, op: string): unknown {
  try {
    return typeof input === "object" && input !== null
      ? (input as Record<string, unknown>)[field]
      : undefined;
  } catch (cause) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${op}: the input could not be read`, {
      details: { operation: op },
      cause,
    });
  }
}

/** Thrown inside an upload's transaction (rolling it back) when its new source exists. */
class SourceCreatedMeanwhile extends Error {}

/**
 * Thrown inside a seal's transaction (rolling it back) when it must refuse an extension
 * over released payloads but holds the conversation's jobs without its base and chunk
 * home locked: the seal runs again, locking them first (lock order: sources, then jobs).
 */
class HomeNotLocked extends Error {}

/** An extension's base and the root of its chunk home (the same record for a plain base). */
interface ResolvedBase {
  base: Source;
  root: Source;
}

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
    const result = await commitThenSettle(
      this.#ctx.store,
      (tx) => this.#appendIn(tx, args.scope, args.sourceId, chunk, now, op),
    );
    if (result.appended) this.#ctx.uploads.add(args.scope, chunkHomeOf(result.source), [chunk]);
    return result;
  }

  /**
   * Create, append and seal of a small source in one transaction. A refused chunk rolls
   * everything back (not even the source is created); a failed seal commits the failure.
   */
  async uploadSource(input: UploadSourceInput): Promise<UploadSourceResult> {
    const op = "uploadSource";
    // Bounded before the schema walks the list: one call carries at most one chunk's bytes.
    const chunkList = readField(input, "chunks", op);
    if (Array.isArray(chunkList) && chunkList.length > this.#ctx.policy.limits.maxChunkBytes) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: ${chunkList.length} chunks are more than one call can carry`,
        { details: { limit: this.#ctx.policy.limits.maxChunkBytes, actual: chunkList.length } },
      );
    }
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
    const now = this.#ctx.clock.now();
    const inOneStep = await this.#uploadInOneStep(args, chunks, manifest, now) ??
      await this.#extendInOneStep(args, chunks, manifest, now);
    if (inOneStep) {
      if (chunks.length > 0) {
        this.#ctx.uploads.add(args.scope, chunkHomeOf(inOneStep.source), chunks);
      }
      return inOneStep;
    }
    const sourceId = args.sourceId ?? this.#ctx.generateId();
    const upload = (lockHome = false): Promise<UploadSourceResult> =>
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
            // An expiry is returned, so that it commits (refused at the first chunk, the
            // call stored nothing); any other refusal is thrown, and the transaction rolls
            // back whatever this call stored.
            if ("error" in outcome && outcome.error.code === "E_SYNC_SOURCE_EXPIRED") {
              return outcome;
            }
            if ("error" in outcome) throw outcome.error;
            appended.push(outcome.value.appended);
          }
        } else {
          for (const _ of chunks) appended.push(false);
        }
        const sealed = await this.#sealIn(tx, args.scope, sourceId, manifest, now, lockHome);
        if ("error" in sealed) return sealed;
        return { value: { ...sealed.value, appended } };
      });
    let result: UploadSourceResult;
    try {
      result = await upload();
    } catch (error) {
      // Another call created the same source meanwhile: resume it like any other.
      if (error instanceof SourceCreatedMeanwhile) result = await upload();
      else if (error instanceof HomeNotLocked) result = await upload(true);
      else throw error;
    }
    const stored = chunks.filter((_, i) => result.appended[i]);
    if (stored.length > 0) {
      this.#ctx.uploads.add(args.scope, chunkHomeOf(result.source), stored);
    }
    return result;
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
      if (source.chunksPurgedAt !== undefined) return { items: [] };
      // A shared chunk home holds later extensions' chunks too: a sealed source lists its own.
      const end = source.state === "sealed" && source.manifest
        ? source.manifest.chunkCount
        : Infinity;
      const rows = (await tx.listChunkInfos(args.scope, chunkHomeOf(source), after, limit + 1))
        .filter((row) => row.index < end);
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
    const seal = (lockHome: boolean) =>
      commitThenSettle(
        this.#ctx.store,
        (tx) => this.#sealIn(tx, args.scope, args.sourceId, manifest, now, lockHome),
      );
    try {
      return await seal(false);
    } catch (error) {
      if (error instanceof HomeNotLocked) return await seal(true);
      throw error;
    }
  }

  /**
   * The conversation's newest sealed source whose chunks are still stored, preferring,
   * among sources sealed at the same instant, one that no other source extends yet.
   */
  async getLatestSource(input: GetLatestSourceInput): Promise<Source | null> {
    const op = "getLatestSource";
    const args = parseInput(getLatestSourceInputSchema, input, op);
    checkIdLengths(this.#ctx.policy.limits, op, {
      scope: args.scope,
      conversationId: args.conversationId,
    });
    return await this.#ctx.store.transaction(async (tx) => {
      const jobs = await tx.listJobs({
        scope: args.scope,
        conversationId: args.conversationId,
        limit: LATEST_SOURCE_SCAN,
      });
      let latest: { source: Source; createdAt: number } | undefined;
      for (const job of jobs) {
        if (
          latest && (job.createdAt < latest.createdAt || latest.source.extendedBy === undefined)
        ) {
          break;
        }
        const source = await tx.getSource(args.scope, job.sourceId);
        if (!source || source.state !== "sealed" || source.chunksPurgedAt !== undefined) continue;
        if (!latest || source.extendedBy === undefined) {
          latest = { source, createdAt: job.createdAt };
        }
      }
      return latest?.source ?? null;
    });
  }

  /** Expires a collecting source now (its chunks deleted); see `SourceAbandon`. */
  async abandonSource(input: AbandonSourceInput): Promise<Source> {
    const op = "abandonSource";
    const args = parseInput(abandonSourceInputSchema, input, op);
    checkIdLengths(this.#ctx.policy.limits, op, { scope: args.scope, sourceId: args.sourceId });
    const now = this.#ctx.clock.now();
    return await commitThenSettle(this.#ctx.store, async (tx): Promise<Outcome<Source>> => {
      const source = await tx.lockSource(args.scope, args.sourceId);
      if (!source) return { error: sourceNotFound(args.sourceId) };
      if (source.state === "expired") return { value: source };
      const refusal = await this.#refuseUnlessCollecting(tx, source, now);
      if (refusal?.code === "E_SYNC_SOURCE_EXPIRED") {
        return { value: (await tx.getSource(args.scope, args.sourceId)) ?? source };
      }
      if (refusal) return { error: refusal };
      await this.#expire(tx, source, now);
      return { value: (await tx.getSource(args.scope, args.sourceId)) ?? source };
    });
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
        report.deletedChunks += await this.#releaseHome(tx, markChunksPurged(source, now));
        report.purgedSources++;
      }
    });
    return report;
  }

  /** Checks ids and metadata; the parsed `args` then hold a plain copy of the metadata. */
  #checkCreate(args: CreateSourceInput, op: string): void {
    const { limits } = this.#ctx.policy;
    checkIdLengths(limits, op, {
      scope: args.scope,
      conversationId: args.conversationId,
      sourceId: args.sourceId,
      baseSourceId: args.baseSourceId,
    });
    if (args.metadata !== undefined) {
      args.metadata = snapshotJson(op, "metadata", args.metadata, limits.maxMetadataBytes).value;
    }
  }

  /** The parsed manifest with a plain copy of its data, checked against the limit. */
  #checkManifest(manifest: Manifest, op: string): Manifest {
    if (manifest.data !== undefined) {
      manifest.data = snapshotJson(
        op,
        "manifest.data",
        manifest.data,
        this.#ctx.policy.limits.maxManifestDataBytes,
      ).value;
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
    const beyond = chunkIndexRefusal(limits, op, input.index);
    if (beyond) throw beyond;
    // Own copy, a plain Uint8Array: the caller may reuse its buffer once the promise
    // settles, and `slice` of a subclass (a Node Buffer) is a view of the same memory.
    const bytes = new Uint8Array(input.bytes);
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
    const answer = (existing: Source | undefined): Outcome<Source> => {
      const refusal = existingRefusal(existing, args, sourceId, op);
      return refusal ? { error: refusal } : { value: existing! };
    };
    const existing = await tx.lockSource(args.scope, sourceId);
    if (existing) return answer(existing);
    let source = this.#newSource(args, sourceId, now);
    let base: ResolvedBase | undefined;
    if (args.baseSourceId !== undefined) {
      const resolved = await this.#resolveBase(tx, args, args.baseSourceId, sourceId, now, op);
      if ("error" in resolved) return resolved;
      base = resolved.value;
      source = extendSource(source, base.base, await this.#digestStateOf(tx, base.base));
    }
    if (!(await tx.insertSource(source))) {
      // Another transaction created it first: answer as if it had been there.
      return answer(await tx.lockSource(args.scope, sourceId));
    }
    if (base) await this.#linkToBase(tx, base, sourceId);
    return { value: source };
  }

  /**
   * Locks and checks the base an extension names: of the same scope (else it does not
   * exist) and conversation, sealed, its chunks stored, not continued by another source.
   * Locks its chunk home's root too; where payloads of that home were released, the base
   * must be the conversation's current applied snapshot (the extension's job then starts
   * at its chunk count, never over released bytes).
   */
  async #resolveBase(
    tx: StoreTransaction<TExtras>,
    args: { scope: string; conversationId: string },
    baseSourceId: string,
    sourceId: string,
    now: number,
    op: string,
  ): Promise<Outcome<ResolvedBase>> {
    const base = await tx.lockSource(args.scope, baseSourceId);
    const refusal = baseRefusal(base, args.conversationId, baseSourceId, sourceId, now, op);
    if (refusal || !base) return { error: refusal ?? sourceNotFound(baseSourceId) };
    // Lock order: the new source, its base, the home's root, then the conversation's jobs.
    const home = chunkHomeOf(base);
    const root = home === base.sourceId ? base : await tx.lockSource(args.scope, home);
    if (!root) return { error: new SyncError("E_SYNC_INTERNAL", `chunk home ${home} is missing`) };
    if ((root.releasedChunks ?? 0) > 0) {
      const active = await tx.listActiveJobs(base.scope, base.conversationId);
      const current = await currentApplied(tx, base, active);
      if (!("job" in current) || current.job.cursor !== base.manifest!.chunkCount) {
        return {
          error: baseError(
            "E_SYNC_SOURCE_EXPIRED",
            op,
            baseSourceId,
            "has its chunk payloads released and is not the conversation's current applied " +
              "snapshot, so an extension's job could not start after it; upload a full source",
            { reason: "job" in current ? "not-current" : current.reason },
          ),
        };
      }
    }
    return { value: { base, root } };
  }

  /** The composite state over a sealed source's chunks: saved at its seal, else recomputed. */
  async #digestStateOf(tx: StoreTransaction<TExtras>, source: Source): Promise<string> {
    if (source.digestState !== undefined) return source.digestState;
    // Sealed before digest states were saved: one pass over the stored digests.
    const hasher = new IncrementalSha256();
    const home = chunkHomeOf(source);
    const end = source.manifest?.chunkCount ?? 0;
    for (let after = -1; after < end - 1;) {
      const page = await tx.listChunkInfos(source.scope, home, after, CHUNK_PAGE);
      if (page.length === 0) break;
      for (const chunk of page) {
        if (chunk.index < end) hasher.update(hexDigestToBytes(chunk.sha256));
      }
      after = page[page.length - 1].index;
    }
    return hasher.save();
  }

  /** Records that `extensionId` continues `base`'s chunk home, and counts it as a user. */
  async #linkToBase(tx: StoreTransaction<TExtras>, resolved: ResolvedBase, extensionId: string) {
    for (const update of linkedToBase(resolved, extensionId)) await tx.updateSource(update.write);
  }

  /**
   * Writes `source` (its chunks no longer needed by it) and drops it from its chunk
   * home's users; the home's chunks are deleted with its last user. Returns how many
   * chunks were deleted.
   */
  async #releaseHome(tx: StoreTransaction<TExtras>, source: Source): Promise<number> {
    const home = chunkHomeOf(source);
    let root: Source | undefined = source;
    if (home !== source.sourceId) {
      // Lock order: the source, then its home's root.
      await tx.updateSource(source);
      root = await tx.lockSource(source.scope, home);
      if (!root) return 0;
    }
    const refs = (root.homeRefs ?? 1) - 1;
    await tx.updateSource(root.homeRefs === undefined ? root : { ...root, homeRefs: refs });
    if (refs > 0) return 0;
    this.#ctx.uploads.drop(source.scope, home);
    return await tx.deleteChunks(source.scope, home);
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
    const home = chunkHomeOf(source);
    const existing = await tx.getChunkInfo(scope, home, chunk.index);
    if (existing) {
      const conflict = storedChunkRefusal(existing, chunk, op);
      if (conflict) return { error: conflict };
      return { value: { appended: false, chunk: chunkInfo(existing), source } };
    }
    const tooLarge = sourceBytesRefusal(limits, op, source.received.byteCount + chunk.byteLength);
    if (tooLarge) return { error: tooLarge };
    if (source.base && chunk.index < source.base.chunkCount) {
      throw new SyncError("E_SYNC_INTERNAL", `reused chunk ${chunk.index} is missing`);
    }
    await tx.insertChunk(scope, home, chunk);
    const updated = recordAppend(source, chunk.byteLength, now);
    await tx.updateSource(updated);
    return { value: { appended: true, chunk: chunkInfo(chunk), source: updated } };
  }

  /** `lockHome`: lock an extension's base and chunk home first (see {@link HomeNotLocked}). */
  async #sealIn(
    tx: StoreTransaction<TExtras>,
    scope: string,
    sourceId: string,
    manifest: Manifest,
    now: number,
    lockHome: boolean,
  ): Promise<Outcome<SealResult>> {
    const source = await tx.lockSource(scope, sourceId);
    if (!source) return { error: sourceNotFound(sourceId) };
    if (lockHome && source.base) {
      await tx.lockSource(scope, source.base.sourceId);
      if (chunkHomeOf(source) !== source.base.sourceId) {
        await tx.lockSource(scope, chunkHomeOf(source));
      }
    }
    if (source.state === "sealed" && sameManifest(source.manifest, manifest)) {
      const job = source.jobId === undefined
        ? undefined
        : await tx.getJob(source.scope, source.jobId);
      if (!job) return { error: new SyncError("E_SYNC_INTERNAL", `sealed source has no job`) };
      return { value: { source, job } };
    }
    const refusal = await this.#refuseUnlessCollecting(tx, source, now);
    if (refusal) return { error: refusal };
    const checked = await this.#checkAgainstManifest(tx, source, manifest);
    return await this.#settleSeal(
      tx,
      source,
      manifest,
      checked,
      now,
      (s) => tx.updateSource(s),
      lockHome,
    );
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
    let source = this.#newSource(args, sourceId, now);
    let base: ResolvedBase | undefined;
    if (args.baseSourceId !== undefined) {
      const resolved = await this.#resolveBase(
        tx,
        args,
        args.baseSourceId,
        sourceId,
        now,
        "uploadSource",
      );
      if ("error" in resolved) return resolved;
      base = resolved.value;
      source = extendSource(source, base.base, await this.#digestStateOf(tx, base.base));
    }
    const reusedCount = source.base?.chunkCount ?? 0;
    const appended: boolean[] = [];
    const fresh: Chunk[] = [];
    for (const chunk of chunks) {
      if (chunk.index < reusedCount) {
        // A chunk the extension reuses: accepted unchanged, like an idempotent append.
        const stored = await tx.getChunkInfo(args.scope, chunkHomeOf(source), chunk.index);
        const refusal = storedChunkRefusal(stored, chunk, "uploadSource");
        if (refusal) throw refusal;
        appended.push(false);
        continue;
      }
      fresh.push(chunk);
      appended.push(true);
    }
    const received = this.#receive(source, fresh, manifest, now);
    source = received.source;
    const home = chunkHomeOf(source);
    // #resolveBase locked the base and its chunk home's root.
    const sealed = await this.#settleSeal(tx, source, manifest, received, now, async (s) => {
      if (!(await tx.insertSource(s))) throw new SourceCreatedMeanwhile();
      for (const chunk of fresh) await tx.insertChunk(args.scope, home, chunk);
      if (base) await this.#linkToBase(tx, base, sourceId);
    }, true);
    if ("error" in sealed) return sealed;
    return { value: { ...sealed.value, appended } };
  }

  /**
   * `source` once its `fresh` chunks (those it does not reuse from its base) are received,
   * and how they answer the manifest. Throws when they are more than a source may hold.
   */
  #receive(
    source: Source,
    fresh: readonly Chunk[],
    manifest: Manifest,
    now: number,
  ): { source: Source; mismatch?: SyncError; digestState: string } {
    let received = source;
    for (const chunk of fresh) received = recordAppend(received, chunk.byteLength, now);
    const tooLarge = sourceBytesRefusal(
      this.#ctx.policy.limits,
      "uploadSource",
      received.received.byteCount,
    );
    if (tooLarge) throw tooLarge;
    const check = new ManifestCheck(manifest, prefixOf(received));
    for (const chunk of [...fresh].sort((a, b) => a.index - b.index)) check.add(chunk);
    return { source: received, mismatch: check.finish(), digestState: check.digestState };
  }

  /**
   * A one-call upload of a new source extending nothing, in one step of the store
   * (`SyncStore.insertSealedSource`): what {@link #uploadNew} commits when it finds no
   * active job in the conversation. Undefined (nothing stored) where the store lacks
   * the step, declines it, or the chunks fail the manifest (a failure the transaction
   * records durably).
   */
  async #uploadInOneStep(
    args: UploadSourceInput,
    chunks: readonly Chunk[],
    manifest: Manifest,
    now: number,
  ): Promise<UploadSourceResult | undefined> {
    const { store } = this.#ctx;
    if (!store.insertSealedSource || args.sourceId !== undefined) return undefined;
    if (args.baseSourceId !== undefined) return undefined;
    // A generated id is new, so no other call stores this source meanwhile.
    const source = this.#newSource(args, this.#ctx.generateId(), now);
    const received = this.#receive(source, chunks, manifest, now);
    if (received.mismatch) return undefined;
    const jobId = this.#ctx.generateId();
    const sealed = sealedSource(received.source, manifest, jobId, received.digestState, now);
    const job = jobOf(sealed, manifest, jobId, now, undefined);
    if (!(await store.insertSealedSource(sealed, chunks, job))) return undefined;
    this.#ctx.recentSources.remember([sealed]);
    return { source: sealed, job, appended: chunks.map(() => true) };
  }

  /**
   * A one-call upload of an extension in one step of the store
   * (`SyncStore.insertSealedExtension`): what {@link #uploadNew} commits when its base is
   * the conversation's current applied snapshot, so that its job starts after the base's.
   * Built first from what this engine last stored and heard (the base and its chunk home's
   * root from `RecentSources`, the base's terminal job from `knownJob`), then, if
   * the store declines a step built from such guesses, from reads without a lock; the
   * step checks they are still what is stored. Undefined (nothing stored) where the store
   * lacks the step or declines it (a source with the id exists, say), or where the
   * transaction would do anything else: refuse the base, reuse a chunk, record a failed
   * seal, start the job from chunk 0 or supersede a job.
   */
  async #extendInOneStep(
    args: UploadSourceInput,
    chunks: readonly Chunk[],
    manifest: Manifest,
    now: number,
  ): Promise<UploadSourceResult | undefined> {
    if (!this.#ctx.store.insertSealedExtension || args.baseSourceId === undefined) {
      return undefined;
    }
    // Generated once, for both tries: a caller's id may name a source to resume (the
    // step declines where it exists).
    let ids: { sourceId: string; jobId: string } | undefined;
    const idsOnce = () =>
      ids ??= {
        sourceId: args.sourceId ?? this.#ctx.generateId(),
        jobId: this.#ctx.generateId(),
      };
    const guessed = await this.#tryExtensionStep(args, chunks, manifest, now, idsOnce, true);
    if (guessed !== "declined-guess") return guessed;
    const read = await this.#tryExtensionStep(args, chunks, manifest, now, idsOnce, false);
    return read === "declined-guess" ? undefined : read;
  }

  /**
   * One try of {@link #extendInOneStep}: `guess` takes the records this engine holds (and
   * reads the rest); "declined-guess" when the store declined a step built on a guess.
   */
  async #tryExtensionStep(
    args: UploadSourceInput,
    chunks: readonly Chunk[],
    manifest: Manifest,
    now: number,
    idsOnce: () => { sourceId: string; jobId: string },
    guess: boolean,
  ): Promise<UploadSourceResult | undefined | "declined-guess"> {
    const { store, recentSources } = this.#ctx;
    const { scope } = args;
    const baseSourceId = args.baseSourceId!;
    let guessed = false;
    const sourceOf = async (sourceId: string): Promise<Source | undefined> => {
      const held = guess ? recentSources.get(scope, sourceId) : undefined;
      if (held) {
        guessed = true;
        return held;
      }
      return await readOnce(store, (reader) => reader.getSource(scope, sourceId));
    };
    const base = await sourceOf(baseSourceId);
    const op = "uploadSource";
    if (!base || baseRefusal(base, args.conversationId, baseSourceId, args.sourceId, now, op)) {
      return undefined;
    }
    const { manifest: baseManifest, digestState, jobId: baseJobId } = base;
    if (digestState === undefined || baseJobId === undefined) return undefined;
    if (chunks.some((chunk) => chunk.index < baseManifest!.chunkCount)) return undefined;
    const home = chunkHomeOf(base);
    // A terminal record the store heard is what it stores: no later commit changes it.
    const known = guess ? store.knownJob?.(scope, baseJobId) : undefined;
    const heard = known?.job && isTerminalJobState(known.state) ? known.job : undefined;
    if (heard) guessed = true;
    const [root, baseJob] = await Promise.all([
      home === base.sourceId ? base : sourceOf(home),
      heard ?? readOnce(store, (reader) => reader.getJob(scope, baseJobId)),
    ]);
    if (!root || root.chunksPurgedAt !== undefined) return undefined;
    if (baseJob?.state !== "succeeded" || baseJob.cursor !== baseManifest!.chunkCount) {
      return undefined;
    }
    const { sourceId, jobId } = idsOnce();
    const extension = extendSource(this.#newSource(args, sourceId, now), base, digestState);
    const received = this.#receive(extension, chunks, manifest, now);
    if (received.mismatch) return undefined;
    const sealed = sealedSource(received.source, manifest, jobId, received.digestState, now);
    const job = jobOf(sealed, manifest, jobId, now, startAfter(baseJob));
    const updates = linkedToBase({ base, root }, sourceId);
    if (!(await store.insertSealedExtension!({ source: sealed, chunks, job, updates, baseJob }))) {
      for (const { read } of updates) recentSources.forget(scope, read.sourceId);
      return guessed ? "declined-guess" : undefined;
    }
    recentSources.remember([sealed, ...updates.map((update) => update.write)]);
    return { source: sealed, job, appended: chunks.map(() => true) };
  }

  /**
   * Records a seal's outcome through `write` (which stores the source): failed durably
   * with the mismatch, or sealed with a new job that supersedes the conversation's others.
   * An extension whose job would have to apply released chunks fails too
   * (`E_SYNC_SOURCE_EXPIRED`); `homeLocked` says its base and chunk home are locked.
   */
  async #settleSeal(
    tx: StoreTransaction<TExtras>,
    source: Source,
    manifest: Manifest,
    checked: { mismatch?: SyncError; digestState: string },
    now: number,
    write: (source: Source) => Promise<void>,
    homeLocked: boolean,
  ): Promise<Outcome<SealResult>> {
    const { mismatch } = checked;
    if (mismatch) {
      const failed = sealFailed(source, manifest, recordError(mismatch), now);
      await write(failed);
      if (failed.base) await this.#releaseBase(tx, failed, now);
      return { error: mismatch };
    }
    const jobId = this.#ctx.generateId();
    const sealed = sealedSource(source, manifest, jobId, checked.digestState, now);
    await write(sealed);
    // Locks the conversation's jobs (lock order: sources, then jobs) before reading them.
    const active = await tx.listActiveJobs(source.scope, source.conversationId);
    const start = await this.#jobStart(tx, source, active);
    // Read after the jobs are locked: a release of the base commits before, or sees this
    // seal's job as active.
    if (!start && source.base && (await releasedChunksOf(tx, source)) > 0) {
      if (!homeLocked) throw new HomeNotLocked();
      const refusal = new SyncError(
        "E_SYNC_SOURCE_EXPIRED",
        `sealSource: source ${source.sourceId} extends source ${source.base.sourceId}, whose ` +
          `chunk payloads were released, and its job can no longer start after its base's; ` +
          `upload a full source`,
        { details: { sourceId: source.sourceId, baseSourceId: source.base.sourceId } },
      );
      const failed = sealFailed(source, manifest, recordError(refusal), now);
      await tx.updateSource(failed);
      await this.#releaseBase(tx, failed, now);
      return { error: refusal };
    }
    const job = jobOf(sealed, manifest, jobId, now, start);
    if (this.#ctx.policy.supersede) await this.#supersede(source, jobId, now, active, tx);
    await tx.insertJob(job);
    return { value: { source: sealed, job } };
  }

  /**
   * Where an extension's job starts: on top of its base's job when that job succeeded,
   * is the conversation's newest (no other job created at or after it) and nothing else
   * of the conversation is running; else undefined, from chunk 0 (always correct).
   */
  async #jobStart(
    tx: StoreTransaction<TExtras>,
    source: Source,
    active: readonly Job[],
  ): Promise<JobStart | undefined> {
    if (!source.base || active.length > 0) return undefined;
    const base = await tx.getSource(source.scope, source.base.sourceId);
    if (!base) return undefined;
    const current = await currentApplied(tx, base, active);
    if (!("job" in current) || current.job.cursor !== source.base.chunkCount) return undefined;
    return startAfter(current.job);
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

  /**
   * Expires a collecting source and deletes its chunks: an extension's own chunks only
   * (its base keeps the rest), and its base may be extended again.
   */
  async #expire(tx: StoreTransaction<TExtras>, source: Source, now: number): Promise<number> {
    const expired = expireSource(source, now);
    if (!source.base) return await this.#releaseHome(tx, expired);
    await tx.updateSource(expired);
    return await this.#releaseBase(tx, expired, now);
  }

  /**
   * An extension that will never be sealed (expired, or its seal failed), already
   * written as such: its own chunks are deleted, its base may be extended again, and it
   * stops using its chunk home. Returns how many chunks were deleted.
   */
  async #releaseBase(tx: StoreTransaction<TExtras>, ended: Source, now: number): Promise<number> {
    const reused = ended.base!;
    this.#ctx.uploads.drop(ended.scope, chunkHomeOf(ended), reused.chunkCount);
    const own = await tx.deleteChunks(ended.scope, chunkHomeOf(ended), reused.chunkCount);
    const base = await tx.lockSource(ended.scope, reused.sourceId);
    if (base?.extendedBy === ended.sourceId) {
      await tx.updateSource(withoutField(base, "extendedBy"));
    }
    const released = ended.chunksPurgedAt === undefined ? markChunksPurged(ended, now) : ended;
    return own + await this.#releaseHome(tx, released);
  }

  async #checkAgainstManifest(
    tx: StoreTransaction<TExtras>,
    source: Source,
    manifest: Manifest,
  ): Promise<{ mismatch?: SyncError; digestState: string }> {
    const check = new ManifestCheck(manifest, prefixOf(source));
    for (;;) {
      const page = await tx.listChunkInfos(
        source.scope,
        chunkHomeOf(source),
        check.lastIndex,
        CHUNK_PAGE,
      );
      for (const chunk of page) check.add(chunk);
      if (page.length < CHUNK_PAGE) break;
    }
    return { mismatch: check.finish(), digestState: check.digestState };
  }

  async #supersede(
    source: Source,
    newJobId: string,
    now: number,
    active: readonly Job[],
    tx: StoreTransaction<TExtras>,
  ): Promise<void> {
    const error: RecordedError = {
      code: "E_SYNC_JOB_SUPERSEDED",
      message: `superseded by job ${newJobId} of source ${source.sourceId}`,
      retryable: false,
      details: { jobId: newJobId, sourceId: source.sourceId },
    };
    for (const job of active) {
      const next = transitionJob(job, { type: "cancel", now, error });
      if (next.ok && next.job !== job) await tx.updateJob(next.job);
    }
  }
}

/** `source` sealed by `manifest`, applied by job `jobId`. */
function sealedSource(
  source: Source,
  manifest: Manifest,
  jobId: string,
  digestState: string,
  now: number,
): Source {
  return { ...sealSucceeded(source, manifest, jobId, now), digestState };
}

/** The job `jobId` that applies the sealed `source` (from `start`, or from chunk 0). */
function jobOf(
  source: Source,
  manifest: Manifest,
  jobId: string,
  now: number,
  start: JobStart | undefined,
): Job {
  return newJob({
    jobId,
    scope: source.scope,
    sourceId: source.sourceId,
    conversationId: source.conversationId,
    totalChunks: manifest.chunkCount,
    now,
    emptyDigestState: EMPTY_COMPOSITE_STATE,
    start,
  });
}

/** An extension's refusal of its base `baseSourceId`. */
function baseError(
  code: "E_SYNC_INVALID_ARGUMENT" | "E_SYNC_SOURCE_EXPIRED" | "E_SYNC_CHUNK_CONFLICT",
  op: string,
  baseSourceId: string,
  message: string,
  details: Record<string, unknown> = {},
): SyncError {
  return new SyncError(code, `${op}: base source ${baseSourceId} ${message}`, {
    details: { baseSourceId, ...details },
  });
}

/**
 * Why `base` (as stored, or missing) cannot be extended by source `sourceId` of
 * `conversationId` (undefined: a new id, yet to be generated): it must exist in the scope
 * and conversation, be sealed with its chunks stored, and not be continued by another
 * source.
 */
function baseRefusal(
  base: Source | undefined,
  conversationId: string,
  baseSourceId: string,
  sourceId: string | undefined,
  now: number,
  op: string,
): SyncError | undefined {
  if (!base) return sourceNotFound(baseSourceId);
  if (base.conversationId !== conversationId) {
    return baseError(
      "E_SYNC_INVALID_ARGUMENT",
      op,
      baseSourceId,
      "belongs to another conversation",
    );
  }
  if (base.state === "expired" || isPastTtl(base, now) || base.chunksPurgedAt !== undefined) {
    return baseError(
      "E_SYNC_SOURCE_EXPIRED",
      op,
      baseSourceId,
      "no longer has its chunks stored",
    );
  }
  if (base.state !== "sealed" || !base.manifest) {
    return baseError("E_SYNC_INVALID_ARGUMENT", op, baseSourceId, `is ${base.state}, not sealed`, {
      state: base.state,
    });
  }
  if (base.extendedBy !== undefined && base.extendedBy !== sourceId) {
    return baseError(
      "E_SYNC_CHUNK_CONFLICT",
      op,
      baseSourceId,
      `is already extended by source ${base.extendedBy}`,
      { extendedBy: base.extendedBy },
    );
  }
  return undefined;
}

/**
 * The records that link extension `extensionId` to its base: the base continued by it,
 * and its chunk home's root counting one more user (one record when the base is the root).
 */
function linkedToBase(resolved: ResolvedBase, extensionId: string): SourceUpdate[] {
  const { base, root } = resolved;
  const linked: Source = { ...base, extendedBy: extensionId };
  if (root.sourceId === base.sourceId) {
    return [{ read: base, write: { ...linked, homeRefs: (base.homeRefs ?? 1) + 1 } }];
  }
  return [
    { read: base, write: linked },
    { read: root, write: { ...root, homeRefs: (root.homeRefs ?? 1) + 1 } },
  ];
}

/** Where an extension's job starts when its base's job `baseJob` is current. */
function startAfter(baseJob: Job): JobStart {
  return {
    base: { sourceId: baseJob.sourceId, jobId: baseJob.jobId, chunkCount: baseJob.cursor },
    appliedBytes: baseJob.appliedBytes,
    appliedDigestState: baseJob.appliedDigestState,
  };
}
