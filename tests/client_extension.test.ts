import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Chunk } from "../src/contracts/domain.ts";
import type { SyncAdapter } from "../src/contracts/adapter.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError } from "../src/errors.ts";
import {
  syncConversation,
  type SyncConversationOptions,
  type SyncProgressEvent,
} from "../src/client/mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { recordCalls } from "./support/recorded_calls.ts";

const SCOPE = "tenant-a";
const CONVERSATION = "conversation-1";
const encoder = new TextEncoder();

/** `count` bytes of a pattern that differs per `seed`. */
function bytesOf(count: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: count }, (_, i) => (i * 31 + seed * 7 + 11) % 251);
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A memory adapter in manual mode whose calls are recorded by name, with the chunks its
 * handler applied, the contexts' `base`, and a clock advanced before each sync.
 */
function recordedAdapter() {
  const clock = new ManualClock();
  const applied: Array<{ sourceId: string; index: number; bytes: Uint8Array }> = [];
  const bases: unknown[] = [];
  const memory = createMemoryAdapter({
    handler: {
      apply(chunk: Chunk, ctx) {
        applied.push({ sourceId: ctx.source.sourceId, index: chunk.index, bytes: chunk.bytes });
        bases.push(ctx.base);
      },
    },
    clock,
    mode: "manual",
  });
  const { adapter, calls } = recordCalls(memory);
  const events: SyncProgressEvent[] = [];
  const sync = async (payload: SyncConversationOptions["payload"], extra = {}) => {
    calls.length = 0;
    applied.length = 0;
    bases.length = 0;
    events.length = 0;
    clock.advance(1000);
    return await syncConversation(adapter as SyncAdapter, {
      scope: SCOPE,
      conversationId: CONVERSATION,
      payload,
      chunkSize: 1024,
      clock,
      onProgress: (event) => {
        events.push(event);
        if (event.phase === "waiting") void memory.drain();
      },
      ...extra,
    });
  };
  return { adapter, memory, calls, applied, bases, events, sync };
}

