// Restart test: the PostgreSQL server is stopped mid-sync (pg_ctl stop -m fast, so every
// session is terminated) and started again on the same port a moment later. The
// client's uploads and waits ride over it (retryable E_SYNC_BACKEND_UNAVAILABLE plus the
// client's retries), the worker recovers its interrupted jobs, nothing is lost, nothing
// is applied twice, and every job ends verified.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { isSyncError, type SyncAdapter, syncConversation } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";

const SOURCES = 8;
const CHUNKS = 60;
const CHUNK_SIZE = 4096;
const OUTAGE_MS = 1_000;

const server = await startTestServer({ requireControl: true });
after(() => server.dispose());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The adapter, counting the calls that failed with a retryable backend error. */
function counting(adapter: SyncAdapter): { adapter: SyncAdapter; unavailable: () => number } {
  let unavailable = 0;
  const wrapped = Object.create(adapter) as SyncAdapter;
  for (const name of ["createSource", "appendChunk", "sealSource", "waitForTerminal"] as const) {
    const call = adapter[name].bind(adapter) as (input: unknown) => Promise<unknown>;
    (wrapped as unknown as Record<string, unknown>)[name] = async (input: unknown) => {
      try {
        return await call(input);
      } catch (error) {
        if (isSyncError(error) && error.code === "E_SYNC_BACKEND_UNAVAILABLE") unavailable++;
        throw error;
      }
    };
  }
  return { adapter: wrapped, unavailable: () => unavailable };
}

test("restart: a server restart mid-sync loses nothing; every job ends verified", async () => {
  const schema = "restart";
  const common = {
    connectionString: server.url,
    connectionOptions: { max: 6, connect_timeout: 2 },
    schema,
    pollIntervalMs: 500,
    policy: { leaseMs: 1_500, retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 500 } },
  };
  const workerErrors: unknown[] = [];
  const worker = await createPostgresAdapter({
    ...common,
    mode: "auto",
    concurrency: 2,
    workerId: "worker",
    onWorkerError: (error) => workerErrors.push(error),
    handler: {
      async apply(chunk, ctx) {
        await ctx.sql.query(
          `INSERT INTO "${schema}".effects (source_id, idx) VALUES ($1::text, $2::integer)`,
          [ctx.job.sourceId, chunk.index],
        );
        await sleep(2);
      },
      async verify(ctx) {
        const [row] = await ctx.sql.query<{ n: number }>(
          `SELECT count(DISTINCT idx)::integer AS n FROM "${schema}".effects
            WHERE source_id = $1::text`,
          [ctx.job.sourceId],
        );
        if (row.n !== ctx.manifest.chunkCount) throw new Error(`${row.n} distinct effects`);
      },
    },
  });
  await worker.driver.query(
    `CREATE TABLE "${schema}".effects (source_id text NOT NULL, idx integer NOT NULL)`,
  );
  const client = await createPostgresAdapter({
    ...common,
    mode: "manual",
    handler: { apply() {} },
  });
  const { adapter, unavailable } = counting(client);
  try {
    let uploaded = 0;
    const syncs = Array.from({ length: SOURCES }, (_, source) =>
      syncConversation(adapter, {
        scope: "tenant",
        conversationId: `conversation-${source}`,
        payload: new TextEncoder().encode(
          Array.from({ length: CHUNKS }, (_, i) => `${source}:${i}:`.padEnd(CHUNK_SIZE, "x"))
            .join(""),
        ),
        chunkSize: CHUNK_SIZE,
        concurrency: 4,
        retry: { maxAttempts: 30, baseDelayMs: 100, factor: 2, maxDelayMs: 1_000 },
        onProgress: (event) => {
          if (event.phase === "uploading") uploaded++;
        },
      }));
    const settled = Promise.allSettled(syncs);

    // Mid-sync: some chunks uploaded, others not, jobs queued or running.
    const deadline = Date.now() + 30_000;
    while (uploaded < (SOURCES * CHUNKS) / 3 && Date.now() < deadline) await sleep(5);
    assert.ok(uploaded < SOURCES * CHUNKS, "the uploads finished before the restart");
    await server.stop();
    await sleep(OUTAGE_MS);
    await server.start();

    const results = await settled;
    assert.deepEqual(
      results.filter((result) => result.status === "rejected"),
      [],
      "every sync resolves after the restart",
    );
    assert.ok(unavailable() > 0, "no client call saw the outage");
    for (const result of results) {
      if (result.status !== "fulfilled") continue;
      assert.equal(result.value.job.state, "succeeded");
      assert.equal(result.value.job.cursor, CHUNKS);
    }
    const jobs = await client.driver.query<{ state: string; n: number }>(
      `SELECT state, count(*)::integer AS n FROM ${client.tables.jobs} GROUP BY state`,
    );
    assert.deepEqual(jobs, [{ state: "succeeded", n: SOURCES }]);
    const [effects] = await client.driver.query<{ n: number; distinct: number }>(
      `SELECT count(*)::integer AS n,
          count(DISTINCT (source_id, idx))::integer AS distinct FROM "${schema}".effects`,
    );
    assert.deepEqual(effects, { n: SOURCES * CHUNKS, distinct: SOURCES * CHUNKS });
    console.log(
      `restart test: ${unavailable()} client calls saw E_SYNC_BACKEND_UNAVAILABLE, ` +
        `${workerErrors.length} worker passes failed and were retried`,
    );
  } finally {
    await client.close();
    await worker.close();
  }
});
