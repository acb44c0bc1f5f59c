import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { SyncAdapter } from "../src/contracts/adapter.ts";
import type { Capability } from "../src/contracts/capabilities.ts";
import type {
  AppendResult,
  Chunk,
  ChunkInfo,
  GcReport,
  Job,
  Page,
  SealResult,
  Source,
  SourceState,
} from "../src/contracts/domain.ts";
import type {
  AppendChunkInput,
  CancelJobInput,
  CreateSourceInput,
  GetJobInput,
  GetSourceInput,
  ListChunksInput,
  ListJobsInput,
  SealSourceInput,
  WaitForTerminalInput,
} from "../src/contracts/inputs.ts";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError, nonRetryable, SyncError } from "../src/errors.ts";
import { backoffDelay } from "../src/policy/backoff.ts";
import { DEFAULT_RETRY_POLICY } from "../src/policy/policy.ts";
import {
  chunkBytes,
  chunkRecords,
  type PayloadChunk,
  syncConversation,
  type SyncConversationOptions,
  type SyncProgressEvent,
} from "../src/client/mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";

// ---------------------------------------------------------------------------------------
// An in-memory SyncAdapter with knobs for failures, held appends and job outcomes.

interface StoredChunk {
  info: ChunkInfo;
  bytes: Uint8Array;
}

interface StoredSource {
  source: Source;
  chunks: Map<number, StoredChunk>;
}

const tick = (): Promise<void> => Promise.resolve();

class FakeAdapter implements SyncAdapter {
  readonly capabilities: readonly Capability[] = [];
  maxChunkBytes?: number;
  /** Every operation called, in order. */
  readonly calls: string[] = [];
  /** Index of every append attempt, in order. */
  readonly appendAttempts: number[] = [];
  /** Indexes newly stored, in order. */
  readonly appended: number[] = [];
  readonly waitInputs: WaitForTerminalInput[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** While true, appends wait in `held` until released. */
  holdAppends = false;
  readonly held: Array<{ index: number; release: () => void }> = [];
  /** A failure for the `attempt`-th append (1-based) of an index, or undefined. */
  failAppend?: (input: AppendChunkInput, attempt: number) => SyncError | undefined;
  /** How a job ends when waited for. */
  endJob: (job: Job) => Job = (job) => ({
    ...job,
    state: "succeeded",
    cursor: job.totalChunks,
    completedAt: 2,
  });
  /** The wait never ends on its own (only its signal stops it). */
  waitForever = false;
  pageSize = 2;
  readonly sources = new Map<string, StoredSource>();
  readonly jobs = new Map<string, Job>();
  #ids = 0;

  #source(scope: string, sourceId: string): StoredSource {
    const stored = this.sources.get(sourceId);
    if (!stored || stored.source.scope !== scope) {
      throw new SyncError("E_SYNC_SOURCE_NOT_FOUND", `no source ${sourceId}`);
    }
    return stored;
  }

