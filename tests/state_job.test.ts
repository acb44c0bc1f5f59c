import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkAppliedAgainstManifest,
  isClaimable,
  type JobEvent,
  type JobTransition,
  newJob,
  transitionJob,
} from "../src/state/job.ts";
import { compositeDigest, EMPTY_COMPOSITE_STATE, finishComposite } from "../src/checksum.ts";
import type { Job, JobState, Manifest, RecordedError } from "../src/contracts/domain.ts";
import { SyncError } from "../src/errors.ts";

// ---------------------------------------------------------------------------------------
// Fixtures

const utf8 = new TextEncoder();
const CHUNK_TEXTS = ["alpha", "bravo!", "charlie..", "delta-delta", "echo"];
const CHUNK_BYTES = CHUNK_TEXTS.map((t) => utf8.encode(t));
const CHUNK_LENGTHS = CHUNK_BYTES.map((b) => b.length);

async function hexSha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const CHUNK_DIGESTS: string[] = await Promise.all(CHUNK_BYTES.map(hexSha256));
/** A well-formed digest that belongs to no chunk (a corrupted read). */
const CORRUPT_DIGEST = "f".repeat(64);

const T0 = 1_000_000;
const LEASE = 30_000;
const MAX_ATTEMPTS = 8;

function manifestFor(chunkCount: number): Manifest {
  return {
    chunkCount,
    byteCount: CHUNK_LENGTHS.slice(0, chunkCount).reduce((a, b) => a + b, 0),
    digest: compositeDigest(CHUNK_DIGESTS.slice(0, chunkCount)),
  };
}

function makeJob(totalChunks = 3, now = T0): Job {
  return newJob({
    jobId: "job-1",
    scope: "tenant-1",
    sourceId: "src-1",
    conversationId: "conv-1",
    totalChunks,
    now,
    emptyDigestState: EMPTY_COMPOSITE_STATE,
  });
}

const handlerError = (message = "handler blew up"): RecordedError => ({
  code: "E_SYNC_HANDLER_FAILED",
  message,
  retryable: true,
});
const fatalError: RecordedError = {
  code: "E_SYNC_HANDLER_FAILED",
  message: "bad data",
  retryable: false,
};
const cancelError: RecordedError = {
  code: "E_SYNC_JOB_CANCELLED",
  message: "cancelled by user",
  retryable: false,
};

function expectOk(result: JobTransition): Job {
  if (!result.ok) assert.fail(`expected ok, got ${result.error.code}: ${result.error.message}`);
  return result.job;
}

/** Asserts `event` is refused with `code` and leaves `job` untouched. */
function expectRefused(job: Job, event: JobEvent, code = "E_SYNC_LEASE_LOST"): SyncError {
  const snapshot = structuredClone(job);
  const result = transitionJob(job, event);
  assert.equal(result.ok, false, `expected ${event.type} to be refused in ${job.state}`);
  if (result.ok) throw new Error("unreachable");
  assert.ok(result.error instanceof SyncError);
  assert.equal(result.error.code, code);
  assert.deepEqual(job, snapshot);
  return result.error;
}

const claim = (job: Job, now: number, owner = "w1", leaseMs = LEASE): Job =>
  expectOk(transitionJob(job, { type: "claim", now, owner, leaseMs, maxAttempts: MAX_ATTEMPTS }));

const token = (job: Job): number => {
  assert.ok(job.lease, `no lease in ${job.state}`);
  return job.lease.token;
};

const applyChunk = (
  job: Job,
  now: number,
  index = job.cursor,
  sha256 = CHUNK_DIGESTS[index],
): Job =>
  expectOk(
    transitionJob(job, {
      type: "chunkApplied",
      now,
      token: token(job),
      index,
      byteLength: CHUNK_LENGTHS[index],
      sha256,
      leaseMs: LEASE,
    }),
  );

const failChunk = (
  job: Job,
  now: number,
  error: RecordedError = handlerError(),
  maxAttempts = 8,
  retryDelayMs = 500,
): Job =>
  expectOk(
    transitionJob(job, {
      type: "chunkFailed",
      now,
      token: token(job),
      error,
      maxAttempts,
      retryDelayMs,
    }),
  );

const verify = (job: Job, now: number, manifest: Manifest, hookError?: RecordedError): Job =>
  expectOk(transitionJob(job, { type: "verify", now, token: token(job), manifest, hookError }));

const cancel = (job: Job, now: number, error = cancelError): Job =>
  expectOk(transitionJob(job, { type: "cancel", now, error }));

/** A claimed job with every chunk applied, waiting for verification. */
function verifyingJob(totalChunks = 3): Job {
  let job = claim(makeJob(totalChunks), T0);
  for (let i = 0; i < totalChunks; i++) job = applyChunk(job, T0 + 10 * (i + 1));
  assert.equal(job.state, "verifying");
  return job;
}

