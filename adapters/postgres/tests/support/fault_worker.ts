/**
 * A worker process for the fault test: an auto-mode Postgres adapter whose handler
 * records one effect row per applied chunk through `ctx.sql` (in the transaction that
 * commits the chunk), and whose verify hook checks that the source has exactly one
 * effect per chunk. It runs until it is killed.
 *
 * Environment: FAULT_DATABASE_URL, FAULT_SCHEMA, FAULT_WORKER_ID, FAULT_SEED.
 */

import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { FAULT_POLICY, mulberry32 } from "./fault_shared.ts";

const env = (name: string): string => {
  const value = Deno.env.get(name);
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const schema = env("FAULT_SCHEMA");
const workerId = env("FAULT_WORKER_ID");
const random = mulberry32(Number(env("FAULT_SEED")));
const effects = `"${schema}".effects`;

await createPostgresAdapter({
  connectionString: env("FAULT_DATABASE_URL"),
  connectionOptions: { max: 4 },
  schema,
  workerId,
  mode: "auto",
  concurrency: 2,
  pollIntervalMs: 500,
  policy: FAULT_POLICY,
  handler: {
    async apply(chunk, ctx) {
      await ctx.sql.query(
        `INSERT INTO ${effects} (source_id, idx, worker) VALUES ($1::text, $2::integer, $3::text)`,
        [ctx.job.sourceId, chunk.index, workerId],
      );
      // Work inside the transaction, so that kills land between the write and the commit.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 20)));
    },
    async verify(ctx) {
      const [row] = await ctx.sql.query<{ effects: number; distinct: number }>(
        `SELECT count(*)::integer AS effects, count(DISTINCT idx)::integer AS distinct
          FROM ${effects} WHERE source_id = $1::text`,
        [ctx.job.sourceId],
      );
      const expected = ctx.manifest.chunkCount;
      if (row.effects !== expected || row.distinct !== expected) {
        throw new Error(`${row.effects} effects (${row.distinct} distinct) for ${expected} chunks`);
      }
    },
  },
  onWorkerError: (error) => console.error(`${workerId}: ${error}`),
});
console.log("ready");
// The adapter's connections and timers keep the process alive until it is killed.
