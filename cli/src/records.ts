/**
 * Where imported rollout lines end up: one row per line (conversation id, line number,
 * record type, the line's exact text — stored once; its JSON is read through a view), a
 * carry row holding the partial line at the end of a chunk until the next chunk
 * completes it, and one "import" row per conversation naming the source whose rows are
 * current.
 *
 * Rows belong to a *row set*: the source whose job wrote the import's first line. A job
 * that extends the current import (it builds on its base's applied job) appends its
 * lines to the base's row set, so an append costs what the new lines cost; a job that
 * applies from chunk 0 writes a row set of its own, which replaces the conversation's
 * rows when it verifies. A row set may hold lines past the import's `lineCount` while an
 * extension's job runs (or after one failed): readers take lines up to `lineCount`.
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
  /**
   * Exact text of the line (without its newline: a text holding one is refused); null
   * when it is not UTF-8 (then `bytes` holds it).
   */
  text: string | null;
  /**
   * The line's exact bytes (`text` is their decoding); required when `text` is null. May
   * be a view into a larger buffer: a store copies what it keeps.
   */
  bytes?: Uint8Array;
  valid: boolean;
  /** False when jsonb cannot hold the parsed value: the views show no `record`. */
  jsonbSafe: boolean;
}

/**
 * The bytes the rows of one insert were cut from: their lines one after another, each
 * but the last followed by a newline, every row's `bytes` a view into `bytes`; `text` is
 * their decoding (the rows' texts joined by newlines), null when they are not UTF-8.
 */
export interface RowBlock {
  bytes: Uint8Array;
  text: string | null;
}

/** A stored line, as read back (its exact bytes, without the newline). */
export interface StoredLine {
  lineNo: number;
  bytes: Uint8Array;
  valid: boolean;
}

/** The partial line at the end of the last applied chunk. */
export interface Carry {
  nextLine: number;
  pending: Uint8Array;
  /** The row set the job writes (its own source id, or its base's row set). */
  rowSet: string;
}

/** The current import of a conversation. */
export interface ImportRow {
  scope: string;
  conversationId: string;
  /** The source imported last (an extension, or a full source). */
  sourceId: string;
  /** The row set holding the import's lines (`sourceId`, or the chain's first full source). */
  rowSet: string;
  jobId: string;
  path: string;
  /** SHA-256 of the imported bytes (the file's complete lines). */
  fileSha256: string;
  lineCount: number;
  invalidCount: number;
  byteCount: number;
  digest: string;
  importedAt: number;
  /** Set by a failed `verify`: the next import of the file re-imports it whole. */
  damaged: boolean;
  /**
   * What the CLI saw of the file when it imported it, recorded after the job succeeded
   * (absent until then, and after any other import of the conversation).
   */
  file?: FileState;
}

/**
 * A file as an import left it: its stat (an unchanged one is taken for unchanged bytes,
 * see `sync_file.ts`) and the hash over the imported bytes, unfinished (an append is
 * hashed from there instead of reading the file again).
 */
export interface FileState {
  /** The file's size (complete lines and the pending part). */
  size: number;
  /** Last modification, in nanoseconds since the epoch (decimal; ms precision on Deno). */
  mtimeNs: string;
  /** `dev:ino`, where the runtime tells it. */
  fileId?: string;
  /** `IncrementalSha256.save()` after the imported bytes. */
  hashState: string;
}

/** A row set or carry that no import points to. */
export interface UnlinkedSource {
  scope: string;
  sourceId: string;
}

/** No upper bound on line numbers. */
const ALL_LINES = 2_147_483_647;