function jobIn(state: JobState): Job {
  switch (state) {
    case "queued":
      return makeJob();
    case "running":
      return claim(makeJob(), T0);
    case "retry_wait":
      return failChunk(claim(makeJob(), T0), T0 + 5);
    case "verifying":
      return verifyingJob();
    case "succeeded":
      return verify(verifyingJob(), T0 + 100, manifestFor(3));
    case "failed":
      return failChunk(claim(makeJob(), T0), T0 + 5, fatalError);
    case "cancelled":
      return cancel(claim(makeJob(), T0), T0 + 5);
  }
}

const NON_TERMINAL: JobState[] = ["queued", "running", "retry_wait", "verifying"];
const TERMINAL: JobState[] = ["succeeded", "failed", "cancelled"];

// ---------------------------------------------------------------------------------------
// Examples

describe("newJob", () => {
  test("is queued, due now, with nothing applied and no lease", () => {
    const job = makeJob(4);
    assert.deepEqual(job, {
      jobId: "job-1",
      scope: "tenant-1",
      sourceId: "src-1",
      conversationId: "conv-1",
      state: "queued",
      cursor: 0,
      totalChunks: 4,
      appliedBytes: 0,
      attempt: 0,
      runAt: T0,
      leaseToken: 0,
      appliedDigestState: EMPTY_COMPOSITE_STATE,
      createdAt: T0,
      updatedAt: T0,
    });
    assert.equal(isClaimable(job, T0), true);
    assert.equal(isClaimable(job, T0 - 1), false);
  });
});

describe("claim", () => {
  test("queued → running with fencing token 1 and a fresh lease", () => {
    const job = claim(makeJob(), T0 + 7, "worker-a", 1234);
    assert.equal(job.state, "running");
    assert.equal(job.leaseToken, 1);
    assert.deepEqual(job.lease, { owner: "worker-a", token: 1, expiresAt: T0 + 7 + 1234 });
    assert.equal(job.runAt, T0 + 7 + 1234);
    assert.equal(job.startedAt, T0 + 7);
    assert.equal(job.updatedAt, T0 + 7);
    assert.equal(job.cursor, 0);
    assert.equal(job.attempt, 0);
  });

  test("refused when not due yet", () => {
    expectRefused(makeJob(3, T0), {
      type: "claim",
      now: T0 - 1,
      owner: "w",
      leaseMs: LEASE,
      maxAttempts: MAX_ATTEMPTS,
    });
    const waiting = jobIn("retry_wait"); // runAt = T0 + 5 + 500
    assert.equal(waiting.runAt, T0 + 505);
    expectRefused(waiting, {
      type: "claim",
      now: T0 + 504,
      owner: "w",
      leaseMs: LEASE,
      maxAttempts: MAX_ATTEMPTS,
    });
  });

  test("retry_wait → running once due, keeping startedAt, attempt and the last error", () => {
    const waiting = jobIn("retry_wait");
    const job = claim(waiting, T0 + 505, "w2");
    assert.equal(job.state, "running");
    assert.equal(job.leaseToken, 2);
    assert.deepEqual(job.lease, { owner: "w2", token: 2, expiresAt: T0 + 505 + LEASE });
    assert.equal(job.startedAt, T0);
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.error, handlerError());
  });

  test("running with a live lease is refused; with an expired lease it is taken over", () => {
    const running = claim(makeJob(), T0, "w1");
    expectRefused(running, {
      type: "claim",
      now: T0 + LEASE - 1,
      owner: "w2",
      leaseMs: LEASE,
      maxAttempts: MAX_ATTEMPTS,
    });
    const taken = claim(running, T0 + LEASE, "w2");
    assert.equal(taken.state, "running");
    assert.equal(taken.leaseToken, 2);
    assert.deepEqual(taken.lease, { owner: "w2", token: 2, expiresAt: T0 + 2 * LEASE });
    assert.equal(taken.startedAt, T0);
  });

  test("taking over an expired lease counts the holder's step as a failed attempt", () => {
    const running = claim(makeJob(), T0, "w1");
    const taken = claim(running, T0 + LEASE, "w2");
    assert.equal(taken.attempt, 1);
    assert.equal(taken.error?.code, "E_SYNC_LEASE_LOST");
    assert.equal(taken.error?.retryable, true);
    assert.match(taken.error!.message, /w1 stopped renewing its lease during chunk 0/);
    const applied = applyChunk(taken, T0 + LEASE + 1);
    assert.equal(applied.attempt, 0, "a success resets the count");
    assert.equal(applied.error, undefined);
  });

  test("a chunk whose every worker dies fails the job once its attempts are used up", () => {
    let job = claim(makeJob(), T0, "w0");
    let now = T0;
    for (let holder = 1; holder < MAX_ATTEMPTS; holder++) {
      now += LEASE;
      job = claim(job, now, `w${holder}`);
      assert.equal(job.state, "running");
      assert.equal(job.attempt, holder);
    }
    now += LEASE;
    const failed = claim(job, now, "w-last");
    assert.equal(failed.state, "failed");
    assert.equal(failed.attempt, MAX_ATTEMPTS);
    assert.equal(failed.lease, undefined);
    assert.equal(failed.completedAt, now);
    assert.deepEqual(
      { code: failed.error?.code, retryable: failed.error?.retryable },
      { code: "E_SYNC_LEASE_LOST", retryable: false },
    );
    assert.equal(isClaimable(failed, now + 1e9), false);
  });

  test("running after some chunks keeps the cursor when taken over", () => {
    const partial = applyChunk(claim(makeJob(), T0), T0 + 1);
    const taken = claim(partial, T0 + 1 + LEASE, "w2");
    assert.equal(taken.cursor, 1);
    assert.equal(taken.state, "running");
    assert.equal(taken.appliedDigestState, partial.appliedDigestState);
  });

  test("verifying with an expired lease is taken over and stays verifying", () => {
    const verifying = verifyingJob();
    const expiry = verifying.lease!.expiresAt;
    expectRefused(verifying, {
      type: "claim",
      now: expiry - 1,
      owner: "w2",
      leaseMs: LEASE,
      maxAttempts: MAX_ATTEMPTS,
    });
    const taken = claim(verifying, expiry, "w2");
    assert.equal(taken.state, "verifying");
    assert.equal(taken.leaseToken, verifying.leaseToken + 1);
    assert.equal(taken.lease!.owner, "w2");
    const done = verify(taken, expiry + 1, manifestFor(3));
    assert.equal(done.state, "succeeded");
  });

  for (const state of TERMINAL) {
    test(`refused for a ${state} job, however late`, () => {
      expectRefused(jobIn(state), {
        type: "claim",
        now: T0 + 1e12,
        owner: "w",
        leaseMs: LEASE,
        maxAttempts: MAX_ATTEMPTS,
      });
      assert.equal(isClaimable(jobIn(state), T0 + 1e12), false);
    });
  }

  test("an empty job (0 chunks) goes straight to verifying and can succeed", () => {
    const job = claim(makeJob(0), T0);
    assert.equal(job.state, "verifying");
    expectRefused(job, {
      type: "chunkApplied",
      now: T0 + 1,
      token: 1,
      index: 0,
      byteLength: 1,
      sha256: CHUNK_DIGESTS[0],
      leaseMs: LEASE,
    });
    const done = verify(job, T0 + 2, manifestFor(0));
    assert.equal(done.state, "succeeded");
    assert.equal(
      manifestFor(0).digest,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });
});

