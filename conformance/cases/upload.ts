/**
 * Cases `upload:` and `short job:`: the one-call upload (`uploadSource`: create, append
 * and seal at once, for adapters declaring `one-call-upload`), and short jobs (one chunk),
 * which a backend may claim, apply and finish in one transaction.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import { Capability } from "../../src/contracts/capabilities.ts";
import type { Manifest, UploadSourceResult } from "../../src/contracts/domain.ts";
import type { UploadChunkInput, UploadSourceInput } from "../../src/contracts/inputs.ts";
import type { SyncErrorCode } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, manifestFor, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import { append, createSource, jobsOf, LIMITS } from "./support.ts";

const ABC = ["a", "b", "c"].map(utf8);

async function chunksOf(parts: readonly Uint8Array[]): Promise<UploadChunkInput[]> {
  return await Promise.all(
    parts.map(async (bytes, index) => ({ index, bytes, sha256: await sha256Hex(bytes) })),
  );
}

/** The adapter's `uploadSource` (the case requires `one-call-upload`). */
function uploadSource(t: CaseContext, input: UploadSourceInput): Promise<UploadSourceResult> {
  const upload = t.adapter.uploadSource;
  assert(upload, "an adapter declaring one-call-upload must provide uploadSource");
  return upload.call(t.adapter, input);
}

/** A correct one-call upload input for `parts`. */
async function uploadInput(
  t: CaseContext,
  parts: readonly Uint8Array[],
  extra: Partial<UploadSourceInput> = {},
): Promise<UploadSourceInput> {
  const { manifest } = await manifestFor(parts);
  return {
    scope: t.scope,
    conversationId: t.newConversationId(),
    chunks: await chunksOf(parts),
    manifest,
    ...extra,
  };
}

/**
 * Asserts that of the racing uploads' jobs `jobIds` (every job of the conversation) one is
 * still queued and every other was superseded, and that only that one runs.
 */
async function assertOneJobLeft(
  t: CaseContext,
  conversationId: string,
  jobIds: readonly string[],
): Promise<void> {
  const jobs = await jobsOf(t, conversationId);
  assertEquals(jobs.map((job) => job.jobId).sort(), [...jobIds].sort(), "jobs of the conversation");
  const left = jobs.filter((job) => job.state !== "cancelled");
  assertEquals(left.map((job) => job.state), ["queued"], "jobs not superseded");
  for (const job of jobs.filter((job) => job.state === "cancelled")) {
    assertEquals(job.error?.code, "E_SYNC_JOB_SUPERSEDED", `error of ${job.jobId}`);
  }
  await t.harness.drain();
  assertEquals((await t.job(left[0].jobId)).state, "succeeded", "the job left");
  assertEquals(
    [...new Set(t.handler.applied.map((call) => call.jobId))],
    [left[0].jobId],
    "jobs whose chunks were applied",
  );
}

/** Asserts the source `sourceId` does not exist in the case's scope. */
async function assertNoSource(t: CaseContext, sourceId: string): Promise<void> {
  await expectSyncError(
    t.adapter.getSource({ scope: t.scope, sourceId }),
    "E_SYNC_SOURCE_NOT_FOUND",
  );
}

/** Stored chunk indexes of a source, through `listChunks`. */
async function storedIndexes(t: CaseContext, sourceId: string): Promise<number[]> {
  const page = await t.adapter.listChunks({ scope: t.scope, sourceId });
  return page.items.map((chunk) => chunk.index);
}

/** An input the upload must refuse before storing anything, with its code. */
interface BadUpload {
  name: string;
  code: SyncErrorCode;
  make(t: CaseContext, sourceId: string): Promise<unknown>;
}

