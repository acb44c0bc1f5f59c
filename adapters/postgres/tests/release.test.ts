// Releasing chunk payloads on PGlite: one UPDATE sets the bytes of a verified source's
// chunks to NULL (the metadata stays), a job never reads them, and a plain VACUUM frees
// their storage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, syncConversation } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";

/** Incompressible bytes (TOAST cannot shrink them), from a fixed seed. */
function noise(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = 0x2545f491;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test("release: bytes become NULL, metadata stays, and VACUUM frees the space (PGlite)", async () => {
  const clock = new ManualClock();
  const adapter = await createPostgresAdapter({
    handler: { apply() {} },
    mode: "manual",
    clock,
    policy: { limits: { maxChunkBytes: 64 * 1024 } },
  });
  try {
    const payload = noise(1024 * 1024);
    const synced = await syncConversation(adapter, {
      scope: "s",
      conversationId: "c",
      payload,
      chunkSize: 64 * 1024,
      clock,
      onProgress: (event) => {
        if (event.phase === "waiting") void adapter.drain();
      },
    });
    const { chunks } = adapter.tables;
    const size = async () =>
      Number(
        (await adapter.driver.query<{ size: string | number }>(
          `SELECT pg_total_relation_size($1::text::regclass) AS size`,
          [chunks],
        ))[0].size,
      );
    const nulls = async () =>
      Number(
        (await adapter.driver.query<{ n: number }>(
          `SELECT count(*)::integer AS n FROM ${chunks} WHERE bytes IS NULL`,
        ))[0].n,
      );
    const listing = await adapter.listChunks({ scope: "s", sourceId: synced.source.sourceId });
    const before = await size();
    assert.ok(before >= payload.length, `the table holds the payload (${before} bytes)`);
    assert.equal(await nulls(), 0);

    clock.advance(1000);
    const released = await adapter.releasePayloads({
      scope: "s",
      sourceId: synced.source.sourceId,
    });
    assert.equal(released.releasedChunks, 16);
    assert.equal(await nulls(), 16);
    assert.deepEqual(
      await adapter.listChunks({ scope: "s", sourceId: synced.source.sourceId }),
      listing,
    );
    assert.equal(
      await adapter.store.transaction((tx) => tx.getChunk("s", synced.source.sourceId, 3)),
      undefined,
    );
    assert.ok(
      (await adapter.store.transaction((tx) => tx.getChunkInfo("s", synced.source.sourceId, 3))) !==
        undefined,
    );

    await adapter.driver.query(`VACUUM ${chunks}`);
    const after = await size();
    assert.ok(after * 10 < before, `VACUUM freed the bytes: ${before} → ${after} bytes`);
  } finally {
    await adapter.close();
  }
});
