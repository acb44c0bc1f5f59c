/**
 * What `syncConversation` accepts as a payload, and how it becomes chunks.
 *
 * @module
 */

import { SyncError } from "../errors.ts";
import { chunkBytes, chunkRecords, type PayloadChunk } from "./chunker.ts";
import { isIterableLike, isReadableStream, iteratePieces, type PieceSource } from "./pieces.ts";

/** How a payload is encoded into chunks. */
export type PayloadFormat = "bytes" | "jsonl-records";

/**
 * A conversation snapshot: bytes, a stream or (async) iterable of byte pieces, or an
 * (async) iterable or stream of JSON records.
 */
export type SyncPayload = Uint8Array | PieceSource<unknown>;

/** Throws `E_SYNC_INVALID_ARGUMENT` unless `payload` has one of the accepted shapes. */
export function assertPayload(payload: unknown, format: PayloadFormat | undefined): void {
  const accepted = payload instanceof Uint8Array || isReadableStream(payload) ||
    (typeof payload !== "string" && isIterableLike(payload));
  if (!accepted) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      "payload must be a Uint8Array, a ReadableStream, or an (async) iterable of byte pieces or records",
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
 * The chunks of `payload`. Without an explicit `format`, the first item decides: a
 * `Uint8Array` means bytes, anything else JSON records; an empty payload is bytes.
 */
export async function* payloadChunks(
  payload: SyncPayload,
  format: PayloadFormat | undefined,
  chunkSize: number,
): AsyncGenerator<PayloadChunk, void, undefined> {
  if (payload instanceof Uint8Array) {
    yield* chunkBytes(payload, chunkSize);
    return;
  }
  const items = iteratePieces(payload);
  let handedOver = false;
  try {
    const first = await items.next();
    const rest = withFirst(first, items);
    handedOver = true;
    const resolved = format ??
      (first.done || first.value instanceof Uint8Array ? "bytes" : "jsonl-records");
    if (resolved === "bytes") yield* chunkBytes(rest as AsyncIterable<Uint8Array>, chunkSize);
    else yield* chunkRecords(rest, chunkSize);
  } finally {
    if (!handedOver) await items.return();
  }
}

async function* withFirst<T>(
  first: IteratorResult<T, void>,
  iterator: AsyncGenerator<T, void, undefined>,
): AsyncGenerator<T, void, undefined> {
  if (first.done) return;
  yield first.value;
  yield* iterator;
}
