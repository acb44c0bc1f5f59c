/**
 * Cases `apply:`, `claim:` and `verify:`: running a job — every chunk applied once, in
 * order, byte for byte; which due job is claimed first; the terminal verification.
 *
 * @module
 */

import { assert, assertEquals } from "../assert.ts";
import { binaryChunks } from "../fixtures.ts";
import {
  concatBytes,
  encodeUtf8,
  multiByteText,
  splitEvery,
  splitSequenceLengths,
  textChunks,
} from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import type { Job } from "../../src/contracts/domain.ts";
import type { CaseContext } from "../context.ts";
import { indexes, LEASE_MS, range, suiteDelay } from "./support.ts";

// ---------------------------------------------------------------------------------------
// apply

const applyCases: ConformanceCase[] = [
  {
    name: "apply: a fault-free run applies chunks 0..n-1 in order, each once, then succeeds",
    async run(t) {
      const chunks = textChunks(5, "apply");
      const up = await t.upload(chunks);
      const manifest = { ...up.manifest, data: { keys: ["m-1", "m-2"] } };
      const { job: queued } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: up.source.sourceId,
        manifest,
      });
      assertEquals(queued.state, "queued", "job state after seal");
      assertEquals(queued.cursor, 0, "cursor after seal");
      assertEquals(queued.totalChunks, 5, "totalChunks");
      assertEquals(queued.appliedBytes, 0, "appliedBytes after seal");
      const contexts: { manifest: unknown; sourceId: string; cursor: number }[] = [];
      t.handler.onApply((_chunk, context) => {
        contexts.push({
          manifest: structuredClone(context.manifest),
          sourceId: context.source.sourceId,
          cursor: context.job.cursor,
        });
      });
      await t.harness.drain();
      assertEquals(indexes(t.handler.calls), [0, 1, 2, 3, 4], "apply calls by index");
      assert(t.handler.calls.every((call) => call.ok), "every apply call succeeded");
      t.handler.calls.forEach((call, i) => {
        assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`);
        assertEquals(call.jobId, queued.jobId, `job of chunk ${i}`);
      });
      contexts.forEach((context, i) => {
        assertEquals(context.cursor, i, `ctx.job.cursor when chunk ${i} is applied`);
        assertEquals(context.manifest, manifest, `ctx.manifest when chunk ${i} is applied`);
        assertEquals(context.sourceId, up.source.sourceId, `ctx.source of chunk ${i}`);
      });
      const done = await t.job(queued.jobId);
      assertEquals(done.state, "succeeded", "job state");
      assertEquals(done.cursor, 5, "cursor = totalChunks");
      assertEquals(done.totalChunks, 5, "totalChunks");
      assertEquals(done.appliedBytes, manifest.byteCount, "appliedBytes = byteCount");
      assertEquals(done.attempt, 0, "attempt");
      assertEquals(done.lease, undefined, "no lease on a terminal job");
      assert(typeof done.completedAt === "number", "completedAt is set");
      assertEquals(t.handler.verifications.length, 1, "verify hook calls");
      // Nothing runs again, whatever the clock does.
      t.clock.advance(LEASE_MS * 10);
      await t.harness.drain();
      assertEquals(t.handler.calls.length, 5, "apply calls after a later drain");
      assertEquals(await t.job(queued.jobId), done, "terminal job after a later drain");
    },
  },
  {
    name: "apply: multi-byte text cut inside UTF-8 sequences arrives byte for byte",
    async run(t) {
      const text = multiByteText(8);
      const chunks = splitEvery(encodeUtf8(text), 7);
      const split = splitSequenceLengths(chunks);
      assert(
        split.has(2) && split.has(3) && split.has(4),
        `fixture: boundaries must fall inside 2-, 3- and 4-byte sequences (got ${[...split]})`,
      );
      const sealed = await t.uploadAndSeal(chunks);
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      const applied = t.handler.applied;
      assertEquals(indexes(applied), range(chunks.length), "applied chunk indexes");
      applied.forEach((call, i) => assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`));
      const joined = concatBytes(applied.map((call) => call.bytes));
      assertEquals(joined, encodeUtf8(text), "concatenated applied bytes");
      assertEquals(
        new TextDecoder("utf-8", { fatal: true }).decode(joined),
        text,
        "decoded applied text",
      );
      assertEquals(done.appliedBytes, joined.length, "appliedBytes");
    },
  },
  {
    name: "apply: binary chunks with all 256 byte values arrive byte for byte",
    async run(t) {
      const chunks = binaryChunks();
      const sealed = await t.uploadAndSeal(chunks);
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      const applied = t.handler.applied;
      assertEquals(indexes(applied), range(chunks.length), "applied chunk indexes");
      applied.forEach((call, i) => assertEquals(call.bytes, chunks[i], `bytes of chunk ${i}`));
      const joined = concatBytes(applied.map((call) => call.bytes));
      assertEquals(joined, concatBytes(chunks), "concatenated applied bytes");
      assertEquals(new Set(joined).size, 256, "distinct byte values applied");
      assertEquals(done.appliedBytes, sealed.manifest.byteCount, "appliedBytes");
    },
  },
];

