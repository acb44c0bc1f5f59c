/**
 * `createSyncHttpHandler`: the `SyncAdapter` contract over HTTP, as one Web-standard
 * `(Request) => Promise<Response>` (Deno.serve, Bun.serve, Node through a fetch-style
 * server, workers). The scope comes from `authenticate`, never from the request.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import {
  Capability,
  isTerminalJobState,
  type SyncAdapter,
} from "@zakstam/codex-sync-engine/contracts";
import { DEFAULT_POLICY } from "@zakstam/codex-sync-engine/policy";
import { isSyncError, SyncError } from "@zakstam/codex-sync-engine/errors";
import {
  type CapabilitiesDocument,
  DEFAULT_MAX_WAIT_MS,
  ITEM_COUNT_HEADER,
  type OptionalOperation,
  PROTOCOL_VERSION,
  sha256FromDigestField,
  UPLOAD_HEAD_LENGTH_HEADER,
  UPLOAD_MEDIA_TYPE,
} from "../protocol.ts";
import { type BodyLimits, parseJsonObject, readBody, readJsonObject } from "./body.ts";
import { errorResponse, jsonResponse, unauthorizedResponse, withStatus } from "./respond.ts";
import { jobEventStream, type JobWatcher } from "./events.ts";

/** Finds the scope a request acts for; `undefined` (or `null`, or "") means unauthenticated. */
export type Authenticate = (
  request: Request,
) => string | undefined | null | Promise<string | undefined | null>;

/** How to build the handler. */
export interface SyncHttpHandlerOptions {
  /** The backend every request is served by. */
  adapter: SyncAdapter;
  /**
   * The scope of a request, from its credentials (a bearer token, a cookie, mTLS, …);
   * missing or unknown credentials → `undefined`, answered with a fixed 401. A
   * `SyncError` it throws is answered like any other (a 503 while a token store is down).
   */
  authenticate: Authenticate;
  /** Path prefix the routes live under, e.g. `"/sync"` (default none: `/v1/…`). */
  basePath?: string;
  /** Longest one long-poll is held, in ms (default 25 s). */
  maxWaitMs?: number;
  /**
   * Largest JSON body read, and largest upload head (default 2 MiB: the default manifest
   * `data` limit of 1 MiB, metadata and the rest fit).
   */
  maxJsonBytes?: number;
  /**
   * Largest chunk body (default the adapter's `maxChunkBytes` or `limits.maxChunkBytes`,
   * else the policy's 1 MiB).
   */
  maxChunkBytes?: number;
  /** A body must arrive whole within this many ms (default 60 s), else 408. */
  bodyTimeoutMs?: number;
  /** Longest an event stream stays open, in ms (default 5 min; clients reconnect). */
  maxEventStreamMs?: number;
  /** Comment lines keeping an idle event stream open, every this many ms (default 15 s). */
  eventHeartbeatMs?: number;
  /**
   * Re-reads the job of an event stream at least this often, in ms (default 1 s when the
   * adapter gives no change notification, else 5 s as a safety net).
   */
  eventPollMs?: number;
  /**
   * Change notification for event streams: calls `listener` after each committed change
   * of the job; returns an unsubscribe. Default: the adapter's `store.subscribeJob` when
   * the adapter exposes its store (the memory and Postgres adapters do), else none (the
   * streams poll).
   */
  watchJob?: JobWatcher;
  /**
   * Whether the request's scope may run `gc` (which works across all scopes): default
   * nobody (`POST /v1/gc` answers 403).
   */
  allowGc?: (scope: string, request: Request) => boolean | Promise<boolean>;
  /** Answer `E_SYNC_INTERNAL` with its message (default false: "internal error"). */
  exposeInternalErrors?: boolean;
  /** Told about every failure answered with a 5xx status (for logging). */
  onError?: (error: unknown, request: Request) => void;
}

/** The handler: one Web `Request` in, one `Response` out. */
export type SyncHttpHandler = (request: Request) => Promise<Response>;

const MIB = 1024 * 1024;

type Env = { Bindings: { scope: string } };

function invalid(message: string, details?: Record<string, unknown>): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", message, details ? { details } : {});
}

/** An optional decimal integer from a query parameter or header. */
function integer(value: string | undefined | null, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!/^-?[0-9]{1,16}$/.test(value.trim())) {
    throw invalid(`${field} must be a decimal integer`, { field });
  }
  return Number(value.trim());
}