  async createSource(input: CreateSourceInput): Promise<Source> {
    this.calls.push("createSource");
    await tick();
    const sourceId = input.sourceId ?? `source-${++this.#ids}`;
    const existing = this.sources.get(sourceId);
    if (existing) return structuredClone(this.#source(input.scope, sourceId).source);
    const source: Source = {
      sourceId,
      scope: input.scope,
      conversationId: input.conversationId,
      state: "collecting",
      received: { chunkCount: 0, byteCount: 0 },
      createdAt: 1,
      updatedAt: 1,
      expiresAt: 1_000_000,
    };
    if (input.metadata !== undefined) source.metadata = input.metadata;
    this.sources.set(sourceId, { source, chunks: new Map() });
    return structuredClone(source);
  }

  /** Puts a source with the given chunks in place, as an interrupted upload left it. */
  async seed(
    sourceId: string,
    chunks: readonly PayloadChunk[],
    state: SourceState = "collecting",
  ): Promise<void> {
    await this.createSource({ scope: SCOPE, conversationId: CONVERSATION, sourceId });
    const stored = this.sources.get(sourceId)!;
    for (const chunk of chunks) {
      const info = {
        index: chunk.index,
        byteLength: chunk.bytes.length,
        sha256: await sha256Hex(chunk.bytes),
      };
      stored.chunks.set(chunk.index, { info, bytes: chunk.bytes.slice() });
    }
    stored.source.state = state;
    this.calls.length = 0;
  }

  async appendChunk(input: AppendChunkInput): Promise<AppendResult> {
    this.calls.push("appendChunk");
    this.appendAttempts.push(input.index);
    const attempt = this.appendAttempts.filter((index) => index === input.index).length;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.holdAppends) {
        await new Promise<void>((release) => this.held.push({ index: input.index, release }));
      } else await tick();
      const failure = this.failAppend?.(input, attempt);
      if (failure) throw failure;
      const stored = this.#source(input.scope, input.sourceId);
      if (stored.source.state !== "collecting") {
        throw new SyncError("E_SYNC_SOURCE_NOT_COLLECTING", "source is not collecting");
      }
      if (await sha256Hex(input.bytes) !== input.sha256) {
        throw new SyncError("E_SYNC_CHUNK_CHECKSUM_MISMATCH", "checksum mismatch");
      }
      const existing = stored.chunks.get(input.index);
      if (existing) {
        if (existing.info.sha256 !== input.sha256) {
          throw new SyncError("E_SYNC_CHUNK_CONFLICT", `chunk ${input.index} differs`);
        }
        return { appended: false, chunk: existing.info, source: structuredClone(stored.source) };
      }
      const info: ChunkInfo = {
        index: input.index,
        byteLength: input.bytes.length,
        sha256: input.sha256,
      };
      if (input.itemCount !== undefined) info.itemCount = input.itemCount;
      stored.chunks.set(input.index, { info, bytes: input.bytes.slice() });
      stored.source.received.chunkCount++;
      stored.source.received.byteCount += input.bytes.length;
      this.appended.push(input.index);
      return { appended: true, chunk: info, source: structuredClone(stored.source) };
    } finally {
      this.inFlight--;
    }
  }

  async listChunks(input: ListChunksInput): Promise<Page<ChunkInfo>> {
    this.calls.push("listChunks");
    await tick();
    const stored = this.#source(input.scope, input.sourceId);
    const all = [...stored.chunks.values()].map((chunk) => chunk.info).sort((a, b) =>
      a.index - b.index
    );
    const start = Number(input.cursor ?? "0");
    const end = start + Math.min(input.limit ?? 100, this.pageSize);
    const page: Page<ChunkInfo> = { items: all.slice(start, end) };
    if (end < all.length) page.nextCursor = String(end);
    return page;
  }

  async sealSource(input: SealSourceInput): Promise<SealResult> {
    this.calls.push("sealSource");
    await tick();
    const stored = this.#source(input.scope, input.sourceId);
    const { source } = stored;
    if (source.state === "sealed") {
      if (JSON.stringify(source.manifest) !== JSON.stringify(input.manifest)) {
        throw new SyncError("E_SYNC_SOURCE_NOT_COLLECTING", "sealed with another manifest");
      }
      return {
        source: structuredClone(source),
        job: structuredClone(this.jobs.get(source.jobId!)!),
      };
    }
    if (source.state !== "collecting") {
      throw new SyncError("E_SYNC_SOURCE_NOT_COLLECTING", `source is ${source.state}`);
    }
    const digests: string[] = [];
    let bytes = 0;
    for (let i = 0; i < input.manifest.chunkCount; i++) {
      const chunk = stored.chunks.get(i);
      if (!chunk) throw new SyncError("E_SYNC_CHUNK_INDEX_GAP", `chunk ${i} is missing`);
      digests.push(chunk.info.sha256);
      bytes += chunk.info.byteLength;
    }
    if (stored.chunks.size !== input.manifest.chunkCount || bytes !== input.manifest.byteCount) {
      throw new SyncError("E_SYNC_MANIFEST_MISMATCH", "manifest mismatch");
    }
    if (compositeDigest(digests) !== input.manifest.digest) {
      throw new SyncError("E_SYNC_SOURCE_CHECKSUM_MISMATCH", "digest mismatch");
    }
    const job: Job = {
      jobId: `job-${++this.#ids}`,
      scope: source.scope,
      sourceId: source.sourceId,
      conversationId: source.conversationId,
      state: "queued",
      cursor: 0,
      totalChunks: input.manifest.chunkCount,
      appliedBytes: 0,
      attempt: 0,
      runAt: 1,
      leaseToken: 0,
      appliedDigestState: "",
      createdAt: 1,
      updatedAt: 1,
    };
    this.jobs.set(job.jobId, job);
    Object.assign(source, {
      state: "sealed",
      manifest: input.manifest,
      jobId: job.jobId,
      sealedAt: 1,
    });
    return { source: structuredClone(source), job: structuredClone(job) };
  }

  async getSource(input: GetSourceInput): Promise<Source> {
    this.calls.push("getSource");
    await tick();
    return structuredClone(this.#source(input.scope, input.sourceId).source);
  }

  async getJob(input: GetJobInput): Promise<Job> {
    this.calls.push("getJob");
    await tick();
    const job = this.jobs.get(input.jobId);
    if (!job || job.scope !== input.scope) throw new SyncError("E_SYNC_JOB_NOT_FOUND", "no job");
    return structuredClone(job);
  }

  async listJobs(_input: ListJobsInput): Promise<Page<Job>> {
    this.calls.push("listJobs");
    await tick();
    return { items: [...this.jobs.values()].map((job) => structuredClone(job)) };
  }

  async cancelJob(input: CancelJobInput): Promise<Job> {
    this.calls.push("cancelJob");
    return await this.getJob(input);
  }

  async waitForTerminal(input: WaitForTerminalInput): Promise<Job> {
    this.calls.push("waitForTerminal");
    this.waitInputs.push(input);
    const aborted = () => new SyncError("E_SYNC_ABORTED", "fake wait aborted");
    if (input.signal?.aborted) throw aborted();
    if (this.waitForever) {
      await new Promise<never>((_, reject) =>
        input.signal?.addEventListener("abort", () => reject(aborted()), { once: true })
      );
    }
    await tick();
    const job = this.jobs.get(input.jobId);
    if (!job || job.scope !== input.scope) throw new SyncError("E_SYNC_JOB_NOT_FOUND", "no job");
    if (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      this.jobs.set(job.jobId, this.endJob(job));
    }
    return structuredClone(this.jobs.get(job.jobId)!);
  }

  async gc(): Promise<GcReport> {
    this.calls.push("gc");
    await tick();
    return { expiredSources: 0, purgedSources: 0, deletedChunks: 0 };
  }
}

