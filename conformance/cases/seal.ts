/**
 * Cases `seal:`: sealing a source against its manifest — fail closed with durable
 * failures, idempotent re-seal, expiry, empty sources, racing seals. Supersede is in
 * `supersede.ts`.
 *
 * @module
 */

import { compositeDigest, sha256Hex } from "../../src/checksum.ts";
import type { Manifest } from "../../src/contracts/domain.ts";
import type { SyncErrorCode } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, utf8 } from "../context.ts";
import { EMPTY_COMPOSITE_DIGEST, KNOWN_DIGESTS } from "../fixtures.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  createSource,
  jobsOf,
  SOURCE_TTL_MS,
  storedChunkCount,
  storedSource,
} from "./support.ts";

const ABC = ["a", "b", "c"].map(utf8);

/** A source prepared for a failing seal. */
interface FailingSeal {
  sourceId: string;
  conversationId: string;
  manifest: Manifest;
  /** The manifest that would have matched, when there is one. */
  correct?: Manifest;
}

/** A way a seal must fail closed, with the code it must fail with. */
interface SealFailure {
  name: string;
  code: SyncErrorCode;
  prepare(t: CaseContext): Promise<FailingSeal>;
}

async function uploadIndexes(
  t: CaseContext,
  chunks: readonly Uint8Array[],
  indexes: readonly number[],
  itemCounts?: readonly number[],
): Promise<{ sourceId: string; conversationId: string }> {
  const source = await createSource(t);
  for (const index of indexes) {
    await append(t, source.sourceId, index, chunks[index], {
      itemCount: itemCounts?.[index],
    });
  }
  return { sourceId: source.sourceId, conversationId: source.conversationId };
}

const SEAL_FAILURES: readonly SealFailure[] = [
  {
    name: "a gap (chunks 0 and 2 of 3)",
    code: "E_SYNC_CHUNK_INDEX_GAP",
    async prepare(t) {
      const { manifest } = await manifestFor(ABC);
      return { ...(await uploadIndexes(t, ABC, [0, 2])), manifest };
    },
  },
  {
    name: "a missing last chunk",
    code: "E_SYNC_CHUNK_INDEX_GAP",
    async prepare(t) {
      const { manifest } = await manifestFor(ABC);
      return { ...(await uploadIndexes(t, ABC, [0, 1])), manifest };
    },
  },
  {
    name: "a missing first chunk",
    code: "E_SYNC_CHUNK_INDEX_GAP",
    async prepare(t) {
      const { manifest } = await manifestFor(ABC);
      return { ...(await uploadIndexes(t, ABC, [1, 2])), manifest };
    },
  },
  {
    name: "a chunk stored beyond chunkCount",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t) {
      const { manifest } = await manifestFor(ABC.slice(0, 2));
      const { manifest: correct } = await manifestFor(ABC);
      return { ...(await uploadIndexes(t, ABC, [0, 1, 2])), manifest, correct };
    },
  },
  {
    name: "chunks on a manifest of zero chunks",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t) {
      const { manifest: correct } = await manifestFor(ABC);
      const manifest = { chunkCount: 0, byteCount: 0, digest: EMPTY_COMPOSITE_DIGEST };
      return { ...(await uploadIndexes(t, ABC, [0, 1, 2])), manifest, correct };
    },
  },
  {
    name: "a byteCount mismatch",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t) {
      const { manifest: correct } = await manifestFor(ABC);
      const manifest = { ...correct, byteCount: correct.byteCount + 1 };
      return { ...(await uploadIndexes(t, ABC, [0, 1, 2])), manifest, correct };
    },
  },
  {
    name: "an itemCount mismatch",
    code: "E_SYNC_MANIFEST_MISMATCH",
    async prepare(t) {
      const { manifest } = await manifestFor(ABC);
      const correct = { ...manifest, itemCount: 6 };
      return {
        ...(await uploadIndexes(t, ABC, [0, 1, 2], [1, 2, 3])),
        manifest: { ...manifest, itemCount: 7 },
        correct,
      };
    },
  },
  {
    name: "a digest mismatch (chunk digests in another order)",
    code: "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
    async prepare(t) {
      const { manifest: correct, digests } = await manifestFor(ABC);
      const manifest = { ...correct, digest: compositeDigest([...digests].reverse()) };
      return { ...(await uploadIndexes(t, ABC, [0, 1, 2])), manifest, correct };
    },
  },
  {
    name: "an empty source with a non-empty digest",
    code: "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
    async prepare(t) {
      const correct = { chunkCount: 0, byteCount: 0, digest: EMPTY_COMPOSITE_DIGEST };
      const manifest = { ...correct, digest: KNOWN_DIGESTS[1].digest };
      return { ...(await uploadIndexes(t, [], [])), manifest, correct };
    },
  },
];

