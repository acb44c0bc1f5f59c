// Pipelined writes on a server (postgres.js): the store sends the writes whose replies
// the engine does not read without waiting for them, COMMIT included. A write that fails
// aborts the transaction, so nothing of it commits, and its error is what the caller sees,
// whether a later read or the COMMIT comes next. Job updates made back to back are held
// and go as one statement, in front of whatever statement comes next.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { type Chunk, isSyncError, type Job, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresAdapter,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";
import { type Recorded, recording } from "./support/recording.ts";

const server = await startTestServer();
after(() => server.dispose());

let schemas = 0;
async function withServerAdapter(body: (adapter: PostgresAdapter) => Promise<void>) {
  const adapter = await createPostgresAdapter({
    connectionString: server.url,
    schema: `pipelined_${Date.now().toString(36)}_${++schemas}`,
    handler: { apply() {} },
    mode: "manual",
  });
  try {
    await body(adapter);
  } finally {
    await adapter.close();
  }
}

async function chunk(text: string, index = 0): Promise<Chunk> {
  const bytes = new TextEncoder().encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

async function chunkCount(adapter: PostgresAdapter): Promise<number> {
  const [row] = await adapter.driver.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM ${adapter.tables.chunks}`,
  );
  return row.n;
}

test("the postgres.js driver declares that it pipelines", async () => {
  const driver = createPostgresJsDriver({ connectionString: server.url, options: { max: 1 } });
  try {
    assert.equal(driver.pipelines, true);
  } finally {
    await driver.close();
  }
});

for (const next of ["a read", "the commit"] as const) {
  test(`a failing pipelined write followed by ${next}: nothing commits, its error surfaces`, async () => {
    await withServerAdapter(async (adapter) => {
      const first = await chunk("first");
      const again = await chunk("first, again");
      const outcome = adapter.store.transaction(async (tx) => {
        await tx.insertChunk("s", "src", first); // sent, not waited for
        await tx.insertChunk("s", "src", { ...again, index: 0 }); // same key: fails
        if (next === "a read") await tx.getSource("s", "src");
        return "returned";
      });
      await assert.rejects(outcome, (error: unknown) => {
        assert.ok(isSyncError(error), String(error));
        assert.match(error.message, /insertChunk/);
        return true;
      });
      assert.equal(await chunkCount(adapter), 0);
      // The lane is usable afterwards: a good transaction commits.
      await adapter.store.transaction(async (tx) => {
        await tx.insertChunk("s", "src", first);
        await tx.insertChunk("s", "src", await chunk("second", 1));
      });
      assert.equal(await chunkCount(adapter), 2);
    });
  });
}

test("pipelined writes are seen by the reads after them in the same transaction", async () => {
  await withServerAdapter(async (adapter) => {
    const infos = await adapter.store.transaction(async (tx) => {
      for (let i = 0; i < 5; i++) await tx.insertChunk("s", "src", await chunk(`line ${i}`, i));
      return await tx.listChunkInfos("s", "src", -1, 10);
    });
    assert.deepEqual(infos.map((info) => info.index), [0, 1, 2, 3, 4]);
  });
});

/** A server adapter whose statements are recorded. */
async function withRecordedAdapter(
  body: (adapter: PostgresAdapter, statements: Recorded[]) => Promise<void>,
) {
  const { driver, statements } = recording(
    createPostgresJsDriver({ connectionString: server.url, options: { max: 2 } }),
  );
  const adapter = await createPostgresAdapter({
    driver,
    schema: `held_${Date.now().toString(36)}_${++schemas}`,
    handler: { apply() {} },
    mode: "manual",
  });
  try {
    await body(adapter, statements);
  } finally {
    await adapter.close();
    await driver.close();
  }
}

function jobRecord(jobId: string, state: Job["state"], extra: Partial<Job> = {}): Job {
  return {
    scope: "s",
    jobId,
    sourceId: `src-${jobId}`,
    conversationId: `c-${jobId}`,
    state,
    runAt: 1,
    createdAt: 1,
    ...extra,
  } as Job;
}

async function storedJobs(adapter: PostgresAdapter) {
  return await adapter.driver.query<{ job_id: string; state: string; record: string }>(
    `SELECT job_id, state, completed_at, record::text AS record FROM ${adapter.tables.jobs}
      ORDER BY job_id`,
  );
}

const isJobUpdate = (text: string) => /UPDATE \S+jobs"|update_jobs/.test(text);

test("held job updates: updates made back to back go as one statement, in order, before COMMIT", async () => {
  await withRecordedAdapter(async (adapter, statements) => {
    await adapter.store.transaction(async (tx) => {
      for (const id of ["a", "b", "c"]) await tx.insertJob(jobRecord(id, "queued"));
    });
    statements.length = 0;
    const a = jobRecord("a", "succeeded", { completedAt: 7 });
    const b = jobRecord("b", "running", { runAt: 50 });
    await adapter.store.transaction(async (tx) => {
      await tx.updateJob(jobRecord("a", "running"));
      await tx.updateJob(b);
      await tx.updateJob(a); // the same job again: its last update is what is stored
    });
    const updates = statements.filter((s) => isJobUpdate(s.text));
    assert.deepEqual(updates.map((s) => s.inTransaction), [true]);
    assert.match(updates[0].text, /update_jobs/);
    assert.equal(
      statements.filter((s) => s.inTransaction).length,
      1,
      "nothing else in the transaction",
    );
    const rows = await storedJobs(adapter);
    assert.deepEqual(rows.map((row) => [row.job_id, row.state]), [
      ["a", "succeeded"],
      ["b", "running"],
      ["c", "queued"],
    ]);
    assert.equal(rows[0].record, JSON.stringify(a), "the record stored as updateJob stores it");
    assert.equal(rows[1].record, JSON.stringify(b));
    assert.equal(Number((rows[0] as { completed_at?: unknown }).completed_at), 7);
  });
});

test("held job updates: sent before any later statement, the handler's own included", async () => {
  await withRecordedAdapter(async (adapter, statements) => {
    await adapter.store.transaction((tx) => tx.insertJob(jobRecord("a", "queued")));
    statements.length = 0;
    const seen = await adapter.store.transaction(async (tx) => {
      await tx.updateJob(jobRecord("a", "running"));
      const read = await tx.getJob("s", "a");
      await tx.updateJob(jobRecord("a", "retry_wait"));
      const [row] = await tx.extras.sql.query<{ state: string }>(
        `SELECT state FROM ${adapter.tables.jobs} WHERE job_id = 'a'`,
      );
      await tx.updateJob(jobRecord("a", "queued", { attempt: 2 } as Partial<Job>));
      return [read?.state, row.state];
    });
    assert.deepEqual(seen, ["running", "retry_wait"]);
    assert.deepEqual(
      statements.filter((s) => s.inTransaction).map((
        s,
      ) => (isJobUpdate(s.text) ? "update" : "read")),
      ["update", "read", "update", "read", "update"],
    );
    assert.equal((await storedJobs(adapter))[0].state, "queued");
  });
});

test("held job updates: a key postgres cannot store is refused at the call; nothing commits", async () => {
  await withRecordedAdapter(async (adapter) => {
    await adapter.store.transaction((tx) => tx.insertJob(jobRecord("a", "queued")));
    const outcome = adapter.store.transaction(async (tx) => {
      await tx.updateJob(jobRecord("a", "running"));
      await tx.updateJob({ ...jobRecord("b", "running"), scope: "bad\0scope" });
    });
    await assert.rejects(outcome, (error: unknown) => {
      assert.ok(isSyncError(error) && error.code === "E_SYNC_INVALID_ARGUMENT", String(error));
      return true;
    });
    assert.equal((await storedJobs(adapter))[0].state, "queued", "the held update did not commit");
  });
});