// ---------------------------------------------------------------------------------------
// Helpers.

const SCOPE = "tenant-1";
const CONVERSATION = "conversation-1";

/** Yields to the event loop (zero-delay, no waiting on time) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 2000; turn++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.fail(`gave up waiting for ${what}`);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<SyncError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isSyncError(error), `expected a SyncError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

function bytesOf(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

async function collect(chunks: AsyncIterable<PayloadChunk>): Promise<PayloadChunk[]> {
  const out: PayloadChunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

async function expectedDigest(chunks: readonly PayloadChunk[]): Promise<string> {
  return compositeDigest(await Promise.all(chunks.map((chunk) => sha256Hex(chunk.bytes))));
}

function options(
  payload: SyncConversationOptions["payload"],
  extra: Partial<SyncConversationOptions> = {},
): SyncConversationOptions {
  return { scope: SCOPE, conversationId: CONVERSATION, payload, ...extra };
}

/** An async generator of `count` pieces of `size` bytes that counts how many were pulled. */
function countedPieces(count: number, size: number) {
  const state = { pulled: 0, closed: false };
  const pieces = (async function* () {
    try {
      for (let i = 0; i < count; i++) {
        state.pulled++;
        yield bytesOf(size, i + 1);
      }
    } finally {
      state.closed = true;
    }
  })();
  return { state, pieces };
}

// ---------------------------------------------------------------------------------------

describe("syncConversation: payloads and manifests", () => {
  test("bytes: uploads every chunk, seals with the computed manifest, resolves on succeeded", async () => {
    const adapter = new FakeAdapter();
    const payload = bytesOf(10_000);
    const result = await syncConversation(adapter, options(payload, { chunkSize: 1024 }));
    const chunks = await collect(chunkBytes(payload, 1024));
    assert.deepEqual(result.manifest, {
      chunkCount: 10,
      byteCount: 10_000,
      digest: await expectedDigest(chunks),
    });
    assert.equal(result.job.state, "succeeded");
    assert.equal(result.source.state, "sealed");
    assert.deepEqual(result.uploaded, { chunks: 10, bytes: 10_000 });
    assert.deepEqual(result.skipped, { chunks: 0, bytes: 0 });
    assert.deepEqual([...adapter.appended].sort((a, b) => a - b), [...Array(10).keys()]);
    assert.equal(adapter.calls[0], "createSource");
    assert.deepEqual(adapter.calls.slice(-2), ["sealSource", "waitForTerminal"]);
    const stored = adapter.sources.get(result.source.sourceId)!;
    const joined = new Uint8Array(10_000);
    for (const chunk of stored.chunks.values()) joined.set(chunk.bytes, chunk.info.index * 1024);
    assert.deepEqual(joined, payload);
  });

  test("the default chunk size shrinks to the adapter's maxChunkBytes", async () => {
    const adapter = new FakeAdapter();
    adapter.maxChunkBytes = 4096;
    const result = await syncConversation(adapter, options(bytesOf(10_000)));
    assert.equal(result.manifest.chunkCount, 3);
    const stored = adapter.sources.get(result.source.sourceId)!;
    assert.deepEqual([...stored.chunks.values()].map((c) => c.info.byteLength).sort(), [
      1808,
      4096,
      4096,
    ]);
  });

  test("a chunkSize above the adapter's maxChunkBytes fails before any call", async () => {
    const adapter = new FakeAdapter();
    adapter.maxChunkBytes = 4096;
    const error = await rejectsWith(
      syncConversation(adapter, options(bytesOf(10_000), { chunkSize: 4097 })),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    assert.equal(error.details?.limit, 4096);
    assert.deepEqual(adapter.calls, []);
  });

  test("a ReadableStream of uneven pieces gives the same manifest as the whole bytes", async () => {
    const payload = bytesOf(5000, 7);
    const sizes = [1, 700, 3, 2048, 999, 1249];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let offset = 0;
        for (const size of sizes) {
          controller.enqueue(payload.slice(offset, offset + size));
          offset += size;
        }
        controller.close();
      },
    });
    const fromStream = await syncConversation(
      new FakeAdapter(),
      options(stream, { chunkSize: 512 }),
    );
    const fromBytes = await syncConversation(
      new FakeAdapter(),
      options(payload, { chunkSize: 512 }),
    );
    assert.deepEqual(fromStream.manifest, fromBytes.manifest);
    assert.equal(fromStream.manifest.chunkCount, 10);
  });

  test("records: JSON Lines, itemCount, digest over the chunk digests, data and metadata", async () => {
    const adapter = new FakeAdapter();
    const records = Array.from(
      { length: 50 },
      (_, i) => ({ turn: i, text: `message ${i} 😀 漢字` }),
    );
    const result = await syncConversation(
      adapter,
      options(records, {
        chunkSize: 300,
        manifestData: { keys: 50 },
        metadata: { agent: "codex" },
      }),
    );
    const chunks = await collect(chunkRecords(records, 300));
    assert.deepEqual(result.manifest, {
      chunkCount: chunks.length,
      byteCount: chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0),
      digest: await expectedDigest(chunks),
      itemCount: 50,
      data: { keys: 50 },
    });
    const stored = adapter.sources.get(result.source.sourceId)!;
    assert.deepEqual(stored.source.metadata, { agent: "codex" });
    for (const chunk of chunks) {
      assert.equal(stored.chunks.get(chunk.index)!.info.itemCount, chunk.itemCount);
    }
  });

  test("an async iterable of byte pieces is detected as bytes; format can be forced", async () => {
    const auto = await syncConversation(
      new FakeAdapter(),
      options((async function* () {
        yield new Uint8Array([1, 2, 3]);
        yield new Uint8Array([4]);
      })()),
    );
    assert.equal(auto.manifest.byteCount, 4);
    assert.equal(auto.manifest.itemCount, undefined);
    const forced = await syncConversation(
      new FakeAdapter(),
      options([], { format: "jsonl-records" }),
    );
    assert.equal(forced.manifest.itemCount, 0);
  });

  test("an empty payload creates the source just before sealing and syncs zero chunks", async () => {
    const adapter = new FakeAdapter();
    const result = await syncConversation(adapter, options(new Uint8Array(0)));
    assert.deepEqual(adapter.calls, ["createSource", "sealSource", "waitForTerminal"]);
    assert.deepEqual(result.manifest, {
      chunkCount: 0,
      byteCount: 0,
      digest: await sha256Hex(new Uint8Array(0)),
    });
    assert.equal(result.job.state, "succeeded");
  });

  test("malformed options are E_SYNC_INVALID_ARGUMENT before any call", async () => {
    const adapter = new FakeAdapter();
    const bad: Partial<SyncConversationOptions>[] = [
      { payload: "text" as unknown as Uint8Array },
      { payload: 42 as unknown as Uint8Array },
      { concurrency: 0 },
      { chunkSize: 1.5 },
      { scope: "" },
      { format: "csv" as "bytes" },
      { payload: new Uint8Array(1), format: "jsonl-records" },
    ];
    for (const extra of bad) {
      await rejectsWith(syncConversation(adapter, options([1], extra)), "E_SYNC_INVALID_ARGUMENT");
    }
    assert.deepEqual(adapter.calls, []);
  });

  test("a record too large for the first chunk fails before anything is called", async () => {
    const adapter = new FakeAdapter();
    const error = await rejectsWith(
      syncConversation(adapter, options([{ text: "x".repeat(100) }, { ok: 1 }], { chunkSize: 64 })),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    assert.equal(error.details?.recordIndex, 0);
    assert.deepEqual(adapter.calls, []);
  });
});

