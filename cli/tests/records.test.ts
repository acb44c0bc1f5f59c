// The SQL record tables on an in-memory PGlite: lines read back as their exact bytes (a
// leading byte order mark too: PGlite drops it from text it decodes), the views
// (codex_rollout_lines with each line's JSON, codex_messages pairing tool calls with their
// output), rows past an import's line count left out, the migration of a version-1
// store (which kept each line's JSON a second time, in a `record jsonb` column), and the
// file state of an import (version 3).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createPGliteDriver } from "@zakstam/codex-sync-engine-postgres";
import {
  ensureRecordTables,
  type NewRow,
  recordTableNames,
  sqlRecordTables,
} from "../src/records.ts";
import { parseLine } from "../src/rollout.ts";

const encoder = new TextEncoder();
// One database for both tests (PGlite takes seconds to start): the migration test works
// in a schema of its own.
const db = await createPGliteDriver({});
after(() => db.close());

function rowsOf(lines: string[]): NewRow[] {
  return lines.map((text, i) => {
    const parsed = parseLine(encoder.encode(text), i === 0);
    return parsed.valid
      ? {
        lineNo: i + 1,
        recordType: parsed.recordType,
        text,
        valid: true,
        jsonbSafe: parsed.jsonbSafe,
      }
      : { lineNo: i + 1, recordType: null, text, valid: false, jsonbSafe: false };
  });
}

const LINES = [
  '\ufeff{"timestamp":"2025-11-01T09:00:00.000Z","type":"session_meta","payload":{"id":"c1"}}',
  '{"timestamp":"2025-11-01T09:00:01.000Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"hello"},{"type":"input_text","text":"there"}]}}',
  '{"timestamp":"2025-11-01T09:00:02.000Z","type":"response_item","payload":{"type":"reasoning","summary":[{"type":"summary_text","text":"thinking"}]}}',
  '{"timestamp":"2025-11-01T09:00:03.000Z","type":"response_item","payload":{"type":"function_call","name":"shell","arguments":"{\\"command\\":[\\"ls\\"]}","call_id":"call_1"}}',
  '{"timestamp":"2025-11-01T09:00:04.000Z","type":"event_msg","payload":{"type":"token_count"}}',
  '{"timestamp":"2025-11-01T09:00:05.000Z","type":"response_item","payload":{"type":"function_call_output","call_id":"call_1","output":"a.txt\\nb.txt"}}',
  '{"timestamp":"2025-11-01T09:00:06.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"done \u2713"}]}}',
  '{"type":"event_msg","payload":{"message":"nul \\u0000"}}',
  "not json\r",
];

test("sql tables: exact bytes back, the lines and messages views, lines past the import left out", async () => {
  {
    const names = recordTableNames();
    await ensureRecordTables(db, names);
    await ensureRecordTables(db, names); // idempotent
    const tables = sqlRecordTables(db, names);
    await tables.insertRows("s", "set-1", "c1", rowsOf(LINES));
    // A line past the import (an extension's job still running, say).
    await tables.insertRows("s", "set-1", "c1", rowsOf([...LINES, '{"type":"later"}']).slice(-1));
    await tables.setImport({
      scope: "s",
      conversationId: "c1",
      sourceId: "source-2",
      rowSet: "set-1",
      jobId: "job",
      path: "/x/rollout-c1.jsonl",
      fileSha256: "0".repeat(64),
      lineCount: LINES.length,
      invalidCount: 1,
      byteCount: 0,
      digest: "0".repeat(64),
      importedAt: 1,
    });
    const read = await tables.readLines("s", "set-1", 0, 100, LINES.length);
    assert.deepEqual(
      read.map((row) => new TextDecoder("utf-8", { ignoreBOM: true }).decode(row.bytes)),
      LINES,
    );
    assert.deepEqual(await tables.countRows("s", "set-1", LINES.length), { lines: 9, invalid: 1 });
    assert.equal((await tables.countRows("s", "set-1")).lines, 10);

    const lines = await db.query(
      `SELECT line_no, record_type, record::text AS record, valid FROM codex_rollout_lines
        WHERE scope = 's' AND conversation_id = 'c1' ORDER BY line_no`,
    );
    assert.equal(lines.length, LINES.length, "the line past the import is left out");
    assert.equal(JSON.parse(String(lines[0].record)).payload.id, "c1", "the BOM is skipped");
    assert.equal(lines[7].record, null, "valid JSON jsonb cannot hold");
    assert.equal(lines[8].record, null);
    assert.equal(lines[8].valid, false);

    const messages = await db.query(
      `SELECT line_no, kind, role, text, tool, arguments, call_id, output, output_line_no
        FROM codex_messages WHERE conversation_id = 'c1' ORDER BY line_no`,
    );
    assert.deepEqual(messages.map((m) => [m.line_no, m.kind, m.role]), [
      [2, "message", "user"],
      [3, "reasoning", "assistant"],
      [4, "tool_call", "assistant"],
      [7, "message", "assistant"],
    ]);
    assert.equal(messages[0].text, "hello\nthere");
    assert.equal(messages[1].text, "thinking");
    assert.equal(messages[2].tool, "shell");
    assert.equal(messages[2].output, "a.txt\nb.txt");
    assert.equal(messages[2].output_line_no, 6);
    assert.equal(messages[3].text, "done \u2713");
    const users = await db.query(
      `SELECT text FROM codex_messages WHERE conversation_id = $1 AND role = 'user'`,
      ["c1"],
    );
    assert.deepEqual(users.map((row) => row.text), ["hello\nthere"]);
  }
});

