/**
 * Cases `scale:`: a source of thousands of chunks, end to end.
 *
 * @module
 */

import { assert, assertEquals } from "../assert.ts";
import { manifestFor } from "../context.ts";
import { tinyChunks } from "../payloads.ts";
import { type ConformanceCase, DEFAULT_SCALE_CHUNKS } from "../types.ts";
import { appendParallel } from "./support.ts";

const scaleList: ConformanceCase[] = [
  {
    name: "scale: a 5 000-chunk source (or the harness's scaleChunks) uploads, seals and " +
      "applies every chunk once, in order",
    // Thousands of calls: a slow backend may take minutes where other cases take seconds.
    timeoutFactor: 5,
    async run(t) {
      const count = t.harness.scaleChunks ?? DEFAULT_SCALE_CHUNKS;
      assert(
        Number.isSafeInteger(count) && count > 0,
        `scaleChunks ${count} is a positive integer`,
      );
      const chunks = tinyChunks(count);
      const { manifest, digests } = await manifestFor(chunks);
      const source = await t.adapter.createSource({
        scope: t.scope,
        conversationId: t.newConversationId(),
      });
      const batch = 250;
      for (let start = 0; start < count; start += batch) {
        const appended = await appendParallel(
          t,
          source.sourceId,
          chunks,
          digests,
          Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i),
        );
        assert(appended.every(Boolean), `batch at ${start} stored every chunk`);
      }
      const { job } = await t.adapter.sealSource({
        scope: t.scope,
        sourceId: source.sourceId,
        manifest,
      });
      assertEquals(job.totalChunks, count, "totalChunks");
      await t.harness.drain();
      const done = await t.job(job.jobId);
      assertEquals(done.state, "succeeded", "state");
      assertEquals(done.cursor, count, "cursor");
      assertEquals(done.appliedBytes, manifest.byteCount, "appliedBytes");
      const calls = t.handler.calls;
      assertEquals(calls.length, count, "apply calls");
      for (let i = 0; i < count; i++) {
        if (calls[i].index !== i || !calls[i].ok) {
          assert(false, `call ${i} applied chunk ${calls[i].index} (ok=${calls[i].ok})`);
        }
      }
    },
  },
];

/** Scale cases. */
export const scaleCases: readonly ConformanceCase[] = [
  ...scaleList,
];