describe("heartbeat", () => {
  test("extends the lease and runAt", () => {
    const job = claim(makeJob(), T0, "w1", 100);
    const beat = expectOk(
      transitionJob(job, { type: "heartbeat", now: T0 + 60, token: 1, leaseMs: 100 }),
    );
    assert.deepEqual(beat.lease, { owner: "w1", token: 1, expiresAt: T0 + 160 });
    assert.equal(beat.runAt, T0 + 160);
    assert.equal(beat.updatedAt, T0 + 60);
    assert.equal(beat.state, "running");
    assert.equal(beat.leaseToken, 1);
  });

  test("never shortens the lease", () => {
    const job = claim(makeJob(), T0, "w1", 1000);
    const beat = expectOk(
      transitionJob(job, { type: "heartbeat", now: T0 + 10, token: 1, leaseMs: 5 }),
    );
    assert.equal(beat.lease!.expiresAt, T0 + 1000);
  });

  test("works while verifying", () => {
    const job = verifyingJob();
    const beat = expectOk(
      transitionJob(job, { type: "heartbeat", now: T0 + 1000, token: token(job), leaseMs: LEASE }),
    );
    assert.equal(beat.state, "verifying");
    assert.equal(beat.lease!.expiresAt, T0 + 1000 + LEASE);
  });

  test("refused without the current token", () => {
    const job = claim(makeJob(), T0);
    expectRefused(job, { type: "heartbeat", now: T0 + 1, token: 2, leaseMs: LEASE });
    expectRefused(job, { type: "heartbeat", now: T0 + 1, token: 0, leaseMs: LEASE });
    // No lease at all (queued, retry_wait).
    expectRefused(makeJob(), { type: "heartbeat", now: T0, token: 0, leaseMs: LEASE });
    const waiting = jobIn("retry_wait");
    expectRefused(waiting, {
      type: "heartbeat",
      now: T0 + 6,
      token: waiting.leaseToken,
      leaseMs: LEASE,
    });
  });
});

