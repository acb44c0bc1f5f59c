/**
 * `createHttpSyncAdapter`: a `SyncAdapter` over `fetch`, talking to a server built with
 * `createSyncHttpHandler`, so `syncConversation` works unchanged across the network.
 *
 * @module
 */

import {
  type AbandonSourceInput,
  abandonSourceInputSchema,
  type AppendChunkInput,
  appendChunkInputSchema,
  type AppendResult,
  type CancelJobInput,
  cancelJobInputSchema,
  Capability,
  type ChunkInfo,
  type Clock,
  type CreateSourceInput,
  createSourceInputSchema,
  type GcInput,
  gcInputSchema,
  type GcReport,
  type GetJobInput,
  getJobInputSchema,
  type GetLatestSourceInput,
  getLatestSourceInputSchema,
  type GetSourceInput,
  getSourceInputSchema,
  type Job,
  type ListChunksInput,
  listChunksInputSchema,
  type ListJobsInput,
  listJobsInputSchema,
  type Page,
  type ReleasePayloadsInput,
  releasePayloadsInputSchema,
  type ReleasePayloadsResult,
  type SealResult,
  type SealSourceInput,
  sealSourceInputSchema,
  type Source,
  type SyncAdapter,
  type UploadSourceInput,
  uploadSourceInputSchema,
  type UploadSourceResult,
  type WaitForTerminalInput,
  waitForTerminalInputSchema,
} from "@zakstam/codex-sync-engine/contracts";
import { ALL_CAPABILITIES } from "@zakstam/codex-sync-engine/contracts";
import {
  checkJsonField,
  DEFAULT_POLICY,
  type Limits,
  parseInput,
} from "@zakstam/codex-sync-engine/policy";
import { isSyncError, SyncError, syncErrorFromJSON } from "@zakstam/codex-sync-engine/errors";
import {
  type CapabilitiesDocument,
  contentDigestOf,
  DEFAULT_MAX_WAIT_MS,
  ITEM_COUNT_HEADER,
  OPTIONAL_OPERATIONS,
  type OptionalOperation,
  pathSegment,
  UPLOAD_HEAD_LENGTH_HEADER,
  UPLOAD_MEDIA_TYPE,
  type WaitResponse,
} from "../protocol.ts";
import {
  abortedError,
  type Credential,
  type FetchLike,
  responseError,
  Transport,
} from "./transport.ts";

/** How to reach the server. */
export interface HttpSyncAdapterOptions {
  /** Base URL of the server's routes (its `basePath` included), e.g. `https://sync.example/sync`. */
  url: string | URL;
  /**
   * Bearer token sent as `Authorization: Bearer <token>`; a function picks it by the
   * operation's `scope` (one token per scope). The server decides the scope from the
   * credentials alone: an input's `scope` is never sent.
   */
  token?: Credential<string | undefined>;
  /** Extra headers of every request (or per scope): cookies, another auth scheme, … */
  headers?: Credential<HeadersInit | undefined>;
  /** The `fetch` to use (default `globalThis.fetch`): a test's in-process handler, a proxy… */
  fetch?: FetchLike;
  /**
   * Declares the server's capabilities instead of asking `GET /v1/capabilities`
   * (give `maxChunkBytes` too, or the default 1 MiB is assumed).
   */
  capabilities?: readonly Capability[];
  /** The server's largest chunk (default what the server says, else 1 MiB). */
  maxChunkBytes?: number;
  /**
   * With `capabilities`: the optional operations the server routes (default `uploadSource`
   * with `one-call-upload`, `getLatestSource` with `extensions`, and `abandonSource`).
   */
  operations?: readonly OptionalOperation[];
  /** With `capabilities`: the server's engine limits (default what the server says). */
  limits?: Readonly<Limits>;
  /** Longest one long-poll asks to be held, in ms (default what the server says, ≤ 25 s). */
  maxWaitMs?: number;
  /** Clock of `waitForTerminal`'s `timeoutMs` (default the system clock). */
  clock?: Clock;
  /** Real-time bound of each request but long-polls, in ms (default 120 s). */
  requestTimeoutMs?: number;
  /**
   * Real-time silence after which `jobEvents` treats its stream as dead (a half-open
   * connection) and reconnects, in ms (default 60 s; the server sends a keep-alive every
   * 15 s by default).
   */
  eventIdleTimeoutMs?: number;
  /** Whose credentials `gc` sends when `token`/`headers` are per scope. */
  gcScope?: string;
}

