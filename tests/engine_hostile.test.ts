// Hostile and careless input to the engine (issue 15): each test fails without its fix.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { sha256Hex } from "../src/checksum.ts";
import { compositeDigest } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError, type SyncError } from "../src/errors.ts";
import { MAX_RECORDED_MESSAGE } from "../src/state/source.ts";
import type { Job } from "../src/contracts/domain.ts";
import { createMemoryAdapter, type MemoryAdapter } from "../memory/mod.ts";

const SCOPE = "tenant";

function adapterWith(apply: (bytes: Uint8Array) => void = () => {}) {
  const clock = new ManualClock();
  const adapter = createMemoryAdapter({
    handler: { apply: (chunk) => apply(chunk.bytes) },
    clock,
    mode: "manual",
  });
  return { adapter, clock };
}

/** A one-chunk source of one byte, sealed in one call; returns its job. */
async function uploadOneByte(adapter: MemoryAdapter): Promise<Job> {
  const bytes = new TextEncoder().encode("x");
  const sha256 = await sha256Hex(bytes);
  const { job } = await adapter.uploadSource({
    scope: SCOPE,
    conversationId: "c",
    chunks: [{ index: 0, bytes, sha256 }],
    manifest: { chunkCount: 1, byteCount: 1, digest: compositeDigest([sha256]) },
  });
  return job;
}

async function rejection(promise: Promise<unknown>): Promise<SyncError> {
  const error = await promise.then(() => undefined, (thrown) => thrown);
  assert.ok(isSyncError(error), `expected a SyncError, got ${String(error)}`);
  return error;
}

