// The SQL record tables' row insert (a chunk's lines in one parameter — joined by newlines
// and split again by the server, or as bytes with their offsets — beside one array per
// column), each way on an in-memory PGlite and on a PostgreSQL server through postgres.js: every column exactly as given for lines a wrong split or a wrong
// array literal would break (backslashes, quotes, astral characters, U+2028, empty lines,
// a lone `\r`, very long lines, NUL, bytes that are not UTF-8), chunks of one line and of
// a thousand, conflicts across the two line columns; and the handler end to end at tiny
// chunk sizes (lines cut across chunks), verified by the job.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, sha256Hex, syncConversation } from "@zakstam/codex-sync-engine";
import {
  createPGliteDriver,
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "../../adapters/postgres/tests/support/cluster.ts";
import { manifestDataValue, rolloutHandler, type RolloutManifestData } from "../src/handler.ts";
import {
  ensureRecordTables,
  type NewRow,
  recordTableNames,
  type RecordTables,
  sqlRecordTables,
  type SqlRecordTablesOptions,
} from "../src/records.ts";
import { parseLine, parseLines } from "../src/rollout.ts";

const encoder = new TextEncoder();

const pglite = await createPGliteDriver({});
const server = await startTestServer();
const postgres = createPostgresJsDriver({ connectionString: server.url, options: { max: 2 } });
after(async () => {
  await postgres.close();
  await server.dispose();
  await pglite.close();
});
const STORES: [string, PostgresDriver][] = [["pglite", pglite], ["server", postgres]];
const PARAMETERS: NonNullable<SqlRecordTablesOptions["lineParameter"]>[] = ["text", "bytea"];

let schemas = 0;
/** Fresh tables in a schema of their own. */
async function freshTables(
  db: PostgresDriver,
  options: SqlRecordTablesOptions,
): Promise<{ tables: RecordTables; table: string }> {
  const schema = `insert_${++schemas}`;
  await db.query(`CREATE SCHEMA ${schema}`);
  const names = recordTableNames(schema);
  await ensureRecordTables(db, names);
  return { tables: sqlRecordTables(db, names, options), table: names.records };
}

/** A row as the handler makes it from a line's bytes. */
function rowOf(bytes: Uint8Array, lineNo: number): NewRow {
  const parsed = parseLine(bytes, lineNo === 1);
  if (parsed.valid) {
    return {
      lineNo,
      recordType: parsed.recordType,
      text: parsed.text,
      valid: true,
      jsonbSafe: parsed.jsonbSafe,
    };
  }
  const row: NewRow = {
    lineNo,
    recordType: null,
    text: parsed.text,
    valid: false,
    jsonbSafe: false,
  };
  if (parsed.text === null) row.bytes = bytes;
  return row;
}

interface Stored {
  lineNo: number;
  recordType: string | null;
  /** `line`'s UTF-8 (PGlite drops a leading BOM from text it decodes). */
  line: Uint8Array | null;
  lineBytes: Uint8Array | null;
  valid: boolean;
  hasRecord: boolean;
}

async function storedRows(
  db: PostgresDriver,
  table: string,
  sourceId?: string,
): Promise<Stored[]> {
  const rows = await db.query(
    `SELECT line_no, record_type, convert_to(line, 'UTF8') AS line, line_bytes, valid, has_record
      FROM ${table} WHERE source_id = COALESCE($1::text, source_id) ORDER BY line_no`,
    [sourceId ?? null],
  );
  return rows.map((row) => ({
    lineNo: Number(row.line_no),
    recordType: row.record_type === null ? null : String(row.record_type),
    line: row.line === null ? null : new Uint8Array(row.line as Uint8Array),
    lineBytes: row.line_bytes === null ? null : new Uint8Array(row.line_bytes as Uint8Array),
    valid: row.valid === true,
    hasRecord: row.has_record === true,
  }));
}

/** What a row must be stored as: text lines in `line`, the rest (not UTF-8, NUL) as bytes. */
function expected(bytes: Uint8Array, row: NewRow): Stored {
  const asText = row.text !== null && !row.text.includes("\0");
  return {
    lineNo: row.lineNo,
    recordType: asText ? row.recordType : null,
    line: asText ? bytes : null,
    lineBytes: asText ? null : bytes,
    valid: row.valid,
    hasRecord: asText && row.valid && row.jsonbSafe,
  };
}

const LONG_TEXT = '🦀 \\ " \u2028 '.repeat(400_000);

/** Lines (as bytes) that a wrong split, escape or array literal would get wrong. */
const HARD_LINES: Uint8Array[] = [
  '\ufeff{"type":"session_meta","payload":{"id":"c"}}',
  String
    .raw`{"type":"response_item","payload":{"path":"C:\\dir\\new","q":"say \"hi\"","nl":"a\nb\r\n","tab":"\t"}}`,
  '{"type":"event_msg","payload":{"s":"emoji 🦀🧑‍💻 astral 𝄞, CJK 長い, U+2028 \u2028 U+2029 \u2029"}}',
  String.raw`{"type":"event_msg","payload":{"s":"escaped \u2028 \ud83e\udd80"}}`,
  "",
  "\r",
  '{"type":"event_msg"}\r',
  '{"type":\r"turn_context"}',
  "   ",
  String.raw`{"type":"a\"b\\c,{}d e","payload":{}}`,
  '{"type":"NULL"}',
  '{"type":""}',
  '{"type":" spaced "}',
  '{"type":"🦀"}',
  String.raw`{"type":"x\u0000y","payload":{}}`,
  String.raw`{"type":"event_msg","payload":{"message":"nul \u0000, lone \ud83e"}}`,
  '{"type":"response_item","payload":{"n":1}',
  'not json, with \\ and " and {braces}',
  "NULL",
  "a\u0000b",
  '{"type":"event_msg","payload":{"s":"' + LONG_TEXT + '"}}',
  "{",
  String.raw`{"type":"\ud83e","payload":{}}`,
].map((line) => encoder.encode(line)).concat([
  new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]), // not UTF-8
  new Uint8Array([0xed, 0xa0, 0x80]), // an encoded surrogate: not UTF-8 either
  new Uint8Array([0xff]),
  new Uint8Array([0x7b, 0x00, 0x7d]), // NUL
]);