describe("chunkApplied", () => {
  test("increments the cursor, adds bytes, extends the digest state and the lease", () => {
    const running = claim(makeJob(), T0);
    const job = applyChunk(running, T0 + 10);
    assert.equal(job.state, "running");
    assert.equal(job.cursor, 1);
    assert.equal(job.appliedBytes, CHUNK_LENGTHS[0]);
    assert.equal(
      finishComposite(job.appliedDigestState),
      compositeDigest(CHUNK_DIGESTS.slice(0, 1)),
    );
    assert.deepEqual(job.lease, { owner: "w1", token: 1, expiresAt: T0 + 10 + LEASE });
    assert.equal(job.runAt, T0 + 10 + LEASE);
    assert.equal(job.updatedAt, T0 + 10);
    assert.equal(job.leaseToken, 1);

    const two = applyChunk(job, T0 + 20);
    assert.equal(two.cursor, 2);
    assert.equal(two.appliedBytes, CHUNK_LENGTHS[0] + CHUNK_LENGTHS[1]);
    assert.equal(
      finishComposite(two.appliedDigestState),
      compositeDigest(CHUNK_DIGESTS.slice(0, 2)),
    );
  });

  test("resets attempt to 0 and clears the error of the failed attempts", () => {
    let job = claim(makeJob(), T0);
    job = failChunk(job, T0 + 1, handlerError("first"), 8, 10);
    job = claim(job, T0 + 11);
    job = failChunk(job, T0 + 12, handlerError("second"), 8, 10);
    job = claim(job, T0 + 22);
    assert.equal(job.attempt, 2);
    job = applyChunk(job, T0 + 23);
    assert.equal(job.attempt, 0);
    assert.equal(job.cursor, 1);
    assert.equal(job.error, undefined);
  });

  test("goes to verifying after the last chunk", () => {
    let job = claim(makeJob(2), T0);
    job = applyChunk(job, T0 + 1);
    assert.equal(job.state, "running");
    job = applyChunk(job, T0 + 2);
    assert.equal(job.state, "verifying");
    assert.equal(job.cursor, 2);
    assert.ok(job.lease);
  });

  test("refuses an index other than the cursor", () => {
    const job = applyChunk(claim(makeJob(), T0), T0 + 1); // cursor 1
    const base = {
      type: "chunkApplied",
      now: T0 + 2,
      token: 1,
      byteLength: 5,
      leaseMs: LEASE,
    } as const;
    for (const index of [0, 2, 3, -1, 1.5, 99]) {
      expectRefused(job, { ...base, index, sha256: CHUNK_DIGESTS[1] });
    }
  });

  test("refuses a chunk beyond the total (verifying)", () => {
    const job = verifyingJob(2);
    expectRefused(job, {
      type: "chunkApplied",
      now: T0 + 100,
      token: token(job),
      index: 2,
      byteLength: CHUNK_LENGTHS[2],
      sha256: CHUNK_DIGESTS[2],
      leaseMs: LEASE,
    });
  });

  test("refused without a lease (queued, retry_wait)", () => {
    for (const job of [makeJob(), jobIn("retry_wait")]) {
      expectRefused(job, {
        type: "chunkApplied",
        now: T0 + 600,
        token: job.leaseToken,
        index: 0,
        byteLength: CHUNK_LENGTHS[0],
        sha256: CHUNK_DIGESTS[0],
        leaseMs: LEASE,
      });
    }
  });
});

describe("chunkFailed", () => {
  test("retryable with attempts left → retry_wait at now + delay, lease released", () => {
    const running = claim(makeJob(), T0);
    const job = failChunk(running, T0 + 40, handlerError("flaky"), 8, 1500);
    assert.equal(job.state, "retry_wait");
    assert.equal(job.runAt, T0 + 40 + 1500);
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.error, handlerError("flaky"));
    assert.equal(job.lease, undefined);
    assert.equal(job.leaseToken, 1);
    assert.equal(job.updatedAt, T0 + 40);
    assert.equal(job.completedAt, undefined);
    assert.equal(job.cursor, 0);
  });

  test("not retryable → failed at once, error kept", () => {
    const job = failChunk(claim(makeJob(), T0), T0 + 40, fatalError);
    assert.equal(job.state, "failed");
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.error, fatalError);
    assert.equal(job.completedAt, T0 + 40);
    assert.equal(job.lease, undefined);
  });

  test("attempts exhausted → failed with the last error", () => {
    let job = claim(makeJob(), T0);
    let now = T0;
    for (let attempt = 1; attempt < 3; attempt++) {
      now += 10;
      job = failChunk(job, now, handlerError(`failure ${attempt}`), 3, 5);
      assert.equal(job.state, "retry_wait");
      assert.equal(job.attempt, attempt);
      now += 5;
      job = claim(job, now);
    }
    job = failChunk(job, now + 1, handlerError("failure 3"), 3, 5);
    assert.equal(job.state, "failed");
    assert.equal(job.attempt, 3);
    assert.deepEqual(job.error, handlerError("failure 3"));
    assert.equal(job.completedAt, now + 1);
  });

  test("maxAttempts 1 fails on the first retryable failure", () => {
    const job = failChunk(claim(makeJob(), T0), T0 + 1, handlerError(), 1);
    assert.equal(job.state, "failed");
  });

  test("refused while verifying or without the lease", () => {
    const verifying = verifyingJob();
    expectRefused(verifying, {
      type: "chunkFailed",
      now: T0 + 200,
      token: token(verifying),
      error: handlerError(),
      maxAttempts: 8,
      retryDelayMs: 1,
    });
    expectRefused(makeJob(), {
      type: "chunkFailed",
      now: T0,
      token: 0,
      error: handlerError(),
      maxAttempts: 8,
      retryDelayMs: 1,
    });
  });
});

