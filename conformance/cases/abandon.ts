/**
 * Cases: abandoning a collecting source (`abandonSource`), as a client does with a
 * payload that can never be sealed: it expires at once and its chunks are deleted.
 *
 * @module
 */

import type { Source } from "../../src/contracts/domain.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import { append, createSource, storedChunkCount } from "./support.ts";

/** The adapter's `abandonSource` (every adapter has it). */
function abandon(t: CaseContext, sourceId: string, scope: string = t.scope): Promise<Source> {
  const operation = t.adapter.abandonSource;
  assert(operation, "the adapter must provide abandonSource");
  return operation.call(t.adapter, { scope, sourceId });
}

/** Case names, stable: mutants and skips refer to them. */
export const abandonCases: readonly ConformanceCase[] = [
  {
    name: "abandon: a collecting source expires at once and its chunks are deleted",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      await append(t, source.sourceId, 0, utf8("zero"));
      await append(t, source.sourceId, 1, utf8("one"));
      const abandoned = await abandon(t, source.sourceId);
      assertEquals(abandoned.state, "expired", "state after abandon");
      assertEquals(abandoned.error?.code, "E_SYNC_SOURCE_EXPIRED", "recorded error");
      assert(abandoned.chunksPurgedAt !== undefined, "chunksPurgedAt is set");
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "chunks stored");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        abandoned,
        "the stored source is what abandonSource answered",
      );
      await expectSyncError(append(t, source.sourceId, 2, utf8("two")), "E_SYNC_SOURCE_EXPIRED");
      // Abandoning again answers the expired source, unchanged.
      assertEquals(await abandon(t, source.sourceId), abandoned, "abandon again");
      const report = await t.adapter.gc();
      assertEquals(report.expiredSources, 0, "gc finds nothing more to expire");
    },
  },
  {
    name: "abandon: a sealed or failed source is E_SYNC_SOURCE_NOT_COLLECTING and unchanged",
    async run(t) {
      const sealed = await t.uploadAndSeal([utf8("kept")]);
      const error = await expectSyncError(
        abandon(t, sealed.source.sourceId),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      assertEquals(error.retryable, false, "retryable");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: sealed.source.sourceId });
      assertEquals(after.state, "sealed", "state after the refused abandon");
      const failing = await t.upload([utf8("a")]);
      await expectSyncError(
        t.adapter.sealSource({
          scope: t.scope,
          sourceId: failing.source.sourceId,
          manifest: { ...failing.manifest, byteCount: failing.manifest.byteCount + 1 },
        }),
        "E_SYNC_MANIFEST_MISMATCH",
      );
      await expectSyncError(abandon(t, failing.source.sourceId), "E_SYNC_SOURCE_NOT_COLLECTING");
    },
  },
  {
    name: "abandon: a missing source or one of another scope is E_SYNC_SOURCE_NOT_FOUND",
    async run(t) {
      const source = await createSource(t);
      await expectSyncError(abandon(t, "missing-source-0"), "E_SYNC_SOURCE_NOT_FOUND");
      await expectSyncError(
        abandon(t, source.sourceId, t.otherScope),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const untouched = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(untouched.state, "collecting", "the other scope's call changed nothing");
    },
  },
  {
    name: "abandon: bad input is E_SYNC_INVALID_ARGUMENT",
    async run(t) {
      for (
        const input of [
          {},
          { scope: t.scope },
          { scope: "", sourceId: "s" },
          { scope: t.scope, sourceId: 3 },
          { scope: t.scope, sourceId: "s", extra: true },
        ]
      ) {
        const operation = t.adapter.abandonSource;
        assert(operation, "the adapter must provide abandonSource");
        await expectSyncError(
          // deno-lint-ignore no-explicit-any
          operation.call(t.adapter, input as any),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
    },
  },
];
