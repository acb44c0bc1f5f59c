/**
 * Reading request bodies: streamed, cut off at a limit (413 before the rest is read),
 * bounded by a read deadline (408), and refused when they end before their
 * `Content-Length` (nothing is handed on, so nothing is stored).
 *
 * @module
 */

import { SyncError } from "@zakstam/codex-sync-engine/errors";
import { withStatus } from "./respond.ts";

/** How to read one body. */
export interface BodyLimits {
  /** Most bytes accepted; more is `E_SYNC_LIMIT_EXCEEDED` (413). */
  maxBytes: number;
  /** The whole body must arrive within this many ms (`E_SYNC_TIMEOUT`, 408). */
  timeoutMs: number;
  /** Names the body in error messages. */
  what: string;
}

/** Parses `Content-Length`; undefined when absent. */
export function declaredLength(request: Request): number | undefined {
  const header = request.headers.get("content-length");
  if (header === null) return undefined;
  const text = header.trim();
  if (!/^[0-9]{1,15}$/.test(text)) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "malformed Content-Length", {
      details: { header: "content-length" },
    });
  }
  return Number(text);
}

function tooLarge(what: string, limit: number, actual?: number): SyncError {
  const details: Record<string, unknown> = { limit };
  if (actual !== undefined) details.actual = actual;
  return new SyncError(
    "E_SYNC_LIMIT_EXCEEDED",
    `${what} is larger than the limit of ${limit} bytes`,
    { details },
  );
}

function cancelQuietly(request: Request): void {
  const body = request.body;
  if (body && !body.locked) body.cancel().catch(() => {});
}

/**
 * Reads the whole body of `request` into one buffer, or throws a `SyncError`:
 * `E_SYNC_LIMIT_EXCEEDED` as soon as it (or its `Content-Length`) passes `maxBytes`,
 * `E_SYNC_TIMEOUT` (retryable) when it has not ended within `timeoutMs`,
 * `E_SYNC_INVALID_ARGUMENT` when it ends before its `Content-Length` or the connection
 * fails mid-body.
 */
export async function readBody(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const { maxBytes, timeoutMs, what } = limits;
  const declared = declaredLength(request);
  if (declared !== undefined && declared > maxBytes) {
    cancelQuietly(request);
    throw tooLarge(what, maxBytes, declared);
  }
  const body = request.body;
  if (body === null) {
    if (declared !== undefined && declared > 0) throw endedEarly(what, declared, 0);
    return new Uint8Array(0);
  }
  const reader = body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  // A declared length gets one buffer of that size; otherwise pieces are collected.
  const buffer = declared !== undefined ? new Uint8Array(declared) : undefined;
  const pieces: Uint8Array[] = [];
  let received = 0;
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        if (timedOut) throw timeout(what, timeoutMs);
        throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${what} could not be read to its end`, {
          cause: error,
        });
      }
      if (timedOut) throw timeout(what, timeoutMs);
      if (next.done) break;
      const piece = next.value;
      if (received + piece.length > maxBytes) {
        reader.cancel().catch(() => {});
        throw tooLarge(what, maxBytes);
      }
      if (buffer) {
        if (received + piece.length > buffer.length) {
          reader.cancel().catch(() => {});
          throw new SyncError(
            "E_SYNC_INVALID_ARGUMENT",
            `${what} is longer than its Content-Length`,
          );
        }
        buffer.set(piece, received);
      } else {
        pieces.push(piece);
      }
      received += piece.length;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  if (buffer) {
    if (received !== buffer.length) throw endedEarly(what, buffer.length, received);
    return buffer;
  }
  if (pieces.length === 1) return pieces[0];
  const joined = new Uint8Array(received);
  let offset = 0;
  for (const piece of pieces) {
    joined.set(piece, offset);
    offset += piece.length;
  }
  return joined;
}

function endedEarly(what: string, declared: number, received: number): SyncError {
  return new SyncError(
    "E_SYNC_INVALID_ARGUMENT",
    `${what} ended after ${received} of its ${declared} bytes`,
    { details: { declared, received } },
  );
}

function timeout(what: string, timeoutMs: number): SyncError {
  return new SyncError("E_SYNC_TIMEOUT", `${what} did not arrive within ${timeoutMs} ms`, {
    retryable: true,
    details: { timeoutMs },
  });
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a JSON object body (`Content-Type: application/json`; an empty body is `{}` when
 * `allowEmpty`). Malformed JSON, another media type or a non-object is
 * `E_SYNC_INVALID_ARGUMENT`.
 */
export async function readJsonObject(
  request: Request,
  limits: BodyLimits,
  allowEmpty = false,
): Promise<Record<string, unknown>> {
  const bytes = await readBody(request, limits);
  if (bytes.length === 0 && allowEmpty) return {};
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type.trim())) {
    throw withStatus(
      new SyncError("E_SYNC_INVALID_ARGUMENT", `${limits.what} must be application/json`, {
        details: { header: "content-type" },
      }),
      415,
    );
  }
  return parseJsonObject(bytes, limits.what);
}

/** Parses UTF-8 JSON that must be an object. */
export function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${what} is not valid UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}
