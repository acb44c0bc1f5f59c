/**
 * Benchmark (not a test), on a PostgreSQL server, both sides in one run on one server:
 *
 * - **wait latency over NOTIFY**: a job's terminal commit by a worker in one adapter →
 *   `waitForTerminal` resolving in another adapter (own connections, woken by LISTEN/NOTIFY).
 *   The commit instant is when the worker's store announces its last write of the job,
 *   right after COMMIT returns.
 * - **many small sources, 4 workers**: 2 000 one-chunk sources created, appended and sealed
 *   (parallel, bounded) by an uploading adapter, run by 4 worker adapters (auto mode,
 *   concurrency 1, separate connection pools), from the first create to the last
 *   `waitForTerminal` seeing `succeeded`; next to pg-boss sending 2 000 no-op jobs
 *   (the same bounded parallelism) to 4 worker instances (one `work()` each) and until
 *   all are `completed`. pg-boss workers fetch `batchSize` jobs per poll and then sleep
 *   out their polling interval (at least 0.5 s), so they are run with small and large
 *   batches; the ratio uses the faster pg-boss run.
 *
 * The server is a throwaway cluster with durable settings, or `DATABASE_URL`.
 *
 * Run: deno task bench:postgres-workers [--sources 2000] [--samples 50]
 * Output: JSON on stdout (progress on stderr).
 */

