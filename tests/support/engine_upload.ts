/**
 * Creates, appends and seals a source straight through an engine (no client), for engine
 * tests on the memory store.
 *
 * @module
 */

import { compositeDigest, sha256Hex } from "../../src/checksum.ts";
import type { SealResult } from "../../src/contracts/domain.ts";
import type { UploadSourceInput } from "../../src/contracts/inputs.ts";
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

/**
 * A one-call upload of `texts` (one chunk each) as the whole conversation: the manifest
 * covers every chunk, the input carries those from `target.from` (the ones before are
 * the base's).
 */
export async function uploadInputOf(
  texts: readonly string[],
  target: UploadTarget,
  extra: Partial<UploadSourceInput> = {},
): Promise<UploadSourceInput> {
  const from = target.from ?? 0;
  const parts = texts.map((text) => new TextEncoder().encode(text));
  const digests = await Promise.all(parts.map((bytes) => sha256Hex(bytes)));
  return {
    scope: target.scope,
    conversationId: target.conversationId,
    ...(target.baseSourceId === undefined ? {} : { baseSourceId: target.baseSourceId }),
    chunks: parts.slice(from).map((bytes, i) => ({
      index: from + i,
      bytes,
      sha256: digests[from + i],
    })),
    manifest: {
      chunkCount: parts.length,
      byteCount: parts.reduce((sum, bytes) => sum + bytes.length, 0),
      digest: compositeDigest(digests),
    },
    ...extra,
  };
}

/** Runs the engine's due jobs until none is due now. */
export async function drainEngine(engine: SyncEngine): Promise<void> {
  while (await engine.runDueJobs() > 0) { /* until idle */ }
}
