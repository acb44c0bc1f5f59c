/**
 * Where imported rollout lines end up: one row per line (conversation id, line number,
 * record type, the line's exact text, its parsed JSON), a carry row holding the partial
 * line at the end of a chunk until the next chunk completes it, and one "import" row per
 * conversation naming the source whose rows are current.
 *
 * Two implementations of {@link RecordTables}: SQL (PostgreSQL and PGlite, written through
 * the adapter's transaction) and memory (the dry run).
 *
 * @module
 */

import type { SqlExecutor, SqlRow } from "@zakstam/codex-sync-engine-postgres";

/** A line to store. */
export interface NewRow {
  lineNo: number;
  recordType: string | null;
  /** Exact text of the line; null when it is not UTF-8 (then `bytes` holds it). */
  text: string | null;
  bytes?: Uint8Array;
  valid: boolean;
  /** False when jsonb cannot hold the parsed value: `record` is stored as NULL. */
  jsonbSafe: boolean;
}

/** A stored line, as read back for verification. */
export interface StoredLine {
  lineNo: number;
  text: string | null;
  bytes: Uint8Array | null;
}

/** The partial line at the end of the last applied chunk. */
export interface Carry {
  nextLine: number;
  pending: Uint8Array;
}

/** The current import of a conversation. */
export interface ImportRow {
  scope: string;
  conversationId: string;
  sourceId: string;
  jobId: string;
  path: string;
  fileSha256: string;
  lineCount: number;
  invalidCount: number;
  byteCount: number;
  digest: string;
  importedAt: number;
}

/** A source with stored rows that no import points to. */
export interface UnlinkedSource {
  scope: string;
  sourceId: string;
}

/** The host's tables, inside one transaction (SQL) or directly (memory). */
export interface RecordTables {
  loadCarry(scope: string, sourceId: string): Promise<Carry | undefined>;
  saveCarry(scope: string, sourceId: string, conversationId: string, carry: Carry): Promise<void>;
  deleteCarry(scope: string, sourceId: string): Promise<void>;
  /** Inserts rows (a row already stored at the same line is replaced). */
  insertRows(
    scope: string,
    sourceId: string,
    conversationId: string,
    rows: readonly NewRow[],
  ): Promise<void>;
  /** Rows with `lineNo > afterLine`, ascending, at most `limit`. */
  readLines(
    scope: string,
    sourceId: string,
    afterLine: number,
    limit: number,
  ): Promise<StoredLine[]>;
  countRows(scope: string, sourceId: string): Promise<{ lines: number; invalid: number }>;
  /** Makes `row` the conversation's current import and drops other sources' rows. */
  setImport(row: ImportRow): Promise<void>;
  getImport(scope: string, conversationId: string): Promise<ImportRow | undefined>;
  listImports(scope: string, limit: number): Promise<ImportRow[]>;
  countImports(scope: string): Promise<number>;
  /** Sources with rows (or a carry) but no import pointing at them. */
  listUnlinkedSources(limit: number): Promise<UnlinkedSource[]>;
  /** Deletes a source's rows and carry; returns how many rows were deleted. */
  deleteSource(scope: string, sourceId: string): Promise<number>;
}

// ---------------------------------------------------------------------------------------
// SQL

/** Table names of the SQL implementation. */
export interface RecordTableNames {
  records: string;
  carry: string;
  imports: string;
}

/** Table names in `schema` (default `public`), prefixed `codex_rollout_`. */
export function recordTableNames(schema = "public"): RecordTableNames {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  return {
    records: `"${schema}"."codex_rollout_records"`,
    carry: `"${schema}"."codex_rollout_carry"`,
    imports: `"${schema}"."codex_rollout_imports"`,
  };
}

