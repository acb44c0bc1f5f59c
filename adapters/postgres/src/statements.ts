/**
 * Every statement the store runs, in one place so that a test can EXPLAIN each of them
 * and prove that an index serves it (none scans all chunks, all jobs or all sources).
 * Parameters are cast explicitly so both drivers bind them the same way.
 *
 * @module
 */

import type { TableNames } from "./names.ts";

const NOT_TERMINAL = `state NOT IN ('succeeded', 'failed', 'cancelled')`;
const CHUNK_INFO = `idx, byte_length, sha256, item_count`;
// A key lookup per row of a small list, whatever the planner thinks of the tables: a
// subquery with LIMIT is not flattened into a join, so it is never a hash join over a
// sequential scan (which a plan made while a table was small would keep doing as it grows).
const ONE_BY_KEY = `LIMIT 1`;

/** Which optional filters a `listJobs` statement applies. */
export interface JobListFilters {
  conversationId: boolean;
  state: boolean;
  after: boolean;
}

/** The store's SQL over one set of tables. */
export interface StoreStatements {
  getSource: string;
  lockSource: string;
  insertSource: string;
  updateSource: string;
  markJobChunksPurged: string;
  getChunkInfo: string;
  getChunk: string;
  insertChunk: string;
  listChunkInfos: string;
  deleteChunks: string;
  /** Deletes the chunks of a source from an index on (`idx >= $3`), on the primary key. */
  deleteChunksFrom: string;
  /** Drops the bytes of a source's chunks with `$3 <= idx < $4`, on the primary key. */
  releaseChunkPayloads: string;
  getJob: string;
  lockJob: string;
  insertJob: string;
  updateJob: string;
  /** Many `updateJob`s in order: `$1` a JSON array of {@link jobUpdateRows}. */
  updateJobs: string;
  lockConversation: string;
  listActiveJobs: string;
  /**
   * A new sealed source, its chunks and its job in one statement, unless the conversation
   * has a job running: `$1` the conversation's lock key, `$2`-`$9` the source's row, `$10`
   * its chunks' metadata (JSON), `$11` their bytes concatenated, `$12`-`$20` the job's row.
   */
  insertSealedSource: string;
  /**
   * Many `insertSealedSource` calls in one statement, one after the other: `$1` a JSON
   * array with one array per call (its 20 parameters, but the 11th, the bytes, as their
   * offset and length in `$2`), `$2` every call's bytes concatenated. Returns `stored`,
   * one boolean per call, in order.
   */
  insertSealedSources: string;
  /**
   * A sealed extension, its chunks and its job in one statement, unless what the engine
   * read changed: `$1` the conversation's lock key, `$2` the sources to update (JSON),
   * `$3` the base's job as read (JSON), `$4`-`$11` the extension's row, `$12` its chunk
   * home, `$13` its chunks' metadata (JSON), `$14` their bytes, `$15`-`$23` the job's row.
   */
  insertSealedExtension: string;
  /** Many `insertSealedExtension` calls in one statement, as `insertSealedSources`. */
  insertSealedExtensions: string;
  findClaimableJob: string;
  /** Up to `$2` due jobs, locked, in claim order (`$1` is now), each with its source's record. */
  prefetchClaimableJobs: string;
  /**
   * The chunks at `$1`, a JSON array of `{scope, source_id, idx, with_bytes}`, on the
   * primary key: the bytes only `with_bytes` (else NULL; `with_bytes` comes back too).
   */
  getChunksByKeys: string;
  nextRunAt: string;
  listExpiredSources: string;
  listEndedSources: string;
  listSourcesOfEndedJobs: string;
  /** `listJobs` with parameters `scope, [conversationId], [state], [createdAt, jobId], limit`. */
  listJobs(filters: JobListFilters): string;
}

