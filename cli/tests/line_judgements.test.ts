// Judging a block of lines with one decode (parseLines), the scan's kept judgements
// (JudgedLines) and the handler using them instead of parsing each line's JSON again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex, syncConversation } from "@zakstam/codex-sync-engine";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import { denoHost } from "../main.ts";
import { manifestDataValue, rolloutHandler, type RolloutManifestData } from "../src/handler.ts";
import { JudgedLines, LineJudgements } from "../src/line_judgements.ts";
import { memoryRecordTables, type NewRow, type RecordTables } from "../src/records.ts";
import { type JudgedLine, parseLine, parseLines, scanRollout } from "../src/rollout.ts";
import { tempDir } from "./support.ts";

const encoder = new TextEncoder();

/** Lines each judged differently, or easy to get wrong in a block. */
const LINES: Uint8Array[] = [
  '\ufeff{"type":"session_meta","payload":{"id":"c"}}',
  '{"type":"event_msg","payload":{"s":"é 🦀 \u2028"}}',
  "",
  '{"type":"x"}\r',
  "\ufeff{}",
  'not json {"type":"y"}',
  String.raw`{"type":"response_item","payload":{"s":"nul \u0000"}}`,
  "   ",
  '{"type":"a\\nb"}',
].map((line) => encoder.encode(line));
const NOT_UTF8 = new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]);

function joinLines(lines: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(lines.reduce((n, line) => n + line.length + 1, -1));
  let at = 0;
  lines.forEach((line, i) => {
    out.set(line, at);
    at += line.length;
    if (i < lines.length - 1) out[at++] = 10;
  });
  return out;
}

/** Without the parsed value (parseLines does not promise one). */
function judgedOf(line: JudgedLine): JudgedLine {
  if (!line.valid) return line;
  const { value: _value, ...judged } = line as JudgedLine & { value?: unknown };
  return judged;
}

function judgeAll(block: Uint8Array, firstLine: boolean, known?: Parameters<typeof parseLines>[3]) {
  const seen: { judged: JudgedLine; bytes: Uint8Array }[] = [];
  const text = parseLines(
    block,
    firstLine,
    (judged, start, end) =>
      seen.push({ judged: judgedOf(judged), bytes: block.subarray(start, end) }),
    known,
  );
  return { text, seen };
}

test("parseLines: each line judged as parseLine judges it, with its bytes, one decode or line by line", () => {
  for (const lines of [LINES, [...LINES.slice(0, 4), NOT_UTF8, ...LINES.slice(4)]]) {
    for (const firstLine of [true, false]) {
      const block = joinLines(lines);
      const { text, seen } = judgeAll(block, firstLine);
      assert.deepEqual(seen.map(({ bytes }) => bytes), lines);
      assert.deepEqual(
        seen.map(({ judged }) => judged),
        lines.map((line, i) => judgedOf(parseLine(line, firstLine && i === 0))),
      );
      // UTF-8 throughout: the block's text is the lines' texts joined; else no text.
      const utf8 = !lines.includes(NOT_UTF8);
      assert.equal(text, utf8 ? new TextDecoder("utf-8", { ignoreBOM: true }).decode(block) : null);
      if (utf8) assert.equal(text, seen.map(({ judged }) => judged.text).join("\n"));
    }
  }
  assert.ok(judgeAll(joinLines(LINES), true).seen[0].judged.valid, "a first line's BOM is allowed");
  assert.ok(!judgeAll(joinLines(LINES), false).seen[0].judged.valid, "elsewhere it is not");
  // No bytes are one empty line; a trailing newline ends with one.
  assert.deepEqual(judgeAll(new Uint8Array(0), false).seen.map(({ bytes }) => bytes.length), [0]);
  assert.deepEqual(
    judgeAll(encoder.encode("{}\n"), false).seen.map(({ bytes }) => bytes.length),
    [2, 0],
  );
});

