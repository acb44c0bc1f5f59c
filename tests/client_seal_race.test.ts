// The client's fallback when an extension's seal loses a race: the released base it
// extends stopped being the conversation's current applied snapshot between the
// extension's createSource and its seal (another source of the conversation was sealed
// meanwhile), so the seal fails with E_SYNC_SOURCE_EXPIRED. A payload the client can read
// again goes up whole instead; a streamed one rejects with that error.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import type { SyncAdapter } from "../src/contracts/adapter.ts";
import type { Chunk } from "../src/contracts/domain.ts";
import { syncConversation, type SyncPayload } from "../src/client/mod.ts";
import { isSyncError } from "../src/errors.ts";
import { createMemoryAdapter } from "../memory/mod.ts";

const SCOPE = "tenant-a";
const CONVERSATION = "conversation-1";
const CHUNK_SIZE = 1024;
const encoder = new TextEncoder();
const HISTORY = "c\n".repeat(3000);
// More than one chunk, so the extension is created, appended and sealed in three calls.
const TAIL = "e".repeat(3000) + "\n";

/** A released, verified base; then an adapter whose first seal of an extension loses the race. */
async function racedSetup() {
  const clock = new ManualClock();
  const applied: Array<{ sourceId: string; index: number }> = [];
  const adapter = createMemoryAdapter({
    handler: {
      apply: (chunk: Chunk, ctx: { source: { sourceId: string } }) =>
        void applied.push({ sourceId: ctx.source.sourceId, index: chunk.index }),
    },
    clock,
    mode: "manual",
  });
  const options = (payload: SyncPayload) => ({
    scope: SCOPE,
    conversationId: CONVERSATION,
    payload,
    chunkSize: CHUNK_SIZE,
    clock,
    onProgress: (event: { phase: string }) => {
      if (event.phase === "waiting") void adapter.drain();
    },
  });
  clock.advance(1000);
  const first = await syncConversation(adapter, options(encoder.encode(HISTORY)));
  await adapter.releasePayloads({ scope: SCOPE, sourceId: first.source.sourceId });
  const seals: Array<{ sourceId: string; refused?: string }> = [];
  let raced = false;
  const racing: SyncAdapter = {
    ...adapter,
    sealSource: async (input) => {
      const source = await adapter.getSource({ scope: SCOPE, sourceId: input.sourceId });
      if (!raced && source.base !== undefined) {
        raced = true;
        // Another client seals a full source of the conversation in between.
        const bytes = encoder.encode("other\n");
        const sha256 = await sha256Hex(bytes);
        await adapter.uploadSource({
          scope: SCOPE,
          conversationId: CONVERSATION,
          chunks: [{ index: 0, bytes, sha256 }],
          manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
        });
      }
      try {
        const sealed = await adapter.sealSource(input);
        seals.push({ sourceId: input.sourceId });
        return sealed;
      } catch (error) {
        seals.push({ sourceId: input.sourceId, refused: isSyncError(error) ? error.code : "?" });
        throw error;
      }
    },
  };
  clock.advance(1000);
  return { adapter, racing, first, applied, seals, options };
}

describe("syncConversation: an extension's seal loses the race for its released base", () => {
  const rereadable: Array<[string, () => SyncPayload]> = [
    ["bytes", () => encoder.encode(HISTORY + TAIL)],
    ["an array of pieces", () => [encoder.encode(HISTORY), encoder.encode(TAIL)]],
    ["a payload function", () => () => [encoder.encode(HISTORY + TAIL)]],
  ];
  for (const [kind, payload] of rereadable) {
    test(`${kind}: re-uploaded as a full source, which succeeds`, async () => {
      const { adapter, racing, first, applied, seals, options } = await racedSetup();
      applied.length = 0;
      const result = await syncConversation(racing, options(payload()));
      assert.equal(seals.length, 2);
      assert.equal(seals[0].refused, "E_SYNC_SOURCE_EXPIRED");
      assert.equal(seals[1].refused, undefined);
      assert.equal(result.job.state, "succeeded");
      assert.equal(result.base, undefined);
      assert.deepEqual(result.reused, { chunks: 0, bytes: 0 });
      assert.notEqual(result.source.sourceId, first.source.sourceId);
      assert.equal(result.manifest.byteCount, HISTORY.length + TAIL.length);
      // The full source's job applied every chunk from 0, none of them released.
      const own = applied.filter((entry) => entry.sourceId === result.source.sourceId);
      assert.deepEqual(
        own.map((entry) => entry.index),
        Array.from({ length: result.manifest.chunkCount }, (_, i) => i),
      );
      const failed = await adapter.getSource({ scope: SCOPE, sourceId: seals[0].sourceId });
      assert.equal(failed.state, "failed");
      await adapter.close();
    });
  }

  test("appendTo with a streamed tail: rejects with E_SYNC_SOURCE_EXPIRED", async () => {
    const { adapter, racing, first, seals, options } = await racedSetup();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(TAIL));
        controller.close();
      },
    });
    await assert.rejects(
      syncConversation(racing, { ...options(stream), appendTo: first.source.sourceId }),
      (error: unknown) => isSyncError(error) && error.code === "E_SYNC_SOURCE_EXPIRED",
    );
    assert.equal(seals.length, 1);
    await adapter.close();
  });
});
