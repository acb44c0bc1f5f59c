import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { z } from "zod";
import {
  backoffDelay,
  canonicalJson,
  canRetry,
  checkIdLengths,
  checkJsonField,
  DEFAULT_LIMITS,
  DEFAULT_POLICY,
  DEFAULT_RETRY_POLICY,
  isJsonValue,
  parseInput,
  type PolicyOverrides,
  resolvePolicy,
  type RetryPolicy,
} from "../src/policy/mod.ts";
import {
  appendChunkInputSchema,
  cancelJobInputSchema,
  createSourceInputSchema,
  gcInputSchema,
  getJobInputSchema,
  getSourceInputSchema,
  listChunksInputSchema,
  listJobsInputSchema,
  manifestSchema,
  sealSourceInputSchema,
  waitForTerminalInputSchema,
} from "../src/contracts/inputs.ts";
import { SyncError } from "../src/errors.ts";

const MiB = 1024 * 1024;

function catchSyncError(fn: () => unknown): SyncError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SyncError, `expected a SyncError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a SyncError to be thrown");
}

function expectCode(fn: () => unknown, code: string): SyncError {
  const error = catchSyncError(fn);
  assert.equal(error.code, code, error.message);
  return error;
}

describe("resolvePolicy", () => {
  test("defaults", () => {
    const policy = resolvePolicy();
    assert.deepEqual(policy, {
      retry: { maxAttempts: 8, baseDelayMs: 500, factor: 2, maxDelayMs: 30_000 },
      limits: {
        maxChunkBytes: MiB,
        maxChunksPerSource: 100_000,
        maxSourceBytes: 1024 * MiB,
        maxMetadataBytes: 16 * 1024,
        maxManifestDataBytes: MiB,
        maxIdLength: 256,
      },
      leaseMs: 30_000,
      heartbeatMs: 10_000,
      sourceTtlMs: 24 * 60 * 60 * 1000,
      retentionMs: 7 * 24 * 60 * 60 * 1000,
      supersede: true,
      shortJobBatchSize: 32,
      uploadCacheBytes: 64 * MiB,
    });
    assert.deepEqual(resolvePolicy({}), policy);
    assert.deepEqual(resolvePolicy(), { ...DEFAULT_POLICY });
  });

  test("nested groups merge over the defaults", () => {
    const policy = resolvePolicy({
      retry: { maxAttempts: 3 },
      limits: { maxChunkBytes: 1024, maxIdLength: 64 },
      sourceTtlMs: 60_000,
      supersede: false,
    });
    assert.deepEqual(policy.retry, { ...DEFAULT_RETRY_POLICY, maxAttempts: 3 });
    assert.deepEqual(policy.limits, { ...DEFAULT_LIMITS, maxChunkBytes: 1024, maxIdLength: 64 });
    assert.equal(policy.sourceTtlMs, 60_000);
    assert.equal(policy.supersede, false);
    assert.equal(policy.leaseMs, 30_000);
    assert.equal(policy.retentionMs, DEFAULT_POLICY.retentionMs);
  });

  test("heartbeat defaults to a third of a custom lease", () => {
    assert.equal(resolvePolicy({ leaseMs: 9_000 }).heartbeatMs, 3_000);
    assert.equal(resolvePolicy({ leaseMs: 10 }).heartbeatMs, 10 / 3);
    // A tiny lease still gets a heartbeat below it, and explicit undefined keeps defaults.
    assert.equal(resolvePolicy({ leaseMs: 1 }).heartbeatMs, 1 / 3);
    assert.equal(resolvePolicy({ retry: { maxAttempts: undefined } }).retry.maxAttempts, 8);
    assert.equal(resolvePolicy({ limits: { maxIdLength: undefined } }).limits.maxIdLength, 256);
    assert.equal(resolvePolicy({ leaseMs: 9_000, heartbeatMs: 8_999 }).heartbeatMs, 8_999);
  });

  test("returns fresh objects and leaves the defaults untouched", () => {
    const a = resolvePolicy();
    a.retry.maxAttempts = 99;
    a.limits.maxIdLength = 1;
    const b = resolvePolicy();
    assert.equal(b.retry.maxAttempts, 8);
    assert.equal(b.limits.maxIdLength, 256);
    assert.equal(DEFAULT_RETRY_POLICY.maxAttempts, 8);
    assert.equal(DEFAULT_LIMITS.maxIdLength, 256);
  });

  const invalid: Array<[string, PolicyOverrides]> = [];
  for (const bad of [0, -1, NaN, Infinity, -Infinity]) {
    invalid.push([`retry.maxAttempts=${bad}`, { retry: { maxAttempts: bad } }]);
    invalid.push([`retry.baseDelayMs=${bad}`, { retry: { baseDelayMs: bad } }]);
    invalid.push([`retry.factor=${bad}`, { retry: { factor: bad } }]);
    invalid.push([`retry.maxDelayMs=${bad}`, { retry: { maxDelayMs: bad } }]);
    invalid.push([`leaseMs=${bad}`, { leaseMs: bad }]);
    invalid.push([`heartbeatMs=${bad}`, { heartbeatMs: bad }]);
    invalid.push([`sourceTtlMs=${bad}`, { sourceTtlMs: bad }]);
    invalid.push([`retentionMs=${bad}`, { retentionMs: bad }]);
    invalid.push([`shortJobBatchSize=${bad}`, { shortJobBatchSize: bad }]);
    for (const key of Object.keys(DEFAULT_LIMITS)) {
      invalid.push([`limits.${key}=${bad}`, { limits: { [key]: bad } }]);
    }
  }
  invalid.push(["retry.maxAttempts=1.5", { retry: { maxAttempts: 1.5 } }]);
  invalid.push(["retry.maxAttempts=2**53", { retry: { maxAttempts: 2 ** 53 } }]);
  invalid.push(["limits.maxChunkBytes=10.5", { limits: { maxChunkBytes: 10.5 } }]);
  invalid.push(["limits.maxIdLength=0.5", { limits: { maxIdLength: 0.5 } }]);
  invalid.push(["shortJobBatchSize=2.5", { shortJobBatchSize: 2.5 }]);
  for (const bad of [-1, 0.5, NaN, Infinity, 2 ** 53, "1" as unknown as number]) {
    invalid.push([`uploadCacheBytes=${String(bad)}`, { uploadCacheBytes: bad }]);
  }
  invalid.push([
    "retry.maxAttempts='3'",
    { retry: { maxAttempts: "3" as unknown as number } },
  ]);
  invalid.push(["heartbeatMs = leaseMs", { leaseMs: 1000, heartbeatMs: 1000 }]);
  invalid.push(["heartbeatMs > leaseMs", { leaseMs: 1000, heartbeatMs: 5000 }]);
  invalid.push(["heartbeatMs > default leaseMs", { heartbeatMs: 30_001 }]);

  for (const [label, overrides] of invalid) {
    test(`rejects ${label} with E_SYNC_INVALID_ARGUMENT`, () => {
      expectCode(() => resolvePolicy(overrides), "E_SYNC_INVALID_ARGUMENT");
    });
  }

  test("the error names the offending field", () => {
    const error = expectCode(
      () => resolvePolicy({ retry: { factor: -2 } }),
      "E_SYNC_INVALID_ARGUMENT",
    );
    assert.deepEqual(error.details, { field: "retry.factor" });
    assert.match(error.message, /retry\.factor/);
  });

  test("non-integer values are fine where the unit allows fractions", () => {
    const policy = resolvePolicy({ retry: { factor: 1.5, baseDelayMs: 0.5 } });
    assert.equal(policy.retry.factor, 1.5);
    assert.equal(policy.retry.baseDelayMs, 0.5);
  });
});

/** Deterministic pseudo-random sequence (mulberry32), independent of Math.random. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const retryPolicyArb: fc.Arbitrary<RetryPolicy> = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 20 }),
  baseDelayMs: fc.integer({ min: 1, max: 10_000 }),
  factor: fc.double({ min: 1, max: 4, noNaN: true }),
  maxDelayMs: fc.integer({ min: 1, max: 120_000 }),
});
const unitArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const attemptArb = fc.integer({ min: 1, max: 80 });

function cappedDelay(attempt: number, policy: RetryPolicy): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * Math.pow(policy.factor, attempt - 1));
}

describe("backoffDelay", () => {
  const policy = resolvePolicy().retry;

  test("default schedule, examples", () => {
    const low = () => 0;
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 20].map((a) => backoffDelay(a, policy, low)),
      [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000],
    );
    const half = () => 0.5;
    assert.deepEqual(
      [1, 2, 3, 6, 7].map((a) => backoffDelay(a, policy, half)),
      [375, 750, 1500, 12_000, 22_500],
    );
    const high = () => 0.999999;
    assert.equal(backoffDelay(1, policy, high), 499);
    assert.equal(backoffDelay(7, policy, high), 29_999);
    assert.equal(backoffDelay(1000, policy, high), 29_999);
  });

  test("attempts below 1 or fractional are treated as the whole attempt, at least 1", () => {
    const r = () => 0.25;
    assert.equal(backoffDelay(0, policy, r), backoffDelay(1, policy, r));
    assert.equal(backoffDelay(-5, policy, r), backoffDelay(1, policy, r));
    assert.equal(backoffDelay(2.9, policy, r), backoffDelay(2, policy, r));
  });

  test("out-of-range random values are clamped to [0, 1)", () => {
    assert.equal(backoffDelay(1, policy, () => NaN), 250);
    assert.equal(backoffDelay(1, policy, () => -1), 250);
    assert.equal(backoffDelay(1, policy, () => 1), 499);
    assert.equal(backoffDelay(1, policy, () => 2), 499);
    assert.equal(backoffDelay(7, policy, () => 1), 29_999);
    assert.equal(backoffDelay(7, policy, () => NaN), 15_000);
  });

  test("the largest double below 1 still gives a delay below the capped value", () => {
    // Plain arithmetic would round 0.5 + r/2 up to exactly 1 here.
    const r = 0.9999999999999999;
    assert.equal(r < 1, true);
    assert.equal(0.5 + r / 2, 1);
    assert.equal(backoffDelay(1, policy, () => r), 499);
    assert.equal(backoffDelay(7, policy, () => r), 29_999);
  });

  test("property: delay = floor(min(cap, base*factor^(attempt-1)) * (0.5 + r/2))", () => {
    // Up to 1 - EPSILON: above it, 0.5 + r/2 rounds to 1 (see the test above).
    const r01 = fc.double({ min: 0, max: 1 - Number.EPSILON, noNaN: true });
    fc.assert(
      fc.property(attemptArb, retryPolicyArb, r01, (attempt, p, r) => {
        assert.equal(
          backoffDelay(attempt, p, () => r),
          Math.floor(cappedDelay(attempt, p) * (0.5 + r / 2)),
        );
      }),
      { numRuns: 500 },
    );
  });

  test("property: within [floor(capped/2), capped) and never above the cap, for any random value", () => {
    const anyRandom = fc.oneof(
      unitArb,
      fc.double(),
      fc.constantFrom(NaN, 1, -1, 2, Infinity, -Infinity, -0, 1 - Number.EPSILON),
    );
    fc.assert(
      fc.property(attemptArb, retryPolicyArb, anyRandom, (attempt, p, r) => {
        const delay = backoffDelay(attempt, p, () => r);
        const capped = cappedDelay(attempt, p);
        assert.ok(Number.isInteger(delay), `not an integer: ${delay}`);
        assert.ok(delay >= Math.floor(capped / 2), `${delay} < ${capped}/2`);
        assert.ok(delay < capped, `${delay} >= ${capped}`);
        assert.ok(delay < p.maxDelayMs, `${delay} >= cap ${p.maxDelayMs}`);
      }),
      { numRuns: 500 },
    );
  });

  test("property: deterministic for the same random sequence", () => {
    fc.assert(
      fc.property(
        fc.array(attemptArb, { minLength: 1, maxLength: 10 }),
        retryPolicyArb,
        fc.integer(),
        (attempts, p, seed) => {
          const first = seeded(seed);
          const second = seeded(seed);
          assert.deepEqual(
            attempts.map((a) => backoffDelay(a, p, first)),
            attempts.map((a) => backoffDelay(a, p, second)),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  test("the random source decides the jitter", () => {
    assert.notEqual(backoffDelay(3, policy, () => 0), backoffDelay(3, policy, () => 0.9));
  });

  test("property: monotone non-decreasing in attempt for a fixed random", () => {
    fc.assert(
      fc.property(retryPolicyArb, unitArb, (p, r) => {
        let previous = -1;
        for (let attempt = 1; attempt <= 40; attempt++) {
          const delay = backoffDelay(attempt, p, () => r);
          assert.ok(delay >= previous, `attempt ${attempt}: ${delay} < ${previous}`);
          previous = delay;
        }
      }),
      { numRuns: 300 },
    );
  });

  test("huge attempts do not overflow to NaN or Infinity", () => {
    assert.equal(backoffDelay(1e6, policy, () => 0), 15_000);
    assert.equal(backoffDelay(Number.MAX_SAFE_INTEGER, policy, () => 0), 15_000);
  });

  test("canRetry allows retries while failed attempts < maxAttempts", () => {
    assert.equal(canRetry(0, policy), true);
    assert.equal(canRetry(7, policy), true);
    assert.equal(canRetry(8, policy), false);
    assert.equal(canRetry(9, policy), false);
  });
});

const DIGEST = "0123456789abcdef".repeat(4);

type BadCase = [label: string, input: unknown, path: string];

interface SchemaCase {
  name: string;
  schema: z.ZodType<unknown>;
  valid: Record<string, unknown>;
  bad: BadCase[];
}

/** Bad scope and unknown-key variants shared by every input with a scope. */
function scopeCases(valid: Record<string, unknown>): BadCase[] {
  const { scope: _scope, ...withoutScope } = valid;
  return [
    ["missing scope", withoutScope, "scope"],
    ["empty scope", { ...valid, scope: "" }, "scope"],
    ["numeric scope", { ...valid, scope: 7 }, "scope"],
    ["null scope", { ...valid, scope: null }, "scope"],
    ["unknown extra key", { ...valid, extra: true }, ""],
    ["not an object (null)", null, ""],
    ["not an object (string)", "scope", ""],
    ["not an object (array)", [valid], ""],
  ];
}

const manifest = { chunkCount: 2, byteCount: 10, digest: DIGEST };

function manifestCases(prefix: string, wrap: (m: unknown) => unknown): BadCase[] {
  const p = prefix ? `${prefix}.` : "";
  return [
    [
      "manifest digest uppercase",
      wrap({ ...manifest, digest: DIGEST.toUpperCase() }),
      `${p}digest`,
    ],
    ["manifest digest short", wrap({ ...manifest, digest: DIGEST.slice(1) }), `${p}digest`],
    ["manifest digest non-hex", wrap({ ...manifest, digest: "z".repeat(64) }), `${p}digest`],
    ["manifest digest missing", wrap({ chunkCount: 2, byteCount: 10 }), `${p}digest`],
    ["manifest negative chunkCount", wrap({ ...manifest, chunkCount: -1 }), `${p}chunkCount`],
    ["manifest fractional byteCount", wrap({ ...manifest, byteCount: 1.5 }), `${p}byteCount`],
    ["manifest unsafe byteCount", wrap({ ...manifest, byteCount: 2 ** 53 }), `${p}byteCount`],
    ["manifest string chunkCount", wrap({ ...manifest, chunkCount: "2" }), `${p}chunkCount`],
    ["manifest NaN itemCount", wrap({ ...manifest, itemCount: NaN }), `${p}itemCount`],
    ["manifest unknown key", wrap({ ...manifest, checksum: DIGEST }), prefix],
  ];
}

const appendValid = {
  scope: "tenant-1",
  sourceId: "src-1",
  index: 0,
  bytes: new Uint8Array([1, 2, 3]),
  sha256: DIGEST,
};

const SCHEMAS: SchemaCase[] = [
  {
    name: "manifestSchema",
    schema: manifestSchema,
    valid: { ...manifest, itemCount: 3, data: { keys: ["a", "b"] } },
    bad: [
      ...manifestCases("", (m) => m),
      ["manifest null", null, ""],
    ],
  },
  {
    name: "createSourceInputSchema",
    schema: createSourceInputSchema,
    valid: { scope: "tenant-1", conversationId: "conv-1", sourceId: "src-1", metadata: { a: 1 } },
    bad: [
      ...scopeCases({ scope: "tenant-1", conversationId: "conv-1" }),
      ["missing conversationId", { scope: "s" }, "conversationId"],
      ["empty conversationId", { scope: "s", conversationId: "" }, "conversationId"],
      ["empty sourceId", { scope: "s", conversationId: "c", sourceId: "" }, "sourceId"],
      ["numeric sourceId", { scope: "s", conversationId: "c", sourceId: 1 }, "sourceId"],
    ],
  },
  {
    name: "appendChunkInputSchema",
    schema: appendChunkInputSchema,
    valid: { ...appendValid, index: 41, itemCount: 2 },
    bad: [
      ...scopeCases(appendValid),
      ["empty sourceId", { ...appendValid, sourceId: "" }, "sourceId"],
      ["missing index", { ...appendValid, index: undefined }, "index"],
      ["negative index", { ...appendValid, index: -1 }, "index"],
      ["fractional index", { ...appendValid, index: 1.5 }, "index"],
      ["unsafe index", { ...appendValid, index: 2 ** 53 }, "index"],
      ["NaN index", { ...appendValid, index: NaN }, "index"],
      ["Infinity index", { ...appendValid, index: Infinity }, "index"],
      ["index as string", { ...appendValid, index: "0" }, "index"],
      ["bytes as number[]", { ...appendValid, bytes: [1, 2, 3] }, "bytes"],
      ["bytes as ArrayBuffer", { ...appendValid, bytes: new ArrayBuffer(3) }, "bytes"],
      ["bytes as string", { ...appendValid, bytes: "abc" }, "bytes"],
      ["bytes as Uint16Array", { ...appendValid, bytes: new Uint16Array(3) }, "bytes"],
      ["bytes missing", { ...appendValid, bytes: undefined }, "bytes"],
      ["uppercase sha256", { ...appendValid, sha256: DIGEST.toUpperCase() }, "sha256"],
      ["short sha256", { ...appendValid, sha256: DIGEST.slice(2) }, "sha256"],
      ["long sha256", { ...appendValid, sha256: DIGEST + "00" }, "sha256"],
      ["missing sha256", { ...appendValid, sha256: undefined }, "sha256"],
      ["negative itemCount", { ...appendValid, itemCount: -3 }, "itemCount"],
      ["fractional itemCount", { ...appendValid, itemCount: 0.5 }, "itemCount"],
    ],
  },
  {
    name: "sealSourceInputSchema",
    schema: sealSourceInputSchema,
    valid: { scope: "tenant-1", sourceId: "src-1", manifest },
    bad: [
      ...scopeCases({ scope: "tenant-1", sourceId: "src-1", manifest }),
      ["missing manifest", { scope: "s", sourceId: "x" }, "manifest"],
      ["empty sourceId", { scope: "s", sourceId: "", manifest }, "sourceId"],
      ...manifestCases("manifest", (m) => ({ scope: "s", sourceId: "x", manifest: m })),
    ],
  },
  {
    name: "getSourceInputSchema",
    schema: getSourceInputSchema,
    valid: { scope: "tenant-1", sourceId: "src-1" },
    bad: [
      ...scopeCases({ scope: "tenant-1", sourceId: "src-1" }),
      ["missing sourceId", { scope: "s" }, "sourceId"],
      ["empty sourceId", { scope: "s", sourceId: "" }, "sourceId"],
    ],
  },
  {
    name: "listChunksInputSchema",
    schema: listChunksInputSchema,
    valid: { scope: "tenant-1", sourceId: "src-1", cursor: "abc", limit: 1000 },
    bad: [
      ...scopeCases({ scope: "tenant-1", sourceId: "src-1" }),
      ["limit 0", { scope: "s", sourceId: "x", limit: 0 }, "limit"],
      ["limit 1001", { scope: "s", sourceId: "x", limit: 1001 }, "limit"],
      ["fractional limit", { scope: "s", sourceId: "x", limit: 2.5 }, "limit"],
      ["numeric cursor", { scope: "s", sourceId: "x", cursor: 5 }, "cursor"],
    ],
  },
  {
    name: "getJobInputSchema",
    schema: getJobInputSchema,
    valid: { scope: "tenant-1", jobId: "job-1" },
    bad: [
      ...scopeCases({ scope: "tenant-1", jobId: "job-1" }),
      ["missing jobId", { scope: "s" }, "jobId"],
      ["empty jobId", { scope: "s", jobId: "" }, "jobId"],
    ],
  },
  {
    name: "listJobsInputSchema",
    schema: listJobsInputSchema,
    valid: { scope: "tenant-1", conversationId: "c", state: "retry_wait", limit: 1 },
    bad: [
      ...scopeCases({ scope: "tenant-1" }),
      ["unknown state", { scope: "s", state: "done" }, "state"],
      ["empty conversationId", { scope: "s", conversationId: "" }, "conversationId"],
      ["negative limit", { scope: "s", limit: -1 }, "limit"],
    ],
  },
  {
    name: "cancelJobInputSchema",
    schema: cancelJobInputSchema,
    valid: { scope: "tenant-1", jobId: "job-1", reason: "user asked" },
    bad: [
      ...scopeCases({ scope: "tenant-1", jobId: "job-1" }),
      ["empty jobId", { scope: "s", jobId: "" }, "jobId"],
      ["reason too long", { scope: "s", jobId: "j", reason: "x".repeat(1025) }, "reason"],
      ["numeric reason", { scope: "s", jobId: "j", reason: 1 }, "reason"],
    ],
  },
  {
    name: "waitForTerminalInputSchema",
    schema: waitForTerminalInputSchema,
    valid: {
      scope: "tenant-1",
      jobId: "job-1",
      timeoutMs: 0,
      signal: new AbortController().signal,
    },
    bad: [
      ...scopeCases({ scope: "tenant-1", jobId: "job-1" }),
      ["negative timeout", { scope: "s", jobId: "j", timeoutMs: -1 }, "timeoutMs"],
      ["huge timeout", { scope: "s", jobId: "j", timeoutMs: 2 ** 31 }, "timeoutMs"],
      ["NaN timeout", { scope: "s", jobId: "j", timeoutMs: NaN }, "timeoutMs"],
      [
        "signal not an AbortSignal",
        { scope: "s", jobId: "j", signal: { aborted: false } },
        "signal",
      ],
    ],
  },
  {
    name: "gcInputSchema",
    schema: gcInputSchema,
    valid: { limit: 100_000 },
    bad: [
      ["limit 0", { limit: 0 }, "limit"],
      ["limit too big", { limit: 100_001 }, "limit"],
      ["fractional limit", { limit: 1.5 }, "limit"],
      ["unknown key", { limit: 1, all: true }, ""],
      ["null", null, ""],
    ],
  },
];

describe("parseInput over the input schemas", () => {
  for (const { name, schema, valid, bad } of SCHEMAS) {
    describe(name, () => {
      test("accepts a valid input and returns its data", () => {
        const parsed = parseInput(schema, valid, "op");
        assert.deepEqual(parsed, valid);
      });

      for (const [label, input, path] of bad) {
        test(`rejects ${label} naming "${path}"`, () => {
          const error = expectCode(
            () => parseInput(schema, input, "myOperation"),
            "E_SYNC_INVALID_ARGUMENT",
          );
          assert.equal(error.retryable, false);
          assert.match(error.message, /^myOperation: /);
          const details = error.details as {
            operation: string;
            issues: Array<{ path: string; message: string }>;
          };
          assert.equal(details.operation, "myOperation");
          assert.ok(Array.isArray(details.issues) && details.issues.length > 0);
          for (const issue of details.issues) {
            assert.equal(typeof issue.path, "string");
            assert.equal(typeof issue.message, "string");
            assert.ok(issue.message.length > 0);
          }
          assert.ok(
            details.issues.some((issue) => issue.path === path),
            `no issue at "${path}": ${JSON.stringify(details.issues)}`,
          );
        });
      }
    });
  }

  test("append keeps the caller's Uint8Array (no copy) and accepts a subarray", () => {
    const backing = new Uint8Array([9, 8, 7, 6]);
    const bytes = backing.subarray(1, 3);
    const parsed = parseInput(appendChunkInputSchema, { ...appendValid, bytes }, "appendChunk");
    assert.equal(parsed.bytes, bytes);
  });

  test("the largest safe index is accepted", () => {
    const parsed = parseInput(
      appendChunkInputSchema,
      { ...appendValid, index: Number.MAX_SAFE_INTEGER },
      "appendChunk",
    );
    assert.equal(parsed.index, Number.MAX_SAFE_INTEGER);
  });

  test("every bad field is reported, not just the first", () => {
    const error = expectCode(
      () =>
        parseInput(
          appendChunkInputSchema,
          { sourceId: "", index: -1, bytes: [], sha256: "X" },
          "appendChunk",
        ),
      "E_SYNC_INVALID_ARGUMENT",
    );
    const paths = new Set(
      (error.details as { issues: Array<{ path: string }> }).issues.map((i) => i.path),
    );
    for (const path of ["scope", "sourceId", "index", "bytes", "sha256"]) {
      assert.ok(paths.has(path), `missing ${path}`);
    }
  });
});

describe("checkIdLengths", () => {
  const limits = resolvePolicy().limits;

  test("accepts ids up to the limit and skips undefined", () => {
    assert.doesNotThrow(() =>
      checkIdLengths(limits, "op", { scope: "s".repeat(256), sourceId: undefined, jobId: "j" })
    );
  });

  test("rejects an id over the limit with E_SYNC_LIMIT_EXCEEDED and details", () => {
    const error = expectCode(
      () => checkIdLengths(limits, "createSource", { scope: "ok", sourceId: "x".repeat(257) }),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    assert.deepEqual(error.details, { field: "sourceId", limit: 256, actual: 257 });
    assert.match(error.message, /^createSource: sourceId/);
  });

  test("honours a custom limit", () => {
    const small = resolvePolicy({ limits: { maxIdLength: 4 } }).limits;
    assert.doesNotThrow(() => checkIdLengths(small, "op", { scope: "abcd" }));
    expectCode(() => checkIdLengths(small, "op", { scope: "abcde" }), "E_SYNC_LIMIT_EXCEEDED");
  });
});

function nested(depth: number, leaf: unknown, kind: "array" | "object"): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = kind === "array" ? [value] : { k: value };
  return value;
}

describe("isJsonValue", () => {
  test("accepts plain JSON data", () => {
    const values: unknown[] = [
      null,
      true,
      false,
      0,
      -1.5,
      "",
      "text with é and 😀",
      [],
      {},
      [1, "a", null, { b: [true] }],
      { a: { b: { c: [1, 2, 3] } } },
      Object.create(null),
      nested(64, null, "array"),
      nested(64, 1, "object"),
    ];
    values.forEach((value, i) => assert.equal(isJsonValue(value), true, `value #${i}`));
  });

  test("rejects non-JSON values", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const cyclicArray: unknown[] = [];
    cyclicArray.push(cyclicArray);
    class Point {
      x = 1;
    }
    const values: Array<[string, unknown]> = [
      ["undefined", undefined],
      ["NaN", NaN],
      ["Infinity", Infinity],
      ["-Infinity", -Infinity],
      ["bigint", 1n],
      ["symbol", Symbol("s")],
      ["function", () => 1],
      ["Date", new Date(0)],
      ["Map", new Map([["a", 1]])],
      ["Set", new Set([1])],
      ["RegExp", /x/],
      ["Uint8Array", new Uint8Array(2)],
      ["class instance", new Point()],
      ["cyclic object", cyclic],
      ["cyclic array", cyclicArray],
      ["nested function", { a: [1, { f: () => 1 }] }],
      ["nested undefined", { a: undefined }],
      ["undefined in array", [1, undefined]],
      ["nested NaN", [[NaN]]],
      ["nested Date", { when: new Date(0) }],
      ["nested Map", [new Map()]],
      ["65 deep arrays", nested(65, null, "array")],
      ["65 deep objects", nested(65, 1, "object")],
      ["500 deep", nested(500, null, "array")],
    ];
    for (const [label, value] of values) assert.equal(isJsonValue(value), false, label);
  });
});

