/**
 * Cases `append:`: storing immutable chunks — digests, idempotent and conflicting
 * re-appends, out-of-order appends, listing chunks, appends after seal or expiry, races.
 *
 * @module
 */

import { sha256Hex } from "../../src/checksum.ts";
import type { AppendResult } from "../../src/contracts/domain.ts";
import type { ListChunksInput } from "../../src/contracts/inputs.ts";
import type { SyncError } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError, manifestFor, utf8 } from "../context.ts";
import { binaryChunks, multiByteConversation } from "../fixtures.ts";
import type { ConformanceCase } from "../types.ts";
import {
  append,
  createSource,
  MISSING_SOURCE,
  SOURCE_TTL_MS,
  storedChunk,
  storedChunkCount,
} from "./support.ts";

const appendList: ConformanceCase[] = [
  {
    name: "append: stores the chunk and reports the engine-computed digest",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const source = await createSource(t);
      t.clock.advance(50);
      const bytes = utf8("hello");
      const result = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes,
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        itemCount: 1,
      });
      assertEquals(result.appended, true, "appended");
      assertEquals(
        result.chunk,
        {
          index: 0,
          byteLength: 5,
          sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
          itemCount: 1,
        },
        "chunk info",
      );
      assertEquals(result.source.received, { chunkCount: 1, byteCount: 5 }, "received");
      assertEquals(result.source.state, "collecting", "state");
      assertEquals(result.source.updatedAt, t.clock.now(), "updatedAt");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        result.source,
        "getSource after append",
      );
      const stored = await storedChunk(t, source.sourceId, 0);
      assert(stored, "chunk stored");
      assertEquals(stored.bytes, bytes, "stored bytes");
      assertEquals(stored.sha256, result.chunk.sha256, "stored digest");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "append: same index and bytes again is idempotent and changes nothing",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      t.clock.advance(1_000);
      const again = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: utf8("hello"),
        sha256: digests[0],
      });
      assertEquals(again.appended, false, "appended");
      assertEquals(again.chunk, { index: 0, byteLength: 5, sha256: digests[0] }, "chunk info");
      assertEquals(again.source.received, { chunkCount: 1, byteCount: 5 }, "received");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the idempotent append",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
    },
  },
  {
    name: "append: other bytes at a stored index conflict; stored chunk untouched",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const { source, digests } = await t.upload([utf8("hello")]);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("world")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("hello, longer")),
        "E_SYNC_CHUNK_CONFLICT",
      );
      const stored = await storedChunk(t, source.sourceId, 0);
      assert(stored, "chunk still stored");
      assertEquals(stored.bytes, utf8("hello"), "stored bytes");
      assertEquals(stored.sha256, digests[0], "stored digest");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      assertEquals(
        await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId }),
        before,
        "source after the conflicts",
      );
      const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(listed.items.map((c) => c.sha256), [digests[0]], "listed digests");
    },
  },
  {
    name: "append: a checksum mismatch is refused and nothing is stored",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const before = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      await expectSyncError(
        () =>
          t.adapter.appendChunk({
            scope: t.scope,
            sourceId: source.sourceId,
            index: 0,
            bytes: utf8("hello"),
            sha256: "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7", // "world"
          }),
        "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "stored chunks");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after, before, "source after the refused append");
      assertEquals(after.received, { chunkCount: 0, byteCount: 0 }, "received");
      // Nothing was stored at index 0, so the right bytes are a fresh append, not a conflict.
      const retry = await append(t, source.sourceId, 0, utf8("world"));
      assertEquals(retry.appended, true, "the index is still free");
    },
  },
  {
    name: "append: out-of-order appends (3, 1, 0, 2) are accepted and the source seals",
    async run(t) {
      const chunks = ["zero", "one", "two", "three"].map(utf8);
      const source = await createSource(t);
      for (const index of [3, 1, 0, 2]) {
        const result = await append(t, source.sourceId, index, chunks[index]);
        assertEquals(result.appended, true, `appended ${index}`);
      }
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 4, byteCount: 15 }, "received");
      const { manifest } = await manifestFor(chunks);
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "state");
      assertEquals(sealed.job.totalChunks, 4, "totalChunks");
      const job = await t.runToTerminal(sealed.job.jobId);
      assertEquals(job.state, "succeeded", "job state");
      assertEquals(t.handler.applied.map((c) => c.index), [0, 1, 2, 3], "apply order");
    },
  },
  {
    name: "append: a Uint8Array view is stored as exactly its own bytes, copied",
    hooks: ["readChunk"],
    async run(t) {
      const source = await createSource(t);
      const backing = utf8("XXXXhello-viewYYYY");
      const view = backing.subarray(4, 14);
      const digest = await sha256Hex(utf8("hello-view"));
      const result = await t.adapter.appendChunk({
        scope: t.scope,
        sourceId: source.sourceId,
        index: 0,
        bytes: view,
        sha256: digest,
      });
      assertEquals(result.chunk.byteLength, 10, "byteLength of the view");
      backing.fill(0x21); // the caller reuses its buffer once the append resolved
      const stored = await storedChunk(t, source.sourceId, 0);
      assertEquals(stored?.bytes, utf8("hello-view"), "stored bytes");
      assertEquals(stored?.sha256, digest, "stored digest");
    },
  },
  {
    name: "append: multi-byte text and binary chunks are stored byte-exact",
    hooks: ["readChunk"],
    async run(t) {
      const text = multiByteConversation();
      assert(text.length >= 3, "multi-byte fixture has several chunks");
      assert(
        text.slice(1).every((chunk) => chunk[0] >= 0x80 && chunk[0] <= 0xbf),
        "every multi-byte fixture boundary splits a character",
      );
      const binary = binaryChunks();
      for (const chunks of [text, binary]) {
        const { source, digests } = await t.upload(chunks);
        const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
        assertEquals(listed.items.map((c) => c.sha256), digests, "listed digests");
        for (let index = 0; index < chunks.length; index++) {
          const stored = await storedChunk(t, source.sourceId, index);
          assertEquals(stored?.bytes, chunks[index], `stored bytes of chunk ${index}`);
        }
      }
    },
  },
  {
    name: "append: listChunks returns digests and sizes in index order",
    async run(t) {
      const chunks = ["c0", "chunk-1", "c2", "chunk three", "4"].map(utf8);
      const source = await createSource(t);
      const digests = await Promise.all(chunks.map((c) => sha256Hex(c)));
      for (const index of [4, 2, 0, 3, 1]) {
        await append(t, source.sourceId, index, chunks[index], { itemCount: index + 1 });
      }
      const page = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        page.items,
        chunks.map((c, index) => ({
          index,
          byteLength: c.length,
          sha256: digests[index],
          itemCount: index + 1,
        })),
        "listed chunks",
      );
      assertEquals(page.nextCursor, undefined, "nextCursor of the only page");
      for (const item of page.items) {
        assert(!("bytes" in item), "listChunks must not return bytes");
      }
    },
  },
  {
    name: "append: listChunks paginates with limit and cursor",
    async run(t) {
      const chunks = Array.from({ length: 7 }, (_, i) => utf8(`chunk-${i}`));
      const source = await createSource(t);
      for (const index of [6, 0, 5, 1, 4, 2, 3]) {
        await append(t, source.sourceId, index, chunks[index]);
      }
      const seen: number[][] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await t.adapter.listChunks({
          scope: t.scope,
          sourceId: source.sourceId,
          limit: 3,
          cursor,
        });
        assert(page.items.length <= 3, "page larger than its limit");
        seen.push(page.items.map((c) => c.index));
        cursor = page.nextCursor;
        assert(++pages <= 10, "listChunks never ends");
      } while (cursor !== undefined);
      assertEquals(seen, [[0, 1, 2], [3, 4, 5], [6]], "pages");
      const exact = await t.adapter.listChunks({
        scope: t.scope,
        sourceId: source.sourceId,
        limit: 7,
      });
      assertEquals(exact.items.length, 7, "a page holding everything");
      assertEquals(exact.nextCursor, undefined, "no cursor after the last page");
      const one = await t.adapter.listChunks({
        scope: t.scope,
        sourceId: source.sourceId,
        limit: 1,
      });
      assertEquals(one.items.map((c) => c.index), [0], "limit 1");
      assert(one.nextCursor !== undefined, "limit 1 of 7 has a next page");
    },
  },
  {
    name: "append: listChunks refuses a malformed cursor or limit",
    async run(t) {
      const { source } = await t.upload([utf8("a"), utf8("b")]);
      const base = { scope: t.scope, sourceId: source.sourceId };
      for (const cursor of ["not-a-cursor", "", "-1", "\u0000", "i1.5", "{}"]) {
        await expectSyncError(
          () => t.adapter.listChunks({ ...base, cursor }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      for (const limit of [0, -1, 1.5, NaN]) {
        await expectSyncError(
          () => t.adapter.listChunks({ ...base, limit }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      await expectSyncError(
        () => t.adapter.listChunks({ ...base, cursor: 1 } as unknown as ListChunksInput),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectSyncError(
        () => t.adapter.listChunks({ ...base, limit: "1" } as unknown as ListChunksInput),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectSyncError(
        () => t.adapter.listChunks({ scope: t.scope, sourceId: MISSING_SOURCE }),
        "E_SYNC_SOURCE_NOT_FOUND",
      );
    },
  },
  {
    name: "append: after seal is refused with E_SYNC_SOURCE_NOT_COLLECTING",
    hooks: ["chunkCount"],
    async run(t) {
      const sealed = await t.uploadAndSeal([utf8("a"), utf8("b")]);
      const sourceId = sealed.source.sourceId;
      const before = await t.adapter.getSource({ scope: t.scope, sourceId });
      await expectSyncError(
        () => append(t, sourceId, 2, utf8("late")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      await expectSyncError(
        () => append(t, sourceId, 0, utf8("other")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      assertEquals(await storedChunkCount(t, sourceId), 2, "stored chunks");
      assertEquals(await t.adapter.getSource({ scope: t.scope, sourceId }), before, "source");
    },
  },
  {
    name: "append: after a failed seal is refused with E_SYNC_SOURCE_NOT_COLLECTING",
    hooks: ["chunkCount"],
    async run(t) {
      const { source, manifest } = await t.upload([utf8("a"), utf8("b")]);
      await expectSyncError(
        () =>
          t.adapter.sealSource({
            scope: t.scope,
            sourceId: source.sourceId,
            manifest: { ...manifest, chunkCount: 3 },
          }),
        "E_SYNC_CHUNK_INDEX_GAP",
      );
      await expectSyncError(
        () => append(t, source.sourceId, 2, utf8("c")),
        "E_SYNC_SOURCE_NOT_COLLECTING",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 2, "stored chunks");
      const after = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(after.state, "failed", "state");
      assertEquals(after.received, { chunkCount: 2, byteCount: 2 }, "received");
    },
  },
  {
    name: "append: after the TTL is refused with E_SYNC_SOURCE_EXPIRED, source durably expired",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      await append(t, source.sourceId, 0, utf8("early"));
      t.clock.set(source.expiresAt - 1);
      const justInTime = await append(t, source.sourceId, 1, utf8("just in time"));
      assertEquals(justInTime.appended, true, "append one ms before expiry");
      t.clock.set(source.createdAt + SOURCE_TTL_MS);
      await expectSyncError(
        () => append(t, source.sourceId, 2, utf8("too late")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      const expired = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(expired.state, "expired", "state after the refused append");
      assertEquals(expired.error?.code, "E_SYNC_SOURCE_EXPIRED", "recorded error");
      assertEquals(await storedChunkCount(t, source.sourceId), 0, "chunks of an expired source");
      t.clock.advance(1);
      await expectSyncError(
        () => append(t, source.sourceId, 0, utf8("early")),
        "E_SYNC_SOURCE_EXPIRED",
      );
      assertEquals(
        (await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId })).state,
        "expired",
        "state stays expired",
      );
    },
  },
  {
    name: "append: racing appends of different bytes at one index: one stores, the rest conflict",
    hooks: ["readChunk", "chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const candidates = Array.from({ length: 6 }, (_, i) => utf8(`racer-${i}`));
      const results = await Promise.allSettled(
        candidates.map((bytes) => append(t, source.sourceId, 0, bytes)),
      );
      const won = results.flatMap((r, i) => r.status === "fulfilled" ? [i] : []);
      assertEquals(won.length, 1, "appends that succeeded");
      const winner = results[won[0]] as PromiseFulfilledResult<AppendResult>;
      assertEquals(winner.value.appended, true, "winner appended");
      for (const [i, result] of results.entries()) {
        if (i === won[0]) continue;
        assert(result.status === "rejected", "loser rejected");
        const reason = result.reason as SyncError;
        assertEquals(reason?.code, "E_SYNC_CHUNK_CONFLICT", `loser ${i} code`);
      }
      const stored = await storedChunk(t, source.sourceId, 0);
      assertEquals(stored?.bytes, candidates[won[0]], "stored bytes are the winner's");
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        read.received,
        { chunkCount: 1, byteCount: candidates[won[0]].length },
        "received",
      );
    },
  },
  {
    name: "append: racing appends of the same bytes: exactly one reports appended",
    hooks: ["chunkCount"],
    async run(t) {
      const source = await createSource(t);
      const results = await Promise.all(
        Array.from({ length: 6 }, () => append(t, source.sourceId, 0, utf8("same"))),
      );
      assertEquals(
        results.map((r) => r.appended).sort(),
        [false, false, false, false, false, true],
        "appended flags",
      );
      for (const result of results) {
        assertEquals(result.chunk.byteLength, 4, "chunk info of every racer");
      }
      assertEquals(await storedChunkCount(t, source.sourceId), 1, "stored chunks");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(read.received, { chunkCount: 1, byteCount: 4 }, "received");
    },
  },
  {
    name: "append: racing appends at different indexes are all counted",
    hooks: ["chunkCount"],
    async run(t) {
      const chunks = Array.from({ length: 24 }, (_, i) => utf8(`parallel-${i}`));
      const source = await createSource(t);
      const results = await Promise.all(
        chunks.map((bytes, index) => append(t, source.sourceId, index, bytes)),
      );
      assert(results.every((r) => r.appended), "every racer appended");
      const read = await t.adapter.getSource({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(
        read.received,
        { chunkCount: 24, byteCount: chunks.reduce((s, c) => s + c.length, 0) },
        "received",
      );
      assertEquals(await storedChunkCount(t, source.sourceId), 24, "stored chunks");
      const { manifest } = await manifestFor(chunks);
      const sealed = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(sealed.source.state, "sealed", "seals after parallel upload");
    },
  },
  {
    name: "append: listChunks pages by index over sparse, out-of-order indexes",
    async run(t) {
      const source = await createSource(t);
      const order = [9, 2, 14, 0, 5, 7];
      for (const index of order) {
        await append(t, source.sourceId, index, utf8(`sparse-${index}`), { itemCount: index + 1 });
      }
      const expected = [...order].sort((a, b) => a - b);
      for (const limit of [1, 2, 4, 6, 7]) {
        const pages: number[][] = [];
        let cursor: string | undefined;
        do {
          const page = await t.adapter.listChunks({
            scope: t.scope,
            sourceId: source.sourceId,
            limit,
            cursor,
          });
          assert(page.items.length <= limit, `a page of ${page.items.length} > limit ${limit}`);
          for (const item of page.items) {
            assertEquals(
              [item.byteLength, item.itemCount],
              [utf8(`sparse-${item.index}`).length, item.index + 1],
              `chunk ${item.index} listed with its own size and itemCount`,
            );
          }
          pages.push(page.items.map((item) => item.index));
          cursor = page.nextCursor;
          assert(pages.length <= expected.length + 1, `listChunks (limit ${limit}) never ends`);
        } while (cursor !== undefined);
        const want: number[][] = [];
        for (let at = 0; at < expected.length; at += limit) {
          want.push(expected.slice(at, at + limit));
        }
        assertEquals(pages, want, `pages of ${limit} (by index, gaps skipped)`);
      }
    },
  },
  {
    name: "append: itemCount (0 included) survives idempotent re-append, listing and the handler",
    async run(t) {
      const chunks = ["items-a", "items-b", "items-c"].map(utf8);
      const itemCounts = [2, 0, 5];
      const source = await createSource(t);
      for (const index of [2, 0, 1]) {
        const first = await append(t, source.sourceId, index, chunks[index], {
          itemCount: itemCounts[index],
        });
        assertEquals(first.chunk.itemCount, itemCounts[index], `itemCount appended at ${index}`);
      }
      for (let index = 0; index < chunks.length; index++) {
        const again = await append(t, source.sourceId, index, chunks[index], {
          itemCount: itemCounts[index],
        });
        assertEquals(again.appended, false, `re-append of ${index} is idempotent`);
        assertEquals(again.chunk.itemCount, itemCounts[index], `itemCount re-read at ${index}`);
      }
      const listed = await t.adapter.listChunks({ scope: t.scope, sourceId: source.sourceId });
      assertEquals(listed.items.map((item) => item.itemCount), itemCounts, "listed itemCounts");
      const { manifest } = await manifestFor(chunks, { itemCount: 7 });
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      const applied: (number | undefined)[] = [];
      t.handler.onApply((chunk) => {
        applied[chunk.index] = (chunk as { itemCount?: number }).itemCount;
      });
      assertEquals((await t.runToTerminal(job.jobId)).state, "succeeded", "job state");
      assertEquals(applied, itemCounts, "itemCount of each chunk the handler applied");
      // A chunk appended without itemCount has none.
      const plain = await createSource(t);
      await append(t, plain.sourceId, 0, utf8("no items"));
      const plainListed = await t.adapter.listChunks({ scope: t.scope, sourceId: plain.sourceId });
      assertEquals(plainListed.items[0].itemCount, undefined, "no itemCount when none was given");
    },
  },
];

/** Append cases. */
export const appendCases: readonly ConformanceCase[] = [
  ...appendList,
];
