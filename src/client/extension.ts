/**
 * Finding what of a payload the conversation's latest source already holds: the payload
 * is cut at the base's chunk boundaries and compared digest by digest while it streams;
 * when every base chunk matches, only the rest (the tail) needs uploading.
 *
 * @module
 */

import { compositeState, sha256Hex } from "../checksum.ts";
import type { ChunkInfo, Source } from "../contracts/domain.ts";
import { SyncError } from "../errors.ts";
import { assertPiece, concat, type PayloadChunk } from "./chunker.ts";
import { chunkUnits, type PayloadUnits } from "./payload.ts";
import type { UploadStart } from "./upload.ts";

/** Chunk digests computed at once while the payload is compared with its base. */
const HASH_WINDOW = 4;

/** An extension ready to upload: what it reuses of its base, and its new chunks. */
export interface PlannedExtension {
  base: Source;
  start: UploadStart;
  /** The chunks after the base's, numbered from the base's chunk count. */
  tail: AsyncIterable<PayloadChunk>;
}

/** What an extension of `base` starts from, given its composite state. */
export function extensionStart(base: Source, digestState: string): UploadStart {
  const manifest = base.manifest;
  if (base.state !== "sealed" || !manifest) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `source ${base.sourceId} is ${base.state}, not sealed: it cannot be extended`,
      { details: { baseSourceId: base.sourceId, state: base.state } },
    );
  }
  const start: UploadStart = {
    chunkCount: manifest.chunkCount,
    byteCount: manifest.byteCount,
    digestState,
  };
  if (manifest.itemCount !== undefined) start.itemCount = manifest.itemCount;
  return start;
}

/**
 * Reads `units` against the base's chunks `infos` (all of them, in index order).
 * Resolves with the extension when the payload starts with exactly those chunks, or
 * undefined at the first chunk that differs (the payload was then read only that far).
 */
export async function matchBase(
  units: PayloadUnits,
  base: Source,
  infos: readonly ChunkInfo[],
  chunkSize: number,
): Promise<PlannedExtension | undefined> {
  // Pieces of a producer are copied as they are taken (it may reuse their memory); the
  // caller's one Uint8Array and encoded lines are the client's own already.
  const reader = units.format === "bytes"
    ? units.pieces instanceof Uint8Array
      ? new PieceReader([units.pieces], false)
      : new PieceReader(units.pieces, true)
    : new PieceReader(units.lines, false);
  let matched = false;
  // Up to HASH_WINDOW digests in flight: Web Crypto hashes them on other threads.
  const pending: Promise<boolean>[] = [];
  try {
    for (const info of infos) {
      const bytes = units.format === "bytes"
        ? await reader.takeBytes(info.byteLength)
        : info.itemCount === undefined
        ? undefined
        : await reader.takePieces(info.itemCount);
      if (bytes?.length !== info.byteLength) return undefined;
      pending.push(sha256Hex(bytes).then((sha256) => sha256 === info.sha256));
      if (pending.length >= HASH_WINDOW && !(await pending.shift())) return undefined;
    }
    for (const same of pending) if (!(await same)) return undefined;
    matched = true;
  } finally {
    if (!matched) {
      await Promise.allSettled(pending);
      await reader.close();
    }
  }
  const rest = reader.rest();
  const tailUnits: PayloadUnits = units.format === "bytes"
    ? { format: "bytes", pieces: rest }
    : { format: "jsonl-records", lines: rest };
  return {
    base,
    start: extensionStart(base, compositeState(infos.map((info) => info.sha256))),
    tail: chunkUnits(tailUnits, chunkSize, infos.length),
  };
}

/** Pulls exact byte counts, or whole pieces, from a sequence of pieces; then the rest. */
class PieceReader {
  readonly #iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  readonly #copy: boolean;
  #current: Uint8Array | undefined;
  #offset = 0;
  #pieces = 0;

  constructor(pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, copy: boolean) {
    this.#copy = copy;
    this.#iterator = Symbol.asyncIterator in pieces
      ? (pieces as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      : (pieces as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  async #piece(): Promise<Uint8Array | undefined> {
    while (!this.#current || this.#offset >= this.#current.length) {
      const next = await this.#iterator.next();
      if (next.done) return undefined;
      assertPiece(next.value, this.#pieces++);
      this.#current = this.#copy ? new Uint8Array(next.value) : next.value;
      this.#offset = 0;
    }
    return this.#current;
  }

  /** The next `length` bytes (fewer at the end): a view when they lie in one piece. */
  async takeBytes(length: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let size = 0;
    while (size < length) {
      const piece = await this.#piece();
      if (!piece) break;
      const take = Math.min(length - size, piece.length - this.#offset);
      parts.push(piece.subarray(this.#offset, this.#offset + take));
      this.#offset += take;
      size += take;
    }
    return parts.length === 1 ? parts[0] : concat(parts, size);
  }

  /** The next `count` whole pieces (fewer at the end), joined. */
  async takePieces(count: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (let i = 0; i < count; i++) {
      const piece = await this.#piece();
      if (!piece) break;
      const part = piece.subarray(this.#offset);
      this.#current = undefined;
      parts.push(part);
      size += part.length;
    }
    return concat(parts, size);
  }

  /** Everything not taken yet, as pieces. */
  async *rest(): AsyncGenerator<Uint8Array, void, undefined> {
    let done = false;
    try {
      for (;;) {
        const piece = await this.#piece();
        if (!piece) {
          done = true;
          return;
        }
        const part = piece.subarray(this.#offset);
        this.#current = undefined;
        yield part;
      }
    } finally {
      if (!done) await this.close();
    }
  }

  /** Tells the producer nobody reads on. */
  async close(): Promise<void> {
    await this.#iterator.return?.();
  }
}