const BAD_UPLOADS: readonly BadUpload[] = [
  {
    name: "a chunk whose bytes do not match its digest",
    code: "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
    async make(t, sourceId) {
      const input = await uploadInput(t, ABC, { sourceId });
      input.chunks[1] = { ...input.chunks[1], bytes: utf8("B") };
      return input;
    },
  },
  {
    name: "the same index twice",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const input = await uploadInput(t, ABC, { sourceId });
      input.chunks[2] = { ...input.chunks[1] };
      return input;
    },
  },
  {
    name: "an empty chunk",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const input = await uploadInput(t, [utf8("a")], { sourceId });
      input.chunks.push({ index: 1, bytes: new Uint8Array(0), sha256: await sha256Hex(utf8("")) });
      return input;
    },
  },
  {
    name: "more bytes in all than one chunk may hold",
    code: "E_SYNC_LIMIT_EXCEEDED",
    make(t, sourceId) {
      const half = new Uint8Array(Math.floor(LIMITS.maxChunkBytes / 2) + 1).fill(120);
      return uploadInput(t, [half, half], { sourceId });
    },
  },
  {
    name: "a negative index",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const input = await uploadInput(t, ABC, { sourceId });
      input.chunks[0] = { ...input.chunks[0], index: -1 };
      return input;
    },
  },
  {
    name: "chunks that are not an array",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      return { ...(await uploadInput(t, ABC, { sourceId })), chunks: { 0: "a" } };
    },
  },
  {
    name: "no manifest",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      const { manifest: _, ...input } = await uploadInput(t, ABC, { sourceId });
      return input;
    },
  },
  {
    name: "an unknown field",
    code: "E_SYNC_INVALID_ARGUMENT",
    async make(t, sourceId) {
      return { ...(await uploadInput(t, ABC, { sourceId })), extra: true };
    },
  },
];

// ---------------------------------------------------------------------------------------
// one-call upload