/** Builds the statements for the tables at `t`. */
export function storeStatements(t: TableNames): StoreStatements {
  const sourceKey = `scope = $1::text AND source_id = $2::text`;
  const jobKey = `scope = $1::text AND job_id = $2::text`;
  const getSource = `SELECT record::text AS record FROM ${t.sources} WHERE ${sourceKey}`;
  const getJob = `SELECT record::text AS record FROM ${t.jobs} WHERE ${jobKey}`;
  return {
    getSource,
    lockSource: `${getSource} FOR UPDATE`,
    insertSource: `INSERT INTO ${t.sources}
        (scope, source_id, conversation_id, state, expires_at, updated_at, chunks_purged_at, record)
      VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::bigint, $7::bigint,
        $8::text::json)
      ON CONFLICT (scope, source_id) DO NOTHING
      RETURNING 1 AS inserted`,
    updateSource: `UPDATE ${t.sources}
      SET conversation_id = $3::text, state = $4::text, expires_at = $5::bigint,
        updated_at = $6::bigint, chunks_purged_at = $7::bigint, record = $8::text::json
      WHERE ${sourceKey}`,
    markJobChunksPurged: `UPDATE ${t.jobs} SET chunks_purged = true
      WHERE ${jobKey} AND NOT chunks_purged`,
    getChunkInfo: `SELECT ${CHUNK_INFO} FROM ${t.chunks}
      WHERE ${sourceKey} AND idx = $3::bigint`,
    getChunk: `SELECT ${CHUNK_INFO}, bytes FROM ${t.chunks}
      WHERE ${sourceKey} AND idx = $3::bigint`,
    insertChunk: `INSERT INTO ${t.chunks}
        (scope, source_id, idx, byte_length, sha256, item_count, bytes)
      VALUES ($1::text, $2::text, $3::bigint, $4::integer, $5::text, $6::bigint, $7::bytea)`,
    listChunkInfos: `SELECT ${CHUNK_INFO} FROM ${t.chunks}
      WHERE ${sourceKey} AND idx > $3::bigint ORDER BY idx LIMIT $4::integer`,
    deleteChunks: `WITH deleted AS (
        DELETE FROM ${t.chunks} WHERE ${sourceKey} RETURNING 1
      ) SELECT count(*)::integer AS deleted FROM deleted`,
    deleteChunksFrom: `WITH deleted AS (
        DELETE FROM ${t.chunks} WHERE ${sourceKey} AND idx >= $3::bigint RETURNING 1
      ) SELECT count(*)::integer AS deleted FROM deleted`,
    releaseChunkPayloads: `UPDATE ${t.chunks} SET bytes = NULL
      WHERE ${sourceKey} AND idx >= $3::bigint AND idx < $4::bigint AND bytes IS NOT NULL`,
    getJob,
    lockJob: `${getJob} FOR UPDATE`,
    insertJob: `INSERT INTO ${t.jobs}
        (scope, job_id, source_id, conversation_id, state, run_at, created_at, completed_at,
          record)
      VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::bigint,
        $8::bigint, $9::text::json)`,
    updateJob: `UPDATE ${t.jobs}
      SET state = $3::text, run_at = $4::bigint, completed_at = $5::bigint,
        record = $6::text::json
      WHERE ${jobKey}`,
    updateJobs: `SELECT ${t.updateJobs}($1::text)`,
    // Serialises supersede per conversation: two seals of different sources of one
    // conversation would otherwise each miss the other's new job.
    lockConversation: `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`,
    listActiveJobs: `SELECT record::text AS record FROM ${t.jobs}
      WHERE scope = $1::text AND conversation_id = $2::text AND ${NOT_TERMINAL}
      ORDER BY created_at, job_id FOR UPDATE`,
    insertSealedSource: `SELECT ${t.insertSealedSource}($1::text,
        $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, $8::bigint, $9::text,
        $10::text, $11::bytea,
        $12::text, $13::text, $14::text, $15::text, $16::text, $17::bigint, $18::bigint,
        $19::bigint, $20::text) AS stored`,
    insertSealedSources: `SELECT ${t.insertSealedSources}($1::text, $2::bytea) AS stored`,
    insertSealedExtension: `SELECT ${t.insertSealedExtension}($1::text, $2::text, $3::text,
        $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint, $10::bigint, $11::text,
        $12::text, $13::text, $14::bytea,
        $15::text, $16::text, $17::text, $18::text, $19::text, $20::bigint, $21::bigint,
        $22::bigint, $23::text) AS stored`,
    insertSealedExtensions: `SELECT ${t.insertSealedExtensions}($1::text, $2::bytea) AS stored`,
    findClaimableJob: `SELECT record::text AS record FROM ${t.jobs}
      WHERE ${NOT_TERMINAL} AND run_at <= $1::bigint
      ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
    prefetchClaimableJobs: `WITH due AS (
        SELECT scope, source_id, run_at, record FROM ${t.jobs}
        WHERE ${NOT_TERMINAL} AND run_at <= $1::bigint
        ORDER BY run_at LIMIT $2::integer FOR UPDATE SKIP LOCKED
      )
      SELECT due.record::text AS record, s.record::text AS source_record
      FROM due
      LEFT JOIN LATERAL (
        SELECT record FROM ${t.sources}
        WHERE scope = due.scope AND source_id = due.source_id
        ${ONE_BY_KEY}
      ) s ON true
      ORDER BY due.run_at`,
    getChunksByKeys: `SELECT k.scope, k.source_id, k.idx, c.byte_length, c.sha256, c.item_count,
        CASE WHEN k.with_bytes THEN c.bytes END AS bytes, k.with_bytes
      FROM json_to_recordset($1::text::json)
        AS k(scope text, source_id text, idx bigint, with_bytes boolean)
      CROSS JOIN LATERAL (
        SELECT byte_length, sha256, item_count, bytes FROM ${t.chunks}
        WHERE scope = k.scope AND source_id = k.source_id AND idx = k.idx
        ${ONE_BY_KEY}
      ) c`,
    nextRunAt: `SELECT run_at FROM ${t.jobs} WHERE ${NOT_TERMINAL} ORDER BY run_at LIMIT 1`,
    listExpiredSources: `SELECT record::text AS record FROM ${t.sources}
      WHERE state = 'collecting' AND expires_at <= $1::bigint
      ORDER BY expires_at LIMIT $2::integer FOR UPDATE SKIP LOCKED`,
    listEndedSources: `SELECT record::text AS record FROM ${t.sources}
      WHERE state IN ('failed', 'expired') AND chunks_purged_at IS NULL
        AND updated_at <= $1::bigint
      ORDER BY updated_at LIMIT $2::integer FOR UPDATE SKIP LOCKED`,
    listSourcesOfEndedJobs: `SELECT s.record::text AS record
      FROM ${t.jobs} j JOIN ${t.sources} s ON s.scope = j.scope AND s.source_id = j.source_id
      WHERE j.completed_at IS NOT NULL AND NOT j.chunks_purged
        AND j.completed_at <= $1::bigint AND s.chunks_purged_at IS NULL
      ORDER BY j.completed_at LIMIT $2::integer FOR UPDATE OF s SKIP LOCKED`,
    listJobs: (filters) => {
      const where = [`scope = $1::text`];
      let n = 1;
      if (filters.conversationId) where.push(`conversation_id = $${++n}::text`);
      if (filters.state) where.push(`state = $${++n}::text`);
      if (filters.after) {
        where.push(`(created_at, job_id) < ($${++n}::bigint, $${++n}::text)`);
      }
      return `SELECT record::text AS record FROM ${t.jobs} WHERE ${where.join(" AND ")}
        ORDER BY created_at DESC, job_id DESC LIMIT $${++n}::integer`;
    },
  };
}