test("parseLines: a line that `known` vouches for (by index and byte length) is not parsed", () => {
  const block = joinLines([encoder.encode("not json"), encoder.encode('{"type":"real"}')]);
  const asked: [number, number][] = [];
  const { seen } = judgeAll(block, false, (index, length) => {
    asked.push([index, length]);
    // Vouches for line 0 (which is not JSON: the judgement shows it was not parsed).
    return index === 0 ? { recordType: "vouched", jsonbSafe: true } : undefined;
  });
  assert.deepEqual(asked, [[0, 8], [1, 15]]);
  assert.deepEqual(seen.map(({ judged }) => judged), [
    { valid: true, text: "not json", recordType: "vouched", jsonbSafe: true },
    { valid: true, text: '{"type":"real"}', recordType: "real", jsonbSafe: true },
  ]);
  // Not in a block that is not UTF-8: every line is parsed there.
  const mixed = joinLines([encoder.encode("not json"), NOT_UTF8]);
  const none = judgeAll(mixed, false, () => ({ recordType: "vouched", jsonbSafe: true }));
  assert.deepEqual(none.seen.map(({ judged }) => judged.valid), [false, false]);
});

test("JudgedLines: a valid line's judgement by number and length; invalid, unknown or resized lines have none", () => {
  const judged = new JudgedLines(5);
  for (let i = 0; i < 3000; i++) {
    judged.add(i, i % 3 === 2 ? undefined : { recordType: `t${i % 7}`, jsonbSafe: i % 2 === 0 });
  }
  judged.add(10, { recordType: null, jsonbSafe: false });
  assert.deepEqual(judged.get(5, 0), { recordType: "t0", jsonbSafe: true });
  assert.deepEqual(judged.get(5 + 2998, 2998), { recordType: "t2", jsonbSafe: true });
  assert.deepEqual(judged.get(5 + 2997, 2997), { recordType: "t1", jsonbSafe: false });
  assert.deepEqual(judged.get(3005, 10), { recordType: null, jsonbSafe: false });
  assert.equal(judged.get(7, 2), undefined, "an invalid line");
  assert.equal(judged.get(6, 2), undefined, "another length");
  assert.equal(judged.get(4, 0), undefined, "before the first line");
  assert.equal(judged.get(3006, 0), undefined, "after the last");
  const registry = new LineJudgements();
  registry.set("s", "src", judged);
  assert.equal(registry.get("s", "src"), judged);
  assert.equal(registry.get("s2", "src"), undefined);
  registry.delete("s", "src");
  assert.equal(registry.get("s", "src"), undefined);
});

