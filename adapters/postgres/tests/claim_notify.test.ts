// The two costs a small source pays on the worker side and at every job write, on PGlite
// and with a fake driver: a claiming transaction reads its due jobs ahead (with their
// sources and chunks) in one statement, and NOTIFY goes out after the commit, batched,
// never inside the transaction that writes the job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, type Job, ManualClock, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPGliteDriver,
  createPostgresAdapter,
  JobNotifications,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { CLAIM_READ_AHEAD } from "../src/store.ts";
import { MAX_NOTICES_PER_STATEMENT } from "../src/notifications.ts";
import { type Recorded, recording } from "./support/recording.ts";

const encoder = new TextEncoder();

async function sealSmall(
  adapter: Awaited<ReturnType<typeof createPostgresAdapter>>,
  conversationId: string,
): Promise<Job> {
  const bytes = encoder.encode(`{"conversation":"${conversationId}"}\n`);
  const sha256 = await sha256Hex(bytes);
  const { job } = await adapter.uploadSource({
    scope: "s",
    conversationId,
    chunks: [{ index: 0, bytes, sha256 }],
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job;
}

const isClaimRead = (r: Recorded) => r.text.includes("FOR UPDATE SKIP LOCKED") && r.inTransaction;
const isPlainSourceRead = (r: Recorded) =>
  /^SELECT record::text AS record FROM \S+sources WHERE scope = \$1::text AND source_id = \$2::text$/
    .test(r.text.trim());
const isChunkRead = (r: Recorded) =>
  /SELECT idx, byte_length, sha256, item_count, bytes/.test(r.text);

for (const jobs of [5, CLAIM_READ_AHEAD * 2 + 3]) {
  test(`claims read ahead: ${jobs} due one-chunk jobs, each applied once, few statements (PGlite)`, async () => {
    const { driver, statements } = recording(await createPGliteDriver({}));
    const clock = new ManualClock();
    const applied: string[] = [];
    const adapter = await createPostgresAdapter({
      driver,
      clock,
      mode: "manual",
      handler: { apply: (chunk, ctx) => void applied.push(`${ctx.job.jobId}#${chunk.index}`) },
    });
    try {
      const sealed: Job[] = [];
      for (let i = 0; i < jobs; i++) {
        clock.advance(1);
        sealed.push(await sealSmall(adapter, `conversation-${i}`));
      }
      statements.length = 0;
      assert.equal(await adapter.drain(), jobs);
      // In claim order (runAt), each applied exactly once.
      assert.deepEqual(applied, sealed.map((job) => `${job.jobId}#0`));
      for (const job of sealed) {
        const done = await adapter.getJob({ scope: "s", jobId: job.jobId });
        assert.equal(done.state, "succeeded");
      }
      // One claim read per CLAIM_READ_AHEAD jobs, plus the one that finds nothing left
      // (drain's last pass); the sources and chunks came with them.
      const claimReads = statements.filter(isClaimRead).length;
      assert.equal(claimReads, Math.ceil((jobs + 1) / CLAIM_READ_AHEAD) + 1);
      assert.equal(statements.filter(isPlainSourceRead).length, 0);
      assert.equal(statements.filter(isChunkRead).length, 0);
    } finally {
      await adapter.close();
      await driver.close();
    }
  });
}

test("claims read ahead: the bytes of chunks the engine holds are not read again, others' are (PGlite)", async () => {
  const { driver, statements } = recording(await createPGliteDriver({}));
  const clock = new ManualClock();
  const applied = new Map<string, string>();
  const open = () =>
    createPostgresAdapter({
      driver,
      clock,
      mode: "manual",
      handler: {
        apply: (chunk, ctx) =>
          void applied.set(ctx.job.jobId, new TextDecoder().decode(chunk.bytes)),
      },
    });
  const worker = await open();
  const other = await open(); // another engine: the worker holds none of its uploads
  try {
    const own: Job[] = [];
    const others: Job[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(1);
      own.push(await sealSmall(worker, `own-${i}`));
      clock.advance(1);
      others.push(await sealSmall(other, `other-${i}`));
    }
    statements.length = 0;
    assert.equal(await worker.drain(), 6);
    const asked = statements
      .filter((r) => r.text.includes("with_bytes boolean"))
      .flatMap((r) =>
        JSON.parse(r.params[0] as string) as Array<{ source_id: string; with_bytes: boolean }>
      );
    const sourceOf = new Map([...own, ...others].map((job) => [job.sourceId, job]));
    assert.equal(asked.length, 6);
    for (const key of asked) {
      const job = sourceOf.get(key.source_id)!;
      assert.equal(key.with_bytes, others.includes(job), job.conversationId);
    }
    // Every job applied its own bytes: held ones from the engine, the others as read.
    for (const job of [...own, ...others]) {
      assert.equal(applied.get(job.jobId), `{"conversation":"${job.conversationId}"}\n`);
    }
    assert.equal(statements.filter(isChunkRead).length, 0, "no chunk read one by one");
  } finally {
    await other.close();
    await worker.close();
    await driver.close();
  }
});

test("notify after commit: no pg_notify inside a transaction; a remote hub is told (PGlite)", async () => {
  const { driver, statements } = recording(await createPGliteDriver({}));
  const clock = new ManualClock();
  const adapter = await createPostgresAdapter({
    driver,
    clock,
    mode: "manual",
    handler: { apply() {} },
  });
  // A second hub on the same database stands for another process.
  const remote = new JobNotifications(driver, adapter.tables.channel, clock, 60_000);
  await remote.start();
  const heard: string[] = [];
  remote.onJob((notice) => notice && heard.push(`${notice.jobId}:${notice.state}`));
  try {
    const job = await sealSmall(adapter, "conversation-n");
    await adapter.drain();
    await adapter.store.transaction(() => Promise.resolve()); // PGlite delivers in order
    const deadline = Date.now() + 10_000;
    while (!heard.includes(`${job.jobId}:succeeded`) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(heard.includes(`${job.jobId}:queued`), heard.join());
    assert.ok(heard.includes(`${job.jobId}:succeeded`), heard.join());
    const notifying = statements.filter((r) => r.text.includes("pg_notify"));
    assert.ok(notifying.length >= 2);
    assert.ok(notifying.every((r) => !r.inTransaction));
  } finally {
    await remote.close();
    await adapter.close();
    await driver.close();
  }
});

/** A driver whose statements wait until released, one by one. */
function heldDriver() {
  const sent: Array<{ text: string; params: readonly unknown[]; release: () => void }> = [];
  const driver: PostgresDriver = {
    name: "held",
    query: (text, params = []) =>
      new Promise((resolve) => sent.push({ text, params, release: () => resolve([]) })),
    transaction: () => Promise.reject(new Error("not used")),
    listen: () => Promise.resolve(() => Promise.resolve()),
    close: () => Promise.resolve(),
  };
  return { driver, sent };
}

function fakeJob(jobId: string, state: Job["state"] = "queued"): Job {
  return { scope: "s", jobId, state, runAt: 1 } as Job;
}

const payloadsOf = (params: readonly unknown[]): string[] =>
  (JSON.parse(params[1] as string) as string[]).map((p) => JSON.parse(p.split("\n")[0])[2]);

test("notify after commit: writes committed while a NOTIFY is in flight go out together", async () => {
  const { driver, sent } = heldDriver();
  const notifications = new JobNotifications(driver, "chan", new ManualClock(), 60_000);
  const local: string[] = [];
  notifications.onJob((notice) => notice && local.push(notice.jobId));
  notifications.publish([fakeJob("a")]);
  assert.deepEqual(local, ["a"]); // this process is told at once
  await Promise.resolve();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].params[0], "chan");
  assert.deepEqual(payloadsOf(sent[0].params), ["a"]);
  notifications.publish([fakeJob("b")]);
  notifications.publish([fakeJob("c"), fakeJob("d", "running")]);
  assert.deepEqual(local, ["a", "b", "c", "d"]);
  assert.equal(sent.length, 1, "one NOTIFY statement in flight at a time");
  sent[0].release();
  for (let i = 0; i < 10 && sent.length < 2; i++) await Promise.resolve();
  assert.equal(sent.length, 2);
  assert.deepEqual(payloadsOf(sent[1].params), ["b", "c", "d"]);
  const closing = notifications.close();
  sent[1].release();
  await closing; // close waits for what was published
  assert.equal(sent.length, 2);
});

test("notify after commit: a large backlog is split into statements of bounded size", async () => {
  const { driver, sent } = heldDriver();
  const errors: unknown[] = [];
  const notifications = new JobNotifications(
    driver,
    "chan",
    new ManualClock(),
    60_000,
    (error) => errors.push(error),
  );
  notifications.publish([fakeJob("first")]);
  const many = Array.from({ length: MAX_NOTICES_PER_STATEMENT + 7 }, (_, i) => fakeJob(`j${i}`));
  notifications.publish(many);
  const releaseAll = async () => {
    for (let i = 0; i < 50; i++) {
      sent.forEach((s) => s.release());
      await Promise.resolve();
    }
  };
  await releaseAll();
  await notifications.flushed();
  assert.equal(sent.length, 3);
  assert.equal(payloadsOf(sent[1].params).length, MAX_NOTICES_PER_STATEMENT);
  assert.equal(payloadsOf(sent[2].params).length, 7);
  assert.deepEqual(errors, []);
  await notifications.close();
});

test("notify after commit: a failed NOTIFY is reported and later ones still go out", async () => {
  let calls = 0;
  const errors: unknown[] = [];
  const driver: PostgresDriver = {
    name: "failing-once",
    query:
      () => (++calls === 1 ? Promise.reject(new Error("connection lost")) : Promise.resolve([])),
    transaction: () => Promise.reject(new Error("not used")),
    listen: () => Promise.resolve(() => Promise.resolve()),
    close: () => Promise.resolve(),
  };
  const notifications = new JobNotifications(
    driver,
    "chan",
    new ManualClock(),
    60_000,
    (error) => errors.push(error),
  );
  notifications.publish([fakeJob("a")]);
  await notifications.flushed();
  notifications.publish([fakeJob("b")]);
  await notifications.flushed();
  assert.equal(calls, 2);
  assert.equal(errors.length, 1);
  await notifications.close();
});

test("claims read ahead: an extension's next chunk is read from its base's chunk home (PGlite)", async () => {
  const { driver, statements } = recording(await createPGliteDriver({}));
  const clock = new ManualClock();
  const applied: string[] = [];
  const adapter = await createPostgresAdapter({
    driver,
    clock,
    mode: "manual",
    handler: { apply: (chunk, ctx) => void applied.push(`${ctx.source.sourceId}#${chunk.index}`) },
  });
  try {
    const lines = ["first\n", "second\n"].map((line) => encoder.encode(line));
    const digests = await Promise.all(lines.map((bytes) => sha256Hex(bytes)));
    const base = await adapter.uploadSource({
      scope: "s",
      conversationId: "c",
      chunks: [{ index: 0, bytes: lines[0], sha256: digests[0] }],
      manifest: {
        chunkCount: 1,
        byteCount: lines[0].length,
        digest: compositeDigest([digests[0]]),
      },
    });
    await adapter.drain();
    clock.advance(1);
    const extension = await adapter.uploadSource({
      scope: "s",
      conversationId: "c",
      baseSourceId: base.source.sourceId,
      chunks: [{ index: 1, bytes: lines[1], sha256: digests[1] }],
      manifest: {
        chunkCount: 2,
        byteCount: lines[0].length + lines[1].length,
        digest: compositeDigest(digests),
      },
    });
    assert.notEqual(
      extension.source.chunkHome ?? extension.source.sourceId,
      extension.source.sourceId,
    );
    statements.length = 0;
    await adapter.drain();
    const done = await adapter.getJob({ scope: "s", jobId: extension.job.jobId });
    assert.equal(done.state, "succeeded");
    assert.deepEqual(applied, [`${base.source.sourceId}#0`, `${extension.source.sourceId}#1`]);
    assert.equal(statements.filter(isChunkRead).length, 0);
  } finally {
    await adapter.close();
    await driver.close();
  }
});

/**
 * A hub whose NOTIFY statements wait in `sent`, and another process's hub listening
 * (started), to which the test delivers payloads.
 */
async function publisherAndRemote() {
  const { driver, sent } = heldDriver();
  const publisher = new JobNotifications(driver, "chan", new ManualClock(), 60_000);
  let onNotify: (payload: string) => void = () => {};
  const listening: PostgresDriver = {
    ...heldDriver().driver,
    listen: (_channel, listener) => {
      onNotify = listener;
      return Promise.resolve(() => Promise.resolve());
    },
  };
  const remote = new JobNotifications(listening, "chan", new ManualClock(), 60_000);
  await remote.start();
  return { publisher, sent, remote, deliver: (payload: string) => onNotify(payload) };
}

test("notify after commit: a write that leaves the job unfinished goes out by key and state, without the record", async () => {
  const { publisher, sent, remote, deliver } = await publisherAndRemote();
  const told: unknown[][] = [];
  for (const jobId of ["q", "r", "d"]) {
    remote.subscribeJob("s", jobId, (job, state) => told.push([jobId, job?.state, state]));
  }
  const states: unknown[] = [];
  remote.onJobState((notice) => states.push(notice && { ...notice }));
  const records: unknown[] = [];
  remote.onJob((notice) => records.push(notice?.job?.jobId));
  const queued = { ...fakeJob("q"), attempt: 0 } as Job;
  const running = { ...fakeJob("r", "running"), runAt: 7 } as Job;
  const done = { ...fakeJob("d", "succeeded"), completedAt: 9 } as Job;
  publisher.publish([queued, running, done]);
  await Promise.resolve();
  const payloads = JSON.parse(sent[0].params[1] as string) as string[];
  assert.deepEqual(payloads.map((p) => p.includes("\n")), [false, false, true]);
  for (const payload of payloads) deliver(payload);
  assert.deepEqual(told, [["q", undefined, "queued"], ["r", undefined, "running"], [
    "d",
    "succeeded",
    undefined,
  ]]);
  assert.deepEqual(states, [
    { scope: "s", jobId: "q", state: "queued", runAt: 1 },
    { scope: "s", jobId: "r", state: "running", runAt: 7 },
    { scope: "s", jobId: "d", state: "succeeded", runAt: 1 },
  ]);
  assert.deepEqual(records, [undefined, undefined, "d"]);
  // A state that is not a job state: nothing can be read from it; everyone looks again.
  const [origin] = JSON.parse(payloads[0]);
  deliver(JSON.stringify([origin, "s", "q", "finished", 1]));
  assert.deepEqual(told.slice(3), ["q", "r", "d"].map((jobId) => [jobId, undefined, undefined]));
  sent[0].release();
  await publisher.close();
  await remote.close();
});

test("notify after commit: another process's subscribers get the job as committed, where it fits", async () => {
  const { publisher, sent, remote, deliver } = await publisherAndRemote();
  const heard: Array<Job | undefined> = [];
  for (const jobId of ["small", "huge", "forged"]) {
    remote.subscribeJob("s", jobId, (job) => heard.push(job));
  }
  // onJobWrite's listeners get the record as an own property of the notice, as in this process.
  const copied: unknown[] = [];
  remote.onJob((notice) =>
    notice && copied.push({ ...notice }, JSON.parse(JSON.stringify(notice)))
  );
  const small = { ...fakeJob("small", "succeeded"), attempt: 1 } as Job;
  const huge = {
    ...fakeJob("huge", "failed"),
    error: { code: "E_SYNC_HANDLER_FAILED", message: "x".repeat(10_000), retryable: false },
  } as Job;
  publisher.publish([small, huge]);
  await Promise.resolve();
  const payloads = JSON.parse(sent[0].params[1] as string) as string[];
  for (const payload of payloads) deliver(payload);
  // A record naming another job than its key is not handed over.
  const [origin] = JSON.parse(payloads[0].split("\n")[0]);
  deliver(`${JSON.stringify([origin, "s", "forged", "succeeded", 1])}\n${JSON.stringify(small)}`);
  // A record that is not JSON is not handed over either: the notice is a prompt to read.
  deliver(`${JSON.stringify([origin, "s", "small", "succeeded", 1])}\n{not json`);
  assert.deepEqual(heard, [small, undefined, undefined, undefined]);
  assert.notEqual(heard[0], small, "a copy");
  const smallNotice = { scope: "s", jobId: "small", state: "succeeded", runAt: 1, job: small };
  assert.deepEqual(copied.slice(0, 2), [smallNotice, smallNotice]);
  sent[0].release();
  await publisher.close();
  await remote.close();
});