describe("checkJsonField", () => {
  test("returns the UTF-8 byte size of the serialisation", () => {
    assert.equal(checkJsonField("op", "metadata", { a: 1 }, 100), 7); // {"a":1}
    assert.equal(checkJsonField("op", "metadata", "é", 100), 4); // "é" = 1 + 2 + 1
    assert.equal(checkJsonField("op", "metadata", "😀", 100), 6); // "😀" = 1 + 4 + 1
    assert.equal(checkJsonField("op", "metadata", "日本", 100), 8);
  });

  test("the limit counts UTF-8 bytes, not UTF-16 code units", () => {
    // JSON.stringify("😀😀") is 6 UTF-16 code units but 10 UTF-8 bytes.
    assert.equal(JSON.stringify("😀😀").length, 6);
    assert.equal(checkJsonField("op", "metadata", "😀😀", 10), 10);
    const error = expectCode(
      () => checkJsonField("seal", "manifest.data", "😀😀", 9),
      "E_SYNC_LIMIT_EXCEEDED",
    );
    assert.deepEqual(error.details, { field: "manifest.data", limit: 9, actual: 10 });
    // 3-byte characters: 1000 × "€" = 3000 bytes + 2 quotes.
    const euros = "€".repeat(1000);
    expectCode(() => checkJsonField("op", "metadata", euros, 2001), "E_SYNC_LIMIT_EXCEEDED");
    assert.equal(checkJsonField("op", "metadata", euros, 3002), 3002);
    expectCode(() => checkJsonField("op", "metadata", euros, 3001), "E_SYNC_LIMIT_EXCEEDED");
  });

  test("the default metadata limit is 16 KiB", () => {
    const limit = resolvePolicy().limits.maxMetadataBytes;
    const fits = "x".repeat(16 * 1024 - 2);
    assert.equal(checkJsonField("createSource", "metadata", fits, limit), 16 * 1024);
    expectCode(
      () => checkJsonField("createSource", "metadata", fits + "x", limit),
      "E_SYNC_LIMIT_EXCEEDED",
    );
  });

  test("non-JSON data is E_SYNC_INVALID_ARGUMENT, before any size check", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const value of [cyclic, new Date(0), { f: () => 1 }, NaN, undefined]) {
      const error = expectCode(
        () => checkJsonField("op", "metadata", value, 1),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assert.deepEqual(error.details, { field: "metadata" });
    }
  });

  test("property: size equals the UTF-8 length of JSON.stringify", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const expected = new TextEncoder().encode(JSON.stringify(value)).length;
        assert.equal(checkJsonField("op", "data", value, expected), expected);
        if (expected > 0) {
          expectCode(
            () => checkJsonField("op", "data", value, expected - 1),
            "E_SYNC_LIMIT_EXCEEDED",
          );
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("canonicalJson", () => {
  test("sorts keys at every level and keeps array order", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
    assert.notEqual(canonicalJson({ a: 1 }), canonicalJson({ a: 2 }));
    assert.notEqual(canonicalJson({ a: 1 }), canonicalJson({ b: 1 }));
    assert.equal(canonicalJson('x"y'), JSON.stringify('x"y'));
    assert.equal(canonicalJson({ a: 1, b: undefined }), canonicalJson({ a: 1 }));
    assert.equal(canonicalJson(JSON.parse('{"__proto__":0}')), '{"__proto__":0}');
  });

  /** Rebuilds `value` with every object's keys in reverse insertion order. */
  function reverseKeys(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(reverseKeys);
    if (value !== null && typeof value === "object") {
      // fromEntries defines own properties, so a "__proto__" key survives (assignment
      // would set the prototype instead).
      return Object.fromEntries(
        Object.keys(value).reverse().map((key) => [
          key,
          reverseKeys((value as Record<string, unknown>)[key]),
        ]),
      );
    }
    return value;
  }

  test("property: key order independent, and parses back to equal data", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const canonical = canonicalJson(value);
        assert.equal(canonicalJson(reverseKeys(value)), canonical);
        assert.deepEqual(JSON.parse(canonical), JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 300 },
    );
  });
});
