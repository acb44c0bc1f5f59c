/**
 * Cases `transactional apply:` and `rollback:`. Where the adapter applies inside the
 * transaction that commits the job's progress (`transactional-apply`), the suite proves
 * exactly-once effects through the `effects` hook: the handler writes an effect through
 * what the adapter spread into its context, and the suite reads back what committed.
 * The rollback cases need no hook: a failing short job must roll back only itself.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import type { Job } from "../../src/contracts/domain.ts";
import { assert, assertEquals } from "../assert.ts";
import type { CaseContext } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase, ConformanceEffects } from "../types.ts";

function effectsOf(t: CaseContext): ConformanceEffects {
  const effects = t.harness.effects;
  assert(effects, "the case needs the effects hook");
  return effects;
}

/** How many times each effect committed, sorted by effect. */
async function committed(effects: ConformanceEffects): Promise<[string, number][]> {
  const counts = new Map<string, number>();
  for (const effect of await effects.read()) counts.set(effect, (counts.get(effect) ?? 0) + 1);
  return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `[effect, 1]` for each of `effects`, sorted. */
function once(effects: readonly string[]): [string, number][] {
  return [...effects].sort().map((effect) => [effect, 1]);
}

const effectOf = (job: Job, index: number) => `${job.jobId}#${index}`;

/** Seals `count` one-chunk jobs, each of its own conversation. */
async function shortJobs(t: CaseContext, count: number, tag: string): Promise<Job[]> {
  const jobs: Job[] = [];
  for (let i = 0; i < count; i++) {
    jobs.push((await t.uploadAndSeal(textChunks(1, `${tag}-${i}`))).job);
  }
  return jobs;
}

const transactionalList: ConformanceCase[] = [
  {
    name: "transactional apply: a handler that writes its effect then throws leaves none; " +
      "success leaves one effect per chunk (step by step)",
    requires: [Capability.transactionalApply],
    hooks: ["effects"],
    async run(t) {
      const effects = effectsOf(t);
      let failed = false;
      t.handler.onApply(async (chunk, context) => {
        await effects.write(context, effectOf(context.job, chunk.index));
        if (chunk.index === 1 && !failed) {
          failed = true;
          throw new Error("fails after writing its effect");
        }
      });
      const sealed = await t.uploadAndSeal(textChunks(3, "effects"));
      await t.harness.drain();
      const waiting = await t.job(sealed.job.jobId);
      assertEquals([waiting.state, waiting.cursor], ["retry_wait", 1], "after the failed attempt");
      assertEquals(
        await committed(effects),
        once([effectOf(sealed.job, 0)]),
        "effects after the failed attempt: only the committed chunk's",
      );
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "final state");
      assertEquals(
        await committed(effects),
        once([0, 1, 2].map((index) => effectOf(sealed.job, index))),
        "one effect per chunk",
      );
    },
  },
  {
    name: "transactional apply: short jobs run together leave one effect each; a failing one " +
      "takes its effect back (batch path)",
    requires: [Capability.transactionalApply],
    hooks: ["effects"],
    async run(t) {
      const effects = effectsOf(t);
      const jobs = await shortJobs(t, 4, "batch-effects");
      const failing = jobs[1];
      let failed = false;
      t.handler.onApply(async (chunk, context) => {
        await effects.write(context, effectOf(context.job, chunk.index));
        if (context.job.jobId === failing.jobId && !failed) {
          failed = true;
          throw new Error("fails after writing its effect");
        }
      });
      await t.harness.drain();
      const others = jobs.filter((job) => job !== failing);
      for (const job of others) {
        assertEquals((await t.job(job.jobId)).state, "succeeded", `state of ${job.jobId}`);
      }
      assertEquals((await t.job(failing.jobId)).state, "retry_wait", "the failing job waits");
      assertEquals(
        await committed(effects),
        once(others.map((job) => effectOf(job, 0))),
        "effects after the first run: one per succeeded job, none of the failed attempt",
      );
      assertEquals((await t.runToTerminal(failing.jobId)).state, "succeeded", "after its retry");
      assertEquals(
        await committed(effects),
        once(jobs.map((job) => effectOf(job, 0))),
        "one effect per job",
      );
    },
  },
  {
    name: "rollback: a short job failing among others rolls back only itself; the others " +
      "succeed, unclaimed by the failed attempt",
    async run(t) {
      const jobs = await shortJobs(t, 4, "rollback");
      const failing = jobs[1];
      let failed = false;
      t.handler.onApply((_chunk, context) => {
        if (context.job.jobId === failing.jobId && !failed) {
          failed = true;
          throw new Error("the failing job's first attempt");
        }
      });
      await t.harness.drain();
      for (const job of jobs.filter((job) => job !== failing)) {
        const done = await t.job(job.jobId);
        assertEquals(
          [done.state, done.attempt, done.error, done.lease],
          ["succeeded", 0, undefined, undefined],
          `job ${job.jobId} (attempt, error and lease untouched by the other's failure)`,
        );
      }
      const waiting = await t.job(failing.jobId);
      assertEquals(waiting.state, "retry_wait", "the failing job waits to retry");
      assertEquals(waiting.attempt, 1, "one attempt recorded for its one failed call");
      assertEquals(waiting.error?.code, "E_SYNC_HANDLER_FAILED", "its error");
      assertEquals(waiting.lease, undefined, "no lease left behind");
      assertEquals(
        t.handler.calls.filter((call) => call.jobId === failing.jobId).length,
        1,
        "the failing job's handler calls",
      );
      assertEquals((await t.runToTerminal(failing.jobId)).state, "succeeded", "after its retry");
    },
  },
];

/** Transactional-apply and rollback cases. */
export const transactionalCases: readonly ConformanceCase[] = transactionalList;