describe("verify", () => {
  test("passes → succeeded, lease released", () => {
    const job = verify(verifyingJob(), T0 + 500, manifestFor(3));
    assert.equal(job.state, "succeeded");
    assert.equal(job.completedAt, T0 + 500);
    assert.equal(job.updatedAt, T0 + 500);
    assert.equal(job.lease, undefined);
    assert.equal(job.error, undefined);
    assert.equal(job.cursor, 3);
  });

  const mismatches: Array<[string, Manifest, RegExp]> = [
    ["byte count", { ...manifestFor(3), byteCount: manifestFor(3).byteCount + 1 }, /bytes/],
    ["digest", { ...manifestFor(3), digest: manifestFor(2).digest }, /composite/],
    ["chunk count", { ...manifestFor(3), chunkCount: 4 }, /chunks/],
  ];
  for (const [label, manifest, pattern] of mismatches) {
    test(`${label} mismatch → failed with E_SYNC_VERIFICATION_FAILED`, () => {
      const job = verify(verifyingJob(), T0 + 500, manifest);
      assert.equal(job.state, "failed");
      assert.equal(job.error!.code, "E_SYNC_VERIFICATION_FAILED");
      assert.equal(job.error!.retryable, false);
      assert.match(job.error!.message, pattern);
      assert.equal(job.completedAt, T0 + 500);
      assert.equal(job.lease, undefined);
    });
  }

  test("applied chunks with a wrong digest fail verification against the right manifest", () => {
    let job = claim(makeJob(3), T0);
    job = applyChunk(job, T0 + 1);
    job = applyChunk(job, T0 + 2, 1, CORRUPT_DIGEST);
    job = applyChunk(job, T0 + 3);
    const done = verify(job, T0 + 4, manifestFor(3));
    assert.equal(done.state, "failed");
    assert.equal(done.error!.code, "E_SYNC_VERIFICATION_FAILED");
  });

  test("a hook error fails verification even when progress matches", () => {
    const hook: RecordedError = {
      code: "E_SYNC_HANDLER_FAILED",
      message: "expected message keys missing",
      retryable: true,
      details: { missing: ["k1"] },
    };
    const job = verify(verifyingJob(), T0 + 500, manifestFor(3), hook);
    assert.equal(job.state, "failed");
    assert.equal(job.error!.code, "E_SYNC_VERIFICATION_FAILED");
    assert.equal(job.error!.retryable, false);
    assert.equal(job.error!.message, "expected message keys missing");
  });

  test("checkAppliedAgainstManifest: undefined on a match", () => {
    assert.equal(checkAppliedAgainstManifest(verifyingJob(), manifestFor(3)), undefined);
    assert.equal(checkAppliedAgainstManifest(makeJob(0), manifestFor(0)), undefined);
    assert.notEqual(checkAppliedAgainstManifest(makeJob(3), manifestFor(3)), undefined);
  });

  test("refused before every chunk is applied, and without the token", () => {
    const running = applyChunk(claim(makeJob(), T0), T0 + 1);
    expectRefused(running, { type: "verify", now: T0 + 2, token: 1, manifest: manifestFor(3) });
    const verifying = verifyingJob();
    expectRefused(verifying, {
      type: "verify",
      now: T0 + 200,
      token: token(verifying) + 1,
      manifest: manifestFor(3),
    });
  });
});

describe("cancel", () => {
  for (const state of NON_TERMINAL) {
    test(`${state} → cancelled`, () => {
      const before = jobIn(state);
      const job = cancel(before, T0 + 900);
      assert.equal(job.state, "cancelled");
      assert.deepEqual(job.error, cancelError);
      assert.equal(job.completedAt, T0 + 900);
      assert.equal(job.updatedAt, T0 + 900);
      assert.equal(job.lease, undefined);
      assert.equal(job.leaseToken, before.leaseToken);
      assert.equal(job.cursor, before.cursor);
    });
  }

  test("superseded keeps its reason", () => {
    const superseded: RecordedError = {
      code: "E_SYNC_JOB_SUPERSEDED",
      message: "a newer source was sealed",
      retryable: false,
    };
    assert.deepEqual(cancel(makeJob(), T0, superseded).error, superseded);
  });

  for (const state of TERMINAL) {
    test(`${state}: no-op returning the same object`, () => {
      const job = jobIn(state);
      const snapshot = structuredClone(job);
      const result = transitionJob(job, { type: "cancel", now: T0 + 1e9, error: cancelError });
      assert.equal(result.ok, true);
      assert.equal(result.ok && result.job, job);
      assert.deepEqual(job, snapshot);
    });
  }

  test("a running worker's next commit after a cancel is refused", () => {
    const running = applyChunk(claim(makeJob(), T0), T0 + 1);
    const cancelled = cancel(running, T0 + 2);
    const t = token(running);
    expectRefused(cancelled, {
      type: "chunkApplied",
      now: T0 + 3,
      token: t,
      index: 1,
      byteLength: CHUNK_LENGTHS[1],
      sha256: CHUNK_DIGESTS[1],
      leaseMs: LEASE,
    });
    expectRefused(cancelled, { type: "heartbeat", now: T0 + 3, token: t, leaseMs: LEASE });
    expectRefused(cancelled, {
      type: "chunkFailed",
      now: T0 + 3,
      token: t,
      error: handlerError(),
      maxAttempts: 8,
      retryDelayMs: 1,
    });
    const cancelledVerifying = cancel(verifyingJob(), T0 + 300);
    expectRefused(cancelledVerifying, {
      type: "verify",
      now: T0 + 301,
      token: cancelledVerifying.leaseToken,
      manifest: manifestFor(3),
    });
  });
});