/** A body's fields as an operation's input: `scope` dropped, path parameters refused. */
function bodyInput(body: Record<string, unknown>, pathKeys: readonly string[]) {
  const { scope: _ignored, ...rest } = body;
  for (const key of pathKeys) {
    if (Object.hasOwn(rest, key)) throw invalid(`${key} belongs in the path, not the body`);
  }
  return rest;
}

function normaliseBase(base: string | undefined): string {
  if (!base || base === "/") return "";
  const trimmed = base.replace(/\/+$/, "");
  return trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

function positive(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!(typeof value === "number" && Number.isFinite(value) && value > 0)) {
    throw new TypeError(`createSyncHttpHandler: ${field} must be a positive number`);
  }
  return value;
}

/** The capabilities the server offers over HTTP (operations it cannot route are left out). */
function offeredCapabilities(adapter: SyncAdapter): string[] {
  return adapter.capabilities.filter((cap) => {
    if (cap === Capability.oneCallUpload) return typeof adapter.uploadSource === "function";
    if (cap === Capability.extensions) return typeof adapter.getLatestSource === "function";
    if (cap === Capability.releasePayloads) return typeof adapter.releasePayloads === "function";
    return true;
  });
}

/** The adapter's store notification, when it exposes its store. */
function storeWatcher(adapter: SyncAdapter): JobWatcher | undefined {
  const store = (adapter as { store?: { subscribeJob?: unknown } }).store;
  const subscribe = store?.subscribeJob;
  if (typeof subscribe !== "function") return undefined;
  return (scope, jobId, listener) =>
    (subscribe as JobWatcher).call(
      (adapter as unknown as { store: unknown }).store,
      scope,
      jobId,
      listener,
    );
}

/**
 * The sync protocol over `adapter` (see the package README for the routes, bodies and
 * status codes).
 */
