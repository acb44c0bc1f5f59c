// What a hub remembers of the jobs it heard announced (`knownJob`), so that a waiter
// subscribed after the announcement needs no read: from the first time it is asked, the
// last state heard since listening (re)started, with the record where the notice carried
// it (another process's write that leaves the job unfinished carries none), a terminal
// one never replaced, all forgotten on "look again", bounded in number; and on a
// database, a wait on an upload reads no job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, type Job, ManualClock, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPGliteDriver,
  createPostgresAdapter,
  JobNotifications,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { KNOWN_JOBS_PER_GENERATION } from "../src/notifications.ts";
import { recording } from "./support/recording.ts";

function fakeJob(jobId: string, state: Job["state"] = "queued", extra = {}): Job {
  return { scope: "s", jobId, state, runAt: 1, ...extra } as Job;
}

/** A hub whose NOTIFYs go nowhere, with the means to deliver other processes' payloads. */
async function listeningHub() {
  let deliver: (payload: string) => void = () => {};
  let reconnect: () => void = () => {};
  const driver: PostgresDriver = {
    name: "fake",
    query: () => Promise.resolve([]),
    transaction: () => Promise.reject(new Error("not used")),
    listen: (_channel, onNotify, onConnect) => {
      deliver = onNotify;
      reconnect = onConnect ?? (() => {});
      return Promise.resolve(() => Promise.resolve());
    },
    close: () => Promise.resolve(),
  };
  const hub = new JobNotifications(driver, "chan", new ManualClock(), 60_000);
  await hub.start();
  /** Another process's announcement of `job`, as its hub would send it. */
  const remote = new JobNotifications(driver, "chan", new ManualClock(), 60_000);
  return {
    hub,
    deliver: (job: Job) => deliver(remote.payload(job)),
    deliverRaw: (payload: string) => deliver(payload),
    remoteOrigin: remote.origin,
    reconnect: () => reconnect(),
  };
}

test("known jobs: a job this hub published is known as published, as a copy", async () => {
  const { hub } = await listeningHub();
  hub.publish([fakeJob("early")]);
  assert.equal(hub.knownJob("s", "early"), undefined, "remembered from the first question on");
  const job = fakeJob("a", "queued", { attempt: 0 });
  hub.publish([job]);
  (job as { attempt: number }).attempt = 9; // the caller's object changes later
  const known = hub.knownJob("s", "a");
  assert.deepEqual(known, { state: "queued", job: fakeJob("a", "queued", { attempt: 0 }) });
  assert.notEqual(hub.knownJob("s", "a")?.job, known?.job, "each answer a fresh copy");
  assert.equal(hub.knownJob("s", "other"), undefined);
  assert.equal(hub.knownJob("t", "a"), undefined, "scoped");
  await hub.close();
  assert.equal(hub.knownJob("s", "a"), undefined, "forgotten on close");
});

test("known jobs: the last state and record heard, but a terminal one is never replaced", async () => {
  const { hub, deliver } = await listeningHub();
  hub.knownJob("s", "a");
  hub.publish([fakeJob("a")]);
  assert.equal(hub.knownJob("s", "a")?.state, "queued");
  deliver(fakeJob("a", "running")); // another process's write: the state, no record
  assert.deepEqual(hub.knownJob("s", "a"), { state: "running" });
  hub.publish([fakeJob("a", "retry_wait")]);
  assert.equal(hub.knownJob("s", "a")?.job?.state, "retry_wait");
  deliver(fakeJob("a", "succeeded", { completedAt: 5 }));
  // Notices of several processes may arrive out of order: an older one comes late.
  deliver(fakeJob("a", "running"));
  hub.publish([fakeJob("a", "queued")]);
  assert.deepEqual(hub.knownJob("s", "a"), {
    state: "succeeded",
    job: fakeJob("a", "succeeded", { completedAt: 5 }),
  });
  await hub.close();
});

