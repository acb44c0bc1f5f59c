/**
 * Benchmark (not a test): the end-to-end sync rate of one conversation (default 64 MiB of
 * JSON Lines) through the Postgres adapter — upload, seal, apply, verify, awaited by
 * `syncConversation` — on the embedded PGlite (persisted to a temp dir) and on a
 * PostgreSQL server, next to one plain bulk INSERT of the same bytes into a two-column
 * table on the same server (and on PGlite), with the ratios.
 *
 * The server is a throwaway cluster of the machine's PostgreSQL with durable settings
 * (fsync and synchronous commit on, data on disk), or `DATABASE_URL`. The handler is a
 * no-op, so the figure is the pipeline's own cost.
 *
 * Run: deno task bench:postgres [--mib 64] [--chunk-kib 1024]
 * Output: JSON on stdout (progress on stderr).
 */

import { syncConversation } from "../mod.ts";
import {
  createPostgresAdapter,
  type PostgresAdapter,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "../adapters/postgres/tests/support/cluster.ts";
import { sampleConversation } from "./sample_conversation.ts";

const MIB = 1024 * 1024;

function option(name: string, fallback: number): number {
  const index = Deno.args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(Deno.args[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}

/** At most `bytes` (and nearly that many) of JSON Lines of the sample conversation. */
function payloadOf(bytes: number): Uint8Array {
  const lines: string[] = [];
  for (const record of sampleConversation("bench", bytes)) lines.push(JSON.stringify(record));
  const all = new TextEncoder().encode(lines.join("\n") + "\n");
  if (all.length <= bytes) return all;
  return all.subarray(0, all.lastIndexOf(0x0a, bytes - 1) + 1);
}

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

function timing(started: number, bytes: number): Timing {
  const seconds = (performance.now() - started) / 1000;
  return { seconds: round(seconds), mibPerSecond: round(bytes / MIB / seconds) };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function log(message: string): void {
  console.error(`bench:postgres: ${message}`);
}

/** syncConversation through an auto-mode adapter: upload + seal, then apply + verify. */
async function endToEnd(
  adapter: PostgresAdapter,
  payload: Uint8Array,
  chunkSize: number,
): Promise<{ total: Timing; uploadAndSeal: Timing; chunks: number }> {
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
  const total = timing(started, payload.length);
  const uploadSeconds = (sealedAt - started) / 1000;
  return {
    total,
    uploadAndSeal: {
      seconds: round(uploadSeconds),
      mibPerSecond: round(payload.length / MIB / uploadSeconds),
    },
    chunks: job.totalChunks,
  };
}

/** One INSERT of every chunk as a row of a plain (idx, bytes) table. */
async function bulkInsert(driver: PostgresDriver, chunks: Uint8Array[]): Promise<Timing> {
  await driver.query("DROP TABLE IF EXISTS bench_bulk_insert");
  await driver.query("CREATE TABLE bench_bulk_insert (idx integer PRIMARY KEY, bytes bytea)");
  const values = chunks.map((_, i) => `($${2 * i + 1}::integer, $${2 * i + 2}::bytea)`);
  const params = chunks.flatMap((chunk, i) => [i, chunk]);
  const started = performance.now();
  await driver.query(
    `INSERT INTO bench_bulk_insert (idx, bytes) VALUES ${values.join(", ")}`,
    params,
  );
  const result = timing(started, chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  await driver.query("DROP TABLE bench_bulk_insert");
  return result;
}

async function main(): Promise<void> {
  const mib = option("mib", 64);
  const chunkSize = option("chunk-kib", 1024) * 1024;
  const payload = payloadOf(mib * MIB);
  const chunks = chunksOf(payload, chunkSize);
  log(`payload ${payload.length} bytes, ${chunks.length} chunks of at most ${chunkSize} bytes`);
  const handler = { apply() {} };
  const policy = { limits: { maxChunkBytes: chunkSize } };

  const dataDir = await Deno.makeTempDir({ prefix: "codex-sync-bench-pglite-" });
  let pglite;
  try {
    log("PGlite: end to end");
    const adapter = await createPostgresAdapter({ dataDir, handler, policy, mode: "auto" });
    try {
      pglite = {
        endToEnd: await endToEnd(adapter, payload, chunkSize),
        bulkInsert: await bulkInsert(adapter.driver, chunks),
      };
    } finally {
      await adapter.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }

  const server = await startTestServer({ durable: true });
  let postgres;
  try {
    log("server: end to end");
    const adapter = await createPostgresAdapter({
      connectionString: server.url,
      schema: "bench",
      handler,
      policy,
      mode: "auto",
    });
    try {
      const e2e = await endToEnd(adapter, payload, chunkSize);
      log("server: bulk insert");
      postgres = { endToEnd: e2e, bulkInsert: await bulkInsert(adapter.driver, chunks) };
    } finally {
      await adapter.close();
    }
  } finally {
    await server.dispose();
  }

  console.log(JSON.stringify(
    {
      payloadBytes: payload.length,
      chunks: chunks.length,
      chunkSize,
      server: Deno.env.get("DATABASE_URL")
        ? "DATABASE_URL"
        : "throwaway cluster, fsync and synchronous_commit on, data on disk",
      pglite,
      postgres,
      // How many times longer the whole sync takes than writing the same bytes once.
      ratio: {
        postgresEndToEndVsBulkInsert: round(
          postgres.endToEnd.total.seconds / postgres.bulkInsert.seconds,
        ),
        pgliteEndToEndVsServerBulkInsert: round(
          pglite.endToEnd.total.seconds / postgres.bulkInsert.seconds,
        ),
        pgliteEndToEndVsPgliteBulkInsert: round(
          pglite.endToEnd.total.seconds / pglite.bulkInsert.seconds,
        ),
      },
    },
    null,
    2,
  ));
}

if (import.meta.main) await main();
