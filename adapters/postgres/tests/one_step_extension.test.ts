// The store's one-step upload of an extension (`insertSealedExtension`, migration 6's
// function) on PGlite: it writes the updated base and chunk home root, the extension, its
// chunks (into the home) and its job, or nothing; it declines when any record it was
// given as read changed, the conversation has a job running or a job newer than the
// base's, or the extension's id exists; subscribers hear of the job. The engine's use of
// it, and the races, are conformance cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type Chunk,
  compositeDigest,
  type Job,
  ManualClock,
  type SealedExtension,
  sha256Hex,
  type Source,
} from "@zakstam/codex-sync-engine";
import { createPostgresAdapter, type PostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { countCalls } from "./support/recording.ts";

const SCOPE = "one-step-ext";
const CONVERSATION = "c1";

async function chunk(index: number, text: string): Promise<Chunk> {
  const bytes = new TextEncoder().encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

async function withAdapter(body: (adapter: PostgresAdapter) => Promise<void>): Promise<void> {
  // The records' times are the clock's: a job made due now is run by the next drain.
  const adapter = await createPostgresAdapter({
    handler: { apply() {} },
    mode: "manual",
    clock: new ManualClock(),
  });
  try {
    await body(adapter);
  } finally {
    await adapter.close();
  }
}

function readSource(adapter: PostgresAdapter, sourceId: string): Promise<Source | undefined> {
  return adapter.store.readOnce((tx) => tx.getSource(SCOPE, sourceId));
}

function readJob(adapter: PostgresAdapter, jobId: string): Promise<Job | undefined> {
  return adapter.store.readOnce((tx) => tx.getJob(SCOPE, jobId));
}

/** A one-line source of the conversation, uploaded and applied by the engine. */
async function appliedBase(
  adapter: PostgresAdapter,
  conversationId = CONVERSATION,
): Promise<{ base: Source; baseJob: Job }> {
  const first = await chunk(0, "a\n");
  const { source } = await adapter.uploadSource({
    scope: SCOPE,
    conversationId,
    chunks: [{ index: 0, bytes: first.bytes, sha256: first.sha256 }],
    manifest: {
      chunkCount: 1,
      byteCount: first.byteLength,
      digest: compositeDigest([first.sha256]),
    },
  });
  await adapter.drain();
  const base = (await readSource(adapter, source.sourceId))!;
  const baseJob = (await readJob(adapter, base.jobId!))!;
  assert.equal(baseJob.state, "succeeded");
  return { base, baseJob };
}

/**
 * The step for extension `sourceId` adding one chunk after `base` (whose home's root is
 * `root`), as the engine would build it (the store does not look inside the records).
 */
async function extensionOf(
  adapter: PostgresAdapter,
  sourceId: string,
  base: Source,
  baseJob: Job,
  root: Source = base,
): Promise<SealedExtension> {
  const count = base.manifest!.chunkCount;
  const added = await chunk(count, `line ${count}\n`);
  const byteCount = base.manifest!.byteCount + added.byteLength;
  const stored = await adapter.store.readOnce((tx) =>
    tx.listChunkInfos(SCOPE, root.sourceId, -1, count)
  );
  const digest = compositeDigest([...stored.map((info) => info.sha256), added.sha256]);
  const jobId = `job-of-${sourceId}`;
  // Created after the base's job (the conversation's newest then); due on the (manual)
  // clock, which stands at the base job's end.
  const now = baseJob.updatedAt + 1;
  const source: Source = {
    ...base,
    sourceId,
    state: "sealed",
    received: { chunkCount: count + 1, byteCount },
    manifest: { chunkCount: count + 1, byteCount, digest },
    base: { sourceId: base.sourceId, chunkCount: count, byteCount: base.manifest!.byteCount },
    chunkHome: root.sourceId,
    jobId,
    createdAt: now,
    updatedAt: now,
    sealedAt: now,
  };
  delete source.extendedBy;
  delete source.homeRefs;
  const job: Job = {
    ...baseJob,
    jobId,
    sourceId,
    state: "queued",
    cursor: count,
    totalChunks: count + 1,
    base: { sourceId: base.sourceId, jobId: baseJob.jobId, chunkCount: count },
    runAt: baseJob.updatedAt,
    createdAt: now,
    updatedAt: now,
  };
  delete job.completedAt;
  const linked = { ...base, extendedBy: sourceId };
  const updates = root.sourceId === base.sourceId
    ? [{ read: base, write: { ...linked, homeRefs: (base.homeRefs ?? 1) + 1 } }]
    : [
      { read: base, write: linked },
      { read: root, write: { ...root, homeRefs: (root.homeRefs ?? 1) + 1 } },
    ];
  return { source, chunks: [added], job, updates, baseJob };
}

/** The chunk texts stored at `home`, by index. */
async function homeChunks(adapter: PostgresAdapter, home: string): Promise<string[]> {
  return await adapter.store.transaction(async (tx) => {
    const texts: string[] = [];
    for (const info of await tx.listChunkInfos(SCOPE, home, -1, 100)) {
      texts.push(new TextDecoder().decode((await tx.getChunk(SCOPE, home, info.index))!.bytes));
    }
    return texts;
  });
}

test("one-step extension: the links, the extension, its chunk and its job are stored as given", async () => {
  await withAdapter(async (adapter) => {
    const { base, baseJob } = await appliedBase(adapter);
    const step = await extensionOf(adapter, "ext-1", base, baseJob);
    const heard: string[] = [];
    const unsubscribe = adapter.store.subscribeJob(SCOPE, step.job.jobId, () => heard.push("job"));
    assert.equal(await adapter.store.insertSealedExtension(step), true);
    unsubscribe();
    assert.deepEqual(heard, ["job"], "the job's subscribers were told");
    assert.deepEqual(await readSource(adapter, "ext-1"), step.source);
    assert.deepEqual(await readJob(adapter, step.job.jobId), step.job);
    assert.deepEqual(await readSource(adapter, base.sourceId), step.updates[0].write);
    assert.deepEqual(await homeChunks(adapter, base.sourceId), ["a\n", "line 1\n"]);
    // The next link's home is the first source: base and root are two records.
    await adapter.drain();
    const link = (await readSource(adapter, "ext-1"))!;
    const linkJob = (await readJob(adapter, step.job.jobId))!;
    assert.equal(linkJob.state, "succeeded");
    const root = (await readSource(adapter, base.sourceId))!;
    const next = await extensionOf(adapter, "ext-2", link, linkJob, root);
    assert.equal(await adapter.store.insertSealedExtension(next), true);
    assert.deepEqual(await readSource(adapter, "ext-1"), next.updates[0].write);
    assert.deepEqual(await readSource(adapter, base.sourceId), next.updates[1].write);
    assert.equal((await readSource(adapter, base.sourceId))!.homeRefs, 3);
    assert.deepEqual(await homeChunks(adapter, base.sourceId), ["a\n", "line 1\n", "line 2\n"]);
  });
});

/** A reason the step must decline: it changes the tables (or the step) after the reads. */
interface Decline {
  name: string;
  apply(adapter: PostgresAdapter, step: SealedExtension): Promise<SealedExtension>;
}

const DECLINES: readonly Decline[] = [
  {
    name: "the base changed after it was read",
    async apply(adapter, step) {
      const base = step.updates[0].read;
      await adapter.store.transaction((tx) =>
        tx.updateSource({ ...base, updatedAt: base.updatedAt + 1 })
      );
      return step;
    },
  },
  {
    name: "the base's job is not as read",
    apply(_adapter, step) {
      const baseJob = { ...step.baseJob, updatedAt: step.baseJob.updatedAt - 1 };
      return Promise.resolve({ ...step, baseJob });
    },
  },
  {
    name: "the conversation has a job running (created before the base's)",
    async apply(adapter, step) {
      const running: Job = {
        ...step.baseJob,
        jobId: "older-running",
        sourceId: "older",
        state: "running",
        createdAt: step.baseJob.createdAt - 1,
      };
      delete running.completedAt;
      await adapter.store.transaction((tx) => tx.insertJob(running));
      return step;
    },
  },
  {
    name: "another job of the conversation was created in the base job's millisecond",
    async apply(adapter, step) {
      await adapter.store.transaction((tx) =>
        tx.insertJob({ ...step.baseJob, jobId: "same-instant", sourceId: "other" })
      );
      return step;
    },
  },
  {
    name: "a source with the extension's id exists",
    async apply(adapter, step) {
      await adapter.store.transaction(async (tx) => {
        await tx.insertSource({ ...step.updates[0].read, sourceId: step.source.sourceId });
      });
      return step;
    },
  },
];

for (const decline of DECLINES) {
  test(`one-step extension: declined, storing nothing, when ${decline.name}`, async () => {
    await withAdapter(async (adapter) => {
      const { base, baseJob } = await appliedBase(adapter);
      const step = await decline.apply(adapter, await extensionOf(adapter, "ext-1", base, baseJob));
      const before = await readSource(adapter, base.sourceId);
      const existing = await readSource(adapter, "ext-1");
      assert.equal(await adapter.store.insertSealedExtension(step), false);
      assert.deepEqual(await readSource(adapter, base.sourceId), before, "the base is unchanged");
      assert.deepEqual(await readSource(adapter, "ext-1"), existing, "no extension stored");
      assert.equal(await readJob(adapter, step.job.jobId), undefined, "no job stored");
      assert.deepEqual(await homeChunks(adapter, base.sourceId), ["a\n"], "no chunk stored");
    });
  });
}

test("one-step extension: declined, storing nothing, when the chunk home's root changed", async () => {
  await withAdapter(async (adapter) => {
    const { base, baseJob } = await appliedBase(adapter);
    const first = await extensionOf(adapter, "ext-1", base, baseJob);
    assert.equal(await adapter.store.insertSealedExtension(first), true);
    await adapter.drain();
    const link = (await readSource(adapter, "ext-1"))!;
    const root = (await readSource(adapter, base.sourceId))!;
    const linkJob = (await readJob(adapter, link.jobId!))!;
    assert.equal(linkJob.state, "succeeded", "the base's job is current");
    const step = await extensionOf(adapter, "ext-2", link, linkJob, root);
    const changed = { ...root, updatedAt: root.updatedAt + 1 };
    await adapter.store.transaction((tx) => tx.updateSource(changed));
    assert.equal(await adapter.store.insertSealedExtension(step), false);
    assert.deepEqual(await readSource(adapter, "ext-1"), link, "the base is unchanged");
    assert.deepEqual(await readSource(adapter, base.sourceId), changed, "the root is unchanged");
    assert.equal(await readSource(adapter, "ext-2"), undefined, "no extension stored");
    assert.equal(await readJob(adapter, step.job.jobId), undefined, "no job stored");
    assert.deepEqual(await homeChunks(adapter, base.sourceId), ["a\n", "line 1\n"]);
  });
});

/** Applied bases of five conversations and a step `ext-<i>` extending each. */
async function fiveExtensions(adapter: PostgresAdapter) {
  const bases: Array<{ base: Source; baseJob: Job }> = [];
  for (const conversationId of ["c-a", "c-b", "c-c", "c-d", "c-e"]) {
    bases.push(await appliedBase(adapter, conversationId));
  }
  const steps = await Promise.all(
    bases.map(({ base, baseJob }, i) => extensionOf(adapter, `ext-${i}`, base, baseJob)),
  );
  return { bases, steps };
}

test("one-step extensions that arrive together go as one statement, each as if alone in turn", async () => {
  await withAdapter(async (adapter) => {
    const { bases, steps } = await fiveExtensions(adapter);
    // A second extension of c-c's base, after the first in the batch: its base changed.
    const again = await extensionOf(adapter, "ext-again", bases[2].base, bases[2].baseJob);
    // c-d's base changed after it was read: declined.
    const stale = bases[3].base;
    await adapter.store.transaction((tx) =>
      tx.updateSource({ ...stale, updatedAt: stale.updatedAt + 1 })
    );
    const batches = countCalls(adapter, "insert_sealed_extensions");
    const lone = countCalls(adapter, "insert_sealed_extension");
    // The first two take the store's two slots; the next ones wait for a slot together.
    const results = await Promise.all(
      [...steps.slice(0, 3), again, ...steps.slice(3)].map((step) =>
        adapter.store.insertSealedExtension(step)
      ),
    );
    assert.deepEqual(results, [true, true, true, false, false, true]);
    assert.equal(batches.count, 1, "one batch");
    assert.equal(lone.count, 2, "and the two that went alone");
    for (const [i, stored] of [[0, true], [1, true], [2, true], [3, false], [4, true]] as const) {
      const { base } = bases[i];
      assert.deepEqual(
        await homeChunks(adapter, base.sourceId),
        stored ? ["a\n", "line 1\n"] : ["a\n"],
        `chunks of ${base.conversationId}`,
      );
      assert.deepEqual(await readSource(adapter, `ext-${i}`), stored ? steps[i].source : undefined);
    }
    assert.equal(await readSource(adapter, "ext-again"), undefined);
    assert.equal(await adapter.drain(), 4, "the four extensions' jobs");
  });
});

test("one-step extensions in one statement: a call the database refuses fails alone", async () => {
  await withAdapter(async (adapter) => {
    const { bases, steps } = await fiveExtensions(adapter);
    steps[3].job.runAt = Number.MAX_VALUE; // not a bigint: the statement fails
    const batches = countCalls(adapter, "insert_sealed_extensions");
    const results = await Promise.allSettled(
      steps.map((step) => adapter.store.insertSealedExtension(step)),
    );
    assert.equal(batches.count, 1, "the three waiting went together, and were refused");
    assert.deepEqual(results.map((result) => result.status), [
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    assert.equal(await readSource(adapter, "ext-3"), undefined);
    assert.deepEqual(await homeChunks(adapter, bases[3].base.sourceId), ["a\n"]);
    for (const i of [0, 1, 2, 4]) {
      assert.equal((await readSource(adapter, `ext-${i}`))?.state, "sealed");
    }
  });
});

test("one-step extension: a key postgres cannot store is E_SYNC_INVALID_ARGUMENT", async () => {
  await withAdapter(async (adapter) => {
    const { base, baseJob } = await appliedBase(adapter);
    const step = await extensionOf(adapter, "ext-\0", base, baseJob);
    await assert.rejects(adapter.store.insertSealedExtension(step), {
      code: "E_SYNC_INVALID_ARGUMENT",
    });
    assert.deepEqual(await homeChunks(adapter, base.sourceId), ["a\n"], "no chunk stored");
    assert.deepEqual(await readSource(adapter, base.sourceId), base, "the base is unchanged");
  });
});