describe("stale lease tokens", () => {
  /** Claimed by w1 (token 1), lease expired, taken over by w2 (token 2). */
  function takenOver(totalChunks: number, applyFirst: number): Job {
    let job = claim(makeJob(totalChunks), T0, "w1", 100);
    for (let i = 0; i < applyFirst; i++) job = applyChunk(job, T0 + 1 + i);
    job = claim(job, job.lease!.expiresAt, "w2", 100);
    assert.equal(token(job), 2);
    return job;
  }

  const staleEvents = (job: Job, staleToken: number): JobEvent[] => [
    { type: "heartbeat", now: T0 + 500, token: staleToken, leaseMs: LEASE },
    {
      type: "chunkApplied",
      now: T0 + 500,
      token: staleToken,
      index: job.cursor,
      byteLength: CHUNK_LENGTHS[job.cursor] ?? 1,
      sha256: CHUNK_DIGESTS[job.cursor] ?? CORRUPT_DIGEST,
      leaseMs: LEASE,
    },
    {
      type: "chunkFailed",
      now: T0 + 500,
      token: staleToken,
      error: fatalError,
      maxAttempts: 8,
      retryDelayMs: 1,
    },
    { type: "verify", now: T0 + 500, token: staleToken, manifest: manifestFor(job.totalChunks) },
  ];

  for (const staleToken of [1, 0, 3]) {
    test(`token ${staleToken} is refused with E_SYNC_LEASE_LOST on every commit (running)`, () => {
      const job = takenOver(3, 1);
      assert.equal(job.state, "running");
      for (const event of staleEvents(job, staleToken)) expectRefused(job, event);
    });

    test(`token ${staleToken} is refused with E_SYNC_LEASE_LOST on every commit (verifying)`, () => {
      const job = takenOver(2, 2);
      assert.equal(job.state, "verifying");
      for (const event of staleEvents(job, staleToken)) expectRefused(job, event);
    });
  }

  test("the new holder's commits are accepted", () => {
    const job = takenOver(3, 1);
    assert.equal(applyChunk(job, T0 + 500).cursor, 2);
  });
});

// ---------------------------------------------------------------------------------------
// Properties over random event sequences

type Template =
  | { type: "claim"; dt: number; owner: string; leaseMs: number; maxAttempts: number }
  | { type: "heartbeat"; dt: number; tokenDelta: number; leaseMs: number }
  | {
    type: "chunkApplied";
    dt: number;
    tokenDelta: number;
    indexDelta: number;
    corrupt: boolean;
    leaseMs: number;
  }
  | {
    type: "chunkFailed";
    dt: number;
    tokenDelta: number;
    retryable: boolean;
    maxAttempts: number;
    retryDelayMs: number;
  }
  | {
    type: "verify";
    dt: number;
    tokenDelta: number;
    manifest: "right" | "count" | "bytes" | "digest";
    hookFails: boolean;
  }
  | { type: "cancel"; dt: number; superseded: boolean };

const dtArb = fc.integer({ min: 0, max: 60 });
/** Mostly the current token; sometimes an older or a future one. */
const tokenDeltaArb = fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 1, 2, -1);
const leaseArb = fc.integer({ min: 1, max: 120 });

const templateArb: fc.Arbitrary<Template> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.record({
      type: fc.constant("claim" as const),
      dt: dtArb,
      owner: fc.constantFrom("w1", "w2", "w3"),
      leaseMs: leaseArb,
      maxAttempts: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant("heartbeat" as const),
      dt: dtArb,
      tokenDelta: tokenDeltaArb,
      leaseMs: leaseArb,
    }),
  },
  {
    weight: 24,
    arbitrary: fc.record({
      type: fc.constant("chunkApplied" as const),
      dt: dtArb,
      tokenDelta: tokenDeltaArb,
      indexDelta: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 1, -1),
      corrupt: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      leaseMs: leaseArb,
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant("chunkFailed" as const),
      dt: dtArb,
      tokenDelta: tokenDeltaArb,
      retryable: fc.integer({ min: 0, max: 4 }).map((n) => n !== 0),
      maxAttempts: fc.integer({ min: 1, max: 6 }),
      retryDelayMs: fc.integer({ min: 0, max: 100 }),
    }),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      type: fc.constant("verify" as const),
      dt: dtArb,
      tokenDelta: tokenDeltaArb,
      manifest: fc.constantFrom(
        "right",
        "right",
        "right",
        "right",
        "right",
        "right",
        "count",
        "bytes",
        "digest",
      ),
      hookFails: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("cancel" as const),
      dt: dtArb,
      superseded: fc.boolean(),
    }),
  },
);

const scenarioArb = fc.record({
  totalChunks: fc.integer({ min: 0, max: CHUNK_TEXTS.length }),
  templates: fc.array(templateArb, { maxLength: 40, size: "max" }),
});