import { compositeDigest, type Job, sha256Hex } from "../mod.ts";
import { createPostgresAdapter, type PostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import PgBoss from "pg-boss";
import { startTestServer } from "../adapters/postgres/tests/support/cluster.ts";

const WORKERS = 4;
const PARALLEL = 16;
const BOSS_POLLING_SECONDS = 0.5; // pg-boss's minimum
const BOSS_BATCHES = [50, 500];
// Write transactions are what a durable server pays for (one WAL flush per commit); the
// xid counter advances once per transaction that writes (this query takes one too).
const XID = "SELECT pg_current_xact_id()::text::bigint AS xid";

function option(name: string, fallback: number): number {
  const index = Deno.args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(Deno.args[index + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} needs a positive integer`);
  return value;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function log(message: string): void {
  console.error(`bench:postgres-workers: ${message}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once. */
async function bounded(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}

/** Uploads one one-chunk source and seals it; returns its job. */
async function uploadOne(adapter: PostgresAdapter, scope: string, i: number): Promise<Job> {
  const bytes = new TextEncoder().encode(`{"type":"message","n":${i}}\n`);
  const sha256 = await sha256Hex(bytes);
  const source = await adapter.createSource({ scope, conversationId: `conversation-${i}` });
  await adapter.appendChunk({ scope, sourceId: source.sourceId, index: 0, bytes, sha256 });
  const { job } = await adapter.sealSource({
    scope,
    sourceId: source.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job;
}

async function waitLatency(url: string, samples: number) {
  const handler = { apply() {} };
  const schema = "bench_wait";
  // The waiter uploads and waits, never runs jobs; the worker only runs them.
  const waiter = await createPostgresAdapter({
    connectionString: url,
    schema,
    handler,
    mode: "manual",
  });
  const worker = await createPostgresAdapter({
    connectionString: url,
    schema,
    handler,
    mode: "auto",
    workerId: "bench-wait-worker",
  });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < samples + 3; i++) {
      const source = await waiter.createSource({ scope: "wait", conversationId: `c-${i}` });
      const bytes = new TextEncoder().encode(`{"n":${i}}\n`);
      const sha256 = await sha256Hex(bytes);
      await waiter.appendChunk({
        scope: "wait",
        sourceId: source.sourceId,
        index: 0,
        bytes,
        sha256,
      });
      // Subscribe on the worker's side before the job exists: every write the worker
      // commits to it is announced right after COMMIT; the last one is the terminal one.
      let lastCommitAt = 0;
      let unsubscribe = () => {};
      const { job } = await waiter.sealSource({
        scope: "wait",
        sourceId: source.sourceId,
        manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
      });
      unsubscribe = worker.store.subscribeJob("wait", job.jobId, () => {
        lastCommitAt = performance.now();
      });
      const done = await waiter.waitForTerminal({
        scope: "wait",
        jobId: job.jobId,
        timeoutMs: 30_000,
      });
      const resolvedAt = performance.now();
      unsubscribe();
      if (done.state !== "succeeded") throw new Error(`wait sample ${i}: ${done.state}`);
      if (lastCommitAt === 0) throw new Error(`wait sample ${i}: terminal commit not seen`);
      if (i >= 3) latencies.push(resolvedAt - lastCommitAt); // 3 warm-up rounds
    }
  } finally {
    await worker.close();
    await waiter.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    samples: latencies.length,
    medianMs: round(quantile(latencies, 0.5)),
    p90Ms: round(quantile(latencies, 0.9)),
    maxMs: round(latencies[latencies.length - 1]),
  };
}

async function ourWorkers(url: string, sources: number) {
  const handler = { apply() {} };
  const schema = "bench_workers";
  const uploader = await createPostgresAdapter({
    connectionString: url,
    schema,
    handler,
    mode: "manual",
    connectionOptions: { max: PARALLEL },
  });
  const workers: PostgresAdapter[] = [];
  for (let w = 0; w < WORKERS; w++) {
    workers.push(
      await createPostgresAdapter({
        connectionString: url,
        schema,
        handler,
        mode: "auto",
        concurrency: 1,
        workerId: `bench-worker-${w}`,
      }),
    );
  }
  try {
    // Warm-up: one job through the pipeline (prepared statements, connections).
    const warm = await uploadOne(uploader, "warm", 0);
    await uploader.waitForTerminal({ scope: "warm", jobId: warm.jobId, timeoutMs: 30_000 });

    let succeeded = 0;
    const [{ xid: xidBefore }] = await uploader.driver.query(XID);
    const started = performance.now();
    let uploadedAt = 0;
    let uploaded = 0;
    await bounded(sources, PARALLEL, async (i) => {
      const job = await uploadOne(uploader, "bench", i);
      if (++uploaded === sources) uploadedAt = performance.now();
      const done = await uploader.waitForTerminal({
        scope: "bench",
        jobId: job.jobId,
        timeoutMs: 120_000,
      });
      if (done.state !== "succeeded") throw new Error(`job ${job.jobId}: ${done.state}`);
      succeeded++;
    });
    const seconds = (performance.now() - started) / 1000;
    const [{ xid: xidAfter }] = await uploader.driver.query(XID);
    return {
      sources,
      writeTransactionsPerSource: round((Number(xidAfter) - Number(xidBefore) - 1) / sources),
      succeeded,
      seconds: round(seconds),
      jobsPerSecond: round(sources / seconds),
      uploadedAllAfterSeconds: round((uploadedAt - started) / 1000),
      settings: `${WORKERS} adapters, mode auto, concurrency 1 each; uploads and waits from a ` +
        `fifth adapter (manual), ${PARALLEL} sources in flight`,
    };
  } finally {
    for (const worker of workers) await worker.close();
    await uploader.close();
  }
}

async function pgBoss(url: string, jobs: number, batchSize: number) {
  const queue = `bench-${batchSize}`;
  const options = { connectionString: url, supervise: false, schedule: false };
  const sender = new PgBoss({ ...options, max: PARALLEL });
  sender.on("error", (error: unknown) => log(`pg-boss error: ${error}`));
  await sender.start();
  await sender.createQueue(queue);
  const workers: PgBoss[] = [];
  let handled = 0;
  for (let w = 0; w < WORKERS; w++) {
    const boss = new PgBoss({ ...options, migrate: false });
    boss.on("error", (error: unknown) => log(`pg-boss error: ${error}`));
    await boss.start();
    await boss.work(
      queue,
      { batchSize, pollingIntervalSeconds: BOSS_POLLING_SECONDS },
      (batch: PgBoss.Job[]) => {
        handled += batch.length;
        return Promise.resolve();
      },
    );
    workers.push(boss);
  }
  const db = sender.getDb();
  const completed = async () => {
    const { rows } = await db.executeSql(
      "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'",
      [queue],
    );
    return Number(rows[0].n);
  };
  try {
    // Warm-up: one job through (the workers' first fetch, prepared plans).
    await sender.send(queue, { warm: true });
    while (await completed() < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const before = await completed();
    const xidBefore = Number((await db.executeSql(XID, [])).rows[0].xid);
    const started = performance.now();
    await bounded(jobs, PARALLEL, async (i) => {
      await sender.send(queue, { n: i });
    });
    const sentAt = performance.now();
    // Handlers complete jobs without awaiting; count what the server has completed.
    while (await completed() < before + jobs) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seconds = (performance.now() - started) / 1000;
    const xidAfter = Number((await db.executeSql(XID, [])).rows[0].xid);
    return {
      jobs,
      writeTransactionsPerJob: round((xidAfter - xidBefore - 1) / jobs),
      handled: handled - 1,
      seconds: round(seconds),
      jobsPerSecond: round(jobs / seconds),
      sentAllAfterSeconds: round((sentAt - started) / 1000),
      settings: `${WORKERS} PgBoss instances, one work() each, batchSize ${batchSize}, ` +
        `pollingIntervalSeconds ${BOSS_POLLING_SECONDS}; send() from a fifth instance, ` +
        `${PARALLEL} in flight`,
    };
  } finally {
    for (const boss of workers) await boss.stop({ graceful: false, wait: true });
    await sender.stop({ graceful: false, wait: true });
  }
}

async function main(): Promise<void> {
  const sources = option("sources", 2000);
  const samples = option("samples", 50);
  const server = await startTestServer({ durable: true });
  try {
    log(`wait latency, ${samples} samples`);
    const wait = await waitLatency(server.url, samples);
    log(`ours: ${sources} one-chunk sources, ${WORKERS} workers`);
    const ours = await ourWorkers(server.url, sources);
    const boss = [];
    for (const batchSize of BOSS_BATCHES) {
      log(`pg-boss: ${sources} jobs, ${WORKERS} workers, batchSize ${batchSize}`);
      boss.push(await pgBoss(server.url, sources, batchSize));
    }
    const fastest = boss.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const ratio = round(fastest.seconds / ours.seconds);
    console.log(JSON.stringify(
      {
        server: Deno.env.get("DATABASE_URL")
          ? "DATABASE_URL"
          : "throwaway cluster, fsync and synchronous_commit on, data on disk",
        waitLatencyNotify: wait,
        workers: { ours, pgBoss: boss },
        ratio: {
          // Our throughput ÷ the faster pg-boss run's (≥ 1 means we are at least as fast).
          oursVsPgBoss: ratio,
          oursVsPgBossPerBatch: Object.fromEntries(
            boss.map((
              run,
              i,
            ) => [`batchSize${BOSS_BATCHES[i]}`, round(run.seconds / ours.seconds)]),
          ),
          target: "≥ 1.0",
          met: ratio >= 1,
        },
      },
      null,
      2,
    ));
  } finally {
    await server.dispose();
  }
}

if (import.meta.main) await main();
