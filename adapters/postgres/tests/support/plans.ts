/**
 * EXPLAIN of every store statement: which scans each one plans, so a test can prove that
 * an index serves every lookup (with sequential scans disabled, a statement no index can
 * serve still plans a Seq Scan).
 */

import type { PostgresDriver, SqlExecutor, TableNames } from "@zakstam/codex-sync-engine-postgres";
import { storeStatements } from "@zakstam/codex-sync-engine-postgres";

/** One scan (or write) of a table or index in a plan. */
export interface PlannedScan {
  node: string;
  relation: string;
  index?: string;
  /** The index condition, when the scan has one. */
  cond?: string;
}

/** A statement with sample parameters, and the scans planned for it. */
export interface StatementPlan {
  name: string;
  scans: PlannedScan[];
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  Plans?: PlanNode[];
}

function scansOf(node: PlanNode, out: PlannedScan[] = []): PlannedScan[] {
  if (node["Relation Name"] !== undefined || node["Index Name"] !== undefined) {
    const scan: PlannedScan = { node: node["Node Type"], relation: node["Relation Name"] ?? "" };
    if (node["Index Name"] !== undefined) scan.index = node["Index Name"];
    if (node["Index Cond"] !== undefined) scan.cond = node["Index Cond"];
    out.push(scan);
  }
  for (const child of node.Plans ?? []) scansOf(child, out);
  return out;
}

/** Every statement of the store with parameters of the right types. */
export function sampleStatements(tables: TableNames): Array<[string, string, unknown[]]> {
  const sql = storeStatements(tables);
  const source = ["s", "src"];
  const job = ["s", "job"];
  const record = JSON.stringify({});
  const statements: Array<[string, string, unknown[]]> = [
    ["getSource", sql.getSource, source],
    ["lockSource", sql.lockSource, source],
    ["insertSource", sql.insertSource, [...source, "c", "collecting", 1, 1, null, record]],
    ["updateSource", sql.updateSource, [...source, "c", "sealed", 1, 1, null, record]],
    ["markJobChunksPurged", sql.markJobChunksPurged, job],
    ["insertChunk", sql.insertChunk, [...source, 0, 1, "d", null, new Uint8Array([1])]],
    ["getChunkInfo", sql.getChunkInfo, [...source, 0]],
    ["getChunk", sql.getChunk, [...source, 0]],
    ["listChunkInfos", sql.listChunkInfos, [...source, -1, 1000]],
    ["deleteChunks", sql.deleteChunks, source],
    ["deleteChunksFrom", sql.deleteChunksFrom, [...source, 3]],
    ["releaseChunkPayloads", sql.releaseChunkPayloads, [...source, 0, 3]],
    ["getJob", sql.getJob, job],
    ["lockJob", sql.lockJob, job],
    [
      "insertJob",
      sql.insertJob,
      [...job, "src", "c", "queued", 1, 1, null, record],
    ],
    ["updateJob", sql.updateJob, [...job, "running", 1, null, record]],
    ["lockConversation", sql.lockConversation, ["key"]],
    ["listActiveJobs", sql.listActiveJobs, ["s", "c"]],
    ["findClaimableJob", sql.findClaimableJob, [1]],
    ["prefetchClaimableJobs", sql.prefetchClaimableJobs, [1, 8]],
    [
      "getChunksByKeys",
      sql.getChunksByKeys,
      [JSON.stringify([{ scope: "s", source_id: "src", idx: 0 }])],
    ],
    ["nextRunAt", sql.nextRunAt, []],
    ["listExpiredSources", sql.listExpiredSources, [1, 100]],
    ["listEndedSources", sql.listEndedSources, [1, 100]],
    ["listSourcesOfEndedJobs", sql.listSourcesOfEndedJobs, [1, 100]],
  ];
  for (const conversationId of [false, true]) {
    for (const state of [false, true]) {
      for (const after of [false, true]) {
        const params: unknown[] = ["s"];
        if (conversationId) params.push("c");
        if (state) params.push("queued");
        if (after) params.push(1, "job");
        params.push(50);
        const name = `listJobs(${
          [conversationId && "conversation", state && "state", after && "after"]
            .filter(Boolean).join(",")
        })`;
        statements.push([name, sql.listJobs({ conversationId, state, after }), params]);
      }
    }
  }
  return statements;
}

/**
 * Fills the tables with rows shaped like a long-running deployment's (mostly ended jobs
 * and purged sources, a few active ones), so the planner's choices are the real ones.
 */