function manifestVariant(total: number, kind: "right" | "count" | "bytes" | "digest"): Manifest {
  const right = manifestFor(total);
  switch (kind) {
    case "right":
      return right;
    case "count":
      return { ...right, chunkCount: total + 1 };
    case "bytes":
      return { ...right, byteCount: right.byteCount + 1 };
    case "digest":
      return { ...right, digest: CORRUPT_DIGEST };
  }
}

/** Turns a template into a concrete event against the job as it is now. */
function resolve(template: Template, job: Job, now: number): JobEvent {
  const tokenOf = (delta: number) => job.leaseToken - delta;
  switch (template.type) {
    case "claim":
      return {
        type: "claim",
        now,
        owner: template.owner,
        leaseMs: template.leaseMs,
        maxAttempts: template.maxAttempts,
      };
    case "heartbeat":
      return {
        type: "heartbeat",
        now,
        token: tokenOf(template.tokenDelta),
        leaseMs: template.leaseMs,
      };
    case "chunkApplied": {
      const index = job.cursor + template.indexDelta;
      const known = index >= 0 && index < CHUNK_DIGESTS.length;
      return {
        type: "chunkApplied",
        now,
        token: tokenOf(template.tokenDelta),
        index,
        byteLength: known ? CHUNK_LENGTHS[index] : 3,
        sha256: known && !template.corrupt ? CHUNK_DIGESTS[index] : CORRUPT_DIGEST,
        leaseMs: template.leaseMs,
      };
    }
    case "chunkFailed":
      return {
        type: "chunkFailed",
        now,
        token: tokenOf(template.tokenDelta),
        error: {
          code: "E_SYNC_HANDLER_FAILED",
          message: `failed at ${now}`,
          retryable: template.retryable,
        },
        maxAttempts: template.maxAttempts,
        retryDelayMs: template.retryDelayMs,
      };
    case "verify":
      return {
        type: "verify",
        now,
        token: tokenOf(template.tokenDelta),
        manifest: manifestVariant(job.totalChunks, template.manifest),
        hookError: template.hookFails
          ? { code: "E_SYNC_HANDLER_FAILED", message: "hook says no", retryable: false }
          : undefined,
      };
    case "cancel":
      return {
        type: "cancel",
        now,
        error: template.superseded
          ? { code: "E_SYNC_JOB_SUPERSEDED", message: "superseded", retryable: false }
          : cancelError,
      };
  }
}

interface Step {
  prev: Job;
  /** Deep copy of `prev` taken before the transition. */
  snapshot: Job;
  event: JobEvent;
  result: JobTransition;
  /** The job after the step: the result's when ok, `prev` otherwise. */
  next: Job;
  /** Byte lengths and digests of the chunks accepted so far, in order. */
  applied: Array<{ byteLength: number; sha256: string }>;
}

/** Folds `transitionJob` over the scenario, calling `check` after every step. */
function run(
  scenario: { totalChunks: number; templates: Template[] },
  check: (step: Step) => void,
): Job {
  let job = makeJob(scenario.totalChunks);
  let now = T0;
  let applied: Step["applied"] = [];
  for (const template of scenario.templates) {
    now += template.dt;
    const event = resolve(template, job, now);
    const snapshot = structuredClone(job);
    const result = transitionJob(job, event);
    const next = result.ok ? result.job : job;
    if (result.ok && event.type === "chunkApplied") {
      applied = [...applied, { byteLength: event.byteLength, sha256: event.sha256 }];
    }
    check({ prev: job, snapshot, event, result, next, applied });
    job = next;
  }
  return job;
}

const isTerminal = (state: JobState) => TERMINAL.includes(state);
const NUM_RUNS = { numRuns: 300 };

function carriesToken(event: JobEvent): event is Extract<JobEvent, { token: number }> {
  return "token" in event;
}