describe("syncConversation: parallel upload", () => {
  for (const concurrency of [1, 3, undefined]) {
    const limit = concurrency ?? 4;
    test(`never more than ${limit} appends in flight, chunks pulled only into free slots`, async () => {
      const adapter = new FakeAdapter();
      adapter.holdAppends = true;
      const { state, pieces } = countedPieces(12, 100);
      const done = syncConversation(adapter, options(pieces, { chunkSize: 100, concurrency }));
      await until(() => adapter.held.length === limit, `${limit} held appends`);
      assert.equal(adapter.inFlight, limit);
      assert.ok(state.pulled <= limit + 1, `pulled ${state.pulled} chunks with ${limit} slots`);
      for (;;) {
        await until(() => adapter.held.length > 0 || adapter.appended.length === 12, "an append");
        if (adapter.appended.length === 12) break;
        assert.ok(state.pulled - adapter.appended.length <= limit + 1, "too many chunks held");
        adapter.held.shift()!.release();
      }
      const result = await done;
      assert.equal(adapter.maxInFlight, limit);
      assert.equal(result.manifest.chunkCount, 12);
      const expected = await collect(chunkBytes(countedPieces(12, 100).pieces, 100));
      assert.equal(result.manifest.digest, await expectedDigest(expected));
    });
  }

  test("the composite digest is in index order even when chunks finish out of order", async () => {
    const adapter = new FakeAdapter();
    adapter.holdAppends = true;
    const payload = bytesOf(800, 3);
    const done = syncConversation(adapter, options(payload, { chunkSize: 100, concurrency: 8 }));
    await until(() => adapter.held.length === 8, "8 held appends");
    const held = adapter.held.splice(0).sort((a, b) => b.index - a.index);
    for (const [finished, { release }] of held.entries()) {
      release();
      await until(() => adapter.appended.length === finished + 1, `append ${finished + 1}`);
    }
    const result = await done;
    assert.deepEqual(adapter.appended, [7, 6, 5, 4, 3, 2, 1, 0]);
    assert.equal(
      result.manifest.digest,
      await expectedDigest(await collect(chunkBytes(payload, 100))),
    );
  });
});

