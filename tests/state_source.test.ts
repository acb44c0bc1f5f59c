import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  collectingRefusal,
  expireSource,
  isPastTtl,
  markChunksPurged,
  newSource,
  recordAppend,
  recordError,
  sealFailed,
  sealSucceeded,
} from "../src/state/source.ts";
import type { Manifest, RecordedError, Source } from "../src/contracts/domain.ts";
import { SyncError } from "../src/errors.ts";

const T0 = 1_700_000_000_000;
const TTL = 24 * 60 * 60 * 1000;
const MANIFEST: Manifest = {
  chunkCount: 2,
  byteCount: 10,
  digest: "ab".repeat(32),
  itemCount: 4,
  data: { keys: ["m1", "m2"] },
};

function makeSource(overrides: Partial<Parameters<typeof newSource>[0]> = {}): Source {
  return newSource({
    sourceId: "src-1",
    scope: "tenant-1",
    conversationId: "conv-1",
    now: T0,
    ttlMs: TTL,
    ...overrides,
  });
}

/** Calls `fn(source)` and checks that `source` itself was not modified. */
function pure<T>(source: Source, fn: (s: Source) => T): T {
  const snapshot = structuredClone(source);
  const out = fn(source);
  assert.deepEqual(source, snapshot);
  return out;
}

describe("newSource", () => {
  test("is collecting with nothing received and expires after the TTL", () => {
    assert.deepEqual(makeSource(), {
      sourceId: "src-1",
      scope: "tenant-1",
      conversationId: "conv-1",
      state: "collecting",
      received: { chunkCount: 0, byteCount: 0 },
      createdAt: T0,
      updatedAt: T0,
      expiresAt: T0 + TTL,
    });
  });

  test("keeps metadata only when given (including falsy JSON values)", () => {
    assert.equal("metadata" in makeSource(), false);
    assert.deepEqual(makeSource({ metadata: { title: "chat" } }).metadata, { title: "chat" });
    const withNull = makeSource({ metadata: null });
    assert.equal("metadata" in withNull, true);
    assert.equal(withNull.metadata, null);
    assert.equal(makeSource({ metadata: 0 }).metadata, 0);
  });
});

describe("collectingRefusal", () => {
  test("a collecting source within its TTL can take chunks", () => {
    const source = makeSource();
    assert.equal(collectingRefusal(source, T0), undefined);
    assert.equal(collectingRefusal(source, T0 + TTL - 1), undefined);
    assert.equal(isPastTtl(source, T0 + TTL - 1), false);
  });

  test("past its TTL (inclusive) → E_SYNC_SOURCE_EXPIRED", () => {
    const source = makeSource();
    assert.equal(isPastTtl(source, T0 + TTL), true);
    for (const now of [T0 + TTL, T0 + TTL + 1, T0 + 10 * TTL]) {
      const error = pure(source, (s) => collectingRefusal(s, now));
      assert.ok(error instanceof SyncError);
      assert.equal(error.code, "E_SYNC_SOURCE_EXPIRED");
      assert.equal(error.retryable, false);
      assert.deepEqual(error.details, { sourceId: "src-1" });
    }
  });

  test("an expired source → E_SYNC_SOURCE_EXPIRED, even before its expiresAt", () => {
    const expired = expireSource(makeSource(), T0 + 5);
    const error = collectingRefusal(expired, T0 + 6);
    assert.ok(error instanceof SyncError);
    assert.equal(error.code, "E_SYNC_SOURCE_EXPIRED");
  });

  test("sealed or failed → E_SYNC_SOURCE_NOT_COLLECTING (also after expiresAt)", () => {
    const sealed = sealSucceeded(makeSource(), MANIFEST, "job-1", T0 + 1);
    const failed = sealFailed(
      makeSource(),
      MANIFEST,
      { code: "E_SYNC_CHUNK_INDEX_GAP", message: "hole", retryable: false },
      T0 + 1,
    );
    for (const source of [sealed, failed]) {
      for (const now of [T0 + 2, T0 + TTL + 1]) {
        const error = collectingRefusal(source, now);
        assert.ok(error instanceof SyncError);
        assert.equal(error.code, "E_SYNC_SOURCE_NOT_COLLECTING");
        assert.deepEqual(error.details, { sourceId: "src-1", state: source.state });
      }
      assert.equal(isPastTtl(source, T0 + TTL + 1), false);
    }
  });
});