const oneCallUploadCases: ConformanceCase[] = [
  {
    name: "upload: one call stores and seals a source; its job applies every chunk and succeeds",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const input = await uploadInput(t, ABC);
      const result = await uploadSource(t, input);
      assertEquals(result.appended, [true, true, true], "every chunk appended");
      assertEquals(result.source.state, "sealed", "source state");
      assertEquals(result.source.manifest, input.manifest, "source manifest");
      assertEquals(result.source.received, { chunkCount: 3, byteCount: 3 }, "received");
      assertEquals(result.source.jobId, result.job.jobId, "the source names its job");
      assertEquals(result.job.totalChunks, 3, "job totalChunks");
      const stored = await t.adapter.getSource({
        scope: t.scope,
        sourceId: result.source.sourceId,
      });
      assertEquals(stored, result.source, "the stored source is the returned one");
      assertEquals(await storedIndexes(t, result.source.sourceId), [0, 1, 2], "stored chunks");
      const done = await t.runToTerminal(result.job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      assertEquals(
        t.handler.applied.map((call) => new TextDecoder().decode(call.bytes)),
        ["a", "b", "c"],
        "chunks applied in order",
      );
    },
  },
  {
    name: "upload: an empty source (no chunks) syncs to succeeded",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const result = await uploadSource(t, await uploadInput(t, []));
      assertEquals(result.appended, [], "nothing appended");
      assertEquals((await t.runToTerminal(result.job.jobId)).state, "succeeded", "job state");
      assertEquals(t.handler.calls.length, 0, "handler calls");
    },
  },
  {
    name: "upload: the same call again returns the same job and appends nothing",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const input = await uploadInput(t, ABC, { sourceId: "upload-again" });
      const first = await uploadSource(t, input);
      const second = await uploadSource(t, input);
      assertEquals(second.job.jobId, first.job.jobId, "same job");
      assertEquals(second.appended, [false, false, false], "nothing appended again");
      assertEquals((await jobsOf(t, input.conversationId)).length, 1, "one job in all");
    },
  },
  {
    name: "upload: resumes a collecting source, appending only the chunks it lacks",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const source = await createSource(t, { sourceId: "upload-resume" });
      await append(t, source.sourceId, 0, ABC[0]);
      const input = await uploadInput(t, ABC, {
        sourceId: source.sourceId,
        conversationId: source.conversationId,
      });
      const result = await uploadSource(t, input);
      assertEquals(result.appended, [false, true, true], "only chunks 1 and 2 appended");
      assertEquals(result.source.received, { chunkCount: 3, byteCount: 3 }, "received");
      assertEquals((await t.runToTerminal(result.job.jobId)).state, "succeeded", "job state");
    },
  },
  {
    name: "upload: a chunk conflicting with a stored one is refused and the call stores nothing",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const source = await createSource(t, { sourceId: "upload-conflict" });
      await append(t, source.sourceId, 0, ABC[0]);
      // Chunk 1 is new and goes in first; chunk 0 then conflicts: the whole call rolls back.
      const parts = [utf8("x"), ABC[1], ABC[2]];
      const input = await uploadInput(t, parts, {
        sourceId: source.sourceId,
        conversationId: source.conversationId,
      });
      input.chunks = [input.chunks[1], input.chunks[0], input.chunks[2]];
      await expectSyncError(uploadSource(t, input), "E_SYNC_CHUNK_CONFLICT");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "collecting", "source still collecting");
      assertEquals(after.received, { chunkCount: 1, byteCount: 1 }, "received unchanged");
      assertEquals(await storedIndexes(t, source.sourceId), [0], "only the first chunk stored");
      assertEquals((await jobsOf(t, source.conversationId)).length, 0, "no job");
    },
  },
  {
    name: "upload: a manifest the chunks do not match leaves the source failed, durably",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const input = await uploadInput(t, ABC, { sourceId: "upload-mismatch" });
      const wrong: Manifest = { ...input.manifest, digest: "0".repeat(64) };
      const error = await expectSyncError(
        uploadSource(t, { ...input, manifest: wrong }),
        "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
      );
      const source = await t.adapter.getSource({ scope: t.scope, sourceId: "upload-mismatch" });
      assertEquals(source.state, "failed", "source state");
      assertEquals(source.error?.code, error.code, "recorded error");
      assertEquals((await jobsOf(t, input.conversationId)).length, 0, "no job");
      // The same call with the right manifest cannot revive it.
      await expectSyncError(uploadSource(t, input), "E_SYNC_SOURCE_NOT_COLLECTING");
    },
  },
  {
    name: "upload: a gap in the chunks fails the seal with E_SYNC_CHUNK_INDEX_GAP",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const input = await uploadInput(t, ABC, { sourceId: "upload-gap" });
      input.chunks = [input.chunks[0], input.chunks[2]];
      await expectSyncError(uploadSource(t, input), "E_SYNC_CHUNK_INDEX_GAP");
      const source = await t.adapter.getSource({ scope: t.scope, sourceId: "upload-gap" });
      assertEquals(source.state, "failed", "source state");
    },
  },
  {
    name: "upload: a source id of another conversation is refused and nothing changes",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const source = await createSource(t, { sourceId: "upload-other" });
      const input = await uploadInput(t, ABC, { sourceId: source.sourceId });
      await expectSyncError(uploadSource(t, input), "E_SYNC_INVALID_ARGUMENT");
      assertEquals(await storedIndexes(t, source.sourceId), [], "no chunk stored");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after, source, "source unchanged");
    },
  },
  {
    name: "upload: sealing a newer source supersedes the conversation's older job",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const older = await t.uploadAndSeal(ABC);
      const conversationId = older.source.conversationId;
      const newer = await uploadSource(t, await uploadInput(t, ABC, { conversationId }));
      const cancelled = await t.job(older.job.jobId);
      assertEquals(cancelled.state, "cancelled", "older job");
      assertEquals(cancelled.error?.code, "E_SYNC_JOB_SUPERSEDED", "older job's error");
      assertEquals((await t.runToTerminal(newer.job.jobId)).state, "succeeded", "newer job");
    },
  },
  {
    name: "upload: chunks of different lengths, listed out of order, are stored and applied " +
      "as sent",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const parts = [utf8("x"), utf8("y".repeat(300)), utf8("z".repeat(7)), utf8("w".repeat(40))];
      const input = await uploadInput(t, parts);
      input.chunks = [input.chunks[2], input.chunks[0], input.chunks[3], input.chunks[1]];
      const result = await uploadSource(t, input);
      assertEquals(result.appended, [true, true, true, true], "every chunk appended");
      assertEquals((await t.runToTerminal(result.job.jobId)).state, "succeeded", "job state");
      assertEquals(
        t.handler.applied.map((call) => [call.index, new TextDecoder().decode(call.bytes)]),
        parts.map((bytes, index) => [index, new TextDecoder().decode(bytes)]),
        "each chunk's bytes applied at its index",
      );
    },
  },
  {
    name: "upload: racing one-call uploads of new sources of one conversation leave one job " +
      "to run; it superseded the others",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const conversationId = t.newConversationId();
      const inputs = await Promise.all(
        Array.from(
          { length: 6 },
          (_, i) => uploadInput(t, [utf8(`racer ${i}`)], { conversationId }),
        ),
      );
      const results = await Promise.all(inputs.map((input) => uploadSource(t, input)));
      await assertOneJobLeft(t, conversationId, results.map((result) => result.job.jobId));
    },
  },
  {
    name: "upload: a one-call upload racing a step-by-step seal of its conversation leaves one " +
      "job to run",
    requires: [Capability.oneCallUpload],
    async run(t) {
      const conversationId = t.newConversationId();
      const stepwise = await createSource(t, { conversationId });
      await append(t, stepwise.sourceId, 0, ABC[0]);
      const { manifest } = await manifestFor([ABC[0]]);
      const input = await uploadInput(t, ABC, { conversationId });
      const [sealed, uploaded] = await Promise.all([
        t.adapter.sealSource({ scope: t.scope, sourceId: stepwise.sourceId, manifest }),
        uploadSource(t, input),
      ]);
      await assertOneJobLeft(t, conversationId, [sealed.job.jobId, uploaded.job.jobId]);
    },
  },
  {
    name: "upload: racing one-call uploads through two adapter instances leave one job to run",
    requires: [Capability.oneCallUpload],
    hooks: ["peer"],
    async run(t) {
      assert(t.harness.peer, "the case needs the peer hook");
      const peer = await t.harness.peer("upload-peer");
      try {
        const peerUpload = peer.adapter.uploadSource;
        assert(peerUpload, "the peer's adapter provides uploadSource");
        const conversationId = t.newConversationId();
        const inputs = await Promise.all(
          Array.from(
            { length: 8 },
            (_, i) => uploadInput(t, [utf8(`instance racer ${i}`)], { conversationId }),
          ),
        );
        const results = await Promise.all(
          inputs.map((input, i) =>
            i % 2 === 0 ? uploadSource(t, input) : peerUpload.call(peer.adapter, input)
          ),
        );
        await assertOneJobLeft(t, conversationId, results.map((result) => result.job.jobId));
      } finally {
        await peer.close();
      }
    },
  },
  ...BAD_UPLOADS.map((bad): ConformanceCase => ({
    name: `upload: ${bad.name} is refused with ${bad.code} and stores nothing`,
    requires: [Capability.oneCallUpload],
    async run(t) {
      const sourceId = "upload-bad";
      const input = await bad.make(t, sourceId);
      await expectSyncError(uploadSource(t, input as UploadSourceInput), bad.code);
      await assertNoSource(t, sourceId);
    },
  })),
];