/** The host's tables, inside one transaction (SQL) or directly (memory). */
export interface RecordTables {
  loadCarry(scope: string, sourceId: string): Promise<Carry | undefined>;
  saveCarry(scope: string, sourceId: string, conversationId: string, carry: Carry): Promise<void>;
  deleteCarry(scope: string, sourceId: string): Promise<void>;
  /**
   * Inserts rows into a row set (a row already stored at the same line is replaced).
   * With `block`, the rows are that block's lines in order (see {@link RowBlock}): a store
   * may send it as it is instead of joining the rows again.
   */
  insertRows(
    scope: string,
    rowSet: string,
    conversationId: string,
    rows: readonly NewRow[],
    block?: RowBlock,
  ): Promise<void>;
  /** Deletes the rows of a row set after `afterLine`; returns how many. */
  deleteRowsAfter(scope: string, rowSet: string, afterLine: number): Promise<number>;
  /** Rows with `afterLine < lineNo <= upToLine`, ascending, at most `limit`. */
  readLines(
    scope: string,
    rowSet: string,
    afterLine: number,
    limit: number,
    upToLine?: number,
  ): Promise<StoredLine[]>;
  /** Rows (and invalid ones) of a row set up to `upToLine`. */
  countRows(
    scope: string,
    rowSet: string,
    upToLine?: number,
  ): Promise<{ lines: number; invalid: number }>;
  /**
   * Makes `row` the conversation's current import (not damaged) and drops the rows of
   * its other row sets and the carries of its other sources.
   */
  setImport(row: Omit<ImportRow, "damaged" | "file">): Promise<void>;
  /**
   * Records the file the import of `sourceId` was read from (its path, which follows a
   * moved file, and its {@link FileState}); false, changing nothing, when the
   * conversation's current import is not that source any more.
   */
  setFileState(
    scope: string,
    conversationId: string,
    sourceId: string,
    path: string,
    state: FileState,
  ): Promise<boolean>;
  /** The current import last read from `path` (the newest, should several name it). */
  findImportByPath(scope: string, path: string): Promise<ImportRow | undefined>;
  /** Marks (or clears) the current import as damaged. */
  markDamaged(scope: string, conversationId: string, damaged: boolean): Promise<void>;
  getImport(scope: string, conversationId: string): Promise<ImportRow | undefined>;
  listImports(scope: string, limit: number): Promise<ImportRow[]>;
  countImports(scope: string): Promise<number>;
  /** Row sets (or carries) that no import points to. */
  listUnlinkedSources(limit: number): Promise<UnlinkedSource[]>;
  /** Deletes a row set's rows and a source's carry; returns how many rows were deleted. */
  deleteSource(scope: string, sourceId: string): Promise<number>;
}

// ---------------------------------------------------------------------------------------
// SQL

/** Table and view names of the SQL implementation. */
export interface RecordTableNames {
  records: string;
  carry: string;
  imports: string;
  /** The schema version marker. */
  meta: string;
  /** View: the current rows of every conversation, with `record` (the line's JSON). */
  lines: string;
  /** View: messages, reasoning and tool calls (paired with their output by `call_id`). */
  messages: string;
}

/**
 * Names in `schema` (default `public`): tables `codex_rollout_records`, `_carry`,
 * `_imports`, `_schema`, views `codex_rollout_lines` and `codex_messages`.
 */
export function recordTableNames(schema = "public"): RecordTableNames {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  return {
    records: `"${schema}"."codex_rollout_records"`,
    carry: `"${schema}"."codex_rollout_carry"`,
    imports: `"${schema}"."codex_rollout_imports"`,
    meta: `"${schema}"."codex_rollout_schema"`,
    lines: `"${schema}"."codex_rollout_lines"`,
    messages: `"${schema}"."codex_messages"`,
  };
}

/** Version of the tables and views {@link ensureRecordTables} creates. */
export const RECORD_SCHEMA_VERSION = 3;

/**
 * Creates the tables and views if missing, or brings tables of an older version up to
 * date (version 1 stored each line's JSON a second time, in a `record jsonb` column:
 * dropped, the views parse `line` instead; version 3 added the imports' file state
 * columns and their path index). Idempotent; concurrent callers are serialised.
 */