describe("syncConversation: retries", () => {
  test("retryable append failures are retried after backoffDelay, on the injected clock", async () => {
    const adapter = new FakeAdapter();
    adapter.failAppend = (input, attempt) =>
      input.index === 0 && attempt <= 3
        ? new SyncError("E_SYNC_BACKEND_UNAVAILABLE", `down (attempt ${attempt})`)
        : undefined;
    const clock = new ManualClock();
    const jitters = [0.1, 0.9, 0.4];
    let draws = 0;
    const random = () => jitters[draws++ % jitters.length];
    const retry = { baseDelayMs: 100, factor: 3, maxDelayMs: 250, maxAttempts: 5 };
    const done = syncConversation(adapter, options(bytesOf(10), { clock, random, retry }));

    const replay = [...jitters];
    const policy = { ...DEFAULT_RETRY_POLICY, ...retry };
    for (let attempt = 1; attempt <= 3; attempt++) {
      await until(() => clock.pendingTimers === 1, `backoff timer ${attempt}`);
      assert.equal(adapter.appendAttempts.length, attempt);
      const expected = backoffDelay(attempt, policy, () => replay[attempt - 1]);
      assert.equal(clock.nextTimerAt()! - clock.now(), expected, `delay before retry ${attempt}`);
      clock.advance(expected - 1);
      assert.equal(clock.pendingTimers, 1, "retried before its delay");
      clock.advance(1);
    }
    const result = await done;
    assert.deepEqual(adapter.appendAttempts, [0, 0, 0, 0]);
    assert.equal(result.job.state, "succeeded");
    assert.equal(draws, 3);
  });

  test("a retryable error that outlasts maxAttempts rejects with that error", async () => {
    const adapter = new FakeAdapter();
    adapter.failAppend = () => new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "still down");
    const clock = new ManualClock();
    const done = syncConversation(
      adapter,
      options(bytesOf(10), { clock, random: () => 0, retry: { maxAttempts: 3 } }),
    );
    for (let retry = 1; retry <= 2; retry++) {
      await until(() => clock.pendingTimers === 1, `backoff timer ${retry}`);
      clock.advance(clock.nextTimerAt()! - clock.now());
    }
    await rejectsWith(done, "E_SYNC_BACKEND_UNAVAILABLE");
    assert.deepEqual(adapter.appendAttempts, [0, 0, 0]);
    assert.ok(!adapter.calls.includes("sealSource"));
  });

  test("a non-retryable error stops the upload at once and rejects with it", async () => {
    const adapter = new FakeAdapter();
    adapter.failAppend = (input) =>
      input.index === 2 ? new SyncError("E_SYNC_LIMIT_EXCEEDED", "too many bytes") : undefined;
    const clock = new ManualClock();
    await rejectsWith(
      syncConversation(adapter, options(bytesOf(1000), { chunkSize: 100, concurrency: 1, clock })),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    assert.deepEqual(adapter.appendAttempts, [0, 1, 2]);
    assert.equal(clock.pendingTimers, 0);
    assert.ok(!adapter.calls.includes("sealSource"));
  });

  test("retryable failures of createSource and sealSource are retried too", async () => {
    const adapter = new FakeAdapter();
    const clock = new ManualClock();
    let creates = 0;
    let seals = 0;
    const create = adapter.createSource.bind(adapter);
    const seal = adapter.sealSource.bind(adapter);
    adapter.createSource = (input) =>
      ++creates === 1
        ? Promise.reject(new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "x"))
        : create(input);
    adapter.sealSource = (input) =>
      ++seals === 1
        ? Promise.reject(new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "x"))
        : seal(input);
    const done = syncConversation(adapter, options(bytesOf(10), { clock, random: () => 0 }));
    for (let retry = 1; retry <= 2; retry++) {
      await until(() => clock.pendingTimers === 1, `backoff timer ${retry}`);
      clock.advance(clock.nextTimerAt()! - clock.now());
    }
    const result = await done;
    assert.equal(result.job.state, "succeeded");
    assert.deepEqual([creates, seals], [2, 2]);
  });
});