describe("properties over random event sequences", () => {
  test("terminal states absorb every event", () => {
    let afterTerminal = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, event, result, next }) => {
          if (!isTerminal(prev.state)) return;
          afterTerminal++;
          if (result.ok) {
            assert.equal(event.type, "cancel", `${event.type} accepted on a ${prev.state} job`);
            assert.equal(result.job, prev);
          }
          assert.equal(next.state, prev.state);
        });
      }),
      NUM_RUNS,
    );
    assert.ok(afterTerminal > 100, `too few events after a terminal state (${afterTerminal})`);
  });

  test("the cursor never decreases nor passes totalChunks, and moves by one chunk at most", () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, next, applied }) => {
          assert.ok(
            next.cursor >= prev.cursor,
            `cursor went from ${prev.cursor} to ${next.cursor}`,
          );
          assert.ok(next.cursor <= next.totalChunks, `cursor ${next.cursor} > ${next.totalChunks}`);
          assert.ok(next.cursor - prev.cursor <= 1);
          assert.equal(next.cursor, applied.length);
          assert.equal(
            next.appliedBytes,
            applied.reduce((sum, chunk) => sum + chunk.byteLength, 0),
          );
          if (next.state === "verifying") assert.equal(next.cursor, next.totalChunks);
        });
      }),
      NUM_RUNS,
    );
  });

  test("a stale (or future) lease token never commits", () => {
    let stale = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, snapshot, event, result }) => {
          if (!carriesToken(event) || event.token === prev.lease?.token) return;
          stale++;
          assert.equal(result.ok, false, `${event.type} with token ${event.token} committed`);
          assert.equal(!result.ok && result.error.code, "E_SYNC_LEASE_LOST");
          assert.deepEqual(prev, snapshot);
        });
      }),
      NUM_RUNS,
    );
    assert.ok(stale > 100, `too few stale-token events (${stale})`);
  });

  test("attempt resets to 0 after every chunkApplied", () => {
    let resets = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, event, result, next }) => {
          if (event.type !== "chunkApplied" || !result.ok) return;
          if (prev.attempt > 0) resets++;
          assert.equal(next.attempt, 0);
          assert.equal(next.cursor, prev.cursor + 1);
          assert.equal(next.error, undefined);
        });
      }),
      NUM_RUNS,
    );
    assert.ok(resets > 0, "no chunkApplied ever followed a failed attempt");
  });

  test("succeeded only with cursor = totalChunks and verification passed", () => {
    let succeeded = 0;
    let failedVerification = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, event, next, applied }) => {
          if (event.type === "verify" && next.state === "failed" && prev.state === "verifying") {
            failedVerification++;
            assert.equal(next.error?.code, "E_SYNC_VERIFICATION_FAILED");
          }
          if (next.state !== "succeeded" || prev.state === "succeeded") return;
          succeeded++;
          assert.equal(event.type, "verify");
          if (event.type !== "verify") return;
          assert.equal(event.hookError, undefined);
          assert.equal(prev.state, "verifying");
          assert.equal(next.cursor, next.totalChunks);
          const right = manifestFor(next.totalChunks);
          assert.deepEqual(event.manifest, right);
          assert.equal(next.appliedBytes, right.byteCount);
          assert.equal(finishComposite(next.appliedDigestState), right.digest);
          // Independently of the job's own digest state: what was applied is the source.
          assert.deepEqual(
            applied.map((chunk) => chunk.sha256),
            CHUNK_DIGESTS.slice(0, next.totalChunks),
          );
        });
      }),
      NUM_RUNS,
    );
    assert.ok(succeeded > 10, `too few successes (${succeeded})`);
    assert.ok(failedVerification > 10, `too few failed verifications (${failedVerification})`);
  });

  test("leaseToken strictly increases at each claim and changes at no other event", () => {
    let claims = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, event, result, next }) => {
          if (event.type === "claim" && result.ok && next.state === "failed") {
            // The abandoned lease took the job's last attempt: no new lease.
            assert.ok(prev.lease);
            assert.equal(next.leaseToken, prev.leaseToken);
            assert.equal(next.lease, undefined);
            assert.equal(next.error?.code, "E_SYNC_LEASE_LOST");
            assert.equal(next.attempt, prev.attempt + 1);
            assert.ok(next.attempt >= event.maxAttempts);
          } else if (event.type === "claim" && result.ok) {
            claims++;
            // Taking over an expired lease counts the holder's step as a failed attempt.
            assert.equal(next.attempt, prev.lease ? prev.attempt + 1 : prev.attempt);
            assert.equal(next.leaseToken, prev.leaseToken + 1);
            assert.equal(next.lease?.token, next.leaseToken);
            assert.equal(next.lease?.owner, event.owner);
            assert.equal(next.lease?.expiresAt, event.now + event.leaseMs);
          } else {
            assert.equal(next.leaseToken, prev.leaseToken);
          }
        });
      }),
      NUM_RUNS,
    );
    assert.ok(claims > 100);
  });

  test("a refused transition never changes the job, and no transition mutates its input", () => {
    let refused = 0;
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ prev, snapshot, result, next }) => {
          assert.deepEqual(prev, snapshot);
          if (result.ok) return;
          refused++;
          assert.ok(result.error instanceof SyncError);
          assert.equal(next, prev);
        });
      }),
      NUM_RUNS,
    );
    assert.ok(refused > 100);
  });

  test("lease, state and timestamps stay consistent", () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        run(scenario, ({ event, result, next }) => {
          if (next.state === "running" || next.state === "verifying") {
            assert.ok(next.lease, `${next.state} without a lease`);
            assert.equal(next.lease.token, next.leaseToken);
            assert.equal(next.runAt, next.lease.expiresAt);
          } else {
            assert.equal(next.lease, undefined, `${next.state} with a lease`);
          }
          if (isTerminal(next.state)) {
            assert.notEqual(next.completedAt, undefined);
            if (next.state !== "succeeded") assert.ok(next.error, `${next.state} without error`);
          } else {
            assert.equal(next.completedAt, undefined);
          }
          if (result.ok && next.state === "retry_wait" && event.type === "chunkFailed") {
            assert.equal(next.runAt, event.now + event.retryDelayMs);
          }
          assert.ok(next.updatedAt >= next.createdAt);
        });
      }),
      NUM_RUNS,
    );
  });
});