test("known jobs: a record too long for a notice leaves the state; 'look again' and reconnect forget", async () => {
  const { hub, deliver, deliverRaw, remoteOrigin, reconnect } = await listeningHub();
  hub.knownJob("s", "a");
  const huge = (state: Job["state"]) => fakeJob("a", state, { note: "x".repeat(10_000) });
  hub.publish([fakeJob("a"), fakeJob("b"), huge("queued")]);
  assert.equal(
    (hub.knownJob("s", "a")?.job as { note?: string } | undefined)?.note,
    "x".repeat(10_000),
    "this process has the record",
  );
  deliver(huge("failed")); // too long for a payload: the key only
  assert.deepEqual(hub.knownJob("s", "a"), { state: "failed" });
  deliver(fakeJob("a", "succeeded")); // never happens to a failed job; ignored all the same
  assert.deepEqual(hub.knownJob("s", "a"), { state: "failed" });
  // A record that is not this job's is no answer.
  hub.knownJob("s", "f");
  deliverRaw(
    `${JSON.stringify([remoteOrigin, "s", "f", "succeeded", 1])}\n${JSON.stringify(fakeJob("x"))}`,
  );
  assert.equal(hub.knownJob("s", "f"), undefined);
  assert.equal(hub.knownJob("s", "b")?.state, "queued");
  deliverRaw(JSON.stringify([remoteOrigin])); // "look again": anything may have changed
  assert.equal(hub.knownJob("s", "b"), undefined);
  hub.publish([fakeJob("d", "succeeded")]);
  reconnect(); // notices may have been lost while the connection was down
  assert.equal(hub.knownJob("s", "d"), undefined);
  await hub.close();
});

test("known jobs: bounded; the oldest are forgotten first", async () => {
  const { hub, deliver } = await listeningHub();
  hub.knownJob("s", "first");
  const done = (jobId: string) => fakeJob(jobId, "succeeded");
  hub.publish([done("first")]);
  for (let i = 1; i < KNOWN_JOBS_PER_GENERATION; i++) deliver(done(`j${i}`));
  assert.equal(hub.knownJob("s", "first")?.state, "succeeded", "within one generation");
  deliver(fakeJob("first", "running")); // heard again: stays terminal, not moved
  for (let i = 0; i < KNOWN_JOBS_PER_GENERATION; i++) deliver(done(`k${i}`));
  assert.equal(hub.knownJob("s", "j1")?.state, "succeeded", "the previous generation is kept");
  for (let i = 0; i < KNOWN_JOBS_PER_GENERATION; i++) deliver(done(`l${i}`));
  assert.equal(hub.knownJob("s", "first"), undefined);
  assert.equal(hub.knownJob("s", "j1"), undefined);
  assert.equal(hub.knownJob("s", "k0")?.state, "succeeded");
  await hub.close();
});

test("known jobs: a wait on a job just uploaded reads no job; one another hub finished is read (PGlite)", async () => {
  const { driver, statements } = recording(await createPGliteDriver({}));
  const jobReads = () =>
    statements.filter((r) =>
      /^SELECT record::text AS record FROM \S+jobs" WHERE scope/.test(r.text.trim())
    ).length;
  const clock = new ManualClock();
  const open = () =>
    createPostgresAdapter({ driver, clock, mode: "manual", handler: { apply() {} } });
  const adapter = await open();
  let conversations = 0;
  try {
    const bytes = new TextEncoder().encode("one line\n");
    const sha256 = await sha256Hex(bytes);
    const upload = () =>
      adapter.uploadSource({
        scope: "s",
        conversationId: `c${++conversations}`,
        chunks: [{ index: 0, bytes, sha256 }],
        manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
      });
    // The hub's first question: it remembers from then on, so this wait reads the job.
    const { job: first } = await upload();
    await adapter.drain();
    await adapter.waitForTerminal({ scope: "s", jobId: first.jobId });
    assert.equal(jobReads(), 1);
    statements.length = 0;
    const { job } = await upload();
    const waiting = adapter.waitForTerminal({ scope: "s", jobId: job.jobId });
    await adapter.drain();
    assert.equal((await waiting).state, "succeeded");
    // Finished before the wait began: the answer is the terminal record this hub heard.
    const { job: second } = await upload();
    await adapter.drain();
    assert.equal(
      (await adapter.waitForTerminal({ scope: "s", jobId: second.jobId })).state,
      "succeeded",
    );
    assert.equal(jobReads(), 0, "no job read");
    // A job this hub never heard of (a fresh hub stands for another process) is read.
    const other = await open();
    try {
      assert.equal(
        (await other.waitForTerminal({ scope: "s", jobId: job.jobId })).state,
        "succeeded",
      );
    } finally {
      await other.close();
    }
    assert.equal(jobReads(), 1);
  } finally {
    await adapter.close();
    await driver.close();
  }
});
