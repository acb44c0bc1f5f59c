// The deployment path: sealing schedules the worker through Convex's own scheduler
// (`ctx.scheduler.runAfter`), and the worker chain reschedules itself until the job is
// done. convex-test fires scheduled functions from `setTimeout` callbacks; under Deno a
// function started from a timer callback loses track of its transaction when it calls
// `ctx.runMutation` (an AsyncLocalStorage difference; Node and Bun are fine), so this
// test fakes `setTimeout` and fires the timers from its own body, as convex-test's
// fake-timer mode does.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, sha256Hex, systemClock } from "@zakstam/codex-sync-engine";
import { createConvexSyncAdapter } from "../mod.ts";
import { createTestBackend, syncApi, type TestBackend } from "./support/backend.ts";
import { TestConvexClient } from "./support/client.ts";

/** Fires the timers of scheduled functions, and of those they schedule, until none is left. */
async function fireScheduledFunctions(t: TestBackend): Promise<void> {
  for (let fired = 0; timers.length > 0; fired++) {
    assert.ok(fired < 1_000, "the worker chain ends");
    timers.shift()!();
    await t.finishInProgressScheduledFunctions();
  }
}

const timers: Array<() => void> = [];
const realSetTimeout = globalThis.setTimeout;

beforeEach(() => {
  globalThis.setTimeout = ((callback: () => void) => {
    timers.push(callback);
    return 0;
  }) as unknown as typeof setTimeout;
});

afterEach(() => {
  globalThis.setTimeout = realSetTimeout;
  timers.length = 0;
});

test("the Convex scheduler runs the worker chain to a verified job", async () => {
  const applied: number[] = [];
  const t = createTestBackend({
    handler: {
      async apply(chunk, { ctx, job }) {
        applied.push(chunk.index);
        await ctx.db.insert("messages", {
          conversationId: job.conversationId,
          index: chunk.index,
          text: new TextDecoder().decode(chunk.bytes),
        });
      },
    },
    scheduler: undefined, // the default: Convex's scheduler
    clock: systemClock,
  });
  const adapter = createConvexSyncAdapter({ client: new TestConvexClient(t), functions: syncApi });
  const texts = ["alpha", "beta", "gamma", "delta"];
  const source = await adapter.createSource({ scope: "s", conversationId: "c" });
  const digests: string[] = [];
  for (const [index, text] of texts.entries()) {
    const bytes = new TextEncoder().encode(text);
    digests.push(await sha256Hex(bytes));
    await adapter.appendChunk({
      scope: "s",
      sourceId: source.sourceId,
      index,
      bytes,
      sha256: digests[index],
    });
  }
  const { job } = await adapter.sealSource({
    scope: "s",
    sourceId: source.sourceId,
    manifest: {
      chunkCount: texts.length,
      byteCount: texts.join("").length,
      digest: compositeDigest(digests),
    },
  });

  await fireScheduledFunctions(t);

  const done = await adapter.getJob({ scope: "s", jobId: job.jobId });
  assert.equal(done.state, "succeeded");
  assert.deepEqual(applied, [0, 1, 2, 3]);
  const scheduled = await t.run((ctx) => ctx.db.system.query("_scheduled_functions").collect());
  assert.ok(scheduled.length >= texts.length + 1, "one worker run per step at least");
  assert.ok(
    scheduled.every((run) => run.state.kind === "success"),
    `every worker run succeeded: ${JSON.stringify(scheduled.map((run) => run.state.kind))}`,
  );
  const stored = await t.run((ctx) => ctx.db.query("messages").collect());
  assert.equal(stored.length, texts.length);
});
