/**
 * One request of the client: credentials per scope, a deadline, cancellation, and the
 * mapping of every outcome to a value or a `SyncError` (README, "Errors and retries").
 *
 * @module
 */

import { isSyncErrorCode, SyncError, syncErrorFromJSON } from "@zakstam/codex-sync-engine/errors";

/** A `fetch`-like function: the client only ever passes a `Request`. */
export type FetchLike = (request: Request) => Promise<Response>;

/** Credentials of a request, chosen per scope. */
export type Credential<T> = T | ((scope: string) => T | Promise<T>);

/** What the transport needs to know. */
export interface TransportOptions {
  /** Base URL, without a trailing slash. */
  base: string;
  token?: Credential<string | undefined>;
  headers?: Credential<HeadersInit | undefined>;
  fetch: FetchLike;
  /** Real-time bound of every request (ms), unless a call says otherwise. */
  requestTimeoutMs: number;
}

/** One call. */
export interface CallSpec {
  /** Whose credentials to send; undefined sends none. */
  scope: string | undefined;
  method: "GET" | "POST" | "PUT";
  /** Path under the base, starting with `/`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  /** A JSON body. */
  json?: unknown;
  /** A raw body (with `headers` saying what it is). */
  body?: Uint8Array;
  headers?: Record<string, string>;
  /** The caller's cancellation: `E_SYNC_ABORTED`. */
  signal?: AbortSignal;
  /** Overrides `requestTimeoutMs`. */
  timeoutMs?: number;
}

/** A response that is not an error. */
export interface CallResult<T> {
  status: number;
  value: T;
}

function unavailable(message: string, cause?: unknown, retryable = true): SyncError {
  return new SyncError("E_SYNC_BACKEND_UNAVAILABLE", message, { cause, retryable });
}

async function resolveCredential<T>(
  credential: Credential<T> | undefined,
  scope: string,
): Promise<T | undefined> {
  if (typeof credential === "function") {
    return await (credential as (scope: string) => T | Promise<T>)(scope);
  }
  return credential;
}

/** The error a non-2xx response stands for. */
export function responseError(status: number, text: string): SyncError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON: judged by its status below */ }
  const error = (parsed as { error?: unknown } | undefined)?.error;
  if (
    typeof error === "object" && error !== null &&
    isSyncErrorCode((error as { code?: unknown }).code) &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    return syncErrorFromJSON(error);
  }
  const details = { status };
  if (status >= 500 || status === 429 || status === 408) {
    return new SyncError("E_SYNC_BACKEND_UNAVAILABLE", `server answered HTTP ${status}`, {
      details,
      retryable: true,
    });
  }
  if (status === 401 || status === 403) {
    return new SyncError("E_SYNC_INVALID_ARGUMENT", `not authorized (HTTP ${status})`, {
      details,
    });
  }
  if (status === 413) {
    return new SyncError("E_SYNC_LIMIT_EXCEEDED", "request body too large (HTTP 413)", {
      details,
    });
  }
  return new SyncError("E_SYNC_INTERNAL", `unexpected HTTP ${status} from the server`, {
    details,
  });
}

/** Sends calls; `close()` ends every call in flight. */
export class Transport {
  readonly #options: TransportOptions;
  readonly #inFlight = new Set<AbortController>();
  #closed = false;

  constructor(options: TransportOptions) {
    this.#options = options;
  }

  get base(): string {
    return this.#options.base;
  }

  /** Ends every call in flight (non-retryable `E_SYNC_BACKEND_UNAVAILABLE`) and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const controller of this.#inFlight) controller.abort();
    this.#inFlight.clear();
  }

  /** The full URL of `path` with `query`. */
  url(path: string, query?: CallSpec["query"]): string {
    let url = this.#options.base + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined) params.set(key, String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    return url;
  }

  /** The request headers for `scope`. */
  async headers(scope: string | undefined, extra?: Record<string, string>): Promise<Headers> {
    const headers = new Headers();
    if (scope !== undefined) {
      const base = await resolveCredential(this.#options.headers, scope);
      if (base) new Headers(base).forEach((value, key) => headers.set(key, value));
      const token = await resolveCredential(this.#options.token, scope);
      if (token) headers.set("authorization", `Bearer ${token}`);
    }
    for (const [key, value] of Object.entries(extra ?? {})) headers.set(key, value);
    return headers;
  }

  /**
   * Sends `spec` and returns the response (status and raw `Response`, body unread), or
   * throws the `SyncError` of a network failure. The caller reads the body through
   * {@link Transport.read}, under the same deadline and cancellation.
   */
  async call<T>(spec: CallSpec): Promise<CallResult<T>> {
    const { response, finish, fail } = await this.open(spec);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw fail(error);
    } finally {
      finish();
    }
    if (!response.ok) throw responseError(response.status, text);
    try {
      return { status: response.status, value: JSON.parse(text) as T };
    } catch (error) {
      throw new SyncError("E_SYNC_INTERNAL", `the server's HTTP ${response.status} is not JSON`, {
        cause: error,
        details: { status: response.status },
      });
    }
  }

  /**
   * Sends `spec`; returns the response with its body unread, `finish` (to call once the
   * body is read or abandoned) and `fail` (maps a failure while reading it).
   */
  async open(spec: CallSpec): Promise<{
    response: Response;
    finish: () => void;
    fail: (error: unknown) => SyncError;
  }> {
    if (this.#closed) throw unavailable("the HTTP adapter is closed", undefined, false);
    if (spec.signal?.aborted) throw abortedError();
    const headers = await this.headers(spec.scope, spec.headers);
    let body: BodyInit | undefined;
    if (spec.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(spec.json);
    } else if (spec.body !== undefined) {
      body = spec.body as Uint8Array<ArrayBuffer>;
    }
    const controller = new AbortController();
    this.#inFlight.add(controller);
    let timedOut = false;
    const timeoutMs = spec.timeoutMs ?? this.#options.requestTimeoutMs;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    const finish = () => {
      clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
      this.#inFlight.delete(controller);
    };
    const fail = (error: unknown): SyncError => {
      if (spec.signal?.aborted) return abortedError();
      if (this.#closed) return unavailable("the HTTP adapter is closed", error, false);
      if (timedOut) {
        return unavailable(`no response from ${this.#options.base} within ${timeoutMs} ms`, error);
      }
      const why = error instanceof Error ? error.message : String(error);
      return unavailable(`request to ${this.#options.base} failed: ${why}`, error);
    };
    const request = new Request(this.url(spec.path, spec.query), {
      method: spec.method,
      headers,
      body,
      signal: controller.signal,
    });
    try {
      return { response: await this.#options.fetch(request), finish, fail };
    } catch (error) {
      finish();
      throw fail(error);
    }
  }
}

/** The error of a call the caller aborted. */
export function abortedError(): SyncError {
  return new SyncError("E_SYNC_ABORTED", "the request was aborted");
}