/** Input of {@link HttpSyncAdapter.jobEvents}. */
export interface JobEventsInput {
  scope: string;
  jobId: string;
  signal?: AbortSignal;
}

/** The HTTP adapter: a {@link SyncAdapter} plus the event stream of a job. */
export interface HttpSyncAdapter extends SyncAdapter {
  /** The base URL requests go to. */
  readonly url: string;
  /** The server's largest chunk. */
  readonly maxChunkBytes: number;
  /** The server's engine limits, when it says (clients refuse what it would refuse). */
  readonly limits?: Readonly<Limits>;
  /**
   * The job's snapshots as they change (`GET /v1/jobs/:jobId/events`), ending after the
   * terminal one; reconnects when the server ends a stream at its maximum duration.
   */
  jobEvents(input: JobEventsInput): AsyncGenerator<Job, void, undefined>;
  /** Ends every request in flight and refuses new ones. */
  close(): void;
}

const MIB = 1024 * 1024;

/** Real time and real timers (the core's `systemClock`, without importing the engine). */
const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isTerminal(job: Job): boolean {
  return job.state === "succeeded" || job.state === "failed" || job.state === "cancelled";
}

function positiveOption(value: number | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (!(typeof value === "number" && Number.isFinite(value) && value > 0)) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${field} must be a positive number`, {
      details: { field },
    });
  }
  return value;
}

/**
 * Refuses what JSON cannot carry unchanged (NaN, cycles, class instances, …) with the
 * engine's `E_SYNC_INVALID_ARGUMENT` before it is serialised, and what could not fit in
 * the server's JSON body limit with `E_SYNC_LIMIT_EXCEEDED` (the engine's own limits
 * are smaller; it checks them).
 */
function jsonSafe(op: string, field: string, value: unknown, maxBytes: number): void {
  if (value !== undefined) checkJsonField(op, field, value, maxBytes);
}

/**
 * Connects to a sync server. Unless `capabilities` are given, asks the server for them
 * first (`GET /v1/capabilities`, no credentials): a server that cannot be reached is a
 * retryable `E_SYNC_BACKEND_UNAVAILABLE`.
 */
export async function createHttpSyncAdapter(
  options: HttpSyncAdapterOptions,
): Promise<HttpSyncAdapter> {
  if (typeof options !== "object" || options === null) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "createHttpSyncAdapter: options required");
  }
  let base: string;
  try {
    const url = new URL(String(options.url));
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(url.protocol);
    url.search = "";
    url.hash = "";
    base = url.href.replace(/\/+$/, "");
  } catch {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "url must be an http(s) URL", {
      details: { field: "url" },
    });
  }
  const userFetch = options.fetch;
  const fetchFn: FetchLike = userFetch
    ? (request) => userFetch(request)
    : (request) => globalThis.fetch(request);
  const transport = new Transport({
    base,
    token: options.token,
    headers: options.headers,
    fetch: fetchFn,
    requestTimeoutMs: positiveOption(options.requestTimeoutMs, "requestTimeoutMs") ?? 120_000,
  });
  let capabilities: readonly Capability[];
  let maxChunkBytes = positiveOption(options.maxChunkBytes, "maxChunkBytes");
  let maxWaitMs = positiveOption(options.maxWaitMs, "maxWaitMs");
  let maxJsonBytes: number | undefined;
  let operations: OptionalOperation[];
  let limits = options.limits ? { ...options.limits } : undefined;
  if (options.capabilities) {
    capabilities = [...options.capabilities];
    operations = options.operations ? [...options.operations] : [
      ...(capabilities.includes(Capability.oneCallUpload) ? ["uploadSource" as const] : []),
      ...(capabilities.includes(Capability.extensions) ? ["getLatestSource" as const] : []),
      "abandonSource",
      ...(capabilities.includes(Capability.releasePayloads) ? ["releasePayloads" as const] : []),
    ];
  } else {
    const { value } = await transport.call<CapabilitiesDocument>({
      scope: undefined,
      method: "GET",
      path: "/v1/capabilities",
    });
    if (!value || !Array.isArray(value.capabilities)) {
      throw new SyncError("E_SYNC_INTERNAL", `${base}/v1/capabilities is not a sync server`);
    }
    capabilities = value.capabilities.filter((cap): cap is Capability =>
      (ALL_CAPABILITIES as readonly string[]).includes(cap)
    );
    const served = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n > 0;
    if (served(value.maxChunkBytes)) maxChunkBytes ??= value.maxChunkBytes;
    if (served(value.maxJsonBytes)) maxJsonBytes = value.maxJsonBytes;
    if (served(value.maxWaitMs)) {
      maxWaitMs = Math.min(maxWaitMs ?? value.maxWaitMs, value.maxWaitMs);
    }
    operations = Array.isArray(value.operations)
      ? value.operations.filter((op): op is OptionalOperation =>
        (OPTIONAL_OPERATIONS as readonly string[]).includes(op)
      )
      : [];
    limits ??= servedLimits(value.limits);
  }
  return new HttpClient(transport, {
    capabilities,
    maxChunkBytes: maxChunkBytes ?? MIB,
    maxJsonBytes: maxJsonBytes ?? 2 * MIB,
    maxWaitMs: maxWaitMs ?? DEFAULT_MAX_WAIT_MS,
    clock: options.clock ?? systemClock,
    gcScope: options.gcScope,
    operations,
    limits,
    eventIdleTimeoutMs: positiveOption(options.eventIdleTimeoutMs, "eventIdleTimeoutMs") ??
      60_000,
  }).adapter();
}

/** The limits of a capabilities document, when they are complete and sane. */
function servedLimits(value: unknown): Limits | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const limits: Record<string, number> = {};
  for (const key of Object.keys(DEFAULT_POLICY.limits)) {
    const n = (value as Record<string, unknown>)[key];
    if (typeof n !== "number" || !Number.isFinite(n) || n <= 0) return undefined;
    limits[key] = n;
  }
  return limits as unknown as Limits;
}

interface ClientSettings {
  capabilities: readonly Capability[];
  operations: readonly OptionalOperation[];
  limits?: Limits;
  maxChunkBytes: number;
  maxJsonBytes: number;
  maxWaitMs: number;
  clock: Clock;
  gcScope?: string;
  eventIdleTimeoutMs: number;
}

class HttpClient {
  readonly #transport: Transport;
  readonly #settings: ClientSettings;
  /** Source ids the client picked for inputs without one (reused when an input is retried). */
  readonly #pickedIds = new WeakMap<object, string>();

  constructor(transport: Transport, settings: ClientSettings) {
    this.#transport = transport;
    this.#settings = settings;
  }

  adapter(): HttpSyncAdapter {
    const { capabilities, maxChunkBytes, operations, limits } = this.#settings;
    const adapter: HttpSyncAdapter = {
      url: this.#transport.base,
      capabilities,
      maxChunkBytes,
      createSource: (input) => this.createSource(input),
      appendChunk: (input) => this.appendChunk(input),
      listChunks: (input) => this.listChunks(input),
      sealSource: (input) => this.sealSource(input),
      getSource: (input) => this.getSource(input),
      getJob: (input) => this.getJob(input),
      listJobs: (input) => this.listJobs(input),
      cancelJob: (input) => this.cancelJob(input),
      waitForTerminal: (input) => this.waitForTerminal(input),
      gc: (input) => this.gc(input),
      jobEvents: (input) => this.jobEvents(input),
      close: () => this.#transport.close(),
    };
    if (limits) (adapter as { limits?: Limits }).limits = limits;
    if (operations.includes("uploadSource")) {
      adapter.uploadSource = (input) => this.uploadSource(input);
    }
    if (operations.includes("getLatestSource")) {
      adapter.getLatestSource = (input) => this.getLatestSource(input);
    }
    if (operations.includes("abandonSource")) {
      adapter.abandonSource = (input) => this.abandonSource(input);
    }
    if (operations.includes("releasePayloads")) {
      adapter.releasePayloads = (input) => this.releasePayloads(input);
    }
    return adapter;
  }

  /** The input's sourceId, or one picked for this input object (stable across retries). */
  #sourceIdFor(input: object, given: string | undefined): string {
    if (given !== undefined) return given;
    let id = this.#pickedIds.get(input);
    if (id === undefined) {
      id = crypto.randomUUID();
      this.#pickedIds.set(input, id);
    }
    return id;
  }

  async createSource(input: CreateSourceInput): Promise<Source> {
    const args = parseInput(createSourceInputSchema, input, "createSource");
    jsonSafe("createSource", "metadata", args.metadata, this.#settings.maxJsonBytes);
    const sourceId = this.#sourceIdFor(input, args.sourceId);
    const body: Record<string, unknown> = { conversationId: args.conversationId, sourceId };
    if (args.metadata !== undefined) body.metadata = args.metadata;
    if (args.baseSourceId !== undefined) body.baseSourceId = args.baseSourceId;
    const { value } = await this.#transport.call<Source>({
      scope: args.scope,
      method: "POST",
      path: "/v1/sources",
      json: body,
    });
    return value;
  }

  async appendChunk(input: AppendChunkInput): Promise<AppendResult> {
    const op = "appendChunk";
    const args = parseInput(appendChunkInputSchema, input, op);
    const limit = this.#settings.maxChunkBytes;
    if (args.bytes.length > limit) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: chunk is ${args.bytes.length} bytes, more than the limit of ${limit}`,
        { details: { limit, actual: args.bytes.length } },
      );
    }
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "content-digest": contentDigestOf(args.sha256),
    };
    if (args.itemCount !== undefined) headers[ITEM_COUNT_HEADER] = String(args.itemCount);
    const { value } = await this.#transport.call<AppendResult>({
      scope: args.scope,
      method: "PUT",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}/chunks/${args.index}`,
      body: args.bytes,
      headers,
    });
    return value;
  }

  async listChunks(input: ListChunksInput): Promise<Page<ChunkInfo>> {
    const args = parseInput(listChunksInputSchema, input, "listChunks");
    const { value } = await this.#transport.call<Page<ChunkInfo>>({
      scope: args.scope,
      method: "GET",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}/chunks`,
      query: { cursor: args.cursor, limit: args.limit },
    });
    return value;
  }

  async sealSource(input: SealSourceInput): Promise<SealResult> {
    const args = parseInput(sealSourceInputSchema, input, "sealSource");
    jsonSafe("sealSource", "manifest.data", args.manifest.data, this.#settings.maxJsonBytes);
    const { value } = await this.#transport.call<SealResult>({
      scope: args.scope,
      method: "POST",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}/seal`,
      json: { manifest: args.manifest },
    });
    return value;
  }

  async uploadSource(input: UploadSourceInput): Promise<UploadSourceResult> {
    const op = "uploadSource";
    const args = parseInput(uploadSourceInputSchema, input, op);
    jsonSafe(op, "metadata", args.metadata, this.#settings.maxJsonBytes);
    jsonSafe(op, "manifest.data", args.manifest.data, this.#settings.maxJsonBytes);
    const limit = this.#settings.maxChunkBytes;
    const totalBytes = args.chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0);
    if (totalBytes > limit) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${op}: the chunks carry ${totalBytes} bytes, more than one call's limit of ` +
          `${limit}; upload them with appendChunk`,
        { details: { limit, actual: totalBytes } },
      );
    }
    const head: Record<string, unknown> = {
      conversationId: args.conversationId,
      sourceId: this.#sourceIdFor(input, args.sourceId),
      manifest: args.manifest,
      chunks: args.chunks.map((chunk) => {
        const entry: Record<string, unknown> = {
          index: chunk.index,
          byteLength: chunk.bytes.length,
          sha256: chunk.sha256,
        };
        if (chunk.itemCount !== undefined) entry.itemCount = chunk.itemCount;
        return entry;
      }),
    };
    if (args.metadata !== undefined) head.metadata = args.metadata;
    if (args.baseSourceId !== undefined) head.baseSourceId = args.baseSourceId;
    const headBytes = encoder.encode(JSON.stringify(head));
    const body = new Uint8Array(headBytes.length + totalBytes);
    body.set(headBytes, 0);
    let offset = headBytes.length;
    for (const chunk of args.chunks) {
      body.set(chunk.bytes, offset);
      offset += chunk.bytes.length;
    }
    const { value } = await this.#transport.call<UploadSourceResult>({
      scope: args.scope,
      method: "POST",
      path: "/v1/uploads",
      body,
      headers: {
        "content-type": UPLOAD_MEDIA_TYPE,
        [UPLOAD_HEAD_LENGTH_HEADER]: String(headBytes.length),
      },
    });
    return value;
  }

  async abandonSource(input: AbandonSourceInput): Promise<Source> {
    const args = parseInput(abandonSourceInputSchema, input, "abandonSource");
    const { value } = await this.#transport.call<Source>({
      scope: args.scope,
      method: "POST",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}/abandon`,
      json: {},
    });
    return value;
  }

  async releasePayloads(input: ReleasePayloadsInput): Promise<ReleasePayloadsResult> {
    const args = parseInput(releasePayloadsInputSchema, input, "releasePayloads");
    const { value } = await this.#transport.call<ReleasePayloadsResult>({
      scope: args.scope,
      method: "POST",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}/release-payloads`,
      json: {},
    });
    return value;
  }

  async getLatestSource(input: GetLatestSourceInput): Promise<Source | null> {
    const args = parseInput(getLatestSourceInputSchema, input, "getLatestSource");
    const id = pathSegment("conversationId", args.conversationId);
    const { value } = await this.#transport.call<{ source: Source | null }>({
      scope: args.scope,
      method: "GET",
      path: `/v1/conversations/${id}/latest-source`,
    });
    return value.source ?? null;
  }

  async getSource(input: GetSourceInput): Promise<Source> {
    const args = parseInput(getSourceInputSchema, input, "getSource");
    const { value } = await this.#transport.call<Source>({
      scope: args.scope,
      method: "GET",
      path: `/v1/sources/${pathSegment("sourceId", args.sourceId)}`,
    });
    return value;
  }

  async getJob(input: GetJobInput): Promise<Job> {
    const args = parseInput(getJobInputSchema, input, "getJob");
    const { value } = await this.#transport.call<Job>({
      scope: args.scope,
      method: "GET",
      path: `/v1/jobs/${pathSegment("jobId", args.jobId)}`,
    });
    return value;
  }

  async listJobs(input: ListJobsInput): Promise<Page<Job>> {
    const args = parseInput(listJobsInputSchema, input, "listJobs");
    const { value } = await this.#transport.call<Page<Job>>({
      scope: args.scope,
      method: "GET",
      path: "/v1/jobs",
      query: {
        conversationId: args.conversationId,
        state: args.state,
        cursor: args.cursor,
        limit: args.limit,
      },
    });
    return value;
  }

  async cancelJob(input: CancelJobInput): Promise<Job> {
    const args = parseInput(cancelJobInputSchema, input, "cancelJob");
    const { value } = await this.#transport.call<Job>({
      scope: args.scope,
      method: "POST",
      path: `/v1/jobs/${pathSegment("jobId", args.jobId)}/cancel`,
      json: args.reason === undefined ? {} : { reason: args.reason },
    });
    return value;
  }

  /**
   * Long-polls until the job is terminal: each poll asks the server to hold it at most
   * `maxWaitMs` (or what is left of `timeoutMs`, on the client's clock). The timeout
   * and the signal end the poll in flight.
   */
  async waitForTerminal(input: WaitForTerminalInput): Promise<Job> {
    const args = parseInput(waitForTerminalInputSchema, input, "waitForTerminal");
    const { scope, jobId, timeoutMs, signal } = args;
    const abortedWait = () =>
      new SyncError("E_SYNC_ABORTED", `wait for job ${jobId} was aborted`, {
        details: { jobId },
      });
    const timedOutWait = () =>
      new SyncError("E_SYNC_TIMEOUT", `job ${jobId} did not finish within ${timeoutMs} ms`, {
        details: { jobId, timeoutMs },
      });
    if (signal?.aborted) throw abortedWait();
    const path = `/v1/jobs/${pathSegment("jobId", jobId)}/wait`;
    const { clock, maxWaitMs } = this.#settings;
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const deadline = timeoutMs === undefined ? undefined : clock.now() + timeoutMs;
    const timer = timeoutMs === undefined ? undefined : clock.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    try {
      for (;;) {
        const left = deadline === undefined ? maxWaitMs : Math.max(0, deadline - clock.now());
        const poll = Math.ceil(Math.min(left, maxWaitMs));
        const { value } = await this.#transport.call<WaitResponse<Job>>({
          scope,
          method: "GET",
          path,
          query: { timeoutMs: poll },
          signal: controller.signal,
          // The server answers within `poll`; the rest is slack for the network.
          timeoutMs: poll + 30_000,
        });
        if (value.terminal) return value.job;
        if (deadline !== undefined && clock.now() >= deadline) throw timedOutWait();
        if (signal?.aborted) throw abortedWait();
      }
    } catch (error) {
      if (timedOut) throw timedOutWait();
      if (signal?.aborted) throw abortedWait();
      throw error;
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  async gc(input?: GcInput): Promise<GcReport> {
    const args = parseInput(gcInputSchema, input === undefined ? {} : input, "gc");
    const { value } = await this.#transport.call<GcReport>({
      scope: this.#settings.gcScope ?? "",
      method: "POST",
      path: "/v1/gc",
      json: args,
    });
    return value;
  }

  async *jobEvents(input: JobEventsInput): AsyncGenerator<Job, void, undefined> {
    const args = parseInput(
      getJobInputSchema,
      { scope: input.scope, jobId: input.jobId },
      "jobEvents",
    );
    const path = `/v1/jobs/${pathSegment("jobId", args.jobId)}/events`;
    for (;;) {
      const { response, finish, fail } = await this.#transport.open({
        scope: args.scope,
        method: "GET",
        path,
        headers: { accept: "text/event-stream" },
        signal: input.signal,
        // A stream lasts as long as the server keeps it (its own bound, minutes).
        timeoutMs: 2_147_483_647,
      });
      let reconnect = false;
      let announced = false;
      try {
        if (!response.ok) {
          let text = "";
          try {
            text = await response.text();
          } catch (error) {
            throw fail(error);
          }
          throw responseError(response.status, text);
        }
        if (!response.body) throw new SyncError("E_SYNC_INTERNAL", "event stream has no body");
        const reader = response.body.getReader();
        let buffer = "";
        try {
          for (;;) {
            let next: ReadableStreamReadResult<Uint8Array> | "idle";
            try {
              next = await readWithin(reader, this.#settings.eventIdleTimeoutMs);
            } catch (error) {
              throw fail(error);
            }
            if (next === "idle" || next.done) {
              reconnect = true;
              break;
            }
            buffer += decoder.decode(next.value, { stream: true }).replace(/\r\n?/g, "\n");
            let end: number;
            while ((end = buffer.indexOf("\n\n")) !== -1) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const event = parseEvent(block);
              if (!event) continue;
              if (event.type === "job") {
                const job = JSON.parse(event.data) as Job;
                yield job;
                if (isTerminal(job)) return;
              } else if (event.type === "end") {
                return;
              } else if (event.type === "error") {
                throw syncErrorFromJSON((JSON.parse(event.data) as { error?: unknown }).error);
              } else if (event.type === "timeout") {
                reconnect = true;
                announced = true;
              }
            }
            if (reconnect) break;
          }
        } finally {
          reader.cancel().catch(() => {});
        }
      } catch (error) {
        if (isSyncError(error)) throw error;
        throw fail(error);
      } finally {
        finish();
      }
      if (!reconnect) return;
      if (input.signal?.aborted) throw abortedError();
      // The server ended the stream at its maximum duration: reconnect at once. A stream
      // that ended without saying why waits the SSE retry delay first.
      if (!announced) await pause(RECONNECT_DELAY_MS, input.signal);
    }
  }
}

/** The next read of `reader`, or `"idle"` when nothing arrives within `ms` (real time). */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
): Promise<ReadableStreamReadResult<Uint8Array> | "idle"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<"idle">((resolve) => {
    timer = setTimeout(() => resolve("idle"), ms);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

/** Wait before reconnecting an event stream that ended unannounced (the SSE `retry`). */
const RECONNECT_DELAY_MS = 1_000;

/** Real-time sleep that an abort ends early with `E_SYNC_ABORTED`. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** One SSE block's event name and data (comment-only blocks give undefined). */
function parseEvent(block: string): { type: string; data: string } | undefined {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return undefined;
  return { type, data: data.join("\n") };
}
