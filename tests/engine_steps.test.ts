// runClaimedJob's maxSteps: one chunk or the verification per call (backends that run
// one step per transaction, such as Convex, rely on it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../memory/mod.ts";
import { ManualClock } from "../src/clock.ts";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import { SyncEngine } from "../src/engine/engine.ts";

test("runClaimedJob with maxSteps 1 applies one chunk, then verifies in its own step", async () => {
  const applied: number[] = [];
  const engine = new SyncEngine({
    store: new MemoryStore(),
    handler: { apply: (chunk) => void applied.push(chunk.index) },
    clock: new ManualClock(),
  });
  const scope = "s";
  const source = await engine.createSource({ scope, conversationId: "c" });
  const chunks = ["a", "b"].map((text) => new TextEncoder().encode(text));
  const digests = await Promise.all(chunks.map((bytes) => sha256Hex(bytes)));
  for (const [index, bytes] of chunks.entries()) {
    await engine.appendChunk({
      scope,
      sourceId: source.sourceId,
      index,
      bytes,
      sha256: digests[index],
    });
  }
  await engine.sealSource({
    scope,
    sourceId: source.sourceId,
    manifest: { chunkCount: 2, byteCount: 2, digest: compositeDigest(digests) },
  });
  const claimed = (await engine.claimNextJob("w"))!;
  const first = await engine.runClaimedJob(claimed, { maxSteps: 1 });
  assert.deepEqual([first.state, first.cursor, applied], ["running", 1, [0]]);
  assert.equal(first.lease?.token, claimed.lease?.token);
  const second = await engine.runClaimedJob(first, { maxSteps: 1 });
  assert.deepEqual([second.state, second.cursor, applied], ["verifying", 2, [0, 1]]);
  const third = await engine.runClaimedJob(second, { maxSteps: 1 });
  assert.equal(third.state, "succeeded");
  assert.deepEqual(applied, [0, 1]);
});