export async function seedTables(
  driver: PostgresDriver,
  t: TableNames,
  rows = 5_000,
): Promise<void> {
  await driver.query(
    `INSERT INTO ${t.jobs} (scope, job_id, source_id, conversation_id, state, run_at,
        created_at, completed_at, chunks_purged, record)
      SELECT 'scope-' || (i % 50), 'job-' || i, 'src-' || i, 'conv-' || (i % 500),
        CASE WHEN i % 100 = 0 THEN 'queued' ELSE 'succeeded' END, i, i,
        CASE WHEN i % 100 = 0 THEN NULL ELSE i END, i % 100 > 1, '{}'::json
      FROM generate_series(1, $1::integer) AS i`,
    [rows],
  );
  await driver.query(
    `INSERT INTO ${t.sources} (scope, source_id, conversation_id, state, expires_at,
        updated_at, chunks_purged_at, record)
      SELECT 'scope-' || (i % 50), 'src-' || i, 'conv-' || (i % 500),
        CASE i % 100 WHEN 0 THEN 'collecting' WHEN 1 THEN 'failed' ELSE 'sealed' END, i, i,
        CASE WHEN i % 100 > 1 THEN i END, '{}'::json
      FROM generate_series(1, $1::integer) AS i`,
    [rows],
  );
  await driver.query(
    `INSERT INTO ${t.chunks} (scope, source_id, idx, byte_length, sha256, bytes)
      SELECT 'scope-' || (i % 50), 'src-' || (i % 100), i, 1, 'd', '\\x00'::bytea
      FROM generate_series(1, $1::integer) AS i`,
    [rows],
  );
  for (const table of [t.jobs, t.sources, t.chunks]) await driver.query(`ANALYZE ${table}`);
}

/** The scans planned for every store statement, with sequential scans disabled. */
export async function planStatements(
  driver: PostgresDriver,
  tables: TableNames,
): Promise<StatementPlan[]> {
  return await driver.transaction(async (tx) => {
    await tx.query("SET LOCAL enable_seqscan = off");
    const plans: StatementPlan[] = [];
    for (const [name, text, params] of sampleStatements(tables)) {
      const [row] = await tx.query(`EXPLAIN (FORMAT JSON) ${text}`, params);
      const raw = row["QUERY PLAN"];
      const parsed = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: PlanNode }[];
      plans.push({ name, scans: scansOf(parsed[0].Plan) });
    }
    return plans;
  });
}

/** Indexes (without the prefix) of which one must serve each of these statements. */
export const EXPECTED_INDEXES: Readonly<Record<string, readonly string[]>> = {
  // The chunk key (scope, source_id, idx) serves every chunk statement, a range too.
  getChunkInfo: ["chunks_pkey"],
  getChunk: ["chunks_pkey"],
  listChunkInfos: ["chunks_pkey"],
  deleteChunks: ["chunks_pkey"],
  deleteChunksFrom: ["chunks_pkey"],
  releaseChunkPayloads: ["chunks_pkey"],
  findClaimableJob: ["jobs_due"],
  nextRunAt: ["jobs_due"],
  listActiveJobs: ["jobs_active"],
  listExpiredSources: ["sources_expiry"],
  listEndedSources: ["sources_ended"],
  listSourcesOfEndedJobs: ["jobs_ended"],
  "listJobs()": ["jobs_newest"],
  "listJobs(after)": ["jobs_newest"],
  "listJobs(conversation)": ["jobs_conversation"],
  "listJobs(conversation,after)": ["jobs_conversation"],
  // A non-terminal state may be read off the (smaller) partial index of active jobs.
  "listJobs(state)": ["jobs_state", "jobs_active"],
  "listJobs(state,after)": ["jobs_state", "jobs_active"],
};

/** Range statements whose index condition must bound `idx` too (not just the source). */
const IDX_RANGES = new Set(["listChunkInfos", "deleteChunksFrom", "releaseChunkPayloads"]);

/** Partial indexes: a scan of one without a condition still reads only live rows. */
const PARTIAL_INDEXES = new Set([
  "jobs_due",
  "jobs_active",
  "jobs_ended",
  "sources_expiry",
  "sources_ended",
]);

/**
 * Problems found in `plans`: a sequential scan, an index read whole (no condition, not a
 * partial index), or a statement not served by the index meant for it.
 */
export function planProblems(plans: readonly StatementPlan[], prefix: string): string[] {
  const problems: string[] = [];
  for (const plan of plans) {
    for (const scan of plan.scans) {
      if (scan.node === "ModifyTable" || scan.node === "Bitmap Heap Scan") continue;
      if (!/Index/.test(scan.node)) {
        problems.push(`${plan.name}: ${scan.node} on ${scan.relation}`);
      } else if (
        scan.cond === undefined && !PARTIAL_INDEXES.has(scan.index?.slice(prefix.length) ?? "")
      ) {
        problems.push(`${plan.name}: reads all of index ${scan.index}`);
      }
    }
    if (IDX_RANGES.has(plan.name) && !plan.scans.some((scan) => /\bidx\b/.test(scan.cond ?? ""))) {
      problems.push(
        `${plan.name}: no index condition on idx, planned ${JSON.stringify(plan.scans)}`,
      );
    }
    const expected = EXPECTED_INDEXES[plan.name]?.map((name) => `${prefix}${name}`);
    if (expected && !plan.scans.some((scan) => expected.includes(scan.index ?? ""))) {
      problems.push(
        `${plan.name}: expected index ${expected.join(" or ")}, planned ${
          JSON.stringify(plan.scans)
        }`,
      );
    }
  }
  return problems;
}

/**
 * The compression method the chunks' `bytes` column is set to (`attcompression`: `""`
 * for the server's default, `"l"` for lz4, `"p"` for pglz).
 */
export async function chunkBytesCompression(sql: SqlExecutor, names: TableNames): Promise<string> {
  const [column] = await sql.query<{ method: string }>(
    `SELECT attcompression::text AS method FROM pg_attribute
      WHERE attrelid = to_regclass($1::text) AND attname = 'bytes'`,
    [names.chunks],
  );
  return column.method;
}
