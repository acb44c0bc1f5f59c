/**
 * The schema, as versioned migrations the adapter applies itself at start-up. Applying
 * is idempotent, runs in one transaction, and concurrent start-ups (many workers at once)
 * are serialised by a transaction-scoped advisory lock on the schema.
 *
 * Each record is kept whole as JSON (`record`, type `json`: byte-exact, so any string
 * round-trips) next to the columns it is looked up, ordered or filtered by, each
 * behind an index. Text keys use the "C" collation: ordering by id is by code point, as
 * in the engine. Times are epoch milliseconds from the engine's clock, never `now()`.
 *
 * @module
 */

import { SyncError } from "@zakstam/codex-sync-engine";
import type { SqlExecutor } from "./driver.ts";
import type { TableNames } from "./names.ts";

/** One schema version. */
export interface Migration {
  version: number;
  name: string;
  statements: (names: TableNames) => string[];
}

const TERMINAL = `('succeeded', 'failed', 'cancelled')`;

/** Every migration, in version order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "sources, chunks and jobs",
    statements: (t) => [
      `CREATE TABLE ${t.sources} (
        scope text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        conversation_id text COLLATE "C" NOT NULL,
        state text NOT NULL,
        expires_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        chunks_purged_at bigint,
        record json NOT NULL,
        PRIMARY KEY (scope, source_id)
      )`,
      // gc: collecting sources past their TTL.
      `CREATE INDEX ${t.index("sources_expiry")} ON ${t.sources} (expires_at)
        WHERE state = 'collecting'`,
      // gc: failed or expired sources whose chunks are still stored.
      `CREATE INDEX ${t.index("sources_ended")} ON ${t.sources} (updated_at)
        WHERE state IN ('failed', 'expired') AND chunks_purged_at IS NULL`,
      `CREATE TABLE ${t.chunks} (
        scope text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        idx bigint NOT NULL,
        byte_length integer NOT NULL,
        sha256 text NOT NULL,
        item_count bigint,
        bytes bytea NOT NULL,
        PRIMARY KEY (scope, source_id, idx)
      )`,
      `CREATE TABLE ${t.jobs} (
        scope text COLLATE "C" NOT NULL,
        job_id text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        conversation_id text COLLATE "C" NOT NULL,
        state text NOT NULL,
        run_at bigint NOT NULL,
        created_at bigint NOT NULL,
        completed_at bigint,
        chunks_purged boolean NOT NULL DEFAULT false,
        record json NOT NULL,
        PRIMARY KEY (scope, job_id)
      )`,
      // Claiming: due retries and expired leases alike (a running job's run_at is its
      // lease expiry). Terminal jobs leave the index.
      `CREATE INDEX ${t.index("jobs_due")} ON ${t.jobs} (run_at)
        WHERE state NOT IN ${TERMINAL}`,
      // Supersede: the active jobs of one conversation.
      `CREATE INDEX ${t.index("jobs_active")} ON ${t.jobs} (scope, conversation_id)
        WHERE state NOT IN ${TERMINAL}`,
      // listJobs, newest first, unfiltered / by conversation / by state.
      `CREATE INDEX ${t.index("jobs_newest")} ON ${t.jobs} (scope, created_at, job_id)`,
      `CREATE INDEX ${t.index("jobs_conversation")}
        ON ${t.jobs} (scope, conversation_id, created_at, job_id)`,
      `CREATE INDEX ${t.index("jobs_state")} ON ${t.jobs} (scope, state, created_at, job_id)`,
      // gc: ended jobs whose source still has chunks.
      `CREATE INDEX ${t.index("jobs_ended")} ON ${t.jobs} (completed_at)
        WHERE completed_at IS NOT NULL AND NOT chunks_purged`,
    ],
  },
  {
    version: 2,
    name: "chunk payloads may be released",
    // releasePayloads sets a verified chunk's bytes to NULL; its metadata stays.
    statements: (t) => [`ALTER TABLE ${t.chunks} ALTER COLUMN bytes DROP NOT NULL`],
  },
  {
    version: 3,
    name: "one-step upload of a new sealed source",
    // The store's insertSealedSource: the source, its chunks and its job as one statement
    // (one round trip, one commit), declined when the conversation has a job running.
    // Parameters: the conversation's lock key, the source's row (as insertSource), its
    // chunks' metadata as a JSON array in index order with their bytes concatenated,
    // and the job's row (as insertJob).
    statements: (t) => [
      `CREATE FUNCTION ${t.insertSealedSource}(
        conversation_lock text,
        s_scope text, s_source_id text, s_conversation_id text, s_state text,
        s_expires_at bigint, s_updated_at bigint, s_chunks_purged_at bigint, s_record text,
        chunk_infos text, chunk_bytes bytea,
        j_scope text, j_job_id text, j_source_id text, j_conversation_id text, j_state text,
        j_run_at bigint, j_created_at bigint, j_completed_at bigint, j_record text
      ) RETURNS boolean LANGUAGE plpgsql AS $body$
      BEGIN
        -- The lock listActiveJobs takes: seals of one conversation take turns.
        PERFORM pg_advisory_xact_lock(hashtextextended(conversation_lock, 0));
        -- A statement of its own: its snapshot is taken once the lock is held.
        PERFORM 1 FROM ${t.jobs}
          WHERE scope = s_scope AND conversation_id = s_conversation_id
            AND state NOT IN ${TERMINAL}
          LIMIT 1;
        IF FOUND THEN RETURN false; END IF;
        INSERT INTO ${t.sources} (scope, source_id, conversation_id, state, expires_at,
            updated_at, chunks_purged_at, record)
          VALUES (s_scope, s_source_id, s_conversation_id, s_state, s_expires_at,
            s_updated_at, s_chunks_purged_at, s_record::json)
          ON CONFLICT (scope, source_id) DO NOTHING;
        IF NOT FOUND THEN RETURN false; END IF;
        INSERT INTO ${t.chunks} (scope, source_id, idx, byte_length, sha256, item_count, bytes)
          SELECT s_scope, s_source_id, c.idx, c.byte_length, c.sha256, c.item_count,
            substring(chunk_bytes
              FROM (sum(c.byte_length) OVER (ORDER BY c.n) - c.byte_length + 1)::integer
              FOR c.byte_length)
          FROM ROWS FROM (json_to_recordset(chunk_infos::json)
              AS (idx bigint, byte_length integer, sha256 text, item_count bigint))
            WITH ORDINALITY AS c(idx, byte_length, sha256, item_count, n);
        INSERT INTO ${t.jobs} (scope, job_id, source_id, conversation_id, state, run_at,
            created_at, completed_at, record)
          VALUES (j_scope, j_job_id, j_source_id, j_conversation_id, j_state, j_run_at,
            j_created_at, j_completed_at, j_record::json);
        RETURN true;
      END
      $body$`,
    ],
  },
  {
    version: 4,
    name: "one-step uploads in batches",
    // Uploads that arrive together go as one statement (one round trip, one commit):
    // each item is migration 3's function called with its own parameters, in order, so a
    // later item sees what an earlier one stored (the same conversation twice: the second
    // is declined). Parameters: a JSON array of items, each the 20 parameters of
    // insert_sealed_source but with the chunk bytes as [offset, length] into chunk_bytes.
    statements: (t) => [
      `CREATE FUNCTION ${t.insertSealedSources}(items text, chunk_bytes bytea)
      RETURNS boolean[] LANGUAGE plpgsql AS $body$
      DECLARE
        item jsonb;
        stored boolean[] := '{}';
      BEGIN
        FOR item IN
          SELECT e.value FROM jsonb_array_elements(items::jsonb) WITH ORDINALITY AS e(value, n)
          ORDER BY e.n
        LOOP
          stored := stored || ${t.insertSealedSource}(
            item->>0,
            item->>1, item->>2, item->>3, item->>4,
            (item->>5)::bigint, (item->>6)::bigint, (item->>7)::bigint, item->>8,
            item->>9,
            substring(chunk_bytes FROM (item->>10)::integer + 1 FOR (item->>11)::integer),
            item->>12, item->>13, item->>14, item->>15, item->>16,
            (item->>17)::bigint, (item->>18)::bigint, (item->>19)::bigint, item->>20);
        END LOOP;
        RETURN stored;
      END
      $body$`,
    ],
  },
  {
    version: 5,
    name: "job updates in batches",
    // The job updates one transaction makes back to back (a batch of short jobs claimed
    // and finished together) go as one statement: each item is updateJob's statement by
    // primary key, in order. Parameters: a JSON array of updateJob's rows, each
    // {scope, job_id, state, run_at, completed_at, record} with the record as JSON.
    statements: (t) => [
      `CREATE FUNCTION ${t.updateJobs}(items text) RETURNS void LANGUAGE plpgsql AS $body$
      DECLARE
        u record;
      BEGIN
        FOR u IN
          SELECT * FROM json_to_recordset(items::json) AS (scope text, job_id text,
            state text, run_at bigint, completed_at bigint, record json)
        LOOP
          UPDATE ${t.jobs}
            SET state = u.state, run_at = u.run_at, completed_at = u.completed_at,
              record = u.record
            WHERE scope = u.scope AND job_id = u.job_id;
        END LOOP;
      END
      $body$`,
    ],
  },
  {
    version: 6,
    name: "one-step upload of a sealed extension",
    // The store's insertSealedExtension: an extension whose job starts after its base's,
    // as one statement, declined (storing nothing) unless what the engine read is still
    // stored. Parameters: the conversation's lock key; the sources to update as a JSON
    // array of updateSource's rows, each with the record as read (`read`) and as written
    // (`record`), in lock order; the base's job as read ({scope, job_id, record}); the
    // extension's row (as insertSource); its chunk home; its chunks' metadata as a JSON
    // array with their bytes concatenated; the job's row (as insertJob).
    statements: (t) => [
      `CREATE FUNCTION ${t.insertSealedExtension}(
        conversation_lock text, updates text, base_job text,
        s_scope text, s_source_id text, s_conversation_id text, s_state text,
        s_expires_at bigint, s_updated_at bigint, s_chunks_purged_at bigint, s_record text,
        chunk_home text, chunk_infos text, chunk_bytes bytea,
        j_scope text, j_job_id text, j_source_id text, j_conversation_id text, j_state text,
        j_run_at bigint, j_created_at bigint, j_completed_at bigint, j_record text
      ) RETURNS boolean LANGUAGE plpgsql AS $body$
      DECLARE
        u json;
        read_job json := base_job::json;
        base_created_at bigint;
      BEGIN
        -- The sources as read, locked in the order given (the base, then its home's root):
        -- a row changed meanwhile no longer matches once its lock is held.
        FOR u IN
          SELECT e.value FROM json_array_elements(updates::json) WITH ORDINALITY AS e(value, n)
          ORDER BY e.n
        LOOP
          PERFORM 1 FROM ${t.sources}
            WHERE scope = u->>'scope' AND source_id = u->>'source_id'
              AND record::jsonb = (u->'read')::jsonb
            FOR UPDATE;
          IF NOT FOUND THEN RETURN false; END IF;
        END LOOP;
        -- The lock listActiveJobs takes; each statement after it takes its snapshot then.
        PERFORM pg_advisory_xact_lock(hashtextextended(conversation_lock, 0));
        SELECT created_at INTO base_created_at FROM ${t.jobs}
          WHERE scope = read_job->>'scope' AND job_id = read_job->>'job_id'
            AND record::jsonb = (read_job->'record')::jsonb;
        IF NOT FOUND THEN RETURN false; END IF;
        PERFORM 1 FROM ${t.jobs}
          WHERE scope = j_scope AND conversation_id = j_conversation_id
            AND state NOT IN ${TERMINAL}
          LIMIT 1;
        IF FOUND THEN RETURN false; END IF;
        PERFORM 1 FROM ${t.jobs}
          WHERE scope = j_scope AND conversation_id = j_conversation_id
            AND created_at >= base_created_at AND job_id <> read_job->>'job_id'
          LIMIT 1;
        IF FOUND THEN RETURN false; END IF;
        INSERT INTO ${t.sources} (scope, source_id, conversation_id, state, expires_at,
            updated_at, chunks_purged_at, record)
          VALUES (s_scope, s_source_id, s_conversation_id, s_state, s_expires_at,
            s_updated_at, s_chunks_purged_at, s_record::json)
          ON CONFLICT (scope, source_id) DO NOTHING;
        IF NOT FOUND THEN RETURN false; END IF;
        FOR u IN
          SELECT e.value FROM json_array_elements(updates::json) WITH ORDINALITY AS e(value, n)
          ORDER BY e.n
        LOOP
          UPDATE ${t.sources}
            SET conversation_id = u->>'conversation_id', state = u->>'state',
              expires_at = (u->>'expires_at')::bigint, updated_at = (u->>'updated_at')::bigint,
              chunks_purged_at = (u->>'chunks_purged_at')::bigint, record = u->'record'
            WHERE scope = u->>'scope' AND source_id = u->>'source_id';
          -- As updateSource: a source whose chunks are gone takes its job out of gc's index.
          IF u->>'chunks_purged_at' IS NOT NULL AND u->'record'->>'jobId' IS NOT NULL THEN
            UPDATE ${t.jobs} SET chunks_purged = true
              WHERE scope = u->>'scope' AND job_id = u->'record'->>'jobId' AND NOT chunks_purged;
          END IF;
        END LOOP;
        INSERT INTO ${t.chunks} (scope, source_id, idx, byte_length, sha256, item_count, bytes)
          SELECT s_scope, chunk_home, c.idx, c.byte_length, c.sha256, c.item_count,
            substring(chunk_bytes
              FROM (sum(c.byte_length) OVER (ORDER BY c.n) - c.byte_length + 1)::integer
              FOR c.byte_length)
          FROM ROWS FROM (json_to_recordset(chunk_infos::json)
              AS (idx bigint, byte_length integer, sha256 text, item_count bigint))
            WITH ORDINALITY AS c(idx, byte_length, sha256, item_count, n);
        INSERT INTO ${t.jobs} (scope, job_id, source_id, conversation_id, state, run_at,
            created_at, completed_at, record)
          VALUES (j_scope, j_job_id, j_source_id, j_conversation_id, j_state, j_run_at,
            j_created_at, j_completed_at, j_record::json);
        RETURN true;
      END
      $body$`,
    ],
  },
  {
    version: 7,
    name: "one-step extensions in batches",
    // As migration 4 for new sources: extension steps that arrive together go as one
    // statement (one round trip, one commit), each item migration 6's function called with
    // its own parameters, in order. Parameters: a JSON array of items, each the 23
    // parameters of insert_sealed_extension but with the chunk bytes as [offset, length]
    // into chunk_bytes.
    statements: (t) => [
      `CREATE FUNCTION ${t.insertSealedExtensions}(items text, chunk_bytes bytea)
      RETURNS boolean[] LANGUAGE plpgsql AS $body$
      DECLARE
        item jsonb;
        stored boolean[] := '{}';
      BEGIN
        FOR item IN
          SELECT e.value FROM jsonb_array_elements(items::jsonb) WITH ORDINALITY AS e(value, n)
          ORDER BY e.n
        LOOP
          stored := stored || ${t.insertSealedExtension}(
            item->>0, item->>1, item->>2,
            item->>3, item->>4, item->>5, item->>6,
            (item->>7)::bigint, (item->>8)::bigint, (item->>9)::bigint, item->>10,
            item->>11, item->>12,
            substring(chunk_bytes FROM (item->>13)::integer + 1 FOR (item->>14)::integer),
            item->>15, item->>16, item->>17, item->>18, item->>19,
            (item->>20)::bigint, (item->>21)::bigint, (item->>22)::bigint, item->>23);
        END LOOP;
        RETURN stored;
      END
      $body$`,
    ],
  },
  {
    version: 8,
    name: "chunk payloads compressed with lz4 where the server has it",
    // A payload is written once, read back at most once (by its job or a verify), then
    // released: the codec's speed matters more than its ratio, and lz4 compresses a chunk
    // several times faster than the default pglz. Servers built without lz4 (PGlite
    // among them: feature_not_supported) or older than PostgreSQL 14 (no SET COMPRESSION:
    // a syntax error, hence EXECUTE) keep their default. Values already stored keep theirs.
    statements: (t) => [
      `DO $do$ BEGIN
        EXECUTE $sql$ALTER TABLE ${t.chunks} ALTER COLUMN bytes SET COMPRESSION lz4$sql$;
      EXCEPTION WHEN feature_not_supported OR syntax_error THEN NULL;
      END $do$`,
    ],
  },
];

/** The newest schema version this adapter knows. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1].version;

/** What {@link migrate} did. */
export interface MigrationReport {
  /** Versions applied by this call, in order (empty when the schema was up to date). */
  applied: number[];
  /** The schema version after the call. */
  version: number;
}

