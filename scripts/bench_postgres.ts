/**
 * Benchmark (not a test), the first half of figure 7 of issue 6: the end-to-end sync
 * rate of one conversation (default 64 MiB of JSON Lines in 1 MiB chunks) through the
 * Postgres adapter (upload, seal, apply, verify, awaited by `syncConversation`) on a
 * PostgreSQL server, ÷ the rate of one plain bulk INSERT of the same bytes into a
 * two-column table on the same server (target ≥ 0.5). The two alternate, round by round
 * (after an unrecorded warm-up round); the figure is the median of the per-round ratios.
 * `--pglite` also times the embedded PGlite (persisted to a temp dir), once each.
 *
 * The server is a throwaway cluster of the machine's PostgreSQL with durable settings
 * (fsync and synchronous commit on, data on disk), or `DATABASE_URL`. The handler is a
 * no-op, so the figure is the pipeline's own cost.
 *
 * Run: deno task bench:postgres [--mib 64] [--chunk-kib 1024] [--rounds 5] [--quick]
 * [--pglite] (or all figures: deno task bench)
 * Output: JSON on stdout (`figures`, see scripts/bench/figure.ts), progress on stderr.
 */

import { syncConversation } from "../mod.ts";
import {
  createPostgresAdapter,
  type PostgresAdapter,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "../adapters/postgres/tests/support/cluster.ts";
import { sampleJsonLines } from "./sample_conversation.ts";
import {
  alternateTimed,
  emit,
  type Figure,
  log as logTo,
  ms,
  numberOption,
  round,
  stats,
} from "./bench/figure.ts";

const MIB = 1024 * 1024;

/** The payload cut into chunks of `size` bytes, as the client cuts a byte payload. */
function chunksOf(payload: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < payload.length; start += size) {
    chunks.push(payload.subarray(start, start + size));
  }
  return chunks;
}

interface Timing {
  seconds: number;
  mibPerSecond: number;
}

function timing(seconds: number, bytes: number): Timing {
  return { seconds: round(seconds), mibPerSecond: round(bytes / MIB / seconds) };
}

function log(message: string): void {
  logTo("bench:postgres", message);
}

interface EndToEnd {
  /** Milliseconds from the call to the verified terminal job. */
  ms: number;
  /** Milliseconds from the call to the seal. */
  uploadAndSealMs: number;
  chunks: number;
}

/** syncConversation through an auto-mode adapter: upload + seal, then apply + verify. */
async function endToEnd(
  adapter: PostgresAdapter,
  payload: Uint8Array,
  chunkSize: number,
): Promise<EndToEnd> {
  const started = performance.now();
  let sealedAt = 0;
  const { job } = await syncConversation(adapter, {
    scope: "bench",
    conversationId: `conversation-${crypto.randomUUID()}`,
    payload,
    chunkSize,
    onProgress: (event) => {
      if (event.phase === "sealed") sealedAt = performance.now();
    },
  });
  const ended = performance.now();
  return { ms: ended - started, uploadAndSealMs: sealedAt - started, chunks: job.totalChunks };
}

/** One INSERT of every chunk as a row of a plain (idx, bytes) table; returns its ms. */
async function bulkInsert(driver: PostgresDriver, chunks: Uint8Array[]): Promise<number> {
  await driver.query("DROP TABLE IF EXISTS bench_bulk_insert");
  await driver.query("CREATE TABLE bench_bulk_insert (idx integer PRIMARY KEY, bytes bytea)");
  const values = chunks.map((_, i) => `($${2 * i + 1}::integer, $${2 * i + 2}::bytea)`);
  const params = chunks.flatMap((chunk, i) => [i, chunk]);
  const started = performance.now();
  await driver.query(
    `INSERT INTO bench_bulk_insert (idx, bytes) VALUES ${values.join(", ")}`,
    params,
  );
  const elapsed = performance.now() - started;
  await driver.query("DROP TABLE bench_bulk_insert");
  return elapsed;
}

