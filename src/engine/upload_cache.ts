/**
 * Chunks this engine hashed and stored itself, kept (up to a byte budget) until its own
 * worker applies them: the job then applies the bytes the engine verified on the way in,
 * instead of reading them back from storage and hashing them a third time (issue 17).
 *
 * Safe because a chunk is immutable under its key: an entry is handed out only when the
 * store still holds a chunk at that key with the same digest and length (the worker reads
 * the chunk's info, without its bytes, in the same transaction as before), and it is
 * dropped whenever this engine deletes or releases the chunk home's payloads. A chunk read
 * from storage — by another process, after a restart, on a retry, or once the budget was
 * spent — is hashed before it is applied, as always.
 *
 * The oldest entries go first when the budget is spent: they are the ones least likely to
 * be applied here (their job ran elsewhere, or never will).
 *
 * @module
 */

import type { Chunk, ChunkInfo } from "../contracts/domain.ts";

function homeKey(scope: string, home: string): string {
  return `${scope.length}:${scope}:${home}`;
}

/** A bounded map from (scope, chunk home, index) to a chunk this engine stored. */
export class UploadCache {
  readonly #maxBytes: number;
  /** Home key → index → chunk; Map order is insertion order (oldest first). */
  readonly #homes = new Map<string, Map<number, Chunk>>();
  /** Every entry, oldest first, for eviction. */
  readonly #order = new Map<string, { home: string; index: number }>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Keeps chunks the engine verified, after the transaction that stored them committed. */
  add(scope: string, home: string, chunks: readonly Chunk[]): void {
    const key = homeKey(scope, home);
    for (const chunk of chunks) {
      if (chunk.bytes.length > this.#maxBytes) continue;
      this.#remove(key, chunk.index);
      while (this.#bytes + chunk.bytes.length > this.#maxBytes) this.#evictOldest();
      let byIndex = this.#homes.get(key);
      if (!byIndex) this.#homes.set(key, byIndex = new Map());
      byIndex.set(chunk.index, chunk);
      this.#order.set(`${key}#${chunk.index}`, { home: key, index: chunk.index });
      this.#bytes += chunk.bytes.length;
    }
  }

  /** Whether a chunk at this key is held (the worker then reads only its stored info). */
  has(scope: string, home: string, index: number): boolean {
    return this.#homes.get(homeKey(scope, home))?.has(index) ?? false;
  }

  /**
   * The held chunk at this key, once, when `stored` (the store's info at the same key)
   * names the same bytes; a copy, so the handler cannot reach what the store may keep.
   */
  take(scope: string, home: string, stored: ChunkInfo | undefined): Chunk | undefined {
    if (!stored) return undefined;
    const key = homeKey(scope, home);
    const chunk = this.#homes.get(key)?.get(stored.index);
    if (!chunk) return undefined;
    this.#remove(key, stored.index);
    if (chunk.sha256 !== stored.sha256 || chunk.byteLength !== stored.byteLength) {
      return undefined;
    }
    return { ...stored, bytes: chunk.bytes.slice() };
  }

  /** Forgets the home's chunks from `fromIndex` on (all of them by default). */
  drop(scope: string, home: string, fromIndex = 0): void {
    const key = homeKey(scope, home);
    const byIndex = this.#homes.get(key);
    if (!byIndex) return;
    for (const index of [...byIndex.keys()]) {
      if (index >= fromIndex) this.#remove(key, index);
    }
  }

  #remove(key: string, index: number): void {
    const byIndex = this.#homes.get(key);
    const chunk = byIndex?.get(index);
    if (!byIndex || !chunk) return;
    byIndex.delete(index);
    if (byIndex.size === 0) this.#homes.delete(key);
    this.#order.delete(`${key}#${index}`);
    this.#bytes -= chunk.bytes.length;
  }

  #evictOldest(): void {
    const oldest = this.#order.values().next();
    if (oldest.done) return;
    this.#remove(oldest.value.home, oldest.value.index);
  }
}