// ---------------------------------------------------------------------------------------
// short jobs

const shortJobCases: ConformanceCase[] = [
  {
    name: "short job: a failing one-chunk job records one attempt per handler call, then succeeds",
    async run(t) {
      t.handler.onApply((_chunk, _context, call) => {
        if (call === 0) throw new Error("first attempt fails");
      });
      const { job } = await t.uploadAndSeal([utf8("only")]);
      await t.harness.drain();
      const waiting = await t.job(job.jobId);
      assertEquals(waiting.state, "retry_wait", "job waits for its retry");
      assertEquals(waiting.attempt, 1, "one attempt recorded");
      assertEquals(waiting.cursor, 0, "nothing applied");
      assertEquals(waiting.error?.code, "E_SYNC_HANDLER_FAILED", "the handler's failure");
      assertEquals(t.handler.calls.length, 1, "one handler call");
      const done = await t.runToTerminal(job.jobId);
      assertEquals(done.state, "succeeded", "job state");
      assertEquals(done.cursor, 1, "cursor");
      assertEquals(t.handler.calls.length, 2, "two handler calls in all");
      assertEquals(t.handler.verifications.length, 1, "verified once");
    },
  },
  {
    name: "short job: a one-chunk job whose verify hook fails ends failed",
    async run(t) {
      t.handler.onVerify(() => {
        throw new Error("domain check failed");
      });
      const { job } = await t.uploadAndSeal([utf8("only")]);
      const done = await t.runToTerminal(job.jobId);
      assertEquals(done.state, "failed", "job state");
      assertEquals(done.error?.code, "E_SYNC_VERIFICATION_FAILED", "job error");
      assertEquals(t.handler.applied.length, 1, "the chunk was applied once");
    },
  },
  {
    name: "short job: a non-retryable failure of a one-chunk job fails it at once",
    async run(t) {
      t.handler.onApply(() => {
        throw Object.assign(new Error("bad record"), { retryable: false });
      });
      const { job } = await t.uploadAndSeal([utf8("only")]);
      await t.harness.drain();
      const done = await t.job(job.jobId);
      assertEquals(done.state, "failed", "job state");
      assertEquals(done.error?.retryable, false, "not retryable");
      assertEquals(t.handler.calls.length, 1, "one handler call");
    },
  },
];

/** The one-call upload and short-job cases. */
export const uploadCases: readonly ConformanceCase[] = [
  ...oneCallUploadCases,
  ...shortJobCases,
];