describe("syncConversation: resume", () => {
  test("skips chunks already stored with the same digest, paging through listChunks", async () => {
    const adapter = new FakeAdapter();
    const payload = bytesOf(1000, 5);
    const chunks = await collect(chunkBytes(payload, 100));
    await adapter.seed("resume-1", chunks.slice(0, 3));
    const events: SyncProgressEvent[] = [];
    const result = await syncConversation(
      adapter,
      options(payload, {
        chunkSize: 100,
        sourceId: "resume-1",
        onProgress: (event) => events.push(event),
      }),
    );
    assert.deepEqual([...adapter.appended].sort((a, b) => a - b), [3, 4, 5, 6, 7, 8, 9]);
    assert.equal(adapter.calls.filter((call) => call === "listChunks").length, 2);
    assert.deepEqual(result.skipped, { chunks: 3, bytes: 300 });
    assert.deepEqual(result.uploaded, { chunks: 7, bytes: 700 });
    assert.equal(result.source.sourceId, "resume-1");
    assert.equal(result.manifest.digest, await expectedDigest(chunks));
    const skippedEvents = events.filter((event) => event.phase === "uploading" && event.skipped);
    assert.equal(skippedEvents.length, 3);
  });

  test("a stored chunk with other bytes at an index is the adapter's E_SYNC_CHUNK_CONFLICT", async () => {
    const adapter = new FakeAdapter();
    await adapter.seed("resume-2", [{ index: 1, bytes: bytesOf(100, 99) }]);
    await rejectsWith(
      syncConversation(adapter, options(bytesOf(300), { chunkSize: 100, sourceId: "resume-2" })),
      "E_SYNC_CHUNK_CONFLICT",
    );
    assert.ok(!adapter.calls.includes("sealSource"));
    assert.equal(adapter.sources.get("resume-2")!.source.state, "collecting");
  });

  test("a sealed source is sealed again with the same manifest and gives the same job", async () => {
    const adapter = new FakeAdapter();
    const payload = bytesOf(450);
    const first = await syncConversation(
      adapter,
      options(payload, { chunkSize: 100, sourceId: "sealed-1" }),
    );
    const appends = adapter.appendAttempts.length;
    const again = await syncConversation(
      adapter,
      options(payload, { chunkSize: 100, sourceId: "sealed-1" }),
    );
    assert.equal(again.job.jobId, first.job.jobId);
    assert.equal(adapter.jobs.size, 1);
    assert.equal(adapter.appendAttempts.length, appends);
    assert.deepEqual(again.uploaded, { chunks: 0, bytes: 0 });
    assert.deepEqual(again.skipped, { chunks: 5, bytes: 450 });
  });

  test("an unknown sourceId creates the source with that id", async () => {
    const adapter = new FakeAdapter();
    const result = await syncConversation(adapter, options(bytesOf(10), { sourceId: "fresh-id" }));
    assert.equal(result.source.sourceId, "fresh-id");
  });

  test("failed and expired sources cannot be resumed", async () => {
    const cases: [SourceState, string][] = [
      ["failed", "E_SYNC_SOURCE_NOT_COLLECTING"],
      ["expired", "E_SYNC_SOURCE_EXPIRED"],
    ];
    for (const [state, code] of cases) {
      const adapter = new FakeAdapter();
      await adapter.seed("old", [], state);
      const error = await rejectsWith(
        syncConversation(adapter, options(bytesOf(10), { sourceId: "old" })),
        code,
      );
      assert.equal((error.details?.source as Source).state, state);
      assert.deepEqual(adapter.appendAttempts, []);
    }
  });
});

describe("syncConversation: abort", () => {
  test("abort during the upload rejects at once, stops pulling, never seals", async () => {
    const adapter = new FakeAdapter();
    adapter.holdAppends = true;
    const { state, pieces } = countedPieces(10, 100);
    const controller = new AbortController();
    const done = syncConversation(
      adapter,
      options(pieces, { chunkSize: 100, concurrency: 2, signal: controller.signal }),
    );
    await until(() => adapter.held.length === 2, "2 held appends");
    controller.abort();
    const error = await rejectsWith(done, "E_SYNC_ABORTED");
    assert.equal(adapter.held.length, 2, "rejected without waiting for the appends in flight");
    assert.equal(error.cause, controller.signal.reason);
    await until(() => state.closed, "the payload to be closed");
    for (const { release } of adapter.held.splice(0)) release();
    await until(() => adapter.inFlight === 0, "the held appends to finish");
    assert.equal(state.pulled, 2);
    assert.deepEqual([...adapter.appendAttempts].sort(), [0, 1]);
    assert.ok(!adapter.calls.includes("sealSource"));
    assert.equal(adapter.sources.get("source-1")!.source.state, "collecting");
  });

  test("an already aborted signal calls nothing", async () => {
    const adapter = new FakeAdapter();
    await rejectsWith(
      syncConversation(adapter, options(bytesOf(10), { signal: AbortSignal.abort() })),
      "E_SYNC_ABORTED",
    );
    assert.deepEqual(adapter.calls, []);
  });

  test("abort during the wait rejects with the wait's own E_SYNC_ABORTED; the job is not cancelled", async () => {
    const adapter = new FakeAdapter();
    adapter.waitForever = true;
    const controller = new AbortController();
    const done = syncConversation(adapter, options(bytesOf(10), { signal: controller.signal }));
    await until(() => adapter.calls.includes("waitForTerminal"), "the wait");
    controller.abort();
    const error = await rejectsWith(done, "E_SYNC_ABORTED");
    assert.equal(error.message, "fake wait aborted");
    assert.ok(!adapter.calls.includes("cancelJob"));
    assert.equal([...adapter.jobs.values()][0].state, "queued");
  });
});