export async function ensureRecordTables(
  db: SqlExecutor & { transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> },
  names: RecordTableNames,
): Promise<void> {
  const migrated = await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('codex_rollout_schema'))`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.meta} (
      version integer NOT NULL
    )`);
    const [marker] = await tx.query(`SELECT max(version) AS version FROM ${names.meta}`);
    if (Number(marker?.version ?? 0) >= RECORD_SCHEMA_VERSION) return false;
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.records} (
      scope text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      line_no integer NOT NULL,
      conversation_id text COLLATE "C" NOT NULL,
      record_type text,
      line text,
      line_bytes bytea,
      valid boolean NOT NULL,
      has_record boolean NOT NULL DEFAULT false,
      PRIMARY KEY (scope, source_id, line_no)
    )`);
    await tx.query(
      `ALTER TABLE ${names.records} ADD COLUMN IF NOT EXISTS has_record boolean NOT NULL DEFAULT false`,
    );
    const [old] = await tx.query(
      `SELECT count(*)::integer AS n FROM pg_attribute
        WHERE attrelid = $1::text::regclass AND attname = 'record' AND NOT attisdropped`,
      [names.records],
    );
    const hadRecord = Number(old?.n ?? 0) > 0;
    if (hadRecord) {
      await tx.query(`UPDATE ${names.records} SET has_record = (record IS NOT NULL)`);
      await tx.query(`ALTER TABLE ${names.records} DROP COLUMN record`);
    }
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
      row_set text COLLATE "C",
      PRIMARY KEY (scope, source_id)
    )`);
    await tx.query(`ALTER TABLE ${names.carry} ADD COLUMN IF NOT EXISTS row_set text COLLATE "C"`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.imports} (
      scope text COLLATE "C" NOT NULL,
      conversation_id text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      row_set text COLLATE "C",
      job_id text NOT NULL,
      path text NOT NULL,
      file_sha256 text NOT NULL,
      line_count integer NOT NULL,
      invalid_count integer NOT NULL,
      byte_count bigint NOT NULL,
      digest text NOT NULL,
      imported_at bigint NOT NULL,
      damaged boolean NOT NULL DEFAULT false,
      PRIMARY KEY (scope, conversation_id)
    )`);
    await tx.query(
      `ALTER TABLE ${names.imports} ADD COLUMN IF NOT EXISTS row_set text COLLATE "C"`,
    );
    await tx.query(
      `ALTER TABLE ${names.imports} ADD COLUMN IF NOT EXISTS damaged boolean NOT NULL DEFAULT false`,
    );
    for (const column of ["file_size bigint", "file_mtime_ns text", "file_id text"]) {
      await tx.query(`ALTER TABLE ${names.imports} ADD COLUMN IF NOT EXISTS ${column}`);
    }
    await tx.query(`ALTER TABLE ${names.imports} ADD COLUMN IF NOT EXISTS hash_state text`);
    await tx.query(
      `CREATE INDEX IF NOT EXISTS codex_rollout_imports_path ON ${names.imports} (scope, path)`,
    );
    await tx.query(`DROP VIEW IF EXISTS ${names.messages}`);
    await tx.query(`DROP VIEW IF EXISTS ${names.lines}`);
    // The current rows only: the import's row set, up to its line count. `record` is the
    // line's JSON (NULL for invalid lines and JSON jsonb cannot hold; a first line's byte
    // order mark is skipped).
    await tx.query(`CREATE VIEW ${names.lines} AS
      SELECT r.scope, r.conversation_id, r.line_no, r.record_type, r.line, r.line_bytes,
        r.valid,
        CASE WHEN r.has_record THEN ltrim(r.line, chr(65279))::jsonb END AS record,
        i.path, i.source_id
      FROM ${names.imports} i
      JOIN ${names.records} r ON r.scope = i.scope
        AND r.source_id = COALESCE(i.row_set, i.source_id)
        AND r.conversation_id = i.conversation_id
        AND r.line_no <= i.line_count`);
    // One row per message, reasoning summary or tool call of the conversation, in line
    // order; a tool call carries its output (the first output line with its call_id).
    await tx.query(`CREATE VIEW ${names.messages} AS
      WITH items AS (
        SELECT l.scope, l.conversation_id, l.line_no, l.record->>'timestamp' AS ts,
          l.record->'payload' AS p
        FROM ${names.lines} l
        WHERE l.record_type = 'response_item' AND jsonb_typeof(l.record->'payload') = 'object'
      ), outputs AS (
        SELECT DISTINCT ON (scope, conversation_id, p->>'call_id')
          scope, conversation_id, p->>'call_id' AS call_id, line_no, p->>'output' AS output
        FROM items
        WHERE p->>'type' IN ('function_call_output', 'custom_tool_call_output')
          AND p->>'call_id' IS NOT NULL
        ORDER BY scope, conversation_id, p->>'call_id', line_no
      )
      SELECT i.scope, i.conversation_id, i.line_no, i.ts AS "timestamp",
        CASE i.p->>'type' WHEN 'message' THEN 'message' WHEN 'reasoning' THEN 'reasoning'
          ELSE 'tool_call' END AS kind,
        CASE WHEN i.p->>'type' = 'message' THEN i.p->>'role' ELSE 'assistant' END AS role,
        CASE i.p->>'type'
          WHEN 'message' THEN (
            SELECT string_agg(c->>'text', E'\\n' ORDER BY n)
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(i.p->'content') = 'array'
              THEN i.p->'content' ELSE '[]'::jsonb END) WITH ORDINALITY AS e(c, n))
          WHEN 'reasoning' THEN (
            SELECT string_agg(c->>'text', E'\\n' ORDER BY n)
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(i.p->'summary') = 'array'
              THEN i.p->'summary' ELSE '[]'::jsonb END) WITH ORDINALITY AS e(c, n))
        END AS text,
        i.p->>'name' AS tool,
        COALESCE(i.p->>'arguments', i.p->>'input') AS arguments,
        i.p->>'call_id' AS call_id,
        o.output,
        o.line_no AS output_line_no
      FROM items i
      LEFT JOIN outputs o ON i.p->>'type' NOT IN ('message', 'reasoning')
        AND o.scope = i.scope AND o.conversation_id = i.conversation_id
        AND o.call_id = i.p->>'call_id'
      WHERE i.p->>'type' IN ('message', 'reasoning', 'function_call', 'custom_tool_call',
        'local_shell_call')`);
    await tx.query(`DELETE FROM ${names.meta}`);
    await tx.query(`INSERT INTO ${names.meta} (version) VALUES ($1::integer)`, [
      RECORD_SCHEMA_VERSION,
    ]);
    return hadRecord;
  });
  // The dropped column's data (and the rows the UPDATE rewrote) stay on disk until the
  // table is rewritten: once, after the migration.
  if (migrated) await db.query(`VACUUM FULL ${names.records}`);
}

function importOf(row: SqlRow): ImportRow {
  return {
    scope: String(row.scope),
    conversationId: String(row.conversation_id),
    sourceId: String(row.source_id),
    rowSet: String(row.row_set ?? row.source_id),
    jobId: String(row.job_id),
    path: String(row.path),
    fileSha256: String(row.file_sha256),
    lineCount: Number(row.line_count),
    invalidCount: Number(row.invalid_count),
    byteCount: Number(row.byte_count),
    digest: String(row.digest),
    importedAt: Number(row.imported_at),
    damaged: row.damaged === true,
    ...(row.hash_state == null || row.file_size == null || row.file_mtime_ns == null ? {} : {
      file: {
        size: Number(row.file_size),
        mtimeNs: String(row.file_mtime_ns),
        ...(row.file_id == null ? {} : { fileId: String(row.file_id) }),
        hashState: String(row.hash_state),
      },
    }),
  };
}

function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    return new Uint8Array(value.buffer, value.byteOffset, value.length);
  }
  throw new Error(`expected bytes from the database, got ${typeof value}`);
}

const NUL = String.fromCharCode(0);
const encoder = new TextEncoder();

/**
 * Rows split by the column their line goes to: `line` (text), or `line_bytes` for a line
 * that is not UTF-8 or holds a NUL (which PostgreSQL's text cannot).
 */
function splitByColumn(rows: readonly NewRow[]): {
  textRows: (NewRow & { text: string })[];
  byteRows: { row: NewRow; bytes: Uint8Array }[];
} {
  const textRows: (NewRow & { text: string })[] = [];
  const byteRows: { row: NewRow; bytes: Uint8Array }[] = [];
  for (const row of rows) {
    const text = row.text;
    if (text === null) byteRows.push({ row, bytes: row.bytes ?? new Uint8Array(0) });
    else if (text.includes(NUL)) byteRows.push({ row, bytes: row.bytes ?? encoder.encode(text) });
    else if (text.includes("\n")) throw new Error(`line ${row.lineNo} holds a newline`);
    else textRows.push(row as NewRow & { text: string });
  }
  return { textRows, byteRows };
}

/** A `text[]` literal (elements quoted, `NULL` for null; none may hold a NUL). */
function textArrayLiteral(values: readonly (string | null)[]): string {
  return `{${
    values.map((value) => value === null ? "NULL" : `"${value.replace(/["\\]/g, "\\$&")}"`)
      .join(",")
  }}`;
}

/** An `integer[]` literal. */
function integerArrayLiteral(values: readonly number[]): string {
  return `{${values.join(",")}}`;
}

/** A `boolean[]` literal. */
function booleanArrayLiteral(values: readonly boolean[]): string {
  return `{${values.map((value) => value ? "t" : "f").join(",")}}`;
}

/** The texts' length joined by newlines. */
function textLength(rows: readonly { text: string }[]): number {
  let length = rows.length - 1;
  for (const row of rows) length += row.text.length;
  return length;
}

/** True when `part` is a view of `whole`'s memory, within `whole`. */
function isViewInto(part: Uint8Array, whole: Uint8Array): boolean {
  return part.buffer === whole.buffer && part.byteOffset >= whole.byteOffset &&
    part.byteOffset + part.length <= whole.byteOffset + whole.length;
}

/** Scope, row set and conversation of the rows an insert writes. */
type RowOwner = [scope: string, rowSet: string, conversationId: string];

const UPDATE_ON_CONFLICT = `ON CONFLICT (scope, source_id, line_no) DO UPDATE SET
  conversation_id = EXCLUDED.conversation_id, record_type = EXCLUDED.record_type,
  line = EXCLUDED.line, line_bytes = EXCLUDED.line_bytes, valid = EXCLUDED.valid,
  has_record = EXCLUDED.has_record`;

/**
 * The text rows in one statement: their lines joined by newlines (which no line holds),
 * split again by the server, beside one array per column (`''` is one empty line, for
 * which string_to_array gives no element); then each byte row on its own.
 */
async function insertAsText(
  sql: SqlExecutor,
  records: string,
  owner: RowOwner,
  rows: readonly NewRow[],
  block?: RowBlock,
): Promise<void> {
  const { textRows, byteRows } = splitByColumn(rows);
  if (textRows.length > 0) {
    // The block's text is the rows' texts joined already, when every row is a text row.
    const joined = byteRows.length === 0 && typeof block?.text === "string" &&
        block.text.length === textLength(textRows)
      ? block.text
      : textRows.map((row) => row.text).join("\n");
    await sql.query(
      `INSERT INTO ${records} (scope, source_id, line_no, conversation_id, record_type, line,
          line_bytes, valid, has_record)
        SELECT $1::text, $2::text, r.line_no, $3::text, r.record_type, r.line, NULL, r.valid,
          r.has_record
        FROM unnest(
          CASE WHEN $4::text = '' THEN ARRAY[''] ELSE string_to_array($4::text, E'\\n') END,
          $5::integer[], $6::text[], $7::boolean[], $8::boolean[]
        ) AS r(line, line_no, record_type, valid, has_record)
        ${UPDATE_ON_CONFLICT}`,
      [
        ...owner,
        joined,
        integerArrayLiteral(textRows.map((row) => row.lineNo)),
        textArrayLiteral(textRows.map((row) => row.recordType)),
        booleanArrayLiteral(textRows.map((row) => row.valid)),
        booleanArrayLiteral(textRows.map((row) => row.valid && row.jsonbSafe)),
      ],
    );
  }
  for (const { row, bytes } of byteRows) {
    await sql.query(
      `INSERT INTO ${records} (scope, source_id, line_no, conversation_id, record_type, line,
          line_bytes, valid, has_record)
        VALUES ($1::text, $2::text, $4::integer, $3::text, NULL, NULL, $5::bytea, $6::boolean,
          false)
        ${UPDATE_ON_CONFLICT}`,
      [...owner, row.lineNo, bytes, row.valid],
    );
  }
}

/**
 * All rows in one statement: their bytes one after another in one `bytea`, each row's
 * offset and length beside them; a text row's line is its bytes decoded by the server.
 */
async function insertAsBytes(
  sql: SqlExecutor,
  records: string,
  owner: RowOwner,
  rows: readonly NewRow[],
  block?: RowBlock,
): Promise<void> {
  if (rows.length === 0) return;
  const { textRows, byteRows } = splitByColumn(rows);
  const ordered: { row: NewRow; bytes: Uint8Array; isText: boolean }[] = [
    ...textRows.map((row) => ({ row, bytes: row.bytes ?? encoder.encode(row.text), isText: true })),
    ...byteRows.map(({ row, bytes }) => ({ row, bytes, isText: false })),
  ];
  let all: Uint8Array;
  const starts: number[] = [];
  const within = block && ordered.every(({ bytes }) => isViewInto(bytes, block.bytes));
  if (within) {
    // Each row's bytes are where they are in the block: it goes as it is.
    all = block.bytes;
    for (const { bytes } of ordered) starts.push(bytes.byteOffset - all.byteOffset + 1);
  } else {
    all = new Uint8Array(ordered.reduce((sum, { bytes }) => sum + bytes.length, 0));
    let offset = 0;
    for (const { bytes } of ordered) {
      starts.push(offset + 1);
      all.set(bytes, offset);
      offset += bytes.length;
    }
  }
  await sql.query(
    `INSERT INTO ${records} (scope, source_id, line_no, conversation_id, record_type, line,
        line_bytes, valid, has_record)
      SELECT $1::text, $2::text, r.line_no, $3::text, r.record_type,
        CASE WHEN r.is_text
          THEN convert_from(substring($4::bytea FROM r.start FOR r.length), 'UTF8') END,
        CASE WHEN NOT r.is_text THEN substring($4::bytea FROM r.start FOR r.length) END,
        r.valid, r.has_record
      FROM unnest($5::integer[], $6::integer[], $7::integer[], $8::boolean[], $9::text[],
        $10::boolean[], $11::boolean[]) AS r(line_no, start, length, is_text, record_type, valid,
          has_record)
      ${UPDATE_ON_CONFLICT}`,
    [
      ...owner,
      all,
      integerArrayLiteral(ordered.map(({ row }) => row.lineNo)),
      integerArrayLiteral(starts),
      integerArrayLiteral(ordered.map(({ bytes }) => bytes.length)),
      booleanArrayLiteral(ordered.map(({ isText }) => isText)),
      textArrayLiteral(ordered.map(({ row, isText }) => isText ? row.recordType : null)),
      booleanArrayLiteral(ordered.map(({ row }) => row.valid)),
      booleanArrayLiteral(ordered.map(({ row, isText }) => isText && row.valid && row.jsonbSafe)),
    ],
  );
}

/** Options of {@link sqlRecordTables}. */
export interface SqlRecordTablesOptions {
  /**
   * How a chunk's lines travel to the database, in one parameter: `text` (default), the
   * lines joined by newlines; `bytea`, their bytes, for a driver that sends bytes as they
   * are (PGlite does; postgres.js would hex-encode them, and text is cheaper there).
   */
  lineParameter?: "text" | "bytea";
}

/** The tables over `sql` (a transaction, or the pool for reads). */
export function sqlRecordTables(
  sql: SqlExecutor,
  names: RecordTableNames,
  options: SqlRecordTablesOptions = {},
): RecordTables {
  const { records, carry, imports } = names;
  return {
    async loadCarry(scope, sourceId) {
      const [row] = await sql.query(
        `SELECT next_line, pending, row_set FROM ${carry}
          WHERE scope = $1::text AND source_id = $2::text`,
        [scope, sourceId],
      );
      return row
        ? {
          nextLine: Number(row.next_line),
          pending: toBytes(row.pending),
          rowSet: String(row.row_set ?? sourceId),
        }
        : undefined;
    },
    async saveCarry(scope, sourceId, conversationId, value) {
      await sql.query(
        `INSERT INTO ${carry} (scope, source_id, conversation_id, next_line, pending, row_set)
          VALUES ($1::text, $2::text, $3::text, $4::integer, $5::bytea, $6::text)
          ON CONFLICT (scope, source_id) DO UPDATE SET next_line = EXCLUDED.next_line,
            pending = EXCLUDED.pending, row_set = EXCLUDED.row_set`,
        [scope, sourceId, conversationId, value.nextLine, value.pending, value.rowSet],
      );
    },
    async deleteCarry(scope, sourceId) {
      await sql.query(`DELETE FROM ${carry} WHERE scope = $1::text AND source_id = $2::text`, [
        scope,
        sourceId,
      ]);
    },
    insertRows: (scope, rowSet, conversationId, rows, block) =>
      (options.lineParameter === "bytea" ? insertAsBytes : insertAsText)(
        sql,
        records,
        [scope, rowSet, conversationId],
        rows,
        block,
      ),
    async deleteRowsAfter(scope, rowSet, afterLine) {
      const [row] = await sql.query(
        `WITH d AS (DELETE FROM ${records}
            WHERE scope = $1::text AND source_id = $2::text AND line_no > $3::integer
            RETURNING 1)
          SELECT count(*)::integer AS n FROM d`,
        [scope, rowSet, afterLine],
      );
      return Number(row?.n ?? 0);
    },
    async readLines(scope, rowSet, afterLine, limit, upToLine = ALL_LINES) {
      // Bytes, not text: a driver may drop a leading byte order mark when it decodes text
      // (PGlite does), and the caller wants the bytes anyway.
      const rows = await sql.query(
        `SELECT line_no, valid,
            CASE WHEN line IS NULL THEN line_bytes ELSE convert_to(line, 'UTF8') END AS bytes
          FROM ${records}
          WHERE scope = $1::text AND source_id = $2::text AND line_no > $3::integer
            AND line_no <= $5::integer
          ORDER BY line_no LIMIT $4::integer`,
        [scope, rowSet, afterLine, limit, Math.min(upToLine, ALL_LINES)],
      );
      return rows.map((row) => ({
        lineNo: Number(row.line_no),
        bytes: row.bytes === null ? new Uint8Array(0) : toBytes(row.bytes),
        valid: row.valid === true,
      }));
    },
    async countRows(scope, rowSet, upToLine = ALL_LINES) {
      const [row] = await sql.query(
        `SELECT count(*)::integer AS lines, (count(*) FILTER (WHERE NOT valid))::integer AS invalid
          FROM ${records}
          WHERE scope = $1::text AND source_id = $2::text AND line_no <= $3::integer`,
        [scope, rowSet, Math.min(upToLine, ALL_LINES)],
      );
      return { lines: Number(row?.lines ?? 0), invalid: Number(row?.invalid ?? 0) };
    },
    async setImport(row) {
      await sql.query(
        `INSERT INTO ${imports} (scope, conversation_id, source_id, row_set, job_id, path,
            file_sha256, line_count, invalid_count, byte_count, digest, imported_at, damaged)
          VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
            $8::integer, $9::integer, $10::bigint, $11::text, $12::bigint, false)
          ON CONFLICT (scope, conversation_id) DO UPDATE SET
            source_id = EXCLUDED.source_id, row_set = EXCLUDED.row_set,
            job_id = EXCLUDED.job_id, path = EXCLUDED.path,
            file_sha256 = EXCLUDED.file_sha256, line_count = EXCLUDED.line_count,
            invalid_count = EXCLUDED.invalid_count, byte_count = EXCLUDED.byte_count,
            digest = EXCLUDED.digest, imported_at = EXCLUDED.imported_at, damaged = false,
            file_size = NULL, file_mtime_ns = NULL, file_id = NULL, hash_state = NULL`,
        [
          row.scope,
          row.conversationId,
          row.sourceId,
          row.rowSet,
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
      // Two ranges of the (scope, conversation_id, source_id) index around the current row
      // set, so an append does not walk the set's own rows to find nothing to delete.
      for (const side of ["<", ">"]) {
        await sql.query(
          `DELETE FROM ${records}
            WHERE scope = $1::text AND conversation_id = $2::text AND source_id ${side} $3::text`,
          [row.scope, row.conversationId, row.rowSet],
        );
      }
      await sql.query(
        `DELETE FROM ${carry}
          WHERE scope = $1::text AND conversation_id = $2::text AND source_id <> $3::text`,
        [row.scope, row.conversationId, row.sourceId],
      );
    },
    async setFileState(scope, conversationId, sourceId, path, state) {
      const rows = await sql.query(
        `UPDATE ${imports} SET path = $4::text, file_size = $5::bigint,
            file_mtime_ns = $6::text, file_id = $7::text, hash_state = $8::text
          WHERE scope = $1::text AND conversation_id = $2::text AND source_id = $3::text
          RETURNING 1 AS ok`,
        [
          scope,
          conversationId,
          sourceId,
          path,
          state.size,
          state.mtimeNs,
          state.fileId ?? null,
          state.hashState,
        ],
      );
      return rows.length > 0;
    },
    async findImportByPath(scope, path) {
      const [row] = await sql.query(
        `SELECT * FROM ${imports} WHERE scope = $1::text AND path = $2::text
          ORDER BY imported_at DESC, conversation_id LIMIT 1`,
        [scope, path],
      );
      return row ? importOf(row) : undefined;
    },
    async markDamaged(scope, conversationId, damaged) {
      await sql.query(
        `UPDATE ${imports} SET damaged = $3::boolean
          WHERE scope = $1::text AND conversation_id = $2::text`,
        [scope, conversationId, damaged],
      );
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
            WHERE i.scope = s.scope
              AND (COALESCE(i.row_set, i.source_id) = s.source_id OR i.source_id = s.source_id))
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
}

/** The tables in memory (dry runs and tests). Each call completes atomically. */
export function memoryRecordTables(): RecordTables {
  const key = (scope: string, id: string) => `${scope.length}:${scope}:${id}`;
  const sets = new Map<
    string,
    { scope: string; rowSet: string; conversationId: string; rows: Map<number, MemoryRow> }
  >();
  const carries = new Map<
    string,
    Carry & { scope: string; sourceId: string; conversationId: string }
  >();
  const imports = new Map<string, ImportRow>();
  const sorted = (scope: string, rowSet: string, after: number, upTo: number) =>
    [...(sets.get(key(scope, rowSet))?.rows.values() ?? [])]
      .filter((row) => row.lineNo > after && row.lineNo <= upTo)
      .sort((a, b) => a.lineNo - b.lineNo);
  return {
    loadCarry: (scope, sourceId) => {
      const found = carries.get(key(scope, sourceId));
      return Promise.resolve(
        found && { nextLine: found.nextLine, pending: found.pending, rowSet: found.rowSet },
      );
    },
    saveCarry: (scope, sourceId, conversationId, value) => {
      carries.set(key(scope, sourceId), { ...value, scope, sourceId, conversationId });
      return Promise.resolve();
    },
    deleteCarry: (scope, sourceId) => {
      carries.delete(key(scope, sourceId));
      return Promise.resolve();
    },
    insertRows: (scope, rowSet, conversationId, rows) => {
      const k = key(scope, rowSet);
      let entry = sets.get(k);
      if (!entry) sets.set(k, entry = { scope, rowSet, conversationId, rows: new Map() });
      for (const row of rows) {
        entry.rows.set(row.lineNo, {
          lineNo: row.lineNo,
          bytes: row.bytes?.slice() ??
            (row.text === null ? new Uint8Array(0) : encoder.encode(row.text)),
          valid: row.valid,
          conversationId,
        });
      }
      return Promise.resolve();
    },
    deleteRowsAfter: (scope, rowSet, afterLine) => {
      const rows = sets.get(key(scope, rowSet))?.rows;
      let deleted = 0;
      for (const lineNo of [...(rows?.keys() ?? [])]) {
        if (lineNo > afterLine) {
          rows!.delete(lineNo);
          deleted++;
        }
      }
      return Promise.resolve(deleted);
    },
    readLines: (scope, rowSet, afterLine, limit, upToLine = ALL_LINES) =>
      Promise.resolve(
        sorted(scope, rowSet, afterLine, upToLine).slice(0, limit).map((row) => ({
          lineNo: row.lineNo,
          bytes: row.bytes,
          valid: row.valid,
        })),
      ),
    countRows: (scope, rowSet, upToLine = ALL_LINES) => {
      const rows = sorted(scope, rowSet, 0, upToLine);
      return Promise.resolve({
        lines: rows.length,
        invalid: rows.filter((row) => !row.valid).length,
      });
    },
    setImport: (row) => {
      const { file: _file, ...fields } = row as ImportRow;
      imports.set(key(row.scope, row.conversationId), { ...fields, damaged: false });
      for (const [k, entry] of sets) {
        if (
          entry.scope === row.scope && entry.conversationId === row.conversationId &&
          entry.rowSet !== row.rowSet
        ) sets.delete(k);
      }
      for (const [k, found] of carries) {
        if (
          found.scope === row.scope && found.conversationId === row.conversationId &&
          found.sourceId !== row.sourceId
        ) carries.delete(k);
      }
      return Promise.resolve();
    },
    setFileState: (scope, conversationId, sourceId, path, state) => {
      const found = imports.get(key(scope, conversationId));
      if (!found || found.sourceId !== sourceId) return Promise.resolve(false);
      found.path = path;
      found.file = { ...state };
      return Promise.resolve(true);
    },
    findImportByPath: (scope, path) => {
      const found = [...imports.values()].filter((row) => row.scope === scope && row.path === path)
        .sort((a, b) => b.importedAt - a.importedAt)[0];
      return Promise.resolve(
        found && { ...found, ...(found.file ? { file: { ...found.file } } : {}) },
      );
    },
    markDamaged: (scope, conversationId, damaged) => {
      const found = imports.get(key(scope, conversationId));
      if (found) found.damaged = damaged;
      return Promise.resolve();
    },
    getImport: (scope, conversationId) => {
      const found = imports.get(key(scope, conversationId));
      return Promise.resolve(
        found && { ...found, ...(found.file ? { file: { ...found.file } } : {}) },
      );
    },
    listImports: (scope, limit) =>
      Promise.resolve(
        [...imports.values()].filter((row) => row.scope === scope)
          .sort((a, b) => b.importedAt - a.importedAt).slice(0, limit).map((row) => ({ ...row })),
      ),
    countImports: (scope) =>
      Promise.resolve([...imports.values()].filter((row) => row.scope === scope).length),
    listUnlinkedSources: (limit) => {
      const linked = new Set<string>();
      for (const row of imports.values()) {
        linked.add(key(row.scope, row.rowSet));
        linked.add(key(row.scope, row.sourceId));
      }
      const all = new Map<string, UnlinkedSource>();
      for (const [k, entry] of sets) all.set(k, { scope: entry.scope, sourceId: entry.rowSet });
      for (const [k, found] of carries) {
        all.set(k, { scope: found.scope, sourceId: found.sourceId });
      }
      return Promise.resolve(
        [...all].filter(([k]) => !linked.has(k)).map(([, v]) => v).slice(0, limit),
      );
    },
    deleteSource: (scope, sourceId) => {
      const k = key(scope, sourceId);
      const count = sets.get(k)?.rows.size ?? 0;
      sets.delete(k);
      carries.delete(k);
      return Promise.resolve(count);
    },
  };
}
