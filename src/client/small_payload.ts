/**
 * Telling a payload that fits one chunk from a longer one, by pulling at most two chunks.
 *
 * @module
 */

import { raceSignal } from "./abort.ts";
import type { PayloadChunk } from "./chunker.ts";

/** The payload in full (at most one chunk), or every chunk still to come. */
export type PeekedPayload =
  | { kind: "small"; chunks: PayloadChunk[] }
  | { kind: "large"; chunks: AsyncIterable<PayloadChunk> };

/**
 * Pulls chunks until the payload is known to be zero or one chunk long (`small`), or a
 * second chunk arrived (`large`: the pulled chunks come first in the returned sequence).
 * Holds at most two chunks.
 */
export async function peekSmallPayload(
  chunks: AsyncIterable<PayloadChunk>,
  signal: AbortSignal,
): Promise<PeekedPayload> {
  const iterator = chunks[Symbol.asyncIterator]();
  const pulled: PayloadChunk[] = [];
  try {
    while (pulled.length < 2) {
      const next = await raceSignal(iterator.next(), signal);
      if (next.done) return { kind: "small", chunks: pulled };
      pulled.push(next.value);
    }
  } catch (error) {
    // Lets a stream producer know it can stop; not awaited, a pending read may hang.
    iterator.return?.().catch(() => {});
    throw error;
  }
  return { kind: "large", chunks: resumeWith(pulled, iterator) };
}

async function* resumeWith(
  pulled: PayloadChunk[],
  iterator: AsyncIterator<PayloadChunk>,
): AsyncGenerator<PayloadChunk, void, undefined> {
  let done = false;
  try {
    yield* pulled.splice(0);
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}
