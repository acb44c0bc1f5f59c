/**
 * The composite digest of chunks that finish hashing out of order.
 *
 * @module
 */

import { hexDigestToBytes, IncrementalSha256 } from "../checksum.ts";
import { SyncError } from "../errors.ts";

/**
 * Feeds chunk digests to the composite hasher in index order. A digest that arrives
 * before its turn waits as its 32 raw bytes, never as chunk data.
 */
export class OrderedCompositeDigest {
  #hasher: IncrementalSha256;
  #next: number;
  #early = new Map<number, Uint8Array>();

  /**
   * Starts at chunk 0, or after `start.chunkCount` chunks whose composite state is
   * `start.digestState` (an extension's reused chunks).
   */
  constructor(start?: { chunkCount: number; digestState: string }) {
    this.#hasher = start ? IncrementalSha256.restore(start.digestState) : new IncrementalSha256();
    this.#next = start?.chunkCount ?? 0;
  }

  /** Records the lowercase hex SHA-256 of chunk `index`. */
  add(index: number, sha256: string): void {
    if (index < this.#next || this.#early.has(index)) {
      throw new SyncError("E_SYNC_INTERNAL", `digest of chunk ${index} added twice`);
    }
    this.#early.set(index, hexDigestToBytes(sha256));
    for (let digest = this.#early.get(this.#next); digest !== undefined;) {
      this.#hasher.update(digest);
      this.#early.delete(this.#next);
      this.#next++;
      digest = this.#early.get(this.#next);
    }
  }

  /** The composite digest of chunks `0..n-1`; every one of them must have been added. */
  digestHex(): string {
    if (this.#early.size > 0) {
      throw new SyncError("E_SYNC_INTERNAL", `the digest of chunk ${this.#next} is missing`);
    }
    return this.#hasher.digestHex();
  }
}
