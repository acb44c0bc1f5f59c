/**
 * What `syncConversation` accepts as a payload, and how it becomes chunks.
 *
 * @module
 */

import { SyncError } from "../errors.ts";
import { chunkBytes, encodeLines, packLines, type PayloadChunk } from "./chunker.ts";
import { isIterableLike, isReadableStream, iteratePieces, type PieceSource } from "./pieces.ts";

/** How a payload is encoded into chunks. */
export type PayloadFormat = "bytes" | "jsonl-records";

/** A payload read once: bytes, a stream or (async) iterable of byte pieces or of records. */
export type PayloadContent = Uint8Array | PieceSource<unknown>;

/**
 * A conversation snapshot: bytes, a stream or (async) iterable of byte pieces, or an
 * (async) iterable or stream of JSON records; or a function that opens such a payload
 * afresh each time it is called (so the client can read it again, e.g. to compare it
 * with the conversation's latest source first).
 */
export type SyncPayload = PayloadContent | (() => PayloadContent);

/** Throws `E_SYNC_INVALID_ARGUMENT` unless `payload` has one of the accepted shapes. */
export function assertPayload(payload: unknown, format: PayloadFormat | undefined): void {
  if (typeof payload === "function") return;
  assertContent(payload, format);
}

function assertContent(payload: unknown, format: PayloadFormat | undefined): void {
  const accepted = payload instanceof Uint8Array || isReadableStream(payload) ||
    (typeof payload !== "string" && isIterableLike(payload));
  if (!accepted) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      "payload must be a Uint8Array, a ReadableStream, an (async) iterable of byte pieces " +
        "or records, or a function returning one of these",
      { details: { field: "payload" } },
    );
  }
  if (payload instanceof Uint8Array && format === "jsonl-records") {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      'a Uint8Array payload cannot have format "jsonl-records"',
      { details: { field: "format" } },
    );
  }
}

/**
 * True when the payload can be read more than once: bytes, an array, or a function that
 * opens it. A stream or an iterator is read once.
 */
export function isRereadable(payload: SyncPayload): boolean {
  return payload instanceof Uint8Array || Array.isArray(payload) || typeof payload === "function";
}

/** The payload's content, opened afresh when the payload is a function. */
export function openPayload(
  payload: SyncPayload,
  format: PayloadFormat | undefined,
): PayloadContent {
  if (typeof payload !== "function") return payload;
  let content: unknown;
  try {
    content = payload();
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", `the payload function threw: ${reason}`, {
      details: { field: "payload" },
      cause,
    });
  }
  assertContent(content, format);
  return content as PayloadContent;
}

/**
 * A payload's units, in order: byte pieces (format `bytes`), or whole JSON lines
 * (format `jsonl-records`; a chunk boundary falls only between lines).
 */
export type PayloadUnits =
  | { format: "bytes"; pieces: Uint8Array | AsyncIterable<Uint8Array> }
  | { format: "jsonl-records"; lines: AsyncIterable<Uint8Array> };

/**
 * The units of `content`. Its first item decides the format unless `format` says it:
 * bytes for a `Uint8Array` or byte pieces, JSON Lines for anything else.
 */
export async function payloadUnits(
  content: PayloadContent,
  format: PayloadFormat | undefined,
  chunkSize: number,
): Promise<PayloadUnits> {
  if (content instanceof Uint8Array) return { format: "bytes", pieces: content };
  const items = iteratePieces(content);
  let handedOver = false;
  try {
    const first = await items.next();
    const rest = withFirst(first, items);
    handedOver = true;
    const resolved = format ??
      (first.done || first.value instanceof Uint8Array ? "bytes" : "jsonl-records");
    return resolved === "bytes"
      ? { format: "bytes", pieces: rest as AsyncIterable<Uint8Array> }
      : { format: "jsonl-records", lines: encodeLines(rest, chunkSize) };
  } finally {
    if (!handedOver) await items.return();
  }
}

/** The chunks of `units`, numbered from `firstIndex`. */
export function chunkUnits(
  units: PayloadUnits,
  chunkSize: number,
  firstIndex = 0,
): AsyncGenerator<PayloadChunk, void, undefined> {
  return units.format === "bytes"
    ? chunkBytes(units.pieces, chunkSize, firstIndex)
    : packLines(units.lines, chunkSize, firstIndex);
}

/**
 * Splits the payload into chunks. A `Uint8Array` is cut into views; pieces are
 * chunked as bytes; anything else is taken as records, encoded as JSON Lines. An empty
 * stream or iterable gives zero chunks.
 */
export async function* payloadChunks(
  payload: SyncPayload,
  format: PayloadFormat | undefined,
  chunkSize: number,
): AsyncGenerator<PayloadChunk, void, undefined> {
  const units = await payloadUnits(openPayload(payload, format), format, chunkSize);
  yield* chunkUnits(units, chunkSize);
}

async function* withFirst<T>(
  first: IteratorResult<T, void>,
  iterator: AsyncGenerator<T, void, undefined>,
): AsyncGenerator<T, void, undefined> {
  if (first.done) return;
  yield first.value;
  yield* iterator;
}
