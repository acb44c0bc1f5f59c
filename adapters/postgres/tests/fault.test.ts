// Fault test: 4 worker processes against a real server, SIGKILLed at random moments (and
// restarted) while 50 sources sync. The handler writes one effect row per chunk in the
// apply transaction. In the end every job has succeeded (verified, with the host's own
// check in its verify hook) and every (source, chunk) effect exists exactly once.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { syncConversation } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";
import { FAULT_POLICY, mulberry32 } from "./support/fault_shared.ts";
import { WorkerProcess } from "./support/processes.ts";

const SOURCES = 50;
const WORKERS = 4;
const CHUNK_SIZE = 2048;
/** Stop killing after this long even if syncs are still running (they must then finish). */
const CHAOS_LIMIT_MS = 60_000;

const server = await startTestServer();
after(() => server.dispose());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A conversation of `chunks` chunks, each distinct. */
function payload(source: number, chunks: number): Uint8Array {
  const text = Array.from(
    { length: chunks },
    (_, i) => `${JSON.stringify({ source, chunk: i })}`.padEnd(CHUNK_SIZE - 1, ".") + "\n",
  ).join("");
  return new TextEncoder().encode(text);
}

test("fault: SIGKILLed workers never lose nor repeat an effect; every job succeeds", async () => {
  const seed = Number(Deno.env.get("FAULT_SEED") ?? Date.now() % 1_000_000);
  console.log(`fault test seed ${seed} (set FAULT_SEED to replay)`);
  const random = mulberry32(seed);
  const schema = `fault_${Date.now().toString(36)}`;
  const uploader = await createPostgresAdapter({
    connectionString: server.url,
    connectionOptions: { max: 8 },
    schema,
    mode: "manual",
    policy: FAULT_POLICY,
    handler: { apply() {} },
  });
  await uploader.driver.query(
    `CREATE TABLE "${schema}".effects (source_id text NOT NULL, idx integer NOT NULL,
      worker text NOT NULL)`,
  );
  const workers = Array.from(
    { length: WORKERS },
    (_, i) =>
      new WorkerProcess(`w${i}`, {
        FAULT_DATABASE_URL: server.url,
        FAULT_SCHEMA: schema,
        FAULT_SEED: String(seed + i + 1),
      }),
  );
  let kills = 0;
  try {
    for (const worker of workers) worker.start();
    const chunkCounts = Array.from({ length: SOURCES }, () => 20 + Math.floor(random() * 40));
    let finished = 0;
    const syncs = chunkCounts.map(async (chunks, source) => {
      const result = await syncConversation(uploader, {
        scope: `tenant-${source % 5}`,
        conversationId: `conversation-${source}`,
        payload: payload(source, chunks),
        chunkSize: CHUNK_SIZE,
        concurrency: 2,
      });
      finished++;
      return result;
    });
    const settled = Promise.allSettled(syncs);

    // Chaos: kill a random worker every 100-500 ms, restart it 0-300 ms later.
    const chaosStart = Date.now();
    while (finished < SOURCES && Date.now() - chaosStart < CHAOS_LIMIT_MS) {
      await sleep(100 + random() * 400);
      const victim = workers[Math.floor(random() * WORKERS)];
      await victim.kill();
      kills++;
      await sleep(random() * 300);
      victim.start();
    }
    for (const worker of workers) worker.start();

    const results = await settled;
    const failures = results.filter((result) => result.status === "rejected");
    assert.deepEqual(failures, [], "every sync resolves (its job succeeded)");
    assert.ok(kills >= 5, `only ${kills} kills happened: the chaos did not overlap the syncs`);

    const jobs = await uploader.driver.query<{ state: string; n: number }>(
      `SELECT state, count(*)::integer AS n FROM ${uploader.tables.jobs} GROUP BY state`,
    );
    assert.deepEqual(jobs, [{ state: "succeeded", n: SOURCES }]);

    const sources = await uploader.driver.query<{ source_id: string; chunks: number }>(
      `SELECT source_id, (record->'manifest'->>'chunkCount')::integer AS chunks
        FROM ${uploader.tables.sources}`,
    );
    const expected = sources.reduce((sum, row) => sum + row.chunks, 0);
    assert.equal(expected, chunkCounts.reduce((sum, n) => sum + n, 0));
    const [total] = await uploader.driver.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM "${schema}".effects`,
    );
    const duplicates = await uploader.driver.query(
      `SELECT source_id, idx, count(*)::integer AS n FROM "${schema}".effects
        GROUP BY source_id, idx HAVING count(*) <> 1`,
    );
    assert.deepEqual(duplicates, [], "no chunk's effect is applied twice");
    assert.equal(total.n, expected, "every chunk's effect is applied once");
    const perSource = await uploader.driver.query<{ source_id: string; n: number; top: number }>(
      `SELECT source_id, count(*)::integer AS n, max(idx) AS top FROM "${schema}".effects
        GROUP BY source_id`,
    );
    const chunksOf = new Map(sources.map((row) => [row.source_id, row.chunks]));
    for (const row of perSource) {
      assert.equal(row.n, chunksOf.get(row.source_id), `effects of ${row.source_id}`);
      assert.equal(row.top, row.n - 1, `effects of ${row.source_id} cover 0..n-1`);
    }
    // A job claimed more than once was taken over after its worker died (or failed).
    const [takenOver] = await uploader.driver.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM ${uploader.tables.jobs}
        WHERE (record->>'leaseToken')::integer > 1`,
    );
    assert.ok(takenOver.n > 0, "no job was ever taken over from a killed worker");
    const starts = workers.reduce((sum, worker) => sum + worker.starts, 0);
    console.log(
      `fault test: ${kills} SIGKILLs, ${starts} worker processes, ${expected} chunks, ` +
        `${takenOver.n} jobs taken over`,
    );
  } catch (error) {
    for (const worker of workers) {
      if (worker.stderr) console.error(`--- ${worker.id} stderr ---\n${worker.stderr}`);
    }
    throw error;
  } finally {
    await Promise.all(workers.map((worker) => worker.kill()));
    await uploader.close();
  }
});