describe("syncConversation: job outcomes", () => {
  const outcomes: [string, Partial<Job>, string][] = [
    ["failed", {
      state: "failed",
      error: { code: "E_SYNC_HANDLER_FAILED", message: "db down", retryable: true },
    }, "E_SYNC_JOB_FAILED"],
    ["cancelled", {
      state: "cancelled",
      error: { code: "E_SYNC_JOB_CANCELLED", message: "user cancelled", retryable: false },
    }, "E_SYNC_JOB_CANCELLED"],
    ["superseded", {
      state: "cancelled",
      error: { code: "E_SYNC_JOB_SUPERSEDED", message: "newer snapshot", retryable: false },
    }, "E_SYNC_JOB_SUPERSEDED"],
  ];
  for (const [name, ending, code] of outcomes) {
    test(`a ${name} job rejects with ${code} carrying the job`, async () => {
      const adapter = new FakeAdapter();
      adapter.endJob = (job) => ({ ...job, ...ending });
      const events: SyncProgressEvent[] = [];
      const error = await rejectsWith(
        syncConversation(
          adapter,
          options(bytesOf(10), { onProgress: (event) => events.push(event) }),
        ),
        code,
      );
      const job = error.details?.job as Job;
      assert.equal(job.state, ending.state);
      assert.deepEqual(job.error, ending.error);
      assert.ok(error.message.includes(ending.error!.code), error.message);
      assert.ok(error.message.includes(ending.error!.message), error.message);
      assert.equal(error.retryable, false);
      const last = events.at(-1)!;
      assert.equal(last.phase, "done");
    });
  }

  test("waitTimeoutMs and the signal are passed to waitForTerminal", async () => {
    const adapter = new FakeAdapter();
    const clock = new ManualClock();
    const controller = new AbortController();
    await syncConversation(
      adapter,
      options(bytesOf(10), { clock, waitTimeoutMs: 5000, signal: controller.signal }),
    );
    assert.equal(adapter.waitInputs[0].timeoutMs, 5000);
    assert.equal(adapter.waitInputs[0].scope, SCOPE);
    assert.ok(adapter.waitInputs[0].signal instanceof AbortSignal);
  });

  test("onProgress reports uploading per chunk, then sealed, waiting and done", async () => {
    const adapter = new FakeAdapter();
    const events: SyncProgressEvent[] = [];
    const result = await syncConversation(
      adapter,
      options(bytesOf(250), {
        chunkSize: 100,
        concurrency: 1,
        onProgress: (event) => events.push(event),
      }),
    );
    assert.deepEqual(events.map((event) => event.phase), [
      "uploading",
      "uploading",
      "uploading",
      "sealed",
      "waiting",
      "done",
    ]);
    const uploads = events.filter((event) => event.phase === "uploading");
    assert.deepEqual(
      uploads.map((event) => [event.index, event.chunksUploaded, event.bytesUploaded]),
      [
        [0, 1, 100],
        [1, 2, 200],
        [2, 3, 250],
      ],
    );
    assert.ok(uploads.every((event) => event.chunksSkipped === 0 && event.bytesSkipped === 0));
    const sealed = events[3];
    assert.ok(sealed.phase === "sealed");
    assert.deepEqual(sealed.manifest, result.manifest);
    assert.equal(sealed.job.state, "queued");
    const done = events[5];
    assert.ok(done.phase === "done");
    assert.equal(done.job.state, "succeeded");
  });
});

describe("syncConversation: end to end with the memory adapter", () => {
  function memoryAdapter(apply: (chunk: Chunk) => void | Promise<void>) {
    const clock = new ManualClock();
    const adapter = createMemoryAdapter({ handler: { apply }, clock, mode: "manual" });
    // The worker runs when the client starts waiting; no timers, no real time.
    const onProgress = (event: SyncProgressEvent) => {
      if (event.phase === "waiting") void adapter.drain();
    };
    return { adapter, clock, onProgress };
  }

  test("records reach the handler in order and the job succeeds", async () => {
    const applied: unknown[] = [];
    const { adapter, clock, onProgress } = memoryAdapter((chunk) => {
      const lines = new TextDecoder().decode(chunk.bytes).split("\n").slice(0, -1);
      applied.push(...lines.map((line) => JSON.parse(line)));
    });
    const records = Array.from({ length: 40 }, (_, i) => ({ turn: i, text: "🙂".repeat(i) }));
    const result = await syncConversation(
      adapter,
      options(records, { chunkSize: 256, concurrency: 3, clock, onProgress }),
    );
    assert.equal(result.job.state, "succeeded");
    assert.equal(result.job.cursor, result.manifest.chunkCount);
    assert.equal(result.manifest.itemCount, 40);
    assert.deepEqual(applied, records);
    await adapter.close();
  });

  test("an interrupted upload resumes by sourceId, skipping what was stored", async () => {
    const { adapter, clock, onProgress } = memoryAdapter(() => {});
    const payload = bytesOf(1000, 11);
    const crashing = (async function* () {
      yield* [payload.slice(0, 300), payload.slice(300, 600)];
      throw new Error("runtime crashed");
    })();
    await rejectsWith(
      syncConversation(
        adapter,
        options(crashing, { chunkSize: 100, concurrency: 1, sourceId: "resumable", clock }),
      ),
      "E_SYNC_INTERNAL",
    );
    const result = await syncConversation(
      adapter,
      options(payload, { chunkSize: 100, sourceId: "resumable", clock, onProgress }),
    );
    assert.deepEqual(result.skipped, { chunks: 6, bytes: 600 });
    assert.deepEqual(result.uploaded, { chunks: 4, bytes: 400 });
    assert.equal(result.job.state, "succeeded");
    await adapter.close();
  });

  test("a handler failing for good fails the job: E_SYNC_JOB_FAILED with the job", async () => {
    const { adapter, clock, onProgress } = memoryAdapter(() => {
      throw nonRetryable(new Error("schema rejected"));
    });
    const error = await rejectsWith(
      syncConversation(adapter, options([{ a: 1 }], { clock, onProgress })),
      "E_SYNC_JOB_FAILED",
    );
    assert.equal((error.details?.job as Job).state, "failed");
    assert.match(error.message, /schema rejected/);
    await adapter.close();
  });
});

