/**
 * Cases: creating sources and appending chunks.
 *
 * @module
 */

import { assertEquals } from "../assert.ts";
import { expectSyncError, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";

/** Source and append cases. */
export const sourceCases: readonly ConformanceCase[] = [
  {
    name: "append: same index and bytes again is idempotent",
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const again = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: utf8("hello"),
        sha256: digests[0],
      });
      assertEquals(again.appended, false, "appended");
      assertEquals(again.source.received.chunkCount, 1, "received chunks");
    },
  },
  {
    name: "append: a wrong scope answers exactly like a missing source",
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const input = { index: 1, bytes: utf8("hello"), sha256: digests[0] };
      const missing = await expectSyncError(
        t.adapter.appendChunk({ scope: t.scope, sourceId: "no-such-source", ...input }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      const other = await expectSyncError(
        t.adapter.appendChunk({ scope: t.otherScope, sourceId: source.sourceId, ...input }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
      assertEquals(
        other.message.replace(source.sourceId, "X"),
        missing.message.replace("no-such-source", "X"),
        "error message for another scope vs a missing source",
      );
    },
  },
];
