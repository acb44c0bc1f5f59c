/**
 * Cases `list:`: `listJobs` — newest first, keyset pagination, filters.
 *
 * @module
 */

import type { Job, JobState } from "../../src/contracts/domain.ts";
import type { ListJobsInput } from "../../src/contracts/inputs.ts";
import { nonRetryable } from "../../src/errors.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import { ids, listAll, newestFirst } from "./support.ts";

/** Seals one job per entry of `offsets` (ms after now), in that order. */
async function sealJobsAt(t: CaseContext, offsets: readonly number[]): Promise<Job[]> {
  const start = t.clock.now();
  const jobs: Job[] = [];
  for (const offset of offsets) {
    t.clock.set(start + offset);
    jobs.push((await t.uploadAndSeal(textChunks(1, `list-${jobs.length}`))).job);
  }
  return jobs;
}

const listList: ConformanceCase[] = [
  {
    name: "list: jobs come newest first, ties broken by jobId descending",
    async run(t) {
      const jobs = await sealJobsAt(t, [0, 1_000, 2_000, 3_000, 3_000, 3_000, 3_000, 4_000]);
      const expected = [...jobs].sort(newestFirst);
      const page = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(ids(page.items), ids(expected), "listing order");
      assertEquals(page.nextCursor, undefined, "a single page has no nextCursor");
      assertEquals(page.items[0].createdAt, t.clock.now(), "the newest job comes first");
      const again = await t.adapter.listJobs({ scope: t.scope });
      assertEquals(ids(again.items), ids(page.items), "the order is stable");
    },
  },
  {
    name: "list: pagination with a limit returns every job exactly once",
    async run(t) {
      const jobs = await sealJobsAt(t, [0, 1_000, 1_000, 1_000, 2_000, 3_000, 3_000]);
      const expected = ids([...jobs].sort(newestFirst));
      for (const limit of [1, 2, 3, 7, 50]) {
        const all = await listAll(t, { scope: t.scope, limit });
        assertEquals(ids(all), expected, `pages of ${limit}`);
      }
      // Writes between pages neither repeat nor skip a job: a newer job sorts before the
      // cursor, and jobs changing state keep their place.
      let added = false;
      const all = await listAll(t, { scope: t.scope, limit: 3 }, async (page) => {
        if (page !== 0) return;
        t.clock.advance(1_000);
        await t.uploadAndSeal(textChunks(1, "late"));
        added = true;
        await t.harness.drain();
      });
      assert(added, "the listing had a second page");
      assertEquals(ids(all), expected, "pages while jobs are added and run");
      assertEquals((await t.adapter.listJobs({ scope: t.scope })).items.length, 8, "jobs in all");
    },
  },
  {
    name: "list: filters by conversation and by state, within the scope only",
    async run(t) {
      const conversation1 = t.newConversationId();
      const conversation2 = t.newConversationId();
      const conversation3 = t.newConversationId();
      const chunks = textChunks(1, "filter");
      const sealAt = async (conversationId: string, scope = t.scope) => {
        t.clock.advance(1_000);
        return (await t.uploadAndSeal(chunks, { conversationId, scope })).job;
      };
      const j1 = await sealAt(conversation1);
      const j2 = await sealAt(conversation1); // supersedes j1
      const j3 = await sealAt(conversation2);
      const j4 = await sealAt(conversation3);
      const other = await sealAt(conversation1, t.otherScope);
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === j4.jobId) throw nonRetryable(new Error("fatal"));
      });
      await t.harness.drain();
      const j5 = await sealAt(conversation2);
      const list = async (filter: Partial<ListJobsInput>, scope = t.scope) =>
        ids((await t.adapter.listJobs({ scope, ...filter })).items);
      assertEquals(await list({}), ids([j5, j4, j3, j2, j1]), "all jobs of the scope");
      assertEquals(await list({ conversationId: conversation1 }), ids([j2, j1]), "conversation 1");
      assertEquals(await list({ conversationId: conversation2 }), ids([j5, j3]), "conversation 2");
      assertEquals(await list({ conversationId: "no-such-conversation" }), [], "unknown");
      assertEquals(await list({ state: "queued" }), ids([j5]), "queued");
      assertEquals(await list({ state: "succeeded" }), ids([j3, j2]), "succeeded");
      assertEquals(await list({ state: "failed" }), ids([j4]), "failed");
      assertEquals(await list({ state: "cancelled" }), ids([j1]), "cancelled");
      assertEquals(await list({ state: "running" }), [], "running");
      assertEquals(
        await list({ conversationId: conversation2, state: "succeeded" }),
        ids([j3]),
        "conversation 2 and succeeded",
      );
      assertEquals(await list({}, t.otherScope), ids([other]), "the other scope");
      assertEquals(
        await list({ conversationId: conversation1, state: "succeeded" }, t.otherScope),
        ids([other]),
        "the other scope, filtered",
      );
      const filteredPages = await listAll(t, { scope: t.scope, state: "succeeded", limit: 1 });
      assertEquals(ids(filteredPages), ids([j3, j2]), "filtered pages");
    },
  },
  {
    name: "list: malformed cursors and out-of-range limits are E_SYNC_INVALID_ARGUMENT",
    async run(t) {
      await sealJobsAt(t, [0, 1, 2]);
      for (const cursor of ["not-a-cursor", "", "j", "jabc:x", "i0", "%%%"]) {
        await expectSyncError(
          () => t.adapter.listJobs({ scope: t.scope, cursor }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      for (const limit of [0, 1001, -1, 2.5, Number.NaN]) {
        await expectSyncError(
          () => t.adapter.listJobs({ scope: t.scope, limit }),
          "E_SYNC_INVALID_ARGUMENT",
        );
      }
      await expectSyncError(
        () => t.adapter.listJobs({ scope: t.scope, state: "bogus" as JobState }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      assertEquals((await t.adapter.listJobs({ scope: t.scope, limit: 1 })).items.length, 1, "1");
      assertEquals(
        (await t.adapter.listJobs({ scope: t.scope, limit: 1000 })).items.length,
        3,
        "limit 1000",
      );
    },
  },
];

/** Job listing cases. */
export const listCases: readonly ConformanceCase[] = [
  ...listList,
];