test("sql tables: a version-1 store is migrated (its record column dropped, the views work)", async () => {
  await db.query(`CREATE SCHEMA v1`);
  const names = recordTableNames("v1");
  {
    // The version-1 tables, as an older codex-sync created them.
    await db.query(`CREATE TABLE v1.codex_rollout_records (
      scope text COLLATE "C" NOT NULL, source_id text COLLATE "C" NOT NULL,
      line_no integer NOT NULL, conversation_id text COLLATE "C" NOT NULL,
      record_type text, line text, line_bytes bytea, record jsonb, valid boolean NOT NULL,
      PRIMARY KEY (scope, source_id, line_no))`);
    await db.query(`CREATE TABLE v1.codex_rollout_carry (
      scope text COLLATE "C" NOT NULL, source_id text COLLATE "C" NOT NULL,
      conversation_id text COLLATE "C" NOT NULL, next_line integer NOT NULL,
      pending bytea NOT NULL, PRIMARY KEY (scope, source_id))`);
    await db.query(`CREATE TABLE v1.codex_rollout_imports (
      scope text COLLATE "C" NOT NULL, conversation_id text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL, job_id text NOT NULL, path text NOT NULL,
      file_sha256 text NOT NULL, line_count integer NOT NULL, invalid_count integer NOT NULL,
      byte_count bigint NOT NULL, digest text NOT NULL, imported_at bigint NOT NULL,
      PRIMARY KEY (scope, conversation_id))`);
    await db.query(`INSERT INTO v1.codex_rollout_records VALUES
      ('s', 'src', 1, 'c', 'x', '{"type":"x"}', NULL, '{"type":"x"}', true),
      ('s', 'src', 2, 'c', NULL, 'bad', NULL, NULL, false)`);
    await db.query(`INSERT INTO v1.codex_rollout_imports VALUES
      ('s', 'c', 'src', 'job', '/p', 'f', 2, 1, 17, 'd', 1)`);
    await ensureRecordTables(db, names);
    const columns = await db.query(
      `SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'v1' AND table_name = 'codex_rollout_records'`,
    );
    assert.ok(!columns.some((c) => c.column_name === "record"));
    const tables = sqlRecordTables(db, names);
    const current = (await tables.getImport("s", "c"))!;
    assert.equal(current.rowSet, "src");
    assert.equal(current.damaged, false);
    const lines = await db.query(
      `SELECT line_no, record::text AS record FROM v1.codex_rollout_lines ORDER BY line_no`,
    );
    assert.deepEqual(lines.map((l) => [l.line_no, l.record]), [[1, '{"type": "x"}'], [2, null]]);
  }
});

test("sql tables: a file's state recorded with its import, found by path, cleared by the next import; a version-2 store gets its columns", async () => {
  await db.query(`CREATE SCHEMA v2`);
  const names = recordTableNames("v2");
  await ensureRecordTables(db, names);
  // Back to version 2: without the file state columns and the path index.
  await db.query(`DROP INDEX v2.codex_rollout_imports_path`);
  for (const column of ["file_size", "file_mtime_ns", "file_id", "hash_state"]) {
    await db.query(`ALTER TABLE v2.codex_rollout_imports DROP COLUMN ${column}`);
  }
  await db.query(`UPDATE v2.codex_rollout_schema SET version = 2`);
  const tables = sqlRecordTables(db, names);
  const row = {
    scope: "s",
    conversationId: "c",
    sourceId: "src-1",
    rowSet: "src-1",
    jobId: "job-1",
    path: "/old/rollout-c.jsonl",
    fileSha256: "0".repeat(64),
    lineCount: 2,
    invalidCount: 0,
    byteCount: 17,
    digest: "d",
    importedAt: 1,
  };
  await db.query(`INSERT INTO v2.codex_rollout_imports (scope, conversation_id, source_id,
      row_set, job_id, path, file_sha256, line_count, invalid_count, byte_count, digest,
      imported_at) VALUES ('s', 'c', 'src-1', 'src-1', 'job-1', '/old/rollout-c.jsonl',
      '${row.fileSha256}', 2, 0, 17, 'd', 1)`);
  await ensureRecordTables(db, names);
  const [version] = await db.query(`SELECT version FROM v2.codex_rollout_schema`);
  assert.equal(Number(version.version), 3);
  assert.equal((await tables.getImport("s", "c"))!.file, undefined);
  const state = { size: 20, mtimeNs: "1796165794745666827", fileId: "65024:7", hashState: "s" };
  // Only for the current import's source; the path follows.
  assert.equal(await tables.setFileState("s", "c", "src-0", "/new/rollout-c.jsonl", state), false);
  assert.equal(await tables.setFileState("s", "c", "src-1", "/new/rollout-c.jsonl", state), true);
  const found = (await tables.findImportByPath("s", "/new/rollout-c.jsonl"))!;
  assert.deepEqual(found.file, state);
  assert.equal(found.sourceId, "src-1");
  assert.equal(await tables.findImportByPath("s", "/old/rollout-c.jsonl"), undefined);
  assert.equal(await tables.findImportByPath("other", "/new/rollout-c.jsonl"), undefined);
  // Without an identity.
  const { fileId: _, ...noId } = state;
  await tables.setFileState("s", "c", "src-1", "/new/rollout-c.jsonl", noId);
  assert.deepEqual((await tables.getImport("s", "c"))!.file, noId);
  // A new import of the conversation: the state is the CLI's to record again.
  await tables.setImport({ ...row, sourceId: "src-2", jobId: "job-2", importedAt: 2 });
  assert.equal((await tables.getImport("s", "c"))!.file, undefined);
});