/** Creates the tables if missing (idempotent; concurrent callers are serialised). */
export async function ensureRecordTables(
  db: { transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> },
  names: RecordTableNames,
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('codex_rollout_schema'))`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.records} (
      scope text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      line_no integer NOT NULL,
      conversation_id text COLLATE "C" NOT NULL,
      record_type text,
      line text,
      line_bytes bytea,
      record jsonb,
      valid boolean NOT NULL,
      PRIMARY KEY (scope, source_id, line_no)
    )`);
    await tx.query(
      `CREATE INDEX IF NOT EXISTS codex_rollout_records_conversation
        ON ${names.records} (scope, conversation_id, source_id)`,
    );
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.carry} (
      scope text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      conversation_id text COLLATE "C" NOT NULL,
      next_line integer NOT NULL,
      pending bytea NOT NULL,
      PRIMARY KEY (scope, source_id)
    )`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.imports} (
      scope text COLLATE "C" NOT NULL,
      conversation_id text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      job_id text NOT NULL,
      path text NOT NULL,
      file_sha256 text NOT NULL,
      line_count integer NOT NULL,
      invalid_count integer NOT NULL,
      byte_count bigint NOT NULL,
      digest text NOT NULL,
      imported_at bigint NOT NULL,
      PRIMARY KEY (scope, conversation_id)
    )`);
  });
}

function importOf(row: SqlRow): ImportRow {
  return {
    scope: String(row.scope),
    conversationId: String(row.conversation_id),
    sourceId: String(row.source_id),
    jobId: String(row.job_id),
    path: String(row.path),
    fileSha256: String(row.file_sha256),
    lineCount: Number(row.line_count),
    invalidCount: Number(row.invalid_count),
    byteCount: Number(row.byte_count),
    digest: String(row.digest),
    importedAt: Number(row.imported_at),
  };
}

function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    return new Uint8Array(value.buffer, value.byteOffset, value.length);
  }
  throw new Error(`expected bytes from the database, got ${typeof value}`);
}