describe("syncConversation: one-call upload of a small payload", () => {
  /** A memory adapter whose operations are recorded by name, in call order. */
  function countedMemoryAdapter(apply: (chunk: Chunk) => void = () => {}) {
    const clock = new ManualClock();
    const memory = createMemoryAdapter({ handler: { apply }, clock, mode: "manual" });
    const calls: string[] = [];
    const adapter = new Proxy(memory, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== "function" || typeof property !== "string") return value;
        return (...args: unknown[]) => {
          calls.push(property);
          return value.apply(target, args);
        };
      },
    });
    const events: SyncProgressEvent[] = [];
    const onProgress = (event: SyncProgressEvent) => {
      events.push(event);
      if (event.phase === "waiting") void memory.drain();
    };
    const without = (name: "drain") => calls.filter((call) => call !== name);
    return { adapter, memory, clock, calls: () => without("drain"), events, onProgress };
  }

  test("a payload of one chunk is stored and sealed in one uploadSource call", async () => {
    const applied: Uint8Array[] = [];
    const { adapter, memory, clock, calls, events, onProgress } = countedMemoryAdapter(
      (chunk) => void applied.push(chunk.bytes.slice()),
    );
    const payload = bytesOf(700);
    const result = await syncConversation(
      adapter,
      options(payload, { chunkSize: 1024, clock, onProgress }),
    );
    assert.deepEqual(calls(), ["getLatestSource", "uploadSource", "waitForTerminal"]);
    assert.deepEqual(result.manifest, {
      chunkCount: 1,
      byteCount: 700,
      digest: compositeDigest([await sha256Hex(payload)]),
    });
    assert.deepEqual(result.uploaded, { chunks: 1, bytes: 700 });
    assert.equal(result.job.state, "succeeded");
    assert.deepEqual(applied, [payload]);
    assert.deepEqual(events.map((event) => event.phase), [
      "uploading",
      "sealed",
      "waiting",
      "done",
    ]);
    await memory.close();
  });

  test("an empty payload is one uploadSource call with no chunks", async () => {
    const { adapter, memory, clock, calls, onProgress } = countedMemoryAdapter();
    const result = await syncConversation(adapter, options([], { clock, onProgress }));
    assert.deepEqual(calls(), ["getLatestSource", "uploadSource", "waitForTerminal"]);
    assert.equal(result.manifest.chunkCount, 0);
    assert.equal(result.job.state, "succeeded");
    await memory.close();
  });

  test("records that fit one chunk keep their item count", async () => {
    const { adapter, memory, clock, onProgress } = countedMemoryAdapter();
    const records = [{ turn: 1, text: "héllo" }, { turn: 2, text: "🙂" }];
    const result = await syncConversation(adapter, options(records, { clock, onProgress }));
    assert.equal(result.manifest.itemCount, 2);
    const page = await memory.listChunks({ scope: SCOPE, sourceId: result.source.sourceId });
    assert.equal(page.items[0].itemCount, 2);
    await memory.close();
  });

  test("two chunks or more take the chunked path", async () => {
    const { adapter, memory, clock, calls, onProgress } = countedMemoryAdapter();
    const result = await syncConversation(
      adapter,
      options(bytesOf(1500), { chunkSize: 1024, clock, onProgress }),
    );
    assert.deepEqual(calls(), [
      "getLatestSource",
      "createSource",
      "appendChunk",
      "appendChunk",
      "sealSource",
      "waitForTerminal",
    ]);
    assert.equal(result.job.state, "succeeded");
    assert.deepEqual(result.uploaded, { chunks: 2, bytes: 1500 });
    await memory.close();
  });

  test("syncing the same small payload again by sourceId uploads nothing: same job", async () => {
    const { adapter, memory, clock, onProgress } = countedMemoryAdapter();
    const payload = bytesOf(300);
    const first = await syncConversation(
      adapter,
      options(payload, { sourceId: "small", clock, onProgress }),
    );
    const again = await syncConversation(
      adapter,
      options(payload, { sourceId: "small", clock, onProgress }),
    );
    assert.equal(again.job.jobId, first.job.jobId);
    assert.deepEqual(again.uploaded, { chunks: 0, bytes: 0 });
    assert.deepEqual(again.skipped, { chunks: 1, bytes: 300 });
    await memory.close();
  });

  test("an adapter without uploadSource gets the three calls", async () => {
    const adapter = new FakeAdapter();
    await syncConversation(adapter, options(bytesOf(10)));
    assert.deepEqual(adapter.calls, [
      "createSource",
      "appendChunk",
      "sealSource",
      "waitForTerminal",
    ]);
  });

  test("an aborted sync stops before uploading its small payload", async () => {
    const { adapter, memory, clock, calls } = countedMemoryAdapter();
    const controller = new AbortController();
    controller.abort();
    await rejectsWith(
      syncConversation(adapter, options(bytesOf(10), { clock, signal: controller.signal })),
      "E_SYNC_ABORTED",
    );
    assert.deepEqual(calls(), []);
    await memory.close();
  });
});