// ---------------------------------------------------------------------------------------
// claim

/** Seals a one-chunk job of its own conversation at `at` (the clock moves there). */
async function sealOneAt(t: CaseContext, at: number, tag: string): Promise<Job> {
  t.clock.set(at);
  return (await t.uploadAndSeal(textChunks(1, tag))).job;
}

const claimCases: ConformanceCase[] = [
  {
    name: "claim: due jobs are claimed earliest runAt first, whatever their creation order",
    async run(t) {
      const t0 = t.clock.now();
      // The oldest job fails once: its retry is due after two younger jobs.
      const oldest = await sealOneAt(t, t0, "claim-oldest");
      t.handler.onApply((_chunk, context, call) => {
        if (call === 0 && context.job.jobId === oldest.jobId) throw new Error("transient");
      });
      await t.harness.drain();
      const waiting = await t.job(oldest.jobId);
      assertEquals(waiting.state, "retry_wait", "the oldest job waits to retry");
      assertEquals(waiting.runAt, t0 + suiteDelay(1), "its retry is due after the backoff");
      const second = await sealOneAt(t, t0 + 10, "claim-second");
      const third = await sealOneAt(t, t0 + 20, "claim-third");
      assert(third.runAt < waiting.runAt, "fixture: both younger jobs are due first");
      t.clock.set(t0 + 1_000);
      await t.harness.drain();
      assertEquals(
        t.handler.calls.slice(1).map((call) => call.jobId),
        [second.jobId, third.jobId, oldest.jobId],
        "jobs in the order they were claimed (runAt " +
          `${second.runAt - t0}, ${third.runAt - t0}, ${waiting.runAt - t0} ms after start)`,
      );
      for (const job of [oldest, second, third]) {
        assertEquals((await t.job(job.jobId)).state, "succeeded", `state of ${job.jobId}`);
      }
    },
  },
  {
    name: "claim: a job waiting to retry never holds back another due job",
    async run(t) {
      const t0 = t.clock.now();
      const older = await sealOneAt(t, t0, "held-older");
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === older.jobId) throw new Error("keeps failing for now");
      });
      await t.harness.drain();
      const waiting = await t.job(older.jobId);
      assertEquals(waiting.state, "retry_wait", "the older job waits to retry");
      const younger = await sealOneAt(t, t0 + 1, "held-younger");
      assert(younger.runAt < waiting.runAt, "fixture: the younger job is due first");
      await t.harness.drain();
      assertEquals((await t.job(younger.jobId)).state, "succeeded", "the younger job ran");
      assertEquals(await t.job(older.jobId), waiting, "the older job still waits, untouched");
      assertEquals(t.handler.calls.length, 2, "apply calls (the older job was not retried early)");
      t.handler.onApply(undefined);
      t.clock.set(waiting.runAt);
      await t.harness.drain();
      assertEquals((await t.job(older.jobId)).state, "succeeded", "the older job at its runAt");
    },
  },
];

// ---------------------------------------------------------------------------------------
// verify

