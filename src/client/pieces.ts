/**
 * Uniform iteration over the shapes a payload may arrive in: a `ReadableStream`, an
 * async iterable or a plain iterable.
 *
 * @module
 */

/** Anything the client can pull pieces from, one at a time. */
export type PieceSource<T> = ReadableStream<T> | AsyncIterable<T> | Iterable<T>;

/** True for a `ReadableStream` (or a look-alike from another realm). */
export function isReadableStream(value: unknown): value is ReadableStream<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as { getReader?: unknown }).getReader === "function";
}

/** True for an async iterable or an iterable. */
export function isIterableLike(
  value: unknown,
): value is AsyncIterable<unknown> | Iterable<unknown> {
  if (value === null || value === undefined) return false;
  const object = Object(value) as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  return typeof object[Symbol.asyncIterator] === "function" ||
    typeof object[Symbol.iterator] === "function";
}

/**
 * The pieces of `source` as one async generator. Closing the generator early (a
 * `break`, an error downstream) cancels a stream and returns an iterator, so the
 * producer learns that nobody is listening any more.
 */
export async function* iteratePieces<T>(
  source: PieceSource<T>,
): AsyncGenerator<T, void, undefined> {
  if (isReadableStream(source)) {
    yield* readStream(source as ReadableStream<T>);
  } else {
    yield* source as AsyncIterable<T> | Iterable<T>;
  }
}

// Read through a reader rather than `for await` over the stream: async iteration of
// streams is missing in some runtimes still in use.
async function* readStream<T>(stream: ReadableStream<T>): AsyncGenerator<T, void, undefined> {
  const reader = stream.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
