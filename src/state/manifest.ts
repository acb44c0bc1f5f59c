/**
 * The seal check: stored chunk digests, fed page by page in index order, against the
 * manifest the runtime declared. Pure; holds one running digest, never the chunks.
 *
 * @module
 */

import { hexDigestToBytes, IncrementalSha256 } from "../checksum.ts";
import type { ChunkInfo, Manifest } from "../contracts/domain.ts";
import { SyncError } from "../errors.ts";

/** Chunks already checked, resumed from: an extension's reused chunks. */
export interface CheckedPrefix {
  chunkCount: number;
  byteCount: number;
  /** Undefined when some chunk of the prefix counts no items. */
  itemCount?: number;
  /** Composite-digest state over the prefix's chunk digests. */
  digestState: string;
}

/** Accumulates stored chunks (ascending index) and judges them against a manifest. */
export class ManifestCheck {
  readonly #manifest: Manifest;
  #hasher = new IncrementalSha256();
  #nextIndex = 0;
  #lastIndex = -1;
  #firstMissing: number | undefined;
  #extraChunks = 0;
  #byteCount = 0;
  #itemCount = 0;
  #chunksWithoutItemCount = 0;

  /**
   * Checks `manifest`; with `prefix`, chunks `0..prefix.chunkCount-1` are taken as
   * already checked (an extension's reused chunks) and feeding starts after them.
   */
  constructor(manifest: Manifest, prefix?: CheckedPrefix) {
    this.#manifest = manifest;
    if (prefix) {
      this.#hasher = IncrementalSha256.restore(prefix.digestState);
      this.#nextIndex = prefix.chunkCount;
      this.#lastIndex = prefix.chunkCount - 1;
      this.#byteCount = prefix.byteCount;
      if (prefix.itemCount !== undefined) this.#itemCount = prefix.itemCount;
      else if (prefix.chunkCount > 0) this.#chunksWithoutItemCount = 1;
    }
  }

  /** The composite-digest state over every chunk fed so far (prefix included). */
  get digestState(): string {
    return this.#hasher.save();
  }

  /** Index after which the next page starts. */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /** Feeds the next stored chunk; indexes must ascend. */
  add(chunk: ChunkInfo): void {
    if (chunk.index <= this.#lastIndex) {
      throw new SyncError("E_SYNC_INTERNAL", "store returned chunks out of index order");
    }
    this.#lastIndex = chunk.index;
    if (chunk.index >= this.#manifest.chunkCount) {
      this.#extraChunks++;
      return;
    }
    if (chunk.index > this.#nextIndex) this.#firstMissing ??= this.#nextIndex;
    this.#nextIndex = chunk.index + 1;
    this.#byteCount += chunk.byteLength;
    if (chunk.itemCount === undefined) this.#chunksWithoutItemCount++;
    else this.#itemCount += chunk.itemCount;
    this.#hasher.update(hexDigestToBytes(chunk.sha256));
  }

  /** The first rule the stored chunks break, or undefined when they match the manifest. */
  finish(): SyncError | undefined {
    const manifest = this.#manifest;
    const firstMissing = this.#firstMissing ??
      (this.#nextIndex < manifest.chunkCount ? this.#nextIndex : undefined);
    if (firstMissing !== undefined) {
      return new SyncError(
        "E_SYNC_CHUNK_INDEX_GAP",
        `chunk ${firstMissing} is missing (manifest declares ${manifest.chunkCount} chunks)`,
        { details: { missingIndex: firstMissing, chunkCount: manifest.chunkCount } },
      );
    }
    if (this.#extraChunks > 0) {
      return new SyncError(
        "E_SYNC_MANIFEST_MISMATCH",
        `${this.#extraChunks} chunk(s) stored beyond the manifest's ${manifest.chunkCount}`,
        { details: { extraChunks: this.#extraChunks, chunkCount: manifest.chunkCount } },
      );
    }
    if (this.#byteCount !== manifest.byteCount) {
      return new SyncError(
        "E_SYNC_MANIFEST_MISMATCH",
        `stored chunks hold ${this.#byteCount} bytes, manifest declares ${manifest.byteCount}`,
        { details: { field: "byteCount", expected: manifest.byteCount, actual: this.#byteCount } },
      );
    }
    if (
      manifest.itemCount !== undefined &&
      (this.#chunksWithoutItemCount > 0 || this.#itemCount !== manifest.itemCount)
    ) {
      return new SyncError(
        "E_SYNC_MANIFEST_MISMATCH",
        `stored chunks hold ${this.#itemCount} items` +
          (this.#chunksWithoutItemCount > 0
            ? ` (${this.#chunksWithoutItemCount} chunk(s) without an item count)`
            : "") +
          `, manifest declares ${manifest.itemCount}`,
        {
          details: { field: "itemCount", expected: manifest.itemCount, actual: this.#itemCount },
        },
      );
    }
    const digest = this.#hasher.digestHex();
    if (digest !== manifest.digest) {
      return new SyncError(
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
        `composite digest of the stored chunks is ${digest}, manifest declares ${manifest.digest}`,
        { details: { expected: manifest.digest, actual: digest } },
      );
    }
    return undefined;
  }
}