describe("syncConversation: extensions of the conversation's latest source", () => {
  test("appending bytes uploads and applies only the tail; the job verifies the whole", async () => {
    const { memory, calls, applied, bases, events, sync } = recordedAdapter();
    const first = bytesOf(3 * 1024 + 300);
    const firstSync = await sync(first);
    assert.equal(firstSync.source.base, undefined);
    assert.deepEqual(firstSync.reused, { chunks: 0, bytes: 0 });

    const line = encoder.encode(`${"x".repeat(900)}\n`);
    const grown = join(first, line);
    const result = await sync(grown);
    assert.deepEqual(calls, ["getLatestSource", "listChunks", "uploadSource", "waitForTerminal"]);
    assert.deepEqual(result.reused, { chunks: 4, bytes: first.length });
    assert.deepEqual(result.uploaded, { chunks: 1, bytes: line.length });
    assert.equal(result.base?.sourceId, firstSync.source.sourceId);
    assert.equal(result.source.base?.sourceId, firstSync.source.sourceId);
    assert.equal(result.manifest.chunkCount, 5);
    assert.equal(result.manifest.byteCount, grown.length);
    // The job applied chunk 4 only, on top of the first job.
    assert.deepEqual(applied.map((a) => a.index), [4]);
    assert.deepEqual(applied[0].bytes, line);
    assert.deepEqual(result.job.base, {
      sourceId: firstSync.source.sourceId,
      jobId: firstSync.job.jobId,
      chunkCount: 4,
    });
    assert.deepEqual(bases, [result.job.base]);
    assert.equal(result.job.state, "succeeded");
    assert.equal(result.job.cursor, 5);
    assert.equal(result.job.appliedBytes, grown.length);
    const reused = events.find((event) => event.phase === "reused");
    assert.deepEqual(reused && { ...reused, base: reused.base.sourceId }, {
      phase: "reused",
      base: firstSync.source.sourceId,
      chunks: 4,
      bytes: first.length,
    });
    await memory.close();
  });

  test("a chain of appends uploads each time only what was appended", async () => {
    const { memory, applied, sync } = recordedAdapter();
    let payload = bytesOf(2500);
    let previous = await sync(payload);
    for (let link = 1; link <= 6; link++) {
      const line = encoder.encode(`line ${link} ${"y".repeat(120 * link)}\n`);
      payload = join(payload, line);
      const result = await sync(payload);
      assert.equal(result.source.base?.sourceId, previous.source.sourceId, `link ${link}`);
      assert.deepEqual(result.uploaded, { chunks: 1, bytes: line.length });
      assert.equal(result.reused.chunks, previous.manifest.chunkCount);
      assert.deepEqual(applied.map((a) => a.index), [previous.manifest.chunkCount]);
      assert.equal(result.job.appliedBytes, payload.length);
      previous = result;
    }
    await memory.close();
  });

  test("a payload more than one chunk past the base takes the chunked path from its count", async () => {
    const { memory, calls, applied, sync } = recordedAdapter();
    const first = bytesOf(1500);
    await sync(first);
    const grown = join(first, bytesOf(2500, 3));
    const result = await sync(grown);
    assert.deepEqual(calls, [
      "getLatestSource",
      "listChunks",
      "createSource",
      "appendChunk",
      "appendChunk",
      "appendChunk",
      "sealSource",
      "waitForTerminal",
    ]);
    assert.deepEqual(result.reused, { chunks: 2, bytes: 1500 });
    assert.deepEqual(result.uploaded, { chunks: 3, bytes: 2500 });
    assert.deepEqual(applied.map((a) => a.index), [2, 3, 4]);
    assert.equal(result.job.state, "succeeded");
    await memory.close();
  });

  test("rewritten history uploads a full source, applied from chunk 0", async () => {
    const { memory, applied, sync } = recordedAdapter();
    const first = bytesOf(3000);
    await sync(first);
    const rewritten = join(first, encoder.encode("tail\n"));
    rewritten[1500] ^= 0xff;
    const result = await sync(rewritten);
    assert.equal(result.source.base, undefined);
    assert.deepEqual(result.reused, { chunks: 0, bytes: 0 });
    assert.equal(result.uploaded.bytes, rewritten.length);
    assert.deepEqual(applied.map((a) => a.index), [0, 1, 2]);
    await memory.close();
  });

  test("a shorter payload (an older copy) is not an extension", async () => {
    const { memory, sync } = recordedAdapter();
    const first = bytesOf(3000);
    await sync(first);
    const result = await sync(first.subarray(0, 2000));
    assert.equal(result.source.base, undefined);
    assert.equal(result.uploaded.bytes, 2000);
    await memory.close();
  });

  test("JSON records extend at record boundaries with item counts in the manifest", async () => {
    const { memory, applied, sync } = recordedAdapter();
    const records = Array.from({ length: 40 }, (_, i) => ({ turn: i, text: "r".repeat(60) }));
    const first = await sync(records);
    assert.ok(first.manifest.chunkCount > 2);
    const more = [...records, { turn: 40, text: "new" }, { turn: 41, text: "newer" }];
    const result = await sync(more);
    assert.equal(result.source.base?.sourceId, first.source.sourceId);
    assert.equal(result.manifest.itemCount, 42);
    assert.deepEqual(result.uploaded.chunks, 1);
    assert.equal(applied.length, 1);
    assert.equal(new TextDecoder().decode(applied[0].bytes).split("\n").length - 1, 2);
    await memory.close();
  });

  test("a payload function is opened again for the comparison and the upload", async () => {
    const { memory, sync } = recordedAdapter();
    const first = bytesOf(3000);
    await sync(first);
    const grown = join(first, encoder.encode("more\n"));
    let opened = 0;
    const result = await sync(() => {
      opened++;
      return [grown.subarray(0, 1000), grown.subarray(1000)];
    });
    assert.equal(result.source.base !== undefined, true);
    assert.equal(opened, 1);
    // A mismatch reads it twice: once to compare, once to upload in full.
    const rewritten = join(bytesOf(3000, 9), encoder.encode("more\n"));
    opened = 0;
    const full = await sync(() => {
      opened++;
      return [rewritten];
    });
    assert.equal(full.source.base, undefined);
    assert.equal(opened, 2);
    await memory.close();
  });

  test("extend: false and a one-shot stream upload in full without asking for a base", async () => {
    const { memory, calls, sync } = recordedAdapter();
    const first = bytesOf(3000);
    await sync(first);
    const grown = join(first, encoder.encode("more\n"));
    const off = await sync(grown, { extend: false });
    assert.equal(off.source.base, undefined);
    assert.equal(calls.includes("getLatestSource"), false);
    async function* once() {
      yield grown;
    }
    const stream = await sync(once());
    assert.equal(stream.source.base, undefined);
    assert.equal(calls.includes("getLatestSource"), false);
    await memory.close();
  });

  test("a base extended meanwhile by another source falls back to a full upload", async () => {
    const { adapter, memory, sync } = recordedAdapter();
    const first = bytesOf(3000);
    const base = await sync(first);
    const other = await adapter.createSource({
      scope: SCOPE,
      conversationId: CONVERSATION,
      baseSourceId: base.source.sourceId,
    });
    const result = await sync(join(first, encoder.encode("more\n")));
    assert.equal(result.source.base, undefined);
    assert.notEqual(result.source.sourceId, other.sourceId);
    assert.equal(result.job.state, "succeeded");
    await memory.close();
  });

  test("appendTo uploads the payload as the named source's tail, without reading a prefix", async () => {
    const { memory, calls, applied, sync } = recordedAdapter();
    const first = bytesOf(3000);
    const base = await sync(first);
    const tail = encoder.encode("appended line\n");
    const result = await sync(tail, { appendTo: base.source.sourceId });
    assert.deepEqual(calls, ["getSource", "uploadSource", "waitForTerminal"]);
    assert.equal(result.manifest.byteCount, 3000 + tail.length);
    assert.deepEqual(applied.map((a) => a.index), [3]);
    assert.equal(result.job.state, "succeeded");
    // The tail of a tail: appendTo the extension.
    const again = await sync(encoder.encode("and another\n"), {
      appendTo: result.source.sourceId,
    });
    assert.equal(again.manifest.chunkCount, 5);
    assert.deepEqual(applied.map((a) => a.index), [4]);
    await memory.close();
  });

  test("appendTo a source that is not sealed is refused before anything is uploaded", async () => {
    const { adapter, memory, calls, sync } = recordedAdapter();
    const open = await adapter.createSource({ scope: SCOPE, conversationId: CONVERSATION });
    const error = await sync(bytesOf(10), { appendTo: open.sourceId }).then(
      () => undefined,
      (thrown) => thrown,
    );
    assert.ok(isSyncError(error));
    assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    assert.deepEqual(calls, ["getSource"]);
    const missing = await sync(bytesOf(10), { appendTo: "nope" }).then(
      () => undefined,
      (thrown) => thrown,
    );
    assert.ok(isSyncError(missing));
    assert.equal(missing.code, "E_SYNC_SOURCE_NOT_FOUND");
    await memory.close();
  });

  test("options extend and appendTo are validated", async () => {
    const { memory, sync } = recordedAdapter();
    for (const extra of [{ extend: "yes" }, { appendTo: "" }, { appendTo: 3 }]) {
      const error = await sync(bytesOf(10), extra).then(() => undefined, (thrown) => thrown);
      assert.ok(isSyncError(error), JSON.stringify(extra));
      assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    }
    await memory.close();
  });
});