describe("transitions", () => {
  test("recordAppend adds one chunk and its bytes", () => {
    const source = makeSource();
    const one = pure(source, (s) => recordAppend(s, 100, T0 + 1));
    assert.deepEqual(one.received, { chunkCount: 1, byteCount: 100 });
    assert.equal(one.updatedAt, T0 + 1);
    assert.equal(one.state, "collecting");
    assert.equal(one.expiresAt, T0 + TTL);
    const two = recordAppend(one, 7, T0 + 2);
    assert.deepEqual(two.received, { chunkCount: 2, byteCount: 107 });
    assert.equal(two.updatedAt, T0 + 2);
    assert.deepEqual(one.received, { chunkCount: 1, byteCount: 100 });
  });

  test("sealSucceeded → sealed with manifest, jobId and sealedAt", () => {
    const source = recordAppend(makeSource(), 10, T0 + 1);
    const sealed = pure(source, (s) => sealSucceeded(s, MANIFEST, "job-9", T0 + 50));
    assert.deepEqual(sealed, {
      ...source,
      state: "sealed",
      manifest: MANIFEST,
      jobId: "job-9",
      sealedAt: T0 + 50,
      updatedAt: T0 + 50,
    });
  });

  test("sealFailed → failed with the error and the offending manifest, no job", () => {
    const error: RecordedError = {
      code: "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      message: "digest differs",
      retryable: false,
      details: { expected: "x", actual: "y" },
    };
    const source = makeSource();
    const failed = pure(source, (s) => sealFailed(s, MANIFEST, error, T0 + 9));
    assert.equal(failed.state, "failed");
    assert.deepEqual(failed.manifest, MANIFEST);
    assert.deepEqual(failed.error, error);
    assert.equal(failed.updatedAt, T0 + 9);
    assert.equal(failed.jobId, undefined);
    assert.equal(failed.sealedAt, undefined);
  });

  test("expireSource → expired, E_SYNC_SOURCE_EXPIRED recorded, chunks purged", () => {
    const source = recordAppend(makeSource(), 10, T0 + 1);
    const expired = pure(source, (s) => expireSource(s, T0 + TTL + 3));
    assert.equal(expired.state, "expired");
    assert.equal(expired.error?.code, "E_SYNC_SOURCE_EXPIRED");
    assert.equal(expired.error?.retryable, false);
    assert.match(expired.error?.message ?? "", /src-1/);
    assert.equal(expired.chunksPurgedAt, T0 + TTL + 3);
    assert.equal(expired.updatedAt, T0 + TTL + 3);
    assert.deepEqual(expired.received, source.received);
  });

  test("markChunksPurged records when, and nothing else changes", () => {
    const sealed = sealSucceeded(makeSource(), MANIFEST, "job-1", T0 + 1);
    const purged = pure(sealed, (s) => markChunksPurged(s, T0 + 99));
    assert.deepEqual(purged, { ...sealed, chunksPurgedAt: T0 + 99, updatedAt: T0 + 99 });
  });
});

describe("recordError", () => {
  test("copies code, message, retryable and details", () => {
    const error = new SyncError("E_SYNC_CHUNK_INDEX_GAP", "missing chunk 3", {
      details: { missing: 3 },
      cause: new Error("not recorded"),
    });
    assert.deepEqual(recordError(error), {
      code: "E_SYNC_CHUNK_INDEX_GAP",
      message: "missing chunk 3",
      retryable: false,
      details: { missing: 3 },
    });
  });

  test("omits details when absent and keeps an overridden retryable", () => {
    const recorded = recordError(
      new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "down", { retryable: false }),
    );
    assert.deepEqual(recorded, {
      code: "E_SYNC_BACKEND_UNAVAILABLE",
      message: "down",
      retryable: false,
    });
    assert.equal("details" in recorded, false);
    assert.equal(recordError(new SyncError("E_SYNC_HANDLER_FAILED", "x")).retryable, true);
  });

  test("the result is JSON-safe (survives a JSON round trip)", () => {
    const recorded = recordError(
      new SyncError("E_SYNC_MANIFEST_MISMATCH", "count", { details: { expected: 2, actual: 3 } }),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(recorded)), recorded);
  });
});

describe("property", () => {
  test("recordAppend counters equal the sums of the appended lengths", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 1024 * 1024 }), { maxLength: 60, size: "max" }),
        (lengths) => {
          let source = makeSource();
          let now = T0;
          for (const length of lengths) source = recordAppend(source, length, ++now);
          assert.equal(source.received.chunkCount, lengths.length);
          assert.equal(source.received.byteCount, lengths.reduce((a, b) => a + b, 0));
          assert.equal(source.updatedAt, now);
          assert.equal(source.state, "collecting");
          assert.equal(source.createdAt, T0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