for (
  const [db, store, lineParameter] of STORES.flatMap(([store, db]) =>
    PARAMETERS.map((parameter) => [db, `${store}, lines as ${parameter}`, parameter] as const)
  )
) {
  const options = { lineParameter };
  test(`insertRows (${store}): every column exactly as given, for lines a wrong split would break`, async () => {
    const { tables, table } = await freshTables(db, options);
    const rows = HARD_LINES.map((bytes, i) => rowOf(bytes, i + 1));
    // The cases are what they say (the parse is not what is under test here).
    assert.equal(rows[9].recordType, 'a"b\\c,{}d e');
    assert.equal(rows[10].recordType, "NULL");
    assert.equal(rows[14].recordType, null, "a type with a NUL is not kept");
    assert.equal(rows[14].jsonbSafe, false);
    assert.equal(rows[22].recordType, null, "nor one with a lone surrogate");
    assert.ok(rows[22].valid);
    assert.ok(rows[19].text?.includes("\0") && !rows[19].valid);
    assert.equal(rows.filter((row) => row.text === null).length, 3);

    await tables.insertRows("s", "set", "c", rows);
    const stored = await storedRows(db, table);
    assert.deepEqual(stored, HARD_LINES.map((bytes, i) => expected(bytes, rows[i])));
    // Some of it spelt out.
    assert.equal(stored[10].recordType, "NULL");
    assert.equal(stored[4].line?.length, 0, "an empty line is an empty text, not NULL");
    assert.deepEqual(stored[5].line, new Uint8Array([13]));
    assert.equal(stored[20].line?.length, HARD_LINES[20].length);
    assert.deepEqual(stored[19].lineBytes, encoder.encode("a\u0000b"));
    assert.equal(stored[19].line, null);
    // Read back as the verify reads them: each line's exact bytes.
    const read = await tables.readLines("s", "set", 0, 1000);
    assert.deepEqual(read.map((row) => row.bytes), HARD_LINES);
    assert.deepEqual(await tables.countRows("s", "set"), {
      lines: HARD_LINES.length,
      invalid: rows.filter((row) => !row.valid).length,
    });
  });

  test(`insertRows (${store}): a chunk of one line, of one empty line, of a thousand lines`, async () => {
    const { tables, table } = await freshTables(db, options);
    await tables.insertRows("s", "one", "c", [rowOf(encoder.encode('{"type":"x"}'), 1)]);
    await tables.insertRows("s", "empty", "c", [rowOf(new Uint8Array(0), 1)]);
    const many = Array.from(
      { length: 1000 },
      (_, i) => encoder.encode(i % 7 === 3 ? "" : `{"type":"t${i % 5}","n":${i},"s":"é\\n${i}"}`),
    );
    await tables.insertRows("s", "many", "c", many.map((bytes, i) => rowOf(bytes, i + 1)));
    const lines = async (rowSet: string) =>
      (await tables.readLines("s", rowSet, 0, 2000)).map((row) => [row.lineNo, row.bytes]);
    assert.deepEqual(await lines("one"), [[1, encoder.encode('{"type":"x"}')]]);
    assert.deepEqual(await lines("empty"), [[1, new Uint8Array(0)]]);
    assert.deepEqual(await lines("many"), many.map((bytes, i) => [i + 1, bytes]));
    const [empty] = await db.query(
      `SELECT line, line_bytes, valid FROM ${table} WHERE source_id = 'empty'`,
    );
    assert.deepEqual({ ...empty }, { line: "", line_bytes: null, valid: false });
    const types = await db.query(
      `SELECT record_type, count(*)::integer AS n FROM ${table} WHERE source_id = 'many'
        GROUP BY record_type ORDER BY record_type NULLS FIRST`,
    );
    const counts = new Map<string | null, number>();
    for (let i = 0; i < 1000; i++) {
      const type = i % 7 === 3 ? null : `t${i % 5}`;
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
    assert.deepEqual(
      types.map((row) => [row.record_type, row.n]),
      [...counts].sort(([a], [b]) => a === null ? -1 : b === null ? 1 : a < b ? -1 : 1),
    );
  });

  test(`insertRows (${store}): a chunk's block is sent as it is, its rows stored exactly as without it`, async () => {
    const { tables, table } = await freshTables(db, options);
    // Every hard line but the NUL ones as text rows of one block (a NUL line goes to
    // line_bytes; the block then still serves as bytes, not as text).
    const withText = HARD_LINES.filter((_, i) => i !== 14 && i !== 15 && i !== 19 && i < 23);
    for (const [name, lines] of [["text", withText], ["mixed", HARD_LINES]] as const) {
      const block = joinLines(lines).subarray(0, -1);
      const rows: NewRow[] = [];
      const text = parseLines(block, true, (_parsed, start, end) => {
        const bytes = block.subarray(start, end);
        rows.push({ ...rowOf(bytes, rows.length + 1), bytes });
      });
      const sent: unknown[][] = [];
      const recording = sqlRecordTables(
        {
          query: (sql, params = []) => {
            sent.push([...params]);
            return db.query(sql, params);
          },
        },
        recordTableNames(table.split(".")[0].replaceAll('"', "")),
        options,
      );
      await recording.insertRows("s", name, "c", rows, { bytes: block, text });
      assert.deepEqual(
        await storedRows(db, table, name),
        lines.map((bytes, i) => expected(bytes, rows[i])),
        name,
      );
      const lineParameter = sent[0][3];
      if (options.lineParameter === "bytea") {
        assert.equal((lineParameter as Uint8Array).buffer, block.buffer, "the block's own bytes");
        assert.equal(sent.length, 1);
      } else if (name === "text") {
        assert.equal(lineParameter, text, "the block's own text");
        assert.equal(sent.length, 1);
      } else {
        assert.equal(text, null, "not UTF-8: no text");
        assert.equal(
          sent.length,
          1 + rows.filter((row) => row.text === null || row.text.includes("\0")).length,
        );
      }
    }
    // A block whose text does not fit the rows is not used: the rows' own texts are.
    const lines = [encoder.encode('{"type":"a"}'), encoder.encode('{"type":"b"}')];
    const rows = lines.map((bytes, i) => ({ ...rowOf(bytes, i + 1), bytes }));
    await tables.insertRows("s", "misfit", "c", rows, {
      bytes: joinLines(lines),
      text: '{"type":"a"}\n{"type":"b"}, and more',
    });
    assert.deepEqual(
      await storedRows(db, table, "misfit"),
      lines.map((bytes, i) => expected(bytes, rows[i])),
    );
  });

  test(`insertRows (${store}): a row stored again replaces the old one, across the two columns`, async () => {
    const { tables, table } = await freshTables(db, options);
    const text = encoder.encode('{"type":"event_msg","payload":{}}');
    const notUtf8 = new Uint8Array([0x80, 0x81]);
    const withNul = encoder.encode("x\u0000");
    await tables.insertRows("s", "set", "c", [
      rowOf(text, 1),
      rowOf(notUtf8, 2),
      rowOf(withNul, 3),
      rowOf(text, 4),
    ]);
    await tables.insertRows("s", "set", "c2", [
      rowOf(notUtf8, 1),
      rowOf(text, 2),
      rowOf(text, 3),
      rowOf(withNul, 4),
    ]);
    const stored = await storedRows(db, table);
    assert.deepEqual(stored, [
      expected(notUtf8, rowOf(notUtf8, 1)),
      expected(text, rowOf(text, 2)),
      expected(text, rowOf(text, 3)),
      expected(withNul, rowOf(withNul, 4)),
    ]);
    const owners = await db.query(`SELECT DISTINCT conversation_id FROM ${table}`);
    assert.deepEqual(owners.map((row) => row.conversation_id), ["c2"]);
  });

  test(`insertRows (${store}): a text holding a newline is refused before anything is written`, async () => {
    const { tables, table } = await freshTables(db, options);
    const rows: NewRow[] = [
      rowOf(encoder.encode('{"type":"x"}'), 1),
      { lineNo: 2, recordType: null, text: "two\nlines", valid: false, jsonbSafe: false },
      rowOf(new Uint8Array([0xff]), 3),
    ];
    await assert.rejects(tables.insertRows("s", "set", "c", rows), /line 2 holds a newline/);
    const [count] = await db.query(`SELECT count(*)::integer AS n FROM ${table}`);
    assert.equal(count.n, 0);
  });

  test(`handler (${store}): lines cut across tiny chunks are stored exactly and verify`, async () => {
    const schema = `handler_${++schemas}`;
    await db.query(`CREATE SCHEMA ${schema}`);
    const names = recordTableNames(schema);
    await ensureRecordTables(db, names);
    // The 4 MB line is left out (at 1 KiB a chunk, thousands of chunks); one of 6 KB
    // spans several, cut inside its characters.
    const lines = HARD_LINES.filter((_, i) => i !== 20).concat([
      encoder.encode('{"type":"event_msg","payload":{"s":"' + '🦀\\"\u2028'.repeat(700) + '"}}'),
    ]);
    const file = joinLines(lines);
    for (const chunkSize of [1024, 1500]) {
      const clock = new ManualClock();
      const adapter = await createPostgresAdapter({
        driver: db,
        schema: `${schema}_sync_${chunkSize}`,
        handler: rolloutHandler((context) => sqlRecordTables(context.sql, names, options), {
          now: () => clock.now(),
        }),
        mode: "manual",
        clock,
        policy: { limits: { maxChunkBytes: chunkSize } },
      });
      // Every drain ends before the adapter closes.
      const drains: Promise<number>[] = [];
      try {
        const data: RolloutManifestData = {
          kind: "codex-rollout",
          version: 2,
          path: "/test/rollout.jsonl",
          fileSha256: await sha256Hex(file),
          lineCount: lines.length,
          invalidCount: lines.filter((bytes, i) => !parseLine(bytes, i === 0).valid).length,
          trailingNewline: true,
          chunkSize,
          skipInvalid: true,
        };
        const result = await syncConversation(adapter, {
          scope: "s",
          conversationId: `c${chunkSize}`,
          payload: file,
          format: "bytes",
          chunkSize,
          manifestData: manifestDataValue(data),
          clock,
          onProgress: (event) => {
            if (event.phase === "waiting") drains.push(adapter.drain());
          },
        });
        await Promise.all(drains);
        assert.equal(result.job.state, "succeeded", `chunk size ${chunkSize}`);
        assert.ok(result.manifest.chunkCount > 3, "lines are cut across chunks");
        const tables = sqlRecordTables(db, names, options);
        const read = await tables.readLines("s", result.source.sourceId, 0, 1000);
        assert.deepEqual(read.map((row) => row.bytes), lines, `chunk size ${chunkSize}`);
        assert.deepEqual(
          await storedRows(db, names.records, result.source.sourceId),
          lines.map((bytes, i) => expected(bytes, rowOf(bytes, i + 1))),
        );
      } finally {
        await adapter.close();
      }
    }
  });
}

/** Lines joined as a file: each followed by a newline. */
function joinLines(lines: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(lines.reduce((n, line) => n + line.length + 1, 0));
  let offset = 0;
  for (const line of lines) {
    out.set(line, offset);
    offset += line.length;
    out[offset++] = 10;
  }
  return out;
}