/** Settles within `ms` of real time, or fails: the bound on a hostile input's work. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe("engine: aliased bytes", () => {
  test("a Buffer reused after appendChunk does not change the stored chunk", async () => {
    const applied: Uint8Array[] = [];
    const { adapter } = adapterWith((bytes) => void applied.push(bytes.slice()));
    const buffer = Buffer.from("the chunk the caller hands over");
    const original = Uint8Array.from(buffer);
    const sha256 = await sha256Hex(original);
    const source = await adapter.createSource({ scope: SCOPE, conversationId: "c" });
    await adapter.appendChunk({
      scope: SCOPE,
      sourceId: source.sourceId,
      index: 0,
      bytes: buffer,
      sha256,
    });
    buffer.fill(0);
    const { job } = await adapter.sealSource({
      scope: SCOPE,
      sourceId: source.sourceId,
      manifest: { chunkCount: 1, byteCount: original.length, digest: compositeDigest([sha256]) },
    });
    await adapter.drain();
    const done = await adapter.getJob({ scope: SCOPE, jobId: job.jobId });
    assert.equal(done.state, "succeeded", JSON.stringify(done.error));
    assert.deepEqual(applied, [original]);
    await adapter.close();
  });

  test("a Buffer reused after uploadSource does not change the stored chunk", async () => {
    const { adapter } = adapterWith();
    const buffer = Buffer.from("one small conversation");
    const original = Uint8Array.from(buffer);
    const sha256 = await sha256Hex(original);
    const { job } = await adapter.uploadSource({
      scope: SCOPE,
      conversationId: "c",
      chunks: [{ index: 0, bytes: buffer, sha256 }],
      manifest: { chunkCount: 1, byteCount: original.length, digest: compositeDigest([sha256]) },
    });
    buffer.fill(0);
    await adapter.drain();
    assert.equal((await adapter.getJob({ scope: SCOPE, jobId: job.jobId })).state, "succeeded");
    await adapter.close();
  });
});

describe("engine: inputs that throw when read", () => {
  test("a throwing getter, a throwing Proxy, a throwing scope: E_SYNC_INVALID_ARGUMENT", async () => {
    const { adapter } = adapterWith();
    const getter = {
      get oops(): never {
        throw new Error("getter");
      },
    };
    const proxy = new Proxy({}, {
      ownKeys() {
        throw new Error("trap");
      },
    });
    const scopeGetter = {
      get scope(): never {
        throw new Error("scope");
      },
      conversationId: "c",
    };
    for (
      const input of [
        { scope: SCOPE, conversationId: "c", metadata: getter },
        { scope: SCOPE, conversationId: "c", metadata: proxy },
        { scope: SCOPE, conversationId: "c", metadata: { nested: [getter] } },
        scopeGetter,
        new Proxy({ scope: SCOPE, conversationId: "c" }, {
          get() {
            throw new Error("get trap");
          },
        }),
      ]
    ) {
      // deno-lint-ignore no-explicit-any
      const error = await rejection(adapter.createSource(input as any));
      assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    }
    assert.equal((await adapter.listJobs({ scope: SCOPE })).items.length, 0);
    await adapter.close();
  });

  test("metadata is copied: changing it after the call changes nothing stored", async () => {
    const { adapter } = adapterWith();
    const metadata = { title: "first", tags: ["a"] };
    const source = await adapter.createSource({ scope: SCOPE, conversationId: "c", metadata });
    metadata.title = "changed";
    metadata.tags.push("b");
    const stored = await adapter.getSource({ scope: SCOPE, sourceId: source.sourceId });
    assert.deepEqual(stored.metadata, { title: "first", tags: ["a"] });
    await adapter.close();
  });

  test("a handler error whose retryable getter throws is a retryable failed attempt", async () => {
    const { adapter, clock } = adapterWith(() => {
      throw {
        get retryable(): never {
          throw new Error("getter");
        },
        get message(): never {
          throw new Error("getter");
        },
      };
    });
    const job = await uploadOneByte(adapter);
    await adapter.drain();
    const after = await adapter.getJob({ scope: SCOPE, jobId: job.jobId });
    assert.equal(after.state, "retry_wait");
    assert.equal(after.lease, undefined);
    assert.equal(after.error?.code, "E_SYNC_HANDLER_FAILED");
    assert.equal(after.error?.retryable, true);
    clock.advance(60_000);
    await adapter.close();
  });
});

describe("engine: size is judged with bounded work", () => {
  test("a sparse array of 2^32−1 slots as metadata is refused at once", async () => {
    const { adapter } = adapterWith();
    const error = await within(
      2000,
      rejection(
        adapter.createSource({
          scope: SCOPE,
          conversationId: "c",
          metadata: new Array(2 ** 32 - 1),
        }),
      ),
    );
    assert.equal(error.code, "E_SYNC_LIMIT_EXCEEDED");
    await adapter.close();
  });

  test("metadata of three 20 M-character strings is refused before it is serialised", async () => {
    const { adapter } = adapterWith();
    const big = "x".repeat(20_000_000);
    const error = await within(
      2000,
      rejection(
        adapter.createSource({ scope: SCOPE, conversationId: "c", metadata: [big, big, big] }),
      ),
    );
    assert.equal(error.code, "E_SYNC_LIMIT_EXCEEDED");
    await adapter.close();
  });

  test("a cyclic manifest data is E_SYNC_INVALID_ARGUMENT and the source stays collecting", async () => {
    const { adapter } = adapterWith();
    const source = await adapter.createSource({ scope: SCOPE, conversationId: "c" });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const error = await rejection(adapter.sealSource({
      scope: SCOPE,
      sourceId: source.sourceId,
      // deno-lint-ignore no-explicit-any
      manifest: { chunkCount: 0, byteCount: 0, digest: compositeDigest([]), data: cyclic as any },
    }));
    assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    const stored = await adapter.getSource({ scope: SCOPE, sourceId: source.sourceId });
    assert.equal(stored.state, "collecting");
    await adapter.close();
  });
});

describe("engine: recorded errors are bounded", () => {
  test("a 5 MiB handler message is cut, with its length noted", async () => {
    const huge = "e".repeat(5 * 1024 * 1024);
    const { adapter } = adapterWith(() => {
      throw Object.assign(new Error(huge), { retryable: false });
    });
    const job = await uploadOneByte(adapter);
    await adapter.drain();
    const failed = await adapter.getJob({ scope: SCOPE, jobId: job.jobId });
    assert.equal(failed.state, "failed");
    const message = failed.error?.message ?? "";
    assert.ok(message.length < MAX_RECORDED_MESSAGE + 100, `message of ${message.length}`);
    assert.match(message, /cut from \d+ characters/);
    await adapter.close();
  });
});

describe("engine: ids every backend can store", () => {
  test("NUL and lone surrogates in scope or ids are E_SYNC_INVALID_ARGUMENT", async () => {
    const { adapter } = adapterWith();
    for (const bad of ["a\u0000b", "\uD800", "x\uDC00", "\uDBFFy"]) {
      for (
        const input of [
          { scope: bad, conversationId: "c" },
          { scope: SCOPE, conversationId: bad },
          { scope: SCOPE, conversationId: "c", sourceId: bad },
        ]
      ) {
        const error = await rejection(adapter.createSource(input));
        assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT", JSON.stringify(input));
      }
      const error = await rejection(adapter.getJob({ scope: SCOPE, jobId: bad }));
      assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    }
    // A well-formed pair is fine.
    const ok = await adapter.createSource({ scope: SCOPE, conversationId: "emoji \uD83D\uDE00" });
    assert.equal(ok.conversationId, "emoji \uD83D\uDE00");
    await adapter.close();
  });
});

describe("engine: JSON members of every name", () => {
  // Deno has no __proto__ setter, Bun and Node do: this fails there without the fix.
  test("a metadata member named __proto__ is kept as a member", async () => {
    const { adapter } = adapterWith();
    const metadata = JSON.parse('{"__proto__": [1], "a": 2}');
    const source = await adapter.createSource({ scope: SCOPE, conversationId: "c", metadata });
    const stored = await adapter.getSource({ scope: SCOPE, sourceId: source.sourceId });
    assert.equal(JSON.stringify(stored.metadata), '{"__proto__":[1],"a":2}');
    await adapter.close();
  });
});