const verifyCases: ConformanceCase[] = [
  {
    name: "verify: a corrupted stored chunk fails the job without retry before it is applied",
    hooks: ["corruptChunk"],
    // Chunks read back from storage (the engine would otherwise apply the bytes it
    // verified on upload, and never see the corruption): as another process reads them.
    policy: { uploadCacheBytes: 0 },
    async run(t) {
      const chunks = textChunks(3, "corrupt");
      const sealed = await t.uploadAndSeal(chunks);
      await t.harness.oracle!.corruptChunk!(t.scope, sealed.source.sourceId, 1);
      await t.harness.drain();
      const failed = await t.job(sealed.job.jobId);
      assertEquals(failed.state, "failed", "state");
      assertEquals(failed.error?.code, "E_SYNC_CHUNK_CHECKSUM_MISMATCH", "error code");
      assertEquals(failed.error?.retryable, false, "error retryable");
      assertEquals(failed.cursor, 1, "cursor (chunk 0 applied)");
      assertEquals(failed.appliedBytes, chunks[0].length, "appliedBytes");
      assertEquals(indexes(t.handler.calls), [0], "the handler never saw the corrupt chunk");
      t.clock.advance(60 * 60 * 1000);
      await t.harness.drain();
      assertEquals(indexes(t.handler.calls), [0], "apply calls later (not retried)");
      assertEquals(await t.job(failed.jobId), failed, "failed job never changes");
    },
  },
  {
    name: "verify: a throwing verify hook fails the job with E_SYNC_VERIFICATION_FAILED",
    async run(t) {
      t.handler.onVerify(() => {
        throw new Error("message m-3 is missing");
      });
      const sealed = await t.uploadAndSeal(textChunks(2, "verify-fails"));
      await t.harness.drain();
      const failed = await t.job(sealed.job.jobId);
      assertEquals(failed.state, "failed", "state");
      assertEquals(failed.error?.code, "E_SYNC_VERIFICATION_FAILED", "error code");
      assertEquals(failed.error?.retryable, false, "error retryable");
      assert(
        failed.error?.message.includes("message m-3 is missing"),
        `error message keeps the hook's message: ${failed.error?.message}`,
      );
      assertEquals(failed.cursor, 2, "cursor");
      assertEquals(t.handler.verifications.length, 1, "verify calls");
      t.clock.advance(60 * 60 * 1000);
      await t.harness.drain();
      assertEquals(t.handler.verifications.length, 1, "verify calls later (not retried)");
      assertEquals(await t.job(failed.jobId), failed, "failed job never changes");
    },
  },
  {
    name: "verify: the verify hook sees the fully applied job and the sealed manifest",
    async run(t) {
      const chunks = textChunks(3, "verify-sees");
      const up = await t.upload(chunks);
      const manifest = { ...up.manifest, data: { keys: ["k1", "k2", "k3"] } };
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: up.source.sourceId,
        manifest,
      });
      const seen: unknown[] = [];
      t.handler.onVerify((context) => {
        seen.push({
          state: context.job.state,
          cursor: context.job.cursor,
          totalChunks: context.job.totalChunks,
          appliedBytes: context.job.appliedBytes,
          manifest: structuredClone(context.manifest),
          sourceId: context.source.sourceId,
        });
      });
      await t.harness.drain();
      assertEquals(seen, [{
        state: "verifying",
        cursor: 3,
        totalChunks: 3,
        appliedBytes: manifest.byteCount,
        manifest,
        sourceId: up.source.sourceId,
      }], "what the verify hook saw");
      assertEquals((await t.job(job.jobId)).state, "succeeded", "final state");
    },
  },
  {
    name: "verify: an empty source verifies and succeeds without applying anything",
    async run(t) {
      const sealed = await t.uploadAndSeal([]);
      assertEquals(sealed.job.totalChunks, 0, "totalChunks");
      await t.harness.drain();
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "state");
      assertEquals([done.cursor, done.appliedBytes], [0, 0], "cursor and appliedBytes");
      assertEquals(t.handler.calls.length, 0, "apply calls");
      assertEquals(t.handler.verifications.length, 1, "verify calls");
      assertEquals(t.handler.verifications[0].cursor, 0, "cursor seen by verify");
    },
  },
];

/** Apply, claim and verify cases. */
export const jobCases: readonly ConformanceCase[] = [
  ...applyCases,
  ...claimCases,
  ...verifyCases,
];