test("scan: keeps the judgements of the lines it judged, numbered as in the file", async () => {
  const dir = tempDir("codex-sync-judged-");
  try {
    const path = join(dir, "rollout-x.jsonl");
    const lines = ['{"type":"a"}', "broken", '{"type":"b","payload":{"x":1}}', '{"type":"c"}'];
    await Deno.writeTextFile(path, lines.join("\n") + "\n" + '{"type":"pend');
    const host = denoHost();
    const whole = await scanRollout(host, path, { keepJudgements: true });
    assert.equal(whole.lineCount, 4);
    const types = (scan: typeof whole) =>
      lines.map((line, i) => scan.judged?.get(i + 1, encoder.encode(line).length)?.recordType);
    assert.deepEqual(types(whole), ["a", undefined, "b", "c"]);
    const from = await scanRollout(host, path, {
      from: encoder.encode(lines.slice(0, 2).join("\n") + "\n").length,
      keepJudgements: true,
    });
    assert.deepEqual(types(from), [undefined, undefined, "b", "c"]);
    assert.equal((await scanRollout(host, path)).judged, undefined, "only when asked");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Imports `bytes` through the handler with `judgements`; returns the rows it inserted. */
async function importWith(bytes: Uint8Array, judged: JudgedLines | undefined, chunkSize: number) {
  const tables = memoryRecordTables();
  const inserted: NewRow[] = [];
  const spy: RecordTables = {
    ...tables,
    insertRows: (scope, rowSet, conversationId, rows, block) => {
      inserted.push(...rows.map((row) => ({ ...row, bytes: row.bytes?.slice() })));
      return tables.insertRows(scope, rowSet, conversationId, rows, block);
    },
  };
  const judgements = new LineJudgements();
  const adapter = createMemoryAdapter({ handler: rolloutHandler(() => spy, { judgements }) });
  const lineCount = bytes.reduce((n, byte) => n + (byte === 10 ? 1 : 0), 0);
  const data: RolloutManifestData = {
    kind: "codex-rollout",
    version: 2,
    path: "/test/input.jsonl",
    fileSha256: await sha256Hex(bytes),
    lineCount,
    invalidCount: 0,
    trailingNewline: true,
    chunkSize,
    skipInvalid: false,
  };
  if (judged) judgements.set("s", "src", judged);
  try {
    const result = await syncConversation(adapter, {
      scope: "s",
      conversationId: "c",
      sourceId: "src",
      payload: bytes,
      format: "bytes",
      chunkSize,
      manifestData: manifestDataValue(data),
    });
    assert.equal(result.job.state, "succeeded");
    return inserted;
  } finally {
    await adapter.close();
  }
}

test("handler: takes the scan's judgement of a line of its source instead of parsing it again", async () => {
  const lines = Array.from({ length: 40 }, (_, i) => `{"type":"t${i}","payload":{"n":${i}}}`);
  const bytes = encoder.encode(lines.join("\n") + "\n");
  const parsed = await importWith(bytes, undefined, 100);
  assert.deepEqual(parsed.map((row) => row.recordType), lines.map((_, i) => `t${i}`));
  // Judgements that differ from what parsing finds show which lines were not parsed: every
  // line whose number and length match, across chunk boundaries (100 bytes a chunk).
  const judged = new JudgedLines(1);
  lines.forEach((line, i) =>
    judged.add(i === 7 ? line.length + 1 : line.length, { recordType: `j${i}`, jsonbSafe: true })
  );
  const rows = await importWith(bytes, judged, 100);
  assert.deepEqual(
    rows.map((row) => row.recordType),
    lines.map((_, i) => i === 7 ? "t7" : `j${i}`),
    "line 8's length differs: parsed",
  );
  assert.deepEqual(rows.map((row) => row.text), lines, "texts are the lines' own");
  assert.deepEqual(rows.map((row) => row.bytes), lines.map((line) => encoder.encode(line)));
});

test("scan: lines judged in blocks are each judged as parseLine judges them, across block and read boundaries", async () => {
  const dir = tempDir("codex-sync-judged-");
  try {
    // Lines of every size around the 32 KiB judging block and the 1 MiB read, some empty,
    // some invalid, some not UTF-8 (a simple seeded generator: the same file each run).
    let seed = 17;
    const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    const lines: Uint8Array[] = [];
    for (let size = 0; size < 2_500_000;) {
      const kind = next(20);
      const length = kind === 0 ? 0 : kind < 3 ? 30_000 + next(6_000) : next(3_000);
      const line = kind === 3
        ? encoder.encode("broken {" + "x".repeat(length))
        : kind === 4
        ? new Uint8Array([0x7b, 0xff, 0x7d])
        : length === 0
        ? new Uint8Array(0)
        : encoder.encode(JSON.stringify({ type: `t${kind}`, s: "é🦀".repeat(length / 6) }));
      lines.push(line);
      size += line.length + 1;
    }
    const path = join(dir, "rollout-blocks.jsonl");
    const file = new Uint8Array(lines.reduce((n, line) => n + line.length + 1, 0));
    lines.reduce(
      (at, line) => (file.set(line, at), file[at + line.length] = 10, at + line.length + 1),
      0,
    );
    await Deno.writeFile(path, file);
    const scan = await scanRollout(denoHost(), path, { keepJudgements: true });
    const judged = lines.map((line, i) => parseLine(line, i === 0));
    assert.equal(scan.lineCount, lines.length);
    const invalid = judged.flatMap((line, i) => line.valid ? [] : [i + 1]);
    assert.equal(scan.invalidCount, invalid.length);
    assert.deepEqual(scan.invalidLines.map((line) => line.line), invalid.slice(0, 20));
    lines.forEach((line, i) => {
      const expected = judged[i];
      assert.deepEqual(
        scan.judged?.get(i + 1, line.length),
        expected.valid
          ? { recordType: expected.recordType, jsonbSafe: expected.jsonbSafe }
          : undefined,
        `line ${i + 1}`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