/** PGlite, once each side (slow: it is not part of the figure). */
async function pgliteRun(payload: Uint8Array, chunks: Uint8Array[], chunkSize: number) {
  const dataDir = await Deno.makeTempDir({ prefix: "codex-sync-bench-pglite-" });
  try {
    log("PGlite: end to end, then bulk insert");
    const adapter = await createPostgresAdapter({
      dataDir,
      handler: { apply() {} },
      policy: { limits: { maxChunkBytes: chunkSize } },
      mode: "auto",
    });
    try {
      const e2e = await endToEnd(adapter, payload, chunkSize);
      const bulk = await bulkInsert(adapter.driver, chunks);
      return {
        endToEnd: timing(e2e.ms / 1000, payload.length),
        bulkInsert: timing(bulk / 1000, payload.length),
        endToEndRateOverBulkInsertRate: round(bulk / e2e.ms),
      };
    } finally {
      await adapter.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function main(): Promise<void> {
  const quick = Deno.args.includes("--quick");
  const mib = numberOption(Deno.args, "mib", quick ? 16 : 64);
  const chunkSize = numberOption(Deno.args, "chunk-kib", 1024) * 1024;
  const rounds = numberOption(Deno.args, "rounds", quick ? 1 : 5);
  const payload = sampleJsonLines(mib * MIB);
  const chunks = chunksOf(payload, chunkSize);
  log(`payload ${payload.length} bytes, ${chunks.length} chunks of at most ${chunkSize} bytes`);

  const pglite = Deno.args.includes("--pglite")
    ? await pgliteRun(payload, chunks, chunkSize)
    : undefined;

  const server = await startTestServer({ durable: true });
  try {
    const adapter = await createPostgresAdapter({
      connectionString: server.url,
      schema: "bench",
      handler: { apply() {} },
      policy: { limits: { maxChunkBytes: chunkSize } },
      mode: "auto",
    });
    try {
      const [{ server_version: version }] = await adapter.driver.query<
        { server_version: string }
      >("SHOW server_version");
      log(`server ${version}: ${rounds} rounds of bulk insert and end to end, alternating`);
      const e2eRuns: EndToEnd[] = [];
      const runs = await alternateTimed(
        rounds,
        () => bulkInsert(adapter.driver, chunks),
        async () => {
          const run = await endToEnd(adapter, payload, chunkSize);
          e2eRuns.push(run);
          return run.ms;
        },
      );
      // Rate ratio: ours ÷ bulk insert = bulk time ÷ our time, per round.
      const ratio = stats(runs.ratios.map((r) => 1 / r));
      const e2e = stats(runs.subjectMs);
      const bulk = stats(runs.baselineMs);
      const rate = (ms: number) => `${(payload.length / MIB / (ms / 1000)).toFixed(1)} MiB/s`;
      const figure: Figure = {
        figure: 7,
        name: `Postgres: end-to-end rate, ${mib} MiB in ${chunkSize / 1024} KiB chunks ÷ ` +
          "one bulk INSERT of the same bytes",
        measured: `${ms(e2e.median)} (${rate(e2e.median)})`,
        baseline: `${ms(bulk.median)} (${rate(bulk.median)})`,
        value: ratio.median,
        unit: "ratio",
        spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
        target: "≥ 0.5",
        met: ratio.median >= 0.5,
        details: {
          server: Deno.env.get("DATABASE_URL")
            ? "DATABASE_URL"
            : "throwaway cluster, fsync and synchronous_commit on, data on disk",
          serverVersion: version,
          payloadBytes: payload.length,
          chunks: chunks.length,
          endToEndMs: runs.subjectMs.map((v) => round(v, 1)),
          uploadAndSealMs: e2eRuns.slice(-rounds).map((run) => round(run.uploadAndSealMs, 1)),
          bulkInsertMs: runs.baselineMs.map((v) => round(v, 1)),
        },
      };
      emit([figure], { pglite });
    } finally {
      await adapter.close();
    }
  } finally {
    await server.dispose();
  }
}

if (import.meta.main) await main();
