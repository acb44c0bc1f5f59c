/**
 * Cases `create:`: creating sources — the new record, generated ids, idempotent
 * re-create, a sourceId taken by another conversation, metadata.
 *
 * @module
 */

import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import { append, createSource, SOURCE_TTL_MS, storedChunkCount, storedSource } from "./support.ts";

const createList: ConformanceCase[] = [
  {
    name: "create: a new source is collecting, nothing received, expiresAt = now + TTL",
    async run(t) {
      t.clock.advance(1234);
      const now = t.clock.now();
      const conversationId = t.newConversationId();
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId,
        sourceId: "source-1",
      });
      assertEquals(source.sourceId, "source-1", "sourceId");
      assertEquals(source.scope, t.scope, "scope");
      assertEquals(source.conversationId, conversationId, "conversationId");
      assertEquals(source.state, "collecting", "state");
      assertEquals(source.received, { chunkCount: 0, byteCount: 0 }, "received");
      assertEquals(source.createdAt, now, "createdAt");
      assertEquals(source.updatedAt, now, "updatedAt");
      assertEquals(source.expiresAt, now + SOURCE_TTL_MS, "expiresAt");
      for (const field of ["manifest", "jobId", "error", "sealedAt", "metadata"] as const) {
        assertEquals(source[field], undefined, `${field} of a new source`);
      }
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: "source-1" });
      assertEquals(read, source, "getSource after create");
      const chunks = await t.adapter.listChunks({ scope: t.scope, sourceId: "source-1" });
      assertEquals(chunks.items, [], "chunks of a new source");
      assertEquals(chunks.nextCursor, undefined, "nextCursor of an empty listing");
    },
  },
  {
    name: "create: without a sourceId, each source gets its own generated id",
    async run(t) {
      const conversationId = t.newConversationId();
      const a = await t.adapter.createSource({ scope: t.scope, conversationId });
      const b = await t.adapter.createSource({ scope: t.scope, conversationId });
      assert(typeof a.sourceId === "string" && a.sourceId.length > 0, "generated sourceId");
      assert(a.sourceId !== b.sourceId, "two creates without a sourceId share an id");
      assertEquals(a.state, "collecting", "state of a");
      assertEquals(b.state, "collecting", "state of b");
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: a.sourceId })).sourceId,
        a.sourceId,
        "getSource of the generated id",
      );
    },
  },
  {
    name: "create: the same sourceId and conversation returns the existing source unchanged",
    hooks: ["chunkCount"],
    async run(t) {
      const conversationId = t.newConversationId();
      const first = await createSource(t, { conversationId, sourceId: "resumable" });
      await append(t, "resumable", 0, utf8("first chunk"));
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: "resumable" });
      t.clock.advance(5_000);
      const again = await t.adapter.createSource({
        scope: t.scope,
        conversationId,
        sourceId: "resumable",
      });
      assertEquals(again, before, "second create returns the stored source");
      assertEquals(again.createdAt, first.createdAt, "createdAt kept");
      assertEquals(again.expiresAt, first.expiresAt, "expiresAt kept");
      assertEquals(again.received, { chunkCount: 1, byteCount: 11 }, "received kept");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "resumable" }),
        before,
        "stored source after the second create",
      );
      assertEquals(await storedChunkCount(t, "resumable"), 1, "stored chunks kept");
    },
  },
  {
    name: "create: the same sourceId with another conversation is refused, source untouched",
    async run(t) {
      const conversationId = t.newConversationId();
      await createSource(t, { conversationId, sourceId: "taken" });
      await append(t, "taken", 0, utf8("kept"));
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: "taken" });
      t.clock.advance(10);
      await expectSyncError(
        () =>
          t.adapter.createSource({
            scope: t.scope,
            conversationId: t.newConversationId(),
            sourceId: "taken",
          }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: "taken" }),
        before,
        "source after the refused create",
      );
    },
  },
  {
    name: "create: metadata is stored and returned as given",
    hooks: ["readSource"],
    async run(t) {
      const metadata = {
        title: "Refactor 🚀 — 漢字 — שלום",
        turns: 3,
        ratio: 0.5,
        negative: -7,
        archived: false,
        tags: ["a", "b", { nested: [1, 2, null] }],
        nothing: null,
        empty: {},
      };
      const created = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "with-metadata",
        metadata,
      });
      assertEquals(created.metadata, metadata, "metadata returned by create");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: "with-metadata" });
      assertEquals(read.metadata, metadata, "metadata returned by getSource");
      assertEquals(
        (await storedSource(t, "with-metadata"))?.metadata,
        metadata,
        "metadata stored in the backend",
      );
      const scalar = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
        sourceId: "scalar-metadata",
        metadata: "just a string",
      });
      assertEquals(scalar.metadata, "just a string", "scalar metadata");
    },
  },
];

/** Create cases. */
export const createCases: readonly ConformanceCase[] = [
  ...createList,
];