const failureCases: ConformanceCase[] = SEAL_FAILURES.map((failure) => ({
  name: `seal: ${failure.name} fails the source durably with ${failure.code}`,
  hooks: ["chunkCount"],
  async run(t: CaseContext) {
    const { sourceId, conversationId, manifest, correct } = await failure.prepare(t);
    const chunksBefore = await storedChunkCount(t, sourceId);
    t.clock.advance(100);
    const thrown = await expectSyncError(
      () => t.adapter.sealSource({ scope: t.scope, sourceId, manifest }),
      failure.code,
    );
    assertEquals(thrown.retryable, false, "retryable");
    const failed = await t.adapter.getSource({ scope: t.scope, sourceId });
    assertEquals(failed.state, "failed", "state after the failed seal");
    assertEquals(failed.error?.code, failure.code, "recorded error code");
    assertEquals(failed.jobId, undefined, "jobId of a failed source");
    assertEquals(failed.updatedAt, t.clock.now(), "updatedAt of the failure");
    assertEquals(await jobsOf(t, conversationId), [], "jobs of the conversation");
    assertEquals((await t.adapter.listJobs({ scope: t.scope })).items, [], "jobs of the scope");

    // Nothing more is accepted: neither chunks nor any seal.
    await expectSyncError(
      () => append(t, sourceId, 50, utf8("late")),
      "E_SYNC_SOURCE_NOT_COLLECTING",
    );
    await expectSyncError(
      () => t.adapter.sealSource({ scope: t.scope, sourceId, manifest }),
      "E_SYNC_SOURCE_NOT_COLLECTING",
    );
    if (correct) {
      await expectSyncError(
        () => t.adapter.sealSource({ scope: t.scope, sourceId, manifest: correct }),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
    }
    const after = await t.adapter.getSource({ scope: t.scope, sourceId });
    assertEquals(after.state, "failed", "state stays failed");
    assertEquals(after.error?.code, failure.code, "recorded error stays");
    assertEquals(await storedChunkCount(t, sourceId), chunksBefore, "stored chunks");
    assertEquals(await jobsOf(t, conversationId), [], "still no job");
  },
}));

const sealCasesList: ConformanceCase[] = [
  {
    name: "seal: success seals the source, stores the manifest and queues one job",
    hooks: ["readSource"],
    async run(t) {
      const chunks = ["alpha", "beta", "gamma"].map(utf8);
      const conversationId = t.newConversationId();
      const { source, manifest } = await t.upload(chunks, { conversationId });
      t.clock.advance(250);
      const now = t.clock.now();
      const { source: sealed, job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.state, "sealed", "source state");
      assertEquals(sealed.manifest, manifest, "stored manifest");
      assertEquals(sealed.jobId, job.jobId, "source's jobId");
      assertEquals(sealed.sealedAt, now, "sealedAt");
      assertEquals(sealed.received, { chunkCount: 3, byteCount: 14 }, "received");
      assertEquals(sealed.error, undefined, "error");
      assertEquals(job.state, "queued", "job state");
      assertEquals(job.scope, t.scope, "job scope");
      assertEquals(job.sourceId, source.sourceId, "job sourceId");
      assertEquals(job.conversationId, conversationId, "job conversationId");
      assertEquals(job.totalChunks, 3, "totalChunks");
      assertEquals(job.cursor, 0, "cursor");
      assertEquals(job.appliedBytes, 0, "appliedBytes");
      assertEquals(job.attempt, 0, "attempt");
      assertEquals(job.createdAt, now, "createdAt");
      assert(job.runAt <= now, "a new job is due at once");
      assertEquals(job.lease, undefined, "lease");
      assertEquals(job.error, undefined, "job error");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        sealed,
        "getSource after seal",
      );
      assertEquals(await t.job(job.jobId), job, "getJob after seal");
      assertEquals((await jobsOf(t, conversationId)).map((j) => j.jobId), [job.jobId], "jobs");
      assertEquals(
        (await storedSource(t, source.sourceId))?.manifest,
        manifest,
        "manifest stored in the backend",
      );
      const done = await t.runToTerminal(job.jobId);
      assertEquals(done.state, "succeeded", "job runs to success");
      assertEquals(done.cursor, 3, "cursor at the end");
      assertEquals(done.appliedBytes, 14, "appliedBytes at the end");
    },
  },
  {
    name: "seal: the composite digest is the documented one (KNOWN_DIGESTS)",
    async run(t) {
      for (const vector of KNOWN_DIGESTS) {
        const chunks = vector.chunks.map(utf8);
        const digests = await Promise.all(chunks.map((c) => sha256Hex(c)));
        assertEquals(digests, vector.chunkDigests, `chunk digests of ${vector.name}`);
        const { source } = await t.upload(chunks);
        const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
        assertEquals(listed.items.map((c) => c.sha256), vector.chunkDigests, "listed digests");
        const { source: sealed } = await t.adapter.sealSource({
          scope: t.scope,
          sourceId: source.sourceId,
          manifest: {
            chunkCount: chunks.length,
            byteCount: chunks.reduce((sum, c) => sum + c.length, 0),
            digest: vector.digest,
          },
        });
        assertEquals(sealed.state, "sealed", `seal of ${vector.name}`);
      }
    },
  },
  {
    name: "seal: item counts summed over the chunks match the manifest",
    async run(t) {
      const { sourceId } = await uploadIndexes(t, ABC, [2, 0, 1], [4, 0, 2]);
      const { manifest } = await manifestFor(ABC, { itemCount: 6 });
      const { source } = await t.adapter.sealSource({ scope: t.scope, sourceId, manifest });
      assertEquals(source.state, "sealed", "state");
      assertEquals(source.manifest?.itemCount, 6, "itemCount");
      // A manifest that does not count items does not need them.
      const other = await uploadIndexes(t, ABC, [0, 1, 2], [1, 1, 1]);
      const { manifest: plain } = await manifestFor(ABC);
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: other.sourceId,
        manifest: plain,
      });
      assertEquals(sealed.source.state, "sealed", "state without itemCount");
    },
  },
  {
    name: "seal: manifest data is stored and returned with the source",
    hooks: ["readSource"],
    async run(t) {
      const { source, manifest } = await t.upload([utf8("x")]);
      const data = { keys: ["m1", "m2", "🙂"], schema: 3, nested: { ok: true, none: null } };
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest: { ...manifest, data },
      });
      assertEquals(sealed.source.manifest?.data, data, "returned data");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.manifest?.data, data, "getSource data");
      assertEquals((await storedSource(t, source.sourceId))?.manifest?.data, data, "stored data");
    },
  },
  {
    name: "seal: sealing again with the same manifest returns the same job, never another's",
    async run(t) {
      const a = await t.uploadAndSeal([utf8("source a")]);
      const b = await t.uploadAndSeal([utf8("source b"), utf8("more")]);
      assert(a.job.jobId !== b.job.jobId, "two sources share a job");
      t.clock.advance(10);
      const againB = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: b.source.sourceId,
        manifest: b.manifest,
      });
      const againA = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: a.source.sourceId,
        manifest: a.manifest,
      });
      assertEquals(againA.job.jobId, a.job.jobId, "re-seal of a");
      assertEquals(againA.job.sourceId, a.source.sourceId, "job of a's re-seal");
      assertEquals(againB.job.jobId, b.job.jobId, "re-seal of b");
      assertEquals(againB.job.sourceId, b.source.sourceId, "job of b's re-seal");
      assertEquals(againA.source.sealedAt, a.source.sealedAt, "sealedAt kept");
      // The same manifest written with its keys in another order.
      const reordered: Manifest = {
        digest: a.manifest.digest,
        byteCount: a.manifest.byteCount,
        chunkCount: a.manifest.chunkCount,
      };
      const thirdA = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: a.source.sourceId,
        manifest: reordered,
      });
      assertEquals(thirdA.job.jobId, a.job.jobId, "re-seal with reordered keys");
      const all = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(all.items.length, 2, "jobs after re-seals");
      // Even once the job ran, a re-seal answers with it (now terminal).
      await t.runToTerminal(a.job.jobId);
      const afterRun = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: a.source.sourceId,
        manifest: a.manifest,
      });
      assertEquals(afterRun.job.jobId, a.job.jobId, "re-seal after the job ran");
      assertEquals(afterRun.job.state, "succeeded", "re-seal returns the terminal job");
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items.length, 2, "jobs");
    },
  },
  {
    name: "seal: sealing again with an optional field spelled out as undefined is the same",
    async run(t) {
      const first = await t.upload([utf8("undefined-fields")]);
      const explicit: Manifest = { ...first.manifest, itemCount: undefined, data: undefined };
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: first.source.sourceId,
        manifest: explicit,
      });
      const again = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: first.source.sourceId,
        manifest: first.manifest,
      });
      assertEquals(again.job.jobId, sealed.job.jobId, "explicit undefined, then absent");
      const second = await t.upload([utf8("absent-fields")]);
      const sealedSecond = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: second.source.sourceId,
        manifest: second.manifest,
      });
      const againSecond = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: second.source.sourceId,
        manifest: { ...second.manifest, itemCount: undefined },
      });
      assertEquals(againSecond.job.jobId, sealedSecond.job.jobId, "absent, then undefined");
    },
  },
  {
    name: "seal: sealing again with a different manifest is refused; source and job untouched",
    async run(t) {
      const sealed = await t.uploadAndSeal([utf8("one"), utf8("two")]);
      const sourceBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: sealed.source.sourceId,
      });
      const jobBefore = await t.job(sealed.job.jobId);
      t.clock.advance(10);
      const variants: Manifest[] = [
        { ...sealed.manifest, byteCount: sealed.manifest.byteCount + 1 },
        { ...sealed.manifest, chunkCount: 1 },
        { ...sealed.manifest, digest: EMPTY_COMPOSITE_DIGEST },
        { ...sealed.manifest, itemCount: 2 },
        { ...sealed.manifest, data: { other: true } },
      ];
      for (const manifest of variants) {
        await expectSyncError(
          () =>
            t.adapter.sealSource({ scope: t.scope, sourceId: sealed.source.sourceId, manifest }),
          "E_SYNC_SOURCE_NOT_COLLECTING",
        );
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: sealed.source.sourceId }),
        sourceBefore,
        "source after the refused re-seals",
      );
      assertEquals(await t.job(sealed.job.jobId), jobBefore, "job after the refused re-seals");
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items.length, 1, "jobs");
    },
  },
  {
    name: "seal: an unknown source is E_SYNC_SOURCE_NOT_FOUND",
    async run(t) {
      const { manifest } = await manifestFor([utf8("x")]);
      await expectSyncError(
        () => t.adapter.sealSource({ scope: t.scope, sourceId: "never-created", manifest }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items, [], "jobs");
    },
  },
  {
    name: "seal: a source past its TTL is E_SYNC_SOURCE_EXPIRED, durably expired, no job",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, manifest } = await t.upload([utf8("slow"), utf8("upload")]);
      t.clock.advance(SOURCE_TTL_MS);
      await expectSyncError(
        () => t.adapter.sealSource({ scope: t.scope, sourceId: source.sourceId, manifest }),
        "E_SYNC_SOURCE_EXPIRED",
      );
      const expired = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(expired.state, "expired", "state");
      assertEquals(expired.error?.code, "E_SYNC_SOURCE_EXPIRED", "recorded error");
      assertEquals(expired.jobId, undefined, "jobId");
      assertEquals(await jobsOf(t, source.conversationId), [], "jobs");
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "chunks of an expired source");
      await expectSyncError(
        () => t.adapter.sealSource({ scope: t.scope, sourceId: source.sourceId, manifest }),
        "E_SYNC_SOURCE_EXPIRED",
      );
    },
  },
  {
    name: "seal: an empty source seals and runs to succeeded without calling the handler",
    async run(t) {
      const source = await createSource(t);
      const { source: sealed, job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest: { chunkCount: 0, byteCount: 0, digest: EMPTY_COMPOSITE_DIGEST },
      });
      assertEquals(sealed.state, "sealed", "source state");
      assertEquals(job.state, "queued", "job state");
      assertEquals(job.totalChunks, 0, "totalChunks");
      const done = await t.runToTerminal(job.jobId);
      assertEquals(done.state, "succeeded", "terminal state");
      assertEquals(done.cursor, 0, "cursor");
      assertEquals(done.appliedBytes, 0, "appliedBytes");
      assertEquals(done.error, undefined, "error");
      assertEquals(t.handler.calls.length, 0, "handler apply calls");
    },
  },
  {
    name: "seal: racing seals of one source with one manifest create one job",
    async run(t) {
      const { source, manifest } = await t.upload([utf8("race"), utf8("seal")]);
      const results = await Promise.all(
        Array.from(
          { length: 4 },
          () => t.adapter.sealSource({ scope: t.scope, sourceId: source.sourceId, manifest }),
        ),
      );
      const ids = new Set(results.map((r) => r.job.jobId));
      assertEquals(ids.size, 1, "distinct jobs returned");
      assertEquals(
        (await jobsOf(t, source.conversationId)).map((j) => j.jobId),
        [...ids],
        "jobs stored",
      );
    },
  },
  {
    name: "seal: racing seals of two sources of one conversation leave one active job",
    async run(t) {
      const conversationId = t.newConversationId();
      const a = await t.upload([utf8("a")], { conversationId });
      const b = await t.upload([utf8("b")], { conversationId });
      const [sa, sb] = await Promise.all([
        t.adapter.sealSource({ scope: t.scope, sourceId: a.source.sourceId, manifest: a.manifest }),
        t.adapter.sealSource({ scope: t.scope, sourceId: b.source.sourceId, manifest: b.manifest }),
      ]);
      const jobs = await jobsOf(t, conversationId);
      assertEquals(jobs.length, 2, "jobs");
      const active = jobs.filter((j) => j.state === "queued");
      const cancelled = jobs.filter((j) => j.state === "cancelled");
      assertEquals(active.length, 1, "active jobs");
      assertEquals(cancelled.length, 1, "superseded jobs");
      assertEquals(cancelled[0].error?.code, "E_SYNC_JOB_SUPERSEDED", "supersede error");
      assert(
        [sa.job.jobId, sb.job.jobId].includes(active[0].jobId),
        "the active job is one of the two",
      );
    },
  },
];

/** Seal cases (the failures last). */
export const sealCases: readonly ConformanceCase[] = [...sealCasesList, ...failureCases];
