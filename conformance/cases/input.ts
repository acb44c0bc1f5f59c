/**
 * Cases `input:`: malformed inputs are `E_SYNC_INVALID_ARGUMENT` and change nothing.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import type {
  AppendChunkInput,
  CancelJobInput,
  CreateSourceInput,
  GcInput,
  GetJobInput,
  GetSourceInput,
  ListChunksInput,
  ListJobsInput,
  SealSourceInput,
  WaitForTerminalInput,
} from "../../src/contracts/inputs.ts";
import { assertEquals } from "../assert.ts";
import { expectSyncError, utf8 } from "../context.ts";
import {
  BAD_APPEND_INPUTS,
  BAD_CREATE_INPUTS,
  BAD_SEAL_INPUTS,
  NON_OBJECT_INPUTS,
} from "../fixtures.ts";
import type { ConformanceCase } from "../types.ts";
import { createSource, jobsOf, storedChunkCount, within } from "./support.ts";

const inputList: ConformanceCase[] = [
  {
    name: "input: createSource refuses every malformed input and creates nothing",
    async run(t) {
      const valid: CreateSourceInput = {
        scope: t.scope,
        conversationId: "conversation-bad-input",
        sourceId: "bad-input-source",
        metadata: { ok: true },
      };
      for (const entry of BAD_CREATE_INPUTS) {
        try {
          await expectSyncError(
            () => t.adapter.createSource(entry.input(valid) as CreateSourceInput),
            "E_SYNC_INVALID_ARGUMENT",
          );
          await expectSyncError(
            () => t.adapter.getSource({ scope: t.scope, sourceId: "bad-input-source" }),
            "E_SYNC_SOURCE_NOT_FOUND",
          );
        } catch (error) {
          throw new Error(`${entry.name}: ${(error as Error).message}`, { cause: error });
        }
      }
      const created = await t.adapter.createSource(valid);
      assertEquals(created.state, "collecting", "the valid input still works");
    },
  },
  {
    name: "input: appendChunk refuses every malformed input and stores nothing",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const bytes = utf8("valid chunk");
      const valid: AppendChunkInput = {
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes,
        sha256: await sha256Hex(bytes),
      };
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      for (const entry of BAD_APPEND_INPUTS) {
        try {
          await expectSyncError(
            () => t.adapter.appendChunk(entry.input(valid) as AppendChunkInput),
            "E_SYNC_INVALID_ARGUMENT",
          );
          assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
        } catch (error) {
          throw new Error(`${entry.name}: ${(error as Error).message}`, { cause: error });
        }
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the malformed appends",
      );
      const ok = await t.adapter.appendChunk(valid);
      assertEquals(ok.appended, true, "the valid input still appends");
    },
  },
  {
    name: "input: every operation refuses a non-object input",
    hooks: ["chunkCount"],
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const sealed = await t.uploadAndSeal([utf8("job")]);
      const sourceBefore = await t.adapter.getSource({
        scope: t.scope,
        sourceId: source.sourceId,
      });
      const jobBefore = await t.job(sealed.job.jobId);
      const a = t.adapter;
      const operations: Array<[string, (input: unknown) => Promise<unknown>]> = [
        ["createSource", (input) => a.createSource(input as CreateSourceInput)],
        ["appendChunk", (input) => a.appendChunk(input as AppendChunkInput)],
        ["listChunks", (input) => a.listChunks(input as ListChunksInput)],
        ["sealSource", (input) => a.sealSource(input as SealSourceInput)],
        ["getSource", (input) => a.getSource(input as GetSourceInput)],
        ["getJob", (input) => a.getJob(input as GetJobInput)],
        ["listJobs", (input) => a.listJobs(input as ListJobsInput)],
        ["cancelJob", (input) => a.cancelJob(input as CancelJobInput)],
        [
          "waitForTerminal",
          (input) => within(a.waitForTerminal(input as WaitForTerminalInput), "wait"),
        ],
        ["gc", (input) => a.gc(input as GcInput)],
      ];
      for (const [operation, call] of operations) {
        for (const entry of NON_OBJECT_INPUTS) {
          // gc's input is optional: undefined means "defaults".
          if (operation === "gc" && entry.input === undefined) continue;
          try {
            await expectSyncError(() => call(entry.input), "E_SYNC_INVALID_ARGUMENT");
          } catch (error) {
            throw new Error(`${operation}(${entry.name}): ${(error as Error).message}`, {
              cause: error,
            });
          }
        }
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        sourceBefore,
        "source untouched",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      assertEquals(await t.job(sealed.job.jobId), jobBefore, "job untouched");
    },
  },
  {
    name: "input: read and job operations refuse malformed fields",
    async run(t) {
      const { source } = await t.upload([utf8("hello")]);
      const done = await t.uploadAndSeal([utf8("done")]);
      await t.runToTerminal(done.job.jobId);
      const pending = await t.uploadAndSeal([utf8("pending")]);
      const pendingBefore = await t.job(pending.job.jobId);
      const s = t.scope;
      const q = pending.job.jobId;
      const d = done.job.jobId;
      const bad = <T>(value: unknown): T => value as T;
      const calls: Array<[string, () => Promise<unknown>]> = [
        ["getSource sourceId missing", () => t.adapter.getSource(bad({ scope: s }))],
        [
          "getSource extra field",
          () => t.adapter.getSource(bad({ scope: s, sourceId: source.sourceId, x: 1 })),
        ],
        ["getSource scope number", () => t.adapter.getSource(bad({ scope: 1, sourceId: "a" }))],
        ["getJob jobId empty", () => t.adapter.getJob({ scope: s, jobId: "" })],
        ["getJob jobId missing", () => t.adapter.getJob(bad({ scope: s }))],
        ["getJob extra field", () => t.adapter.getJob(bad({ scope: s, jobId: q, x: 1 }))],
        ["listJobs state unknown", () => t.adapter.listJobs(bad({ scope: s, state: "bogus" }))],
        ["listJobs limit 0", () => t.adapter.listJobs({ scope: s, limit: 0 })],
        ["listJobs limit fractional", () => t.adapter.listJobs({ scope: s, limit: 2.5 })],
        ["listJobs cursor malformed", () => t.adapter.listJobs({ scope: s, cursor: "garbage" })],
        [
          "listJobs conversationId empty",
          () => t.adapter.listJobs({ scope: s, conversationId: "" }),
        ],
        ["listJobs extra field", () => t.adapter.listJobs(bad({ scope: s, x: 1 }))],
        [
          "cancelJob reason number",
          () => t.adapter.cancelJob(bad({ scope: s, jobId: q, reason: 5 })),
        ],
        ["cancelJob jobId missing", () => t.adapter.cancelJob(bad({ scope: s }))],
        ["cancelJob extra field", () => t.adapter.cancelJob(bad({ scope: s, jobId: q, force: 1 }))],
        [
          "waitForTerminal timeoutMs negative",
          () => within(t.adapter.waitForTerminal({ scope: s, jobId: d, timeoutMs: -1 }), "wait"),
        ],
        [
          "waitForTerminal timeoutMs a string",
          () =>
            within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, timeoutMs: "5" })), "wait"),
        ],
        [
          "waitForTerminal signal not an AbortSignal",
          () => within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, signal: {} })), "wait"),
        ],
        [
          "waitForTerminal extra field",
          () => within(t.adapter.waitForTerminal(bad({ scope: s, jobId: d, x: 1 })), "wait"),
        ],
        ["gc limit 0", () => t.adapter.gc({ limit: 0 })],
        ["gc limit negative", () => t.adapter.gc({ limit: -5 })],
        ["gc extra field", () => t.adapter.gc(bad({ dryRun: true }))],
      ];
      for (const [label, call] of calls) {
        try {
          await expectSyncError(call, "E_SYNC_INVALID_ARGUMENT");
        } catch (error) {
          throw new Error(`${label}: ${(error as Error).message}`, { cause: error });
        }
      }
      assertEquals(await t.job(q), pendingBefore, "queued job untouched");
      assertEquals(
        (await t.adapter.getSource({ scope: s, sourceId: source.sourceId })).state,
        "collecting",
        "source untouched",
      );
    },
  },
  {
    name: "input: sealSource refuses every malformed input; the source stays collecting",
    async run(t) {
      const { source, manifest } = await t.upload([utf8("one"), utf8("two")]);
      const valid: SealSourceInput = { scope: t.scope, sourceId: source.sourceId, manifest };
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      for (const entry of BAD_SEAL_INPUTS) {
        try {
          await expectSyncError(
            () => t.adapter.sealSource(entry.input(valid) as SealSourceInput),
            "E_SYNC_INVALID_ARGUMENT",
          );
          const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
          assertEquals(after.state, "collecting", "state");
        } catch (error) {
          throw new Error(`${entry.name}: ${(error as Error).message}`, { cause: error });
        }
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the malformed seals",
      );
      assertEquals(await jobsOf(t, source.conversationId), [], "jobs");
      const sealed = await t.adapter.sealSource(valid);
      assertEquals(sealed.source.state, "sealed", "the valid input still seals");
    },
  },
];

/** Malformed-input cases. */
export const inputCases: readonly ConformanceCase[] = [
  ...inputList,
];
