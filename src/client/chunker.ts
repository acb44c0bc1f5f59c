/**
 * Streaming chunkers: split bytes, or JSON records encoded as JSON Lines, into the
 * indexed chunks a source is uploaded as. Pure: no I/O beyond pulling the input.
 *
 * @module
 */

import { SyncError } from "../errors.ts";
import { iteratePieces, type PieceSource } from "./pieces.ts";

/** One chunk of a payload, ready to be hashed and appended. */
export interface PayloadChunk {
  /** 0-based position in the source. */
  index: number;
  bytes: Uint8Array;
  /** Records in the chunk (JSON Lines payloads only). */
  itemCount?: number;
}

/** Bytes, whole or as a sequence of pieces of any sizes. */
export type ByteSource = Uint8Array | PieceSource<Uint8Array>;

/** JSON-serialisable records, one at a time. */
export type RecordSource = PieceSource<unknown>;

/** Throws `E_SYNC_INVALID_ARGUMENT` unless `chunkSize` is a positive safe integer. */
export function assertChunkSize(chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "chunkSize must be a positive integer", {
      details: { field: "chunkSize", value: String(chunkSize) },
    });
  }
}

/**
 * Splits bytes into chunks of exactly `chunkSize` bytes, the last one possibly shorter.
 * Zero bytes give zero chunks.
 *
 * A `Uint8Array` input is chunked into views of it, without copying (it must not change
 * while the sync runs). Pieces from a stream or an iterable are copied as they arrive,
 * before the next piece is pulled: a producer may reuse a piece's memory once it handed
 * it over, and what is hashed and uploaded is what it produced.
 */
export async function* chunkBytes(
  source: ByteSource,
  chunkSize: number,
  firstIndex = 0,
): AsyncGenerator<PayloadChunk, void, undefined> {
  assertChunkSize(chunkSize);
  if (source instanceof Uint8Array) {
    for (let offset = 0, index = firstIndex; offset < source.length; offset += chunkSize, index++) {
      yield { index, bytes: source.subarray(offset, offset + chunkSize) };
    }
    return;
  }
  let index = firstIndex;
  let pieceIndex = 0;
  let pending: Uint8Array | undefined;
  let filled = 0;
  for await (const piece of iteratePieces(source)) {
    assertPiece(piece, pieceIndex);
    pieceIndex++;
    let offset = 0;
    if (pending !== undefined) {
      offset = Math.min(chunkSize - filled, piece.length);
      pending.set(piece.subarray(0, offset), filled);
      filled += offset;
      if (filled < chunkSize) continue;
      yield { index: index++, bytes: pending };
      pending = undefined;
      filled = 0;
    }
    for (; piece.length - offset >= chunkSize; offset += chunkSize) {
      // A copy into a plain array: `slice` of a Buffer would be a view.
      yield { index: index++, bytes: new Uint8Array(piece.subarray(offset, offset + chunkSize)) };
    }
    if (offset < piece.length) {
      // A fresh buffer each time: the previous one belongs to the consumer now.
      pending = new Uint8Array(chunkSize);
      pending.set(piece.subarray(offset));
      filled = piece.length - offset;
    }
  }
  if (pending !== undefined) yield { index, bytes: pending.subarray(0, filled) };
}

/** Throws `E_SYNC_INVALID_ARGUMENT` unless piece `pieceIndex` of a byte payload is bytes. */
export function assertPiece(piece: unknown, pieceIndex: number): asserts piece is Uint8Array {
  if (!(piece instanceof Uint8Array)) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `payload piece ${pieceIndex} is not a Uint8Array`,
      { details: { pieceIndex } },
    );
  }
}

/**
 * Encodes records as JSON Lines (`JSON.stringify(record) + "\n"`, UTF-8) and packs
 * whole lines into chunks of at most `chunkSize` bytes; a record is never split.
 * Each chunk's `itemCount` is the number of lines in it. Zero records give zero chunks.
 *
 * Throws `E_SYNC_LIMIT_EXCEEDED` for a record whose line is longer than `chunkSize`,
 * and `E_SYNC_INVALID_ARGUMENT` for one without a JSON form (undefined, a function, a
 * BigInt, a cycle); both carry `details.recordIndex`.
 */
export function chunkRecords(
  records: RecordSource,
  chunkSize: number,
): AsyncGenerator<PayloadChunk, void, undefined> {
  return packLines(encodeLines(records, chunkSize), chunkSize);
}

/**
 * Each record as its JSON Lines line (`JSON.stringify(record) + "\n"`, UTF-8), checked
 * to fit a chunk of `chunkSize` bytes; the errors of {@link chunkRecords}.
 */
export async function* encodeLines(
  records: RecordSource,
  chunkSize: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  assertChunkSize(chunkSize);
  const encoder = new TextEncoder();
  let recordIndex = 0;
  for await (const record of iteratePieces(records)) {
    const line = encoder.encode(jsonLine(record, recordIndex));
    if (line.length > chunkSize) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `record ${recordIndex} is ${line.length} bytes as JSON, more than the chunk size ${chunkSize}`,
        { details: { recordIndex, byteLength: line.length, chunkSize } },
      );
    }
    yield line;
    recordIndex++;
  }
}

/**
 * Packs whole lines (each at most `chunkSize` bytes) into chunks of at most `chunkSize`
 * bytes, numbered from `firstIndex`; each chunk's `itemCount` is its number of lines.
 */
export async function* packLines(
  lines: AsyncIterable<Uint8Array>,
  chunkSize: number,
  firstIndex = 0,
): AsyncGenerator<PayloadChunk, void, undefined> {
  assertChunkSize(chunkSize);
  let index = firstIndex;
  let held: Uint8Array[] = [];
  let size = 0;
  for await (const line of lines) {
    if (size + line.length > chunkSize) {
      yield { index: index++, bytes: concat(held, size), itemCount: held.length };
      held = [];
      size = 0;
    }
    held.push(line);
    size += line.length;
  }
  if (held.length > 0) yield { index, bytes: concat(held, size), itemCount: held.length };
}

function jsonLine(record: unknown, recordIndex: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(record);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `record ${recordIndex} is not JSON-serialisable: ${reason}`,
      { details: { recordIndex }, cause },
    );
  }
  // JSON.stringify answers undefined for undefined, functions and symbols.
  if (typeof json !== "string") {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `record ${recordIndex} is not JSON-serialisable: ${typeof record} has no JSON form`,
      { details: { recordIndex } },
    );
  }
  return json + "\n";
}

/** The concatenation of `parts` (`size` bytes in all) in one new array. */
export function concat(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
