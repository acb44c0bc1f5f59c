// Exactly-once effects: the host's writes through `ctx.db` commit only together with
// the progress they belong to; a failing handler or verify hook leaves no trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  compositeDigest,
  type Manifest,
  nonRetryable,
  sha256Hex,
  type SyncAdapter,
  type SyncHandler,
} from "@zakstam/codex-sync-engine";
import type { ConvexHandlerExtras } from "../server.ts";
import type { TestBackend } from "./support/backend.ts";
import { setup } from "./support/setup.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CONVERSATION = "conversation-1";
const SCOPE = "scope-1";

/** Writes one message per chunk; `failAfterWrite(index, call)` throws after the write. */
function messageHandler(
  failAfterWrite: (index: number, call: number) => Error | undefined = () => undefined,
  verify?: SyncHandler<ConvexHandlerExtras>["verify"],
): SyncHandler<ConvexHandlerExtras> {
  let calls = 0;
  return {
    async apply(chunk, { ctx, job }) {
      await ctx.db.insert("messages", {
        conversationId: job.conversationId,
        index: chunk.index,
        text: decoder.decode(chunk.bytes),
      });
      const error = failAfterWrite(chunk.index, calls++);
      if (error) throw error;
    },
    verify,
  };
}

async function messages(t: TestBackend): Promise<Array<[number, string]>> {
  const docs = await t.run((ctx) => ctx.db.query("messages").collect());
  return docs.map((doc) => [doc.index as number, doc.text as string] as [number, string])
    .sort((a, b) => a[0] - b[0]);
}

async function uploadAndSeal(
  adapter: SyncAdapter,
  texts: string[],
  extra: Partial<Manifest> = {},
): Promise<string> {
  const source = await adapter.createSource({ scope: SCOPE, conversationId: CONVERSATION });
  const digests: string[] = [];
  for (const [index, text] of texts.entries()) {
    const bytes = encoder.encode(text);
    const sha256 = await sha256Hex(bytes);
    digests.push(sha256);
    await adapter.appendChunk({ scope: SCOPE, sourceId: source.sourceId, index, bytes, sha256 });
  }
  const manifest: Manifest = {
    chunkCount: texts.length,
    byteCount: texts.reduce((sum, text) => sum + encoder.encode(text).length, 0),
    digest: compositeDigest(digests),
    ...extra,
  };
  const { job } = await adapter.sealSource({ scope: SCOPE, sourceId: source.sourceId, manifest });
  return job.jobId;
}

test("a handler failing after its write leaves no message; the retry writes it once", async () => {
  const { t, clock, adapter, drain } = setup({
    handler: messageHandler((index, call) =>
      index === 1 && call === 1 ? new Error("transient") : undefined
    ),
    policy: { retry: { baseDelayMs: 100 } },
  });
  const jobId = await uploadAndSeal(adapter, ["zero", "one", "two"]);
  await drain();
  const waiting = await adapter.getJob({ scope: SCOPE, jobId });
  assert.equal(waiting.state, "retry_wait");
  assert.equal(waiting.cursor, 1);
  assert.match(waiting.error?.message ?? "", /handler failed on chunk 1: transient/);
  assert.deepEqual(await messages(t), [[0, "zero"]], "the failed attempt's write rolled back");

  clock.set(waiting.runAt);
  await drain();
  const done = await adapter.getJob({ scope: SCOPE, jobId });
  assert.equal(done.state, "succeeded");
  assert.deepEqual(await messages(t), [[0, "zero"], [1, "one"], [2, "two"]]);
});

test("a non-retryable handler failure fails the job and keeps only committed chunks", async () => {
  const { t, adapter, drain } = setup({
    handler: messageHandler((index) =>
      index === 2 ? nonRetryable(new Error("bad record")) : undefined
    ),
  });
  const jobId = await uploadAndSeal(adapter, ["a", "b", "c", "d"]);
  await drain();
  const failed = await adapter.getJob({ scope: SCOPE, jobId });
  assert.equal(failed.state, "failed");
  assert.equal(failed.error?.code, "E_SYNC_HANDLER_FAILED");
  assert.equal(failed.error?.retryable, false);
  assert.equal(failed.cursor, 2);
  assert.deepEqual(await messages(t), [[0, "a"], [1, "b"]]);
});

test("the verify hook reads the host's writes; its own writes roll back when it fails", async () => {
  const { t, adapter, drain } = setup({
    handler: messageHandler(undefined, async ({ ctx, manifest, job }) => {
      const stored = await ctx.db.query("messages").collect();
      await ctx.db.insert("messages", { conversationId: job.conversationId, index: 99, text: "" });
      const expected = (manifest.data as { messages: number }).messages;
      if (stored.length !== expected) throw new Error(`${stored.length} of ${expected} messages`);
    }),
  });
  const good = await uploadAndSeal(adapter, ["x", "y"], { data: { messages: 2 } });
  await drain();
  assert.equal((await adapter.getJob({ scope: SCOPE, jobId: good })).state, "succeeded");
  assert.deepEqual((await messages(t)).map(([index]) => index), [0, 1, 99]);

  const bad = await uploadAndSeal(adapter, ["z"], { data: { messages: 7 } });
  await drain();
  const failed = await adapter.getJob({ scope: SCOPE, jobId: bad });
  assert.equal(failed.state, "failed");
  assert.equal(failed.error?.code, "E_SYNC_VERIFICATION_FAILED");
  assert.match(failed.error?.message ?? "", /4 of 7 messages/);
  assert.deepEqual(
    (await messages(t)).map(([index]) => index),
    [0, 0, 1, 99],
    "chunk z's message stays (its step committed), the failed hook's write does not",
  );
});

test("each worker run applies one step: a chunk, or the verification", async () => {
  const { adapter, t } = setup({ handler: messageHandler() });
  const jobId = await uploadAndSeal(adapter, ["p", "q"]);
  const { workerRef } = await import("./support/backend.ts");
  const states: string[] = [];
  for (let run = 0; run < 3; run++) {
    const report = await t.mutation(
      workerRef,
      run === 0 ? {} : {
        task: { kind: "continue", scope: SCOPE, jobId, token: 1 },
      },
    );
    assert.equal(report.kind, "ran");
    if (report.kind === "ran") states.push(`${report.state}:${report.holding}`);
  }
  assert.deepEqual(states, ["running:true", "verifying:true", "succeeded:false"]);
});
