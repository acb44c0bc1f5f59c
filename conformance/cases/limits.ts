/**
 * Cases `limits:`: chunk, source, metadata, manifest data and id limits, refused before
 * anything is stored.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import type { CreateSourceInput } from "../../src/contracts/inputs.ts";
import { assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  createSource,
  jobsOf,
  LIMITS,
  storedChunkCount,
  storedSource,
  within,
} from "./support.ts";

const LONG_ID = "x".repeat(65);
const MAX_ID = "y".repeat(64);

const limitList: ConformanceCase[] = [
  {
    name: "limits: a chunk over maxChunkBytes is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const tooBig = new Uint8Array(LIMITS.maxChunkBytes + 1).fill(7);
      await expectSyncError(
        () => append(t, source.sourceId, 0, tooBig),
        "E_SYNC_LIMIT_EXCEEDED",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 0, byteCount: 0 }, "received");
      const atLimit = await append(t, source.sourceId, 0, tooBig.subarray(1));
      assertEquals(atLimit.appended, true, "a chunk of exactly maxChunkBytes is accepted");
      assertEquals(atLimit.chunk.byteLength, LIMITS.maxChunkBytes, "byteLength at the limit");
    },
  },
  {
    name: "limits: an index at maxChunksPerSource is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      for (const index of [LIMITS.maxChunksPerSource, LIMITS.maxChunksPerSource + 1, 2 ** 40]) {
        await expectSyncError(
          () => append(t, source.sourceId, index, utf8("far")),
          "E_SYNC_LIMIT_EXCEEDED",
        );
      }
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const last = await append(t, source.sourceId, LIMITS.maxChunksPerSource - 1, utf8("last"));
      assertEquals(last.appended, true, "the last allowed index is accepted");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "limits: appends beyond maxSourceBytes (cumulative) are refused, nothing more stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const full = new Uint8Array(LIMITS.maxChunkBytes).fill(0x5a);
      const sha256 = await sha256Hex(full);
      const count = Math.floor(LIMITS.maxSourceBytes / LIMITS.maxChunkBytes);
      assertEquals(count * LIMITS.maxChunkBytes, LIMITS.maxSourceBytes, "suite limits divide");
      for (let index = 0; index < count; index += 8) {
        await Promise.all(
          Array.from({ length: Math.min(8, count - index) }, (_, k) =>
            t.adapter.appendChunk({
              scope: t.scope,
              sourceId: source.sourceId,
              index: index + k,
              bytes: full,
              sha256,
            })),
        );
      }
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        before.received,
        { chunkCount: count, byteCount: LIMITS.maxSourceBytes },
        "a source of exactly maxSourceBytes",
      );
      await expectSyncError(
        () => append(t, source.sourceId, count, utf8("1")),
        "E_SYNC_LIMIT_EXCEEDED",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), count, "stored chunks");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the refused append",
      );
      // Idempotent re-append of a stored chunk is not new bytes: still accepted.
      const again = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: full,
        sha256,
      });
      assertEquals(again.appended, false, "idempotent re-append at the byte limit");
    },
  },
  {
    name: "limits: metadata over maxMetadataBytes (UTF-8) is refused and no source is created",
    hooks: ["readSource"],
    async run(t) {
      // {"b":"…"} is 8 bytes plus the string.
      const fits = { b: "x".repeat(LIMITS.maxMetadataBytes - 8) };
      const over = { b: "x".repeat(LIMITS.maxMetadataBytes - 7) };
      // Fewer characters than the limit, more UTF-8 bytes: "é" is 2 bytes.
      const overInBytes = { b: "é".repeat(LIMITS.maxMetadataBytes / 2 - 2) };
      for (const [sourceId, metadata] of [["over", over], ["over-bytes", overInBytes]] as const) {
        await expectSyncError(
          () =>
            t.adapter.createSource({
              scope: t.scope,
              conversationId: t.newConversationId(),
              sourceId,
              metadata,
            }),
          "E_SYNC_LIMIT_EXCEEDED",
        );
        await expectSyncError(
          () => t.adapter.getSource({ scope: t.scope, sourceId }),
          "E_SYNC_SOURCE_NOT_FOUND",
        );
        assertEquals(await storedSource(t, sourceId), undefined, `stored source ${sourceId}`);
      }
      const created = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "fits",
        metadata: fits,
      });
      assertEquals(created.metadata, fits, "metadata of exactly the limit is accepted");
    },
  },
  {
    name: "limits: createSource refuses scope, sourceId, conversationId over maxIdLength",
    hooks: ["readSource"],
    async run(t) {
      const variants: Array<[string, CreateSourceInput, string, string]> = [
        ["scope", { scope: LONG_ID, conversationId: "c", sourceId: "s" }, LONG_ID, "s"],
        ["sourceId", { scope: t.scope, conversationId: "c", sourceId: LONG_ID }, t.scope, LONG_ID],
        [
          "conversationId",
          { scope: t.scope, conversationId: LONG_ID, sourceId: "s" },
          t.scope,
          "s",
        ],
      ];
      for (const [field, input, scope, sourceId] of variants) {
        await expectSyncError(() => t.adapter.createSource(input), "E_SYNC_LIMIT_EXCEEDED");
        assertEquals(
          await storedSource(t, sourceId, scope),
          undefined,
          `source with long ${field}`,
        );
      }
      const ok = await t.adapter.createSource({
        scope: MAX_ID,
        conversationId: MAX_ID,
        sourceId: MAX_ID,
      });
      assertEquals(ok.sourceId, MAX_ID, "ids of exactly maxIdLength are accepted");
      await append(t, MAX_ID, 0, utf8("a"), { scope: MAX_ID });
      const { manifest } = await manifestFor([utf8("a")]);
      const sealed = await t.adapter.sealSource({ scope: MAX_ID, sourceId: MAX_ID, manifest });
      assertEquals((await t.job(sealed.job.jobId, MAX_ID)).state, "queued", "job with long ids");
    },
  },
  {
    name: "limits: every operation refuses ids over maxIdLength before looking anything up",
    async run(t) {
      const { source, digests, manifest } = await t.upload([utf8("hello")]);
      const sealedOther = await t.uploadAndSeal([utf8("job")]);
      const jobBefore = await t.job(sealedOther.job.jobId);
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          "appendChunk sourceId",
          () =>
            t.adapter.appendChunk({
              scope: t.scope,
              sourceId: LONG_ID,
              index: 0,
              bytes: utf8("hello"),
              sha256: digests[0],
            }),
        ],
        [
          "appendChunk scope",
          () =>
            t.adapter.appendChunk({
              scope: LONG_ID,
              sourceId: source.sourceId,
              index: 1,
              bytes: utf8("hello"),
              sha256: digests[0],
            }),
        ],
        ["listChunks sourceId", () => t.adapter.listChunks({ scope: t.scope, sourceId: LONG_ID })],
        [
          "listChunks scope",
          () => t.adapter.listChunks({ scope: LONG_ID, sourceId: source.sourceId }),
        ],
        [
          "sealSource sourceId",
          () => t.adapter.sealSource({ scope: t.scope, sourceId: LONG_ID, manifest }),
        ],
        [
          "sealSource scope",
          () => t.adapter.sealSource({ scope: LONG_ID, sourceId: source.sourceId, manifest }),
        ],
        ["getSource sourceId", () => t.adapter.getSource({ scope: t.scope, sourceId: LONG_ID })],
        [
          "getSource scope",
          () => t.adapter.getSource({ scope: LONG_ID, sourceId: source.sourceId }),
        ],
        ["getJob jobId", () => t.adapter.getJob({ scope: t.scope, jobId: LONG_ID })],
        ["getJob scope", () => t.adapter.getJob({ scope: LONG_ID, jobId: sealedOther.job.jobId })],
        ["listJobs scope", () => t.adapter.listJobs({ scope: LONG_ID })],
        [
          "listJobs conversationId",
          () => t.adapter.listJobs({ scope: t.scope, conversationId: LONG_ID }),
        ],
        ["cancelJob jobId", () => t.adapter.cancelJob({ scope: t.scope, jobId: LONG_ID })],
        [
          "cancelJob scope",
          () => t.adapter.cancelJob({ scope: LONG_ID, jobId: sealedOther.job.jobId }),
        ],
        [
          "waitForTerminal jobId",
          () => within(t.adapter.waitForTerminal({ scope: t.scope, jobId: LONG_ID }), "wait"),
        ],
        [
          "waitForTerminal scope",
          () =>
            within(
              t.adapter.waitForTerminal({ scope: LONG_ID, jobId: sealedOther.job.jobId }),
              "wait",
            ),
        ],
      ];
      for (const [label, call] of calls) {
        try {
          await expectSyncError(call, "E_SYNC_LIMIT_EXCEEDED");
        } catch (error) {
          throw new Error(`${label}: ${(error as Error).message}`, { cause: error });
        }
      }
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "collecting", "source untouched");
      assertEquals(after.received, { chunkCount: 1, byteCount: 5 }, "received untouched");
      assertEquals(await t.job(sealedOther.job.jobId), jobBefore, "job untouched");
    },
  },
  {
    name: "limits: manifest data over maxManifestDataBytes is refused; source stays collecting",
    async run(t) {
      const { source, manifest } = await t.upload([utf8("payload")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      // {"k":"…"} is 8 bytes plus the string.
      const over = { k: "x".repeat(LIMITS.maxManifestDataBytes - 7) };
      const overInBytes = { k: "ß".repeat(LIMITS.maxManifestDataBytes / 2 - 2) };
      for (const data of [over, overInBytes]) {
        await expectSyncError(
          () =>
            t.adapter.sealSource({
              scope: t.scope,
              sourceId: source.sourceId,
              manifest: { ...manifest, data },
            }),
          "E_SYNC_LIMIT_EXCEEDED",
        );
      }
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the refused seals",
      );
      assertEquals(await jobsOf(t, source.conversationId), [], "jobs");
      const fits = { k: "x".repeat(LIMITS.maxManifestDataBytes - 8) };
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest: { ...manifest, data: fits },
      });
      assertEquals(sealed.source.manifest?.data, fits, "data of exactly the limit is accepted");
    },
  },
];

/** Limit cases. */
export const limitCases: readonly ConformanceCase[] = [
  ...limitList,
];