/** The tables over `sql` (a transaction, or the pool for reads). */
export function sqlRecordTables(sql: SqlExecutor, names: RecordTableNames): RecordTables {
  const { records, carry, imports } = names;
  return {
    async loadCarry(scope, sourceId) {
      const [row] = await sql.query(
        `SELECT next_line, pending FROM ${carry} WHERE scope = $1::text AND source_id = $2::text`,
        [scope, sourceId],
      );
      return row ? { nextLine: Number(row.next_line), pending: toBytes(row.pending) } : undefined;
    },
    async saveCarry(scope, sourceId, conversationId, value) {
      await sql.query(
        `INSERT INTO ${carry} (scope, source_id, conversation_id, next_line, pending)
          VALUES ($1::text, $2::text, $3::text, $4::integer, $5::bytea)
          ON CONFLICT (scope, source_id)
          DO UPDATE SET next_line = EXCLUDED.next_line, pending = EXCLUDED.pending`,
        [scope, sourceId, conversationId, value.nextLine, value.pending],
      );
    },
    async deleteCarry(scope, sourceId) {
      await sql.query(`DELETE FROM ${carry} WHERE scope = $1::text AND source_id = $2::text`, [
        scope,
        sourceId,
      ]);
    },
    async insertRows(scope, sourceId, conversationId, rows) {
      const textRows = rows.filter((row) => row.text !== null);
      if (textRows.length > 0) {
        // One statement per batch, driver-agnostic: the rows travel as one JSON text.
        const batch = JSON.stringify(
          textRows.map((row) => [row.lineNo, row.recordType, row.text, row.valid, row.jsonbSafe]),
        );
        await sql.query(
          `INSERT INTO ${records}
            (scope, source_id, line_no, conversation_id, record_type, line, record, valid)
          SELECT $1::text, $2::text, (e->>0)::integer, $3::text, e->>1, e->>2,
            CASE WHEN (e->>3)::boolean AND (e->>4)::boolean THEN (e->>2)::jsonb END,
            (e->>3)::boolean
          FROM jsonb_array_elements($4::text::jsonb) AS e
          ON CONFLICT (scope, source_id, line_no) DO UPDATE SET
            conversation_id = EXCLUDED.conversation_id, record_type = EXCLUDED.record_type,
            line = EXCLUDED.line, line_bytes = NULL, record = EXCLUDED.record,
            valid = EXCLUDED.valid`,
          [scope, sourceId, conversationId, batch],
        );
      }
      for (const row of rows) {
        if (row.text !== null) continue;
        await sql.query(
          `INSERT INTO ${records}
            (scope, source_id, line_no, conversation_id, record_type, line, line_bytes, record, valid)
          VALUES ($1::text, $2::text, $3::integer, $4::text, NULL, NULL, $5::bytea, NULL, false)
          ON CONFLICT (scope, source_id, line_no) DO UPDATE SET
            line = NULL, line_bytes = EXCLUDED.line_bytes, record = NULL, valid = false,
            record_type = NULL`,
          [scope, sourceId, row.lineNo, conversationId, row.bytes ?? new Uint8Array(0)],
        );
      }
    },
    async readLines(scope, sourceId, afterLine, limit) {
      const rows = await sql.query(
        `SELECT line_no, line, line_bytes FROM ${records}
          WHERE scope = $1::text AND source_id = $2::text AND line_no > $3::integer
          ORDER BY line_no LIMIT $4::integer`,
        [scope, sourceId, afterLine, limit],
      );
      return rows.map((row) => ({
        lineNo: Number(row.line_no),
        text: row.line === null ? null : String(row.line),
        bytes: row.line_bytes === null ? null : toBytes(row.line_bytes),
      }));
    },
    async countRows(scope, sourceId) {
      const [row] = await sql.query(
        `SELECT count(*)::integer AS lines, (count(*) FILTER (WHERE NOT valid))::integer AS invalid
          FROM ${records} WHERE scope = $1::text AND source_id = $2::text`,
        [scope, sourceId],
      );
      return { lines: Number(row?.lines ?? 0), invalid: Number(row?.invalid ?? 0) };
    },
    async setImport(row) {
      await sql.query(
        `INSERT INTO ${imports} (scope, conversation_id, source_id, job_id, path, file_sha256,
            line_count, invalid_count, byte_count, digest, imported_at)
          VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::integer,
            $8::integer, $9::bigint, $10::text, $11::bigint)
          ON CONFLICT (scope, conversation_id) DO UPDATE SET
            source_id = EXCLUDED.source_id, job_id = EXCLUDED.job_id, path = EXCLUDED.path,
            file_sha256 = EXCLUDED.file_sha256, line_count = EXCLUDED.line_count,
            invalid_count = EXCLUDED.invalid_count, byte_count = EXCLUDED.byte_count,
            digest = EXCLUDED.digest, imported_at = EXCLUDED.imported_at`,
        [
          row.scope,
          row.conversationId,
          row.sourceId,
          row.jobId,
          row.path,
          row.fileSha256,
          row.lineCount,
          row.invalidCount,
          row.byteCount,
          row.digest,
          row.importedAt,
        ],
      );
      const other = `scope = $1::text AND conversation_id = $2::text AND source_id <> $3::text`;
      const params = [row.scope, row.conversationId, row.sourceId];
      await sql.query(`DELETE FROM ${records} WHERE ${other}`, params);
      await sql.query(`DELETE FROM ${carry} WHERE ${other}`, params);
    },
    async getImport(scope, conversationId) {
      const [row] = await sql.query(
        `SELECT * FROM ${imports} WHERE scope = $1::text AND conversation_id = $2::text`,
        [scope, conversationId],
      );
      return row ? importOf(row) : undefined;
    },
    async listImports(scope, limit) {
      const rows = await sql.query(
        `SELECT * FROM ${imports} WHERE scope = $1::text
          ORDER BY imported_at DESC, conversation_id LIMIT $2::integer`,
        [scope, limit],
      );
      return rows.map(importOf);
    },
    async countImports(scope) {
      const [row] = await sql.query(
        `SELECT count(*)::integer AS n FROM ${imports} WHERE scope = $1::text`,
        [scope],
      );
      return Number(row?.n ?? 0);
    },
    async listUnlinkedSources(limit) {
      const rows = await sql.query(
        `SELECT scope, source_id FROM (
            SELECT DISTINCT scope, source_id FROM ${records}
            UNION SELECT scope, source_id FROM ${carry}
          ) s
          WHERE NOT EXISTS (SELECT 1 FROM ${imports} i
            WHERE i.scope = s.scope AND i.source_id = s.source_id)
          ORDER BY scope, source_id LIMIT $1::integer`,
        [limit],
      );
      return rows.map((row) => ({ scope: String(row.scope), sourceId: String(row.source_id) }));
    },
    async deleteSource(scope, sourceId) {
      const deleted = await sql.query(
        `WITH d AS (DELETE FROM ${records} WHERE scope = $1::text AND source_id = $2::text
          RETURNING 1) SELECT count(*)::integer AS n FROM d`,
        [scope, sourceId],
      );
      await sql.query(`DELETE FROM ${carry} WHERE scope = $1::text AND source_id = $2::text`, [
        scope,
        sourceId,
      ]);
      return Number(deleted[0]?.n ?? 0);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Memory

interface MemoryRow extends StoredLine {
  conversationId: string;
  valid: boolean;
}

/** The tables in memory (dry runs and tests). Each call completes atomically. */
export function memoryRecordTables(): RecordTables {
  const key = (scope: string, sourceId: string) => `${scope.length}:${scope}:${sourceId}`;
  const sources = new Map<
    string,
    { scope: string; sourceId: string; rows: Map<number, MemoryRow> }
  >();
  const carries = new Map<
    string,
    Carry & { scope: string; sourceId: string; conversationId: string }
  >();
  const imports = new Map<string, ImportRow>();
  const importKey = (scope: string, conversationId: string) => key(scope, conversationId);
  return {
    loadCarry: (scope, sourceId) => {
      const found = carries.get(key(scope, sourceId));
      return Promise.resolve(found && { nextLine: found.nextLine, pending: found.pending });
    },
    saveCarry: (scope, sourceId, conversationId, value) => {
      carries.set(key(scope, sourceId), { ...value, scope, sourceId, conversationId });
      return Promise.resolve();
    },
    deleteCarry: (scope, sourceId) => {
      carries.delete(key(scope, sourceId));
      return Promise.resolve();
    },
    insertRows: (scope, sourceId, conversationId, rows) => {
      const k = key(scope, sourceId);
      let entry = sources.get(k);
      if (!entry) sources.set(k, entry = { scope, sourceId, rows: new Map() });
      for (const row of rows) {
        entry.rows.set(row.lineNo, {
          lineNo: row.lineNo,
          text: row.text,
          bytes: row.text === null ? row.bytes ?? new Uint8Array(0) : null,
          conversationId,
          valid: row.valid,
        });
      }
      return Promise.resolve();
    },
    readLines: (scope, sourceId, afterLine, limit) => {
      const rows = [...(sources.get(key(scope, sourceId))?.rows.values() ?? [])]
        .filter((row) => row.lineNo > afterLine)
        .sort((a, b) => a.lineNo - b.lineNo)
        .slice(0, limit);
      return Promise.resolve(rows.map(({ lineNo, text, bytes }) => ({ lineNo, text, bytes })));
    },
    countRows: (scope, sourceId) => {
      const rows = [...(sources.get(key(scope, sourceId))?.rows.values() ?? [])];
      return Promise.resolve({
        lines: rows.length,
        invalid: rows.filter((row) => !row.valid).length,
      });
    },
    setImport: (row) => {
      imports.set(importKey(row.scope, row.conversationId), { ...row });
      for (const [k, entry] of sources) {
        if (entry.scope !== row.scope || entry.sourceId === row.sourceId) continue;
        const first = entry.rows.values().next().value;
        if (first?.conversationId === row.conversationId) sources.delete(k);
      }
      for (const [k, found] of carries) {
        if (
          found.scope === row.scope && found.conversationId === row.conversationId &&
          found.sourceId !== row.sourceId
        ) carries.delete(k);
      }
      return Promise.resolve();
    },
    getImport: (scope, conversationId) =>
      Promise.resolve(imports.get(importKey(scope, conversationId))),
    listImports: (scope, limit) =>
      Promise.resolve(
        [...imports.values()].filter((row) => row.scope === scope)
          .sort((a, b) => b.importedAt - a.importedAt).slice(0, limit),
      ),
    countImports: (scope) =>
      Promise.resolve([...imports.values()].filter((row) => row.scope === scope).length),
    listUnlinkedSources: (limit) => {
      const linked = new Set([...imports.values()].map((row) => key(row.scope, row.sourceId)));
      const all = new Map<string, UnlinkedSource>();
      for (const [k, entry] of sources) {
        all.set(k, { scope: entry.scope, sourceId: entry.sourceId });
      }
      for (const [k, found] of carries) {
        all.set(k, { scope: found.scope, sourceId: found.sourceId });
      }
      return Promise.resolve(
        [...all].filter(([k]) => !linked.has(k)).map(([, v]) => v).slice(0, limit),
      );
    },
    deleteSource: (scope, sourceId) => {
      const k = key(scope, sourceId);
      const count = sources.get(k)?.rows.size ?? 0;
      sources.delete(k);
      carries.delete(k);
      return Promise.resolve(count);
    },
  };
}
