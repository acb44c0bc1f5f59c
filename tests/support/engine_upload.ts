/**
 * Creates, appends and seals a source straight through an engine (no client), for engine
 * tests on the memory store.
 *
 * @module
 */

import { compositeDigest, sha256Hex } from "../../src/checksum.ts";
import type { SealResult } from "../../src/contracts/domain.ts";
import type { SyncEngine } from "../../src/engine/engine.ts";

/** Where the source goes, and which chunks it reuses. */
export interface UploadTarget {
  scope: string;
  conversationId: string;
  /** Makes the source an extension of this one. */
  baseSourceId?: string;
  /** The first chunk to append (the ones before are the base's, reused). */
  from?: number;
}

/** Uploads `chunks` (from `target.from`) and seals them with their manifest. */
export async function uploadAndSeal(
  engine: SyncEngine,
  chunks: readonly Uint8Array[],
  target: UploadTarget,
): Promise<SealResult> {
  const { scope } = target;
  const source = await engine.createSource({
    scope,
    conversationId: target.conversationId,
    ...(target.baseSourceId === undefined ? {} : { baseSourceId: target.baseSourceId }),
  });
  const digests = await Promise.all(chunks.map((chunk) => sha256Hex(chunk)));
  for (let index = target.from ?? 0; index < chunks.length; index++) {
    await engine.appendChunk({
      scope,
      sourceId: source.sourceId,
      index,
      bytes: chunks[index],
      sha256: digests[index],
    });
  }
  return await engine.sealSource({
    scope,
    sourceId: source.sourceId,
    manifest: {
      chunkCount: chunks.length,
      byteCount: chunks.reduce((sum, chunk) => sum + chunk.length, 0),
      digest: compositeDigest(digests),
    },
  });
}
