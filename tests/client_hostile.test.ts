// Careless and hostile callers of the client (issue 15): each test fails without its fix.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Chunk } from "../src/contracts/domain.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError, type SyncError } from "../src/errors.ts";
import { syncConversation, type SyncConversationOptions } from "../src/client/mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { recordCalls } from "./support/recorded_calls.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";

const SCOPE = "tenant";

/** A memory adapter in auto mode on a manual clock, its calls recorded by name. */
function recorded(policy: PolicyOverrides = {}) {
  const clock = new ManualClock();
  const applied: Uint8Array[] = [];
  const memory = createMemoryAdapter({
    handler: { apply: (chunk: Chunk) => void applied.push(chunk.bytes.slice()) },
    clock,
    mode: "manual",
    policy,
  });
  const { adapter, calls } = recordCalls(memory);
  const sync = (extra: Partial<SyncConversationOptions>) =>
    syncConversation(adapter, {
      scope: SCOPE,
      conversationId: "c",
      payload: new Uint8Array(1),
      clock,
      extend: false,
      onProgress: (event) => {
        if (event.phase === "waiting") void memory.drain();
      },
      ...extra,
    });
  return { memory, calls, applied, sync };
}

async function rejection(promise: Promise<unknown>): Promise<SyncError> {
  const error = await promise.then(() => undefined, (thrown) => thrown);
  assert.ok(isSyncError(error), `expected a SyncError, got ${String(error)}`);
  return error;
}

describe("client: what it hashes is what was produced", () => {
  test("a producer reusing one Buffer for every piece syncs exactly what it produced", async () => {
    const { memory, applied, sync } = recorded();
    const buffer = Buffer.alloc(1000);
    const produced: Uint8Array[] = [];
    async function* producer() {
      for (let piece = 1; piece <= 5; piece++) {
        buffer.fill(piece);
        produced.push(Uint8Array.from(buffer));
        yield buffer;
        // The next piece overwrites the memory the client was handed.
      }
    }
    const result = await sync({ payload: producer(), chunkSize: 1500, concurrency: 4 });
    assert.equal(result.job.state, "succeeded");
    const all = new Uint8Array(5000);
    produced.forEach((piece, i) => all.set(piece, i * 1000));
    const got = new Uint8Array(applied.reduce((n, a) => n + a.length, 0));
    let offset = 0;
    for (const bytes of applied) {
      got.set(bytes, offset);
      offset += bytes.length;
    }
    assert.deepEqual(got, all);
    await memory.close();
  });
});

describe("client: options are judged by the engine's rules before anything is sent", () => {
  test("an unbounded wait, bad manifest data or metadata, or an id the engine refuses", async () => {
    const { memory, calls, sync } = recorded();
    const cases: Array<[Partial<SyncConversationOptions>, string]> = [
      [{ waitTimeoutMs: Infinity }, "E_SYNC_INVALID_ARGUMENT"],
      [{ waitTimeoutMs: 1e12 }, "E_SYNC_INVALID_ARGUMENT"],
      // deno-lint-ignore no-explicit-any
      [{ manifestData: 1n as any }, "E_SYNC_INVALID_ARGUMENT"],
      [{ manifestData: "x".repeat(2 * 1024 * 1024) }, "E_SYNC_LIMIT_EXCEEDED"],
      [{ metadata: new Array(2 ** 32 - 1) }, "E_SYNC_LIMIT_EXCEEDED"],
      [{ scope: "a\u0000b" }, "E_SYNC_INVALID_ARGUMENT"],
      [{ conversationId: "\uD800" }, "E_SYNC_INVALID_ARGUMENT"],
      [{ sourceId: "x".repeat(300) }, "E_SYNC_LIMIT_EXCEEDED"],
    ];
    for (const [extra, code] of cases) {
      const error = await rejection(
        sync({ ...extra, payload: new Uint8Array(3000), chunkSize: 1024 }),
      );
      assert.equal(error.code, code, JSON.stringify(Object.keys(extra)));
    }
    assert.deepEqual(calls, []);
    await memory.close();
  });
});

describe("client: the adapter's limits are known before the bytes", () => {
  const policy = { limits: { maxSourceBytes: 10_000, maxChunksPerSource: 5 } };

  test("a known length past the byte or chunk limit is refused before the first call", async () => {
    const { memory, calls, sync } = recorded(policy);
    const tooLarge = await rejection(sync({ payload: new Uint8Array(10_001), chunkSize: 4096 }));
    assert.equal(tooLarge.code, "E_SYNC_LIMIT_EXCEEDED");
    const tooMany = await rejection(sync({ payload: new Uint8Array(6 * 100), chunkSize: 100 }));
    assert.equal(tooMany.code, "E_SYNC_LIMIT_EXCEEDED");
    assert.deepEqual(calls, []);
    await memory.close();
  });

  test("a stream is refused at its first chunk past the limit, and its source discarded", async () => {
    const { memory, calls, sync } = recorded(policy);
    async function* pieces() {
      for (let i = 0; i < 20; i++) yield new Uint8Array(1000).fill(i);
    }
    const error = await rejection(sync({ payload: pieces(), chunkSize: 1000, concurrency: 1 }));
    assert.equal(error.code, "E_SYNC_LIMIT_EXCEEDED");
    assert.equal(calls.filter((call) => call === "appendChunk").length, 5);
    assert.ok(calls.includes("abandonSource"));
    const sourceId = (await memory.listJobs({ scope: SCOPE })).items[0]?.sourceId;
    assert.equal(sourceId, undefined, "no job");
    // The one source created is expired at once, its chunks deleted.
    const created = memory.store.oracle.totals();
    assert.equal(created.chunks, 0);
    await memory.close();
  });

  test("a record that cannot be encoded mid-stream discards the source", async () => {
    const { memory, calls, sync } = recorded();
    const records = [{ a: "x".repeat(700) }, { a: "y".repeat(700) }, { a: "z".repeat(700) }, {
      bad: 1n,
    }];
    const error = await rejection(sync({ payload: records, chunkSize: 1024, concurrency: 1 }));
    assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    assert.ok(calls.includes("abandonSource"));
    assert.equal(memory.store.oracle.totals().chunks, 0);
    await memory.close();
  });

  test("an aborted sync keeps its source resumable (nothing abandoned)", async () => {
    const { memory, calls, sync } = recorded();
    const controller = new AbortController();
    async function* pieces() {
      yield new Uint8Array(1000);
      yield new Uint8Array(1000);
      controller.abort();
      yield new Uint8Array(1000);
    }
    const error = await rejection(
      sync({ payload: pieces(), chunkSize: 1000, concurrency: 1, signal: controller.signal }),
    );
    assert.equal(error.code, "E_SYNC_ABORTED");
    assert.equal(calls.includes("abandonSource"), false);
    await memory.close();
  });
});
