import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkBytes, chunkRecords, type PayloadChunk } from "../src/client/mod.ts";
import { isSyncError } from "../src/errors.ts";

async function collect(chunks: AsyncIterable<PayloadChunk>): Promise<PayloadChunk[]> {
  const out: PayloadChunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Splits `bytes` at the given cut points (taken modulo its length, sorted). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.slice(start, point));
    start = point;
  }
  return pieces;
}

type PieceShape = "iterable" | "async-iterable" | "stream";

function asSource(pieces: Uint8Array[], shape: PieceShape) {
  if (shape === "iterable") return pieces;
  if (shape === "async-iterable") {
    return (async function* () {
      for (const piece of pieces) yield await Promise.resolve(piece);
    })();
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(piece);
      controller.close();
    },
  });
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isSyncError(error), `expected a SyncError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

function assertByteChunks(chunks: PayloadChunk[], input: Uint8Array, chunkSize: number): void {
  assert.deepEqual(concat(chunks.map((chunk) => chunk.bytes)), input);
  assert.equal(chunks.length, Math.ceil(input.length / chunkSize));
  chunks.forEach((chunk, i) => {
    assert.equal(chunk.index, i);
    assert.equal(chunk.itemCount, undefined);
    assert.ok(chunk.bytes.length > 0 && chunk.bytes.length <= chunkSize);
    if (i < chunks.length - 1) assert.equal(chunk.bytes.length, chunkSize);
  });
}

describe("chunkBytes", () => {
  test("a Uint8Array: exact-size chunks that concatenate to the input", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 400 }),
        fc.integer({ min: 1, max: 64 }),
        async (input, chunkSize) => {
          assertByteChunks(await collect(chunkBytes(input, chunkSize)), input, chunkSize);
        },
      ),
    );
  });

  test("any split of the input into stream pieces gives the same chunks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.integer({ min: 1, max: 64 }),
        fc.constantFrom<PieceShape>("iterable", "async-iterable", "stream"),
        async (input, cuts, chunkSize, shape) => {
          const pieces = split(input, cuts);
          const chunks = await collect(chunkBytes(asSource(pieces, shape), chunkSize));
          assertByteChunks(chunks, input, chunkSize);
        },
      ),
    );
  });

  test("a Uint8Array is chunked into views, without copying", async () => {
    const input = new Uint8Array(10).map((_, i) => i);
    const chunks = await collect(chunkBytes(input, 4));
    assert.deepEqual(chunks.map((chunk) => chunk.bytes.length), [4, 4, 2]);
    for (const chunk of chunks) assert.equal(chunk.bytes.buffer, input.buffer);
  });

  test("chunks are copies of the pieces, never views of them", async () => {
    const big = new Uint8Array(9).fill(7);
    const chunks = await collect(chunkBytes([new Uint8Array([1]), big], 4));
    assert.deepEqual(chunks.map((chunk) => chunk.bytes.length), [4, 4, 2]);
    for (const chunk of chunks) assert.notEqual(chunk.bytes.buffer, big.buffer);
    assert.deepEqual([...chunks[0].bytes], [1, 7, 7, 7]);
  });

  test("a producer that reuses one buffer for every piece gets what it produced", async () => {
    const buffer = new Uint8Array(8);
    async function* reusing() {
      for (let piece = 1; piece <= 3; piece++) {
        buffer.fill(piece);
        yield buffer;
      }
    }
    const chunks = [];
    // Held, as the client holds chunks in flight while it pulls the next piece.
    for await (const chunk of chunkBytes(reusing(), 8)) chunks.push(chunk);
    assert.deepEqual(chunks.map((chunk) => [...new Set(chunk.bytes)]), [[1], [2], [3]]);
  });

  test("zero-length input gives zero chunks", async () => {
    assert.deepEqual(await collect(chunkBytes(new Uint8Array(0), 8)), []);
    assert.deepEqual(await collect(chunkBytes([], 8)), []);
    assert.deepEqual(await collect(chunkBytes(asSource([new Uint8Array(0)], "stream"), 8)), []);
  });

  test("a piece that is not a Uint8Array is E_SYNC_INVALID_ARGUMENT", async () => {
    const error = await rejectsWith(
      collect(chunkBytes([new Uint8Array(2), "text" as unknown as Uint8Array], 8)),
      "E_SYNC_INVALID_ARGUMENT",
    );
    assert.deepEqual((error as { details?: unknown }).details, { pieceIndex: 1 });
  });

  test("a chunk size that is not a positive integer is E_SYNC_INVALID_ARGUMENT", async () => {
    for (const size of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await rejectsWith(collect(chunkBytes(new Uint8Array(4), size)), "E_SYNC_INVALID_ARGUMENT");
    }
  });

  test("stopping early cancels a stream", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(4));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const chunk of chunkBytes(stream, 4)) {
      assert.equal(chunk.index, 0);
      break;
    }
    assert.ok(cancelled);
  });
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function lineLength(record: unknown): number {
  return encoder.encode(JSON.stringify(record) + "\n").length;
}

function assertRecordChunks(chunks: PayloadChunk[], records: unknown[], chunkSize: number): void {
  const parsed: unknown[] = [];
  chunks.forEach((chunk, i) => {
    assert.equal(chunk.index, i);
    assert.ok(chunk.bytes.length <= chunkSize, "chunk larger than chunkSize");
    assert.equal(chunk.bytes[chunk.bytes.length - 1], 0x0a, "chunk does not end a line");
    const lines = decoder.decode(chunk.bytes).split("\n").slice(0, -1);
    assert.equal(chunk.itemCount, lines.length);
    // Every line parses on its own: no record was split across chunks.
    parsed.push(...lines.map((line) => JSON.parse(line)));
  });
  assert.equal(chunks.reduce((sum, chunk) => sum + (chunk.itemCount ?? 0), 0), records.length);
  assert.deepEqual(parsed, records.map((record) => JSON.parse(JSON.stringify(record))));
  // Greedy packing: the next chunk's first record did not fit in this one.
  let recordIndex = 0;
  for (let i = 0; i < chunks.length - 1; i++) {
    recordIndex += chunks[i].itemCount ?? 0;
    assert.ok(chunks[i].bytes.length + lineLength(records[recordIndex]) > chunkSize);
  }
}

const recordArbitrary = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({
    role: fc.constantFrom("user", "assistant"),
    text: fc.string({ unit: "grapheme", maxLength: 40 }),
  }),
);

describe("chunkRecords", () => {
  test("whole JSON lines, each chunk ≤ chunkSize, all records back in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArbitrary, { maxLength: 40 }),
        fc.integer({ min: 0, max: 200 }),
        fc.boolean(),
        async (records, slack, asynchronous) => {
          const chunkSize = Math.max(1, ...records.map(lineLength)) + slack;
          const source = asynchronous
            ? (async function* () {
              yield* records;
            })()
            : records;
          const chunks = await collect(chunkRecords(source, chunkSize));
          assertRecordChunks(chunks, records, chunkSize);
        },
      ),
    );
  });

  test("multi-byte text is counted in UTF-8 bytes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ unit: fc.constantFrom("😀", "漢", "字", "é", "a", "👩‍👩‍👧"), maxLength: 12 }),
          { minLength: 1, maxLength: 30 },
        ),
        fc.integer({ min: 0, max: 40 }),
        async (records, slack) => {
          const chunkSize = Math.max(...records.map(lineLength)) + slack;
          const chunks = await collect(chunkRecords(records, chunkSize));
          assertRecordChunks(chunks, records, chunkSize);
          const total = records.reduce((sum, record) => sum + lineLength(record), 0);
          assert.equal(chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0), total);
        },
      ),
    );
  });

  test("an emoji line is measured in bytes, not UTF-16 units", async () => {
    // `"😀"\n` is 1 + 4 + 1 + 1 = 7 bytes (but 5 UTF-16 units).
    const [chunk] = await collect(chunkRecords(["😀"], 7));
    assert.equal(chunk.bytes.length, 7);
    assert.equal(chunk.itemCount, 1);
    await rejectsWith(collect(chunkRecords(["😀"], 6)), "E_SYNC_LIMIT_EXCEEDED");
  });

  test("a record larger than a chunk is E_SYNC_LIMIT_EXCEEDED with its index", async () => {
    const error = await rejectsWith(
      collect(chunkRecords([{ a: 1 }, { b: 2 }, { text: "x".repeat(50) }], 32)),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    const details = (error as { details?: Record<string, unknown> }).details;
    assert.equal(details?.recordIndex, 2);
    assert.equal(details?.chunkSize, 32);
  });

  test("a record without a JSON form is E_SYNC_INVALID_ARGUMENT with its index", async () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const bad: unknown[] = [undefined, () => 1, 10n, cycle, Symbol("s")];
    for (const record of bad) {
      const error = await rejectsWith(
        collect(chunkRecords([{ ok: true }, record], 1024)),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assert.equal((error as { details?: Record<string, unknown> }).details?.recordIndex, 1);
    }
  });

  test("zero records give zero chunks", async () => {
    assert.deepEqual(await collect(chunkRecords([], 16)), []);
    assert.deepEqual(await collect(chunkRecords((async function* () {})(), 16)), []);
  });

  test("records from a ReadableStream", async () => {
    const stream = new ReadableStream<unknown>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue({ i });
        controller.close();
      },
    });
    const chunks = await collect(chunkRecords(stream, 16));
    assertRecordChunks(chunks, [0, 1, 2, 3, 4].map((i) => ({ i })), 16);
  });
});