/**
 * Brings the tables at `names` up to {@link SCHEMA_VERSION}, creating the schema if
 * needed. Safe to run from many processes at once.
 */
export async function migrate(
  db: { transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> },
  names: TableNames,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  return await db.transaction(async (tx) => {
    await tx.query(
      `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`,
      [`codex-sync-engine:migrate:${names.schema}`],
    );
    const [schema] = await tx.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1::text`, [
      names.schema,
    ]);
    if (!schema) await tx.query(`CREATE SCHEMA "${names.schema}"`);
    const [table] = await tx.query<{ exists: boolean }>(
      `SELECT to_regclass($1::text) IS NOT NULL AS exists`,
      [names.migrations],
    );
    if (!table.exists) {
      await tx.query(
        `CREATE TABLE ${names.migrations} (version integer PRIMARY KEY, name text NOT NULL)`,
      );
    }
    const rows = await tx.query<{ version: number }>(`SELECT version FROM ${names.migrations}`);
    const done = new Set(rows.map((row) => Number(row.version)));
    const latest = migrations[migrations.length - 1]?.version ?? 0;
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new SyncError(
        "E_SYNC_INTERNAL",
        `postgres adapter: the tables at ${names.schema}.${names.prefix}* are at schema ` +
          `version ${newest}, newer than this adapter's ${latest}; upgrade the adapter`,
        { details: { found: newest, supported: latest } },
      );
    }
    const applied: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      for (const statement of migration.statements(names)) await tx.query(statement);
      await tx.query(
        `INSERT INTO ${names.migrations} (version, name) VALUES ($1::integer, $2::text)`,
        [migration.version, migration.name],
      );
      applied.push(migration.version);
    }
    return { applied, version: Math.max(newest, ...applied) };
  });
}