export function createSyncHttpHandler(options: SyncHttpHandlerOptions): SyncHttpHandler {
  const { adapter, authenticate } = options;
  if (typeof authenticate !== "function") {
    throw new TypeError("createSyncHttpHandler: authenticate must be a function");
  }
  const base = normaliseBase(options.basePath);
  const maxWaitMs = positive(options.maxWaitMs, DEFAULT_MAX_WAIT_MS, "maxWaitMs");
  const maxJsonBytes = positive(options.maxJsonBytes, 2 * MIB, "maxJsonBytes");
  const maxChunkBytes = positive(
    options.maxChunkBytes ?? adapter.maxChunkBytes ?? adapter.limits?.maxChunkBytes,
    DEFAULT_POLICY.limits.maxChunkBytes,
    "maxChunkBytes",
  );
  const bodyTimeoutMs = positive(options.bodyTimeoutMs, 60_000, "bodyTimeoutMs");
  const exposeInternal = options.exposeInternalErrors ?? false;
  const events = {
    maxStreamMs: positive(options.maxEventStreamMs, 5 * 60_000, "maxEventStreamMs"),
    heartbeatMs: positive(options.eventHeartbeatMs, 15_000, "eventHeartbeatMs"),
    pollMs: options.eventPollMs,
  };
  const offered = offeredCapabilities(adapter);
  const operations: OptionalOperation[] = [];
  if (offered.includes(Capability.oneCallUpload)) operations.push("uploadSource");
  if (offered.includes(Capability.extensions)) operations.push("getLatestSource");
  if (typeof adapter.abandonSource === "function") operations.push("abandonSource");
  if (offered.includes(Capability.releasePayloads)) operations.push("releasePayloads");
  const capabilities: CapabilitiesDocument = {
    protocol: PROTOCOL_VERSION,
    capabilities: offered,
    maxChunkBytes,
    maxWaitMs,
    maxJsonBytes,
    operations,
  };
  if (adapter.limits) capabilities.limits = { ...adapter.limits };
  const jsonLimits = (what: string): BodyLimits => ({
    maxBytes: maxJsonBytes,
    timeoutMs: bodyTimeoutMs,
    what,
  });

  const fail = (error: unknown, request: Request): Response => {
    const response = errorResponse(error, exposeInternal);
    if (response.status >= 500) options.onError?.(error, request);
    return response;
  };

  const app = new Hono<Env>().basePath(base || "/");
  app.onError((error, c) => fail(error, c.req.raw));
  app.notFound(() =>
    errorResponse(withStatus(invalid("no such route (see the protocol in the README)"), 404), false)
  );
  const scopeOf = (c: Context<Env>) => c.env.scope;

  // --- sources -------------------------------------------------------------------------
  app.post("/v1/sources", async (c) => {
    const body = await readJsonObject(c.req.raw, jsonLimits("createSource body"));
    const source = await adapter.createSource(
      {
        ...bodyInput(body, []),
        scope: scopeOf(c),
      } as Parameters<SyncAdapter["createSource"]>[0],
    );
    return jsonResponse(source);
  });

  app.get("/v1/sources/:sourceId", async (c) => {
    return jsonResponse(
      await adapter.getSource({ scope: scopeOf(c), sourceId: c.req.param("sourceId") }),
    );
  });

  app.put("/v1/sources/:sourceId/chunks/:index", async (c) => {
    const request = c.req.raw;
    const index = integer(c.req.param("index"), "index");
    if (index === undefined || index < 0) throw invalid("index must be a non-negative integer");
    const encoding = request.headers.get("content-encoding");
    if (encoding !== null && encoding.trim().toLowerCase() !== "identity") {
      throw withStatus(invalid("chunk bodies must not be content-encoded"), 415);
    }
    const field = request.headers.get("content-digest") ?? request.headers.get("repr-digest");
    if (field === null) {
      throw invalid("a chunk needs a Content-Digest header (sha-256)", {
        header: "content-digest",
      });
    }
    const sha256 = sha256FromDigestField(field);
    const itemCount = integer(request.headers.get(ITEM_COUNT_HEADER), ITEM_COUNT_HEADER);
    const bytes = await readBody(request, {
      maxBytes: maxChunkBytes,
      timeoutMs: bodyTimeoutMs,
      what: "chunk body",
    });
    const input: Parameters<SyncAdapter["appendChunk"]>[0] = {
      scope: scopeOf(c),
      sourceId: c.req.param("sourceId"),
      index,
      bytes,
      sha256,
    };
    if (itemCount !== undefined) input.itemCount = itemCount;
    const result = await adapter.appendChunk(input);
    return jsonResponse(result, result.appended ? 201 : 200);
  });

  app.get("/v1/sources/:sourceId/chunks", async (c) => {
    const input: Parameters<SyncAdapter["listChunks"]>[0] = {
      scope: scopeOf(c),
      sourceId: c.req.param("sourceId"),
    };
    const cursor = c.req.query("cursor");
    const limit = integer(c.req.query("limit"), "limit");
    if (cursor !== undefined) input.cursor = cursor;
    if (limit !== undefined) input.limit = limit;
    return jsonResponse(await adapter.listChunks(input));
  });

  app.post("/v1/sources/:sourceId/seal", async (c) => {
    const body = await readJsonObject(c.req.raw, jsonLimits("sealSource body"));
    const result = await adapter.sealSource(
      {
        ...bodyInput(body, ["sourceId"]),
        scope: scopeOf(c),
        sourceId: c.req.param("sourceId"),
      } as Parameters<SyncAdapter["sealSource"]>[0],
    );
    return jsonResponse(result);
  });

  if (operations.includes("abandonSource")) {
    // Looked up at each request: the adapter may be a proxy whose backend is swapped.
    const abandonSource: NonNullable<SyncAdapter["abandonSource"]> = (input) =>
      adapter.abandonSource!(input);
    app.post("/v1/sources/:sourceId/abandon", async (c) => {
      const body = await readJsonObject(c.req.raw, jsonLimits("abandonSource body"), true);
      const source = await abandonSource(
        {
          ...bodyInput(body, ["sourceId"]),
          scope: scopeOf(c),
          sourceId: c.req.param("sourceId"),
        } as Parameters<NonNullable<SyncAdapter["abandonSource"]>>[0],
      );
      return jsonResponse(source);
    });
  }

  if (operations.includes("releasePayloads")) {
    // Looked up at each request: the adapter may be a proxy whose backend is swapped.
    const releasePayloads: NonNullable<SyncAdapter["releasePayloads"]> = (input) =>
      adapter.releasePayloads!(input);
    app.post("/v1/sources/:sourceId/release-payloads", async (c) => {
      const body = await readJsonObject(c.req.raw, jsonLimits("releasePayloads body"), true);
      const result = await releasePayloads(
        {
          ...bodyInput(body, ["sourceId"]),
          scope: scopeOf(c),
          sourceId: c.req.param("sourceId"),
        } as Parameters<NonNullable<SyncAdapter["releasePayloads"]>>[0],
      );
      return jsonResponse(result);
    });
  }

  if (operations.includes("uploadSource")) {
    // Looked up at each request: the adapter may be a proxy whose backend is swapped.
    const uploadSource: NonNullable<SyncAdapter["uploadSource"]> = (input) =>
      adapter.uploadSource!(input);
    app.post("/v1/uploads", async (c) => {
      const request = c.req.raw;
      const type = (request.headers.get("content-type") ?? "").split(";")[0].trim();
      if (type.toLowerCase() !== UPLOAD_MEDIA_TYPE) {
        throw withStatus(invalid(`an upload body must be ${UPLOAD_MEDIA_TYPE}`), 415);
      }
      const headLength = integer(
        request.headers.get(UPLOAD_HEAD_LENGTH_HEADER),
        UPLOAD_HEAD_LENGTH_HEADER,
      );
      if (headLength === undefined || headLength <= 0) {
        throw invalid(`an upload needs a positive ${UPLOAD_HEAD_LENGTH_HEADER} header`);
      }
      if (headLength > maxJsonBytes) {
        throw new SyncError(
          "E_SYNC_LIMIT_EXCEEDED",
          `upload head is larger than the limit of ${maxJsonBytes} bytes`,
          { details: { limit: maxJsonBytes, actual: headLength } },
        );
      }
      const body = await readBody(request, {
        maxBytes: headLength + maxChunkBytes,
        timeoutMs: bodyTimeoutMs,
        what: "upload body",
      });
      if (body.length < headLength) throw invalid("upload body is shorter than its head");
      const head = parseJsonObject(body.subarray(0, headLength), "upload head");
      const data = body.subarray(headLength);
      const entries = head.chunks;
      if (!Array.isArray(entries)) throw invalid("upload head: chunks must be an array");
      let offset = 0;
      const chunks = entries.map((entry: unknown, position) => {
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
          throw invalid(`upload head: chunks.${position} must be an object`);
        }
        const { byteLength, ...rest } = entry as Record<string, unknown>;
        if (Object.hasOwn(rest, "bytes")) {
          throw invalid(`upload head: chunks.${position}.bytes travels in the body`);
        }
        if (!Number.isSafeInteger(byteLength) || (byteLength as number) < 0) {
          throw invalid(`upload head: chunks.${position}.byteLength must be an integer ≥ 0`);
        }
        const end = offset + (byteLength as number);
        if (end > data.length) throw invalid("upload body is shorter than its chunks");
        const bytes = data.slice(offset, end);
        offset = end;
        return { ...rest, bytes };
      });
      if (offset !== data.length) throw invalid("upload body is longer than its chunks");
      const result = await uploadSource(
        {
          ...bodyInput(head, []),
          scope: scopeOf(c),
          chunks,
        } as Parameters<NonNullable<SyncAdapter["uploadSource"]>>[0],
      );
      return jsonResponse(result);
    });
  }

  if (operations.includes("getLatestSource")) {
    // Looked up at each request: the adapter may be a proxy whose backend is swapped.
    const getLatestSource: NonNullable<SyncAdapter["getLatestSource"]> = (input) =>
      adapter.getLatestSource!(input);
    app.get("/v1/conversations/:conversationId/latest-source", async (c) => {
      const source = await getLatestSource({
        scope: scopeOf(c),
        conversationId: c.req.param("conversationId"),
      });
      return jsonResponse({ source });
    });
  }

  // --- jobs ----------------------------------------------------------------------------
  app.get("/v1/jobs", async (c) => {
    const input: Parameters<SyncAdapter["listJobs"]>[0] = { scope: scopeOf(c) };
    const conversationId = c.req.query("conversationId");
    const state = c.req.query("state");
    const cursor = c.req.query("cursor");
    const limit = integer(c.req.query("limit"), "limit");
    if (conversationId !== undefined) input.conversationId = conversationId;
    if (state !== undefined) input.state = state as typeof input.state;
    if (cursor !== undefined) input.cursor = cursor;
    if (limit !== undefined) input.limit = limit;
    return jsonResponse(await adapter.listJobs(input));
  });

  app.get("/v1/jobs/:jobId", async (c) => {
    return jsonResponse(await adapter.getJob({ scope: scopeOf(c), jobId: c.req.param("jobId") }));
  });

  app.post("/v1/jobs/:jobId/cancel", async (c) => {
    const body = await readJsonObject(c.req.raw, jsonLimits("cancelJob body"), true);
    const job = await adapter.cancelJob(
      {
        ...bodyInput(body, ["jobId"]),
        scope: scopeOf(c),
        jobId: c.req.param("jobId"),
      } as Parameters<SyncAdapter["cancelJob"]>[0],
    );
    return jsonResponse(job);
  });

  app.get("/v1/jobs/:jobId/wait", async (c) => {
    const scope = scopeOf(c);
    const jobId = c.req.param("jobId");
    const requested = integer(c.req.query("timeoutMs"), "timeoutMs");
    if (requested !== undefined && requested < 0) throw invalid("timeoutMs must be ≥ 0");
    const bound = Math.min(requested ?? maxWaitMs, maxWaitMs);
    const request = c.req.raw;
    // The bound runs on real time, whatever clock the adapter uses: the server's own
    // timer aborts the adapter's wait, and a client that goes away aborts it too.
    // (Raced as well: an adapter that ignored the signal still cannot hold the poll.)
    const controller = new AbortController();
    const onGone = () => controller.abort();
    request.signal.addEventListener("abort", onGone, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const elapsed = new Promise<"elapsed">((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve("elapsed");
      }, bound);
    });
    try {
      const waited = adapter.waitForTerminal({ scope, jobId, signal: controller.signal }).then(
        (job) => ({ job }),
        (error: unknown) => ({ error }),
      );
      const outcome = await Promise.race([waited, elapsed]);
      if (outcome !== "elapsed" && "job" in outcome) {
        return jsonResponse({ terminal: true, job: outcome.job });
      }
      if (outcome !== "elapsed") {
        const { error } = outcome;
        const ownAbort = controller.signal.aborted && !request.signal.aborted &&
          isSyncError(error) && error.code === "E_SYNC_ABORTED";
        if (!ownAbort) throw error;
      }
      const job = await adapter.getJob({ scope, jobId });
      return jsonResponse({ terminal: isTerminalJobState(job.state), job });
    } finally {
      clearTimeout(timer);
      request.signal.removeEventListener("abort", onGone);
    }
  });

  app.get("/v1/jobs/:jobId/events", async (c) => {
    const scope = scopeOf(c);
    const jobId = c.req.param("jobId");
    // Read before the stream starts: a missing (or foreign) job is an ordinary 404.
    const first = await adapter.getJob({ scope, jobId });
    const watch = options.watchJob ?? storeWatcher(adapter);
    return jobEventStream({
      adapter,
      scope,
      first,
      watch,
      maxStreamMs: events.maxStreamMs,
      heartbeatMs: events.heartbeatMs,
      pollMs: events.pollMs ?? (watch ? 5_000 : 1_000),
    });
  });

  // --- maintenance ---------------------------------------------------------------------
  app.post("/v1/gc", async (c) => {
    const request = c.req.raw;
    const allowed = options.allowGc ? await options.allowGc(scopeOf(c), request) : false;
    if (!allowed) {
      throw withStatus(invalid("gc is not permitted with these credentials"), 403);
    }
    const body = await readJsonObject(request, jsonLimits("gc body"), true);
    return jsonResponse(await adapter.gc(bodyInput(body, []) as Parameters<SyncAdapter["gc"]>[0]));
  });

  const capabilitiesPath = `${base}/v1/capabilities`;
  return async (request: Request): Promise<Response> => {
    try {
      const path = pathOf(request.url);
      if (path === capabilitiesPath && (request.method === "GET" || request.method === "HEAD")) {
        return jsonResponse(capabilities);
      }
      const scope = await authenticate(request);
      if (typeof scope !== "string" || scope === "") return unauthorizedResponse();
      return await app.fetch(request, { scope });
    } catch (error) {
      return fail(error, request);
    }
  };
}

/** The path of a request URL, without query or fragment. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start === -1) return "/";
  let end = url.length;
  const query = url.indexOf("?", start);
  if (query !== -1) end = query;
  const hash = url.indexOf("#", start);
  if (hash !== -1 && hash < end) end = hash;
  return url.slice(start, end);
}
