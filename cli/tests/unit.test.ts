// In-process tests of the CLI's parts: argument parsing, help and error format, line
// judging, the row-materialising handler on awkward inputs (through the memory store),
// the verify check, the conformance command, and the bundled fixture's determinism.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { syncConversation } from "@zakstam/codex-sync-engine";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import { denoHost } from "../main.ts";
import {
  checkStoredRows,
  COMMANDS,
  conversationIdFromFileName,
  memoryRecordTables,
  parseLine,
  rolloutHandler,
  type RolloutManifestData,
  runCli,
} from "../mod.ts";
import { parseArgs, parseSize } from "../src/args.ts";
import { manifestDataValue } from "../src/handler.ts";
import { SAMPLE_PATH, sampleFixtureBytes } from "../scripts/gen_sample_rollout.ts";
import { sampleRollout } from "../scripts/sample_rollout.ts";
import { sha256Hex } from "@zakstam/codex-sync-engine";
import { captureOutput, rebuild, type StoredRow, tempDir } from "./support.ts";

const encoder = new TextEncoder();

/** Runs the CLI in this process with captured output. */
async function cli(args: string[], cwd = Deno.cwd(), env: Record<string, string> = {}) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const host = {
    ...denoHost(),
    stdout,
    stderr,
    cwd: () => cwd,
    env: (name: string) => name in env ? env[name] : Deno.env.get(name),
  };
  const code = await runCli(args, host);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

test("args: long, inline, short, lists, sizes and usage errors", () => {
  const spec = COMMANDS.find((command) => command.spec.name === "import")!.spec;
  const parsed = parseArgs(["a", "--chunk-size=64k", "--skip-invalid", "b", "--", "--c"], spec);
  assert.deepEqual(parsed.positionals, ["a", "b", "--c"]);
  assert.equal(parsed.options["chunk-size"], 65_536);
  assert.equal(parsed.options["skip-invalid"], true);
  assert.equal(parseSize("1MiB"), 1_048_576);
  assert.equal(parseSize("12"), 12);
  assert.equal(parseSize("1x"), undefined);
  assert.throws(() => parseArgs(["a", "--chunk-sise", "1"], spec), /did you mean --chunk-size/);
  assert.throws(() => parseArgs(["a", "--store", "redis"], spec), /must be one of/);
  assert.throws(() => parseArgs(["a", "--concurrency"], spec), /needs a value/);
  assert.throws(() => parseArgs([], spec), /needs <file-or-dir>/);
});

test("help: every command has --help (exit 0); errors are CODE: message without a stack", async () => {
  const main = await cli(["--help"]);
  assert.equal(main.code, 0);
  assert.match(main.stdout, /Exit codes:/);
  for (const command of COMMANDS) {
    const help = await cli([command.spec.name, "--help"]);
    assert.equal(help.code, 0, command.spec.name);
    assert.match(help.stdout, new RegExp(`^Usage: codex-sync ${command.spec.name}`));
    assert.equal((await cli(["help", command.spec.name])).stdout, help.stdout);
  }
  const unknown = await cli(["imprt"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^E_CLI_USAGE: unknown command "imprt"/);
  const dir = tempDir("unit-help");
  try {
    const missing = await cli(["status"], dir);
    assert.equal(missing.code, 5);
    assert.match(missing.stderr, /^E_CLI_NOT_FOUND: no store in /);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);
    const verbose = await cli(["status", "--verbose"], dir);
    assert.match(verbose.stderr, /^E_CLI_NOT_FOUND: .*\n\s+at /);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("lines: JSON, type, invalid UTF-8, empty, jsonb-unsafe escapes; ids from file names", () => {
  const ok = parseLine(encoder.encode('{"type":"event_msg","payload":{"t":"é🦀"}}\r'));
  assert.ok(ok.valid && ok.recordType === "event_msg" && ok.text.endsWith("\r") && ok.jsonbSafe);
  const bad = parseLine(new Uint8Array([0x7b, 0xff, 0x7d]));
  assert.ok(!bad.valid && bad.text === null && /UTF-8/.test(bad.reason));
  assert.ok(!parseLine(new Uint8Array()).valid);
  const nul = parseLine(encoder.encode('{"type":"x","s":"a\\u0000b"}'));
  assert.ok(nul.valid && !nul.jsonbSafe);
  const surrogate = parseLine(encoder.encode('{"s":"\\ud83e"}'));
  assert.ok(surrogate.valid && !surrogate.jsonbSafe);
  const pair = parseLine(encoder.encode('{"s":"\\ud83e\\udd80"}'));
  assert.ok(pair.valid && pair.jsonbSafe);
  assert.equal(
    conversationIdFromFileName(
      "/x/rollout-2025-05-07T17-24-21-5973b6c0-94b8-487b-a530-2aeb6098ae0e.jsonl",
    ),
    "5973b6c0-94b8-487b-a530-2aeb6098ae0e",
  );
  assert.equal(conversationIdFromFileName("/x/my-session.jsonl"), "my-session");
});

/** Imports `bytes` through the handler and the memory tables; returns the tables' rows. */
async function importBytes(bytes: Uint8Array, chunkSize: number, skipInvalid: boolean) {
  const tables = memoryRecordTables();
  const adapter = createMemoryAdapter({ handler: rolloutHandler(() => tables) });
  const lines = bytes.length === 0 ? [] : new TextDecoder().decode(bytes).split("\n");
  const trailingNewline = bytes.length === 0 || bytes[bytes.length - 1] === 10;
  if (trailingNewline && lines.length > 0) lines.pop();
  const data: RolloutManifestData = {
    kind: "codex-rollout",
    version: 1,
    path: "/test/input.jsonl",
    fileSha256: await sha256Hex(bytes),
    lineCount: lines.length,
    invalidCount: lines.filter((line) => !parseLine(encoder.encode(line)).valid).length,
    trailingNewline,
    chunkSize,
    skipInvalid,
  };
  try {
    const result = await syncConversation(adapter, {
      scope: "s",
      conversationId: "c",
      payload: bytes,
      format: "bytes",
      chunkSize,
      manifestData: manifestDataValue(data),
    });
    const rows = await tables.readLines("s", result.source.sourceId, 0, 1_000_000);
    return { result, rows, tables };
  } finally {
    await adapter.close();
  }
}

test("handler: rows rebuild the input exactly at tiny chunk sizes (CRLF, long lines, no final newline)", async () => {
  const long = JSON.stringify({ type: "response_item", text: "長い行 🦀 ".repeat(900) });
  const text = [
    ...sampleRollout({ sessionId: "c", targetBytes: 30_000, seed: 5 }),
    long,
    '{"type":"x","s":"a\\u0000b"}',
  ].join("\r\n");
  for (const chunkSize of [1024, 1500, 4096]) {
    for (const input of [text, text + "\r\n", ""]) {
      const bytes = encoder.encode(input);
      const { rows } = await importBytes(bytes, chunkSize, false);
      const rebuilt = rebuild(
        rows.map((row) => ({ line: null, line_bytes: row.bytes }) as StoredRow),
        input.endsWith("\n"),
      );
      assert.deepEqual(rebuilt, bytes, `chunk size ${chunkSize}`);
    }
  }
});

test("handler: --skip-invalid keeps malformed and non-UTF-8 lines as invalid rows; check catches tampering", async () => {
  const parts = [
    encoder.encode('{"type":"session_meta","payload":{"id":"c"}}\n'),
    new Uint8Array([0x7b, 0xc3, 0x28, 0x7d, 0x0a]), // invalid UTF-8
    encoder.encode('{"type":"event_msg", broken\n'),
    encoder.encode('{"type":"event_msg","payload":{"message":"fin ✓"}}\n'),
  ];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  const { result, rows, tables } = await importBytes(bytes, 1024, true);
  assert.equal(rows.length, 4);
  assert.equal(rows[1].valid, false);
  assert.deepEqual(rows[1].bytes, parts[1].subarray(0, 4));
  assert.equal((await tables.countRows("s", result.source.sourceId)).invalid, 2);
  const sourceId = result.source.sourceId;
  const clean = await checkStoredRows(tables, "s", sourceId, result.manifest, {
    uniformChunks: true,
  });
  assert.ok(clean.ok, clean.problems.join("; "));
  await tables.insertRows("s", sourceId, "c", [{
    lineNo: 4,
    recordType: "event_msg",
    text: '{"type":"event_msg","payload":{"message":"fin ✗"}}',
    valid: true,
    jsonbSafe: true,
  }]);
  const tampered = await checkStoredRows(tables, "s", sourceId, result.manifest, {
    uniformChunks: true,
  });
  assert.ok(!tampered.ok);
  assert.match(tampered.problems.join("; "), /composite digest/);
  assert.match(tampered.problems.join("; "), /file sha256/);
  // Without the chunk boundaries the file's digest still catches it.
  const unchunked = await checkStoredRows(tables, "s", sourceId, result.manifest);
  assert.deepEqual(unchunked.problems, [tampered.problems.at(-1)]);

  // Without --skip-invalid the handler refuses (the CLI's scan stops it earlier still).
  await assert.rejects(importBytes(bytes, 1024, false), /E_SYNC_JOB_FAILED|input\.jsonl:2/);
});

test("import --store memory: a dry run that verifies and keeps nothing", async () => {
  const dir = tempDir("unit-memory");
  try {
    Deno.writeTextFileSync(
      join(dir, "rollout-x.jsonl"),
      [...sampleRollout({ sessionId: "dry", targetBytes: 100_000 })].join("\n") + "\n",
    );
    const run = await cli(
      ["import", "--store", "memory", "--json", "--chunk-size", "4k", "."],
      dir,
    );
    assert.equal(run.code, 0, run.stderr);
    const events = run.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(events.find((e) => e.event === "imported")?.conversationId, "dry");
    assert.equal(await Deno.stat(join(dir, ".codex-sync")).catch(() => undefined), undefined);
    const jobs = await cli(["jobs", "--store", "memory"], dir);
    assert.equal(jobs.code, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("conformance: a per-case table; exit 0 on a correct adapter, 4 on a broken one", async () => {
  const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
  const good = await cli(["conformance", join(fixtures, "memory_target.ts"), "--only", "cancel"]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /^RESULT\s+CASE/);
  assert.match(good.stdout, /pass\s+cancel: a queued job is cancelled/);
  assert.match(good.stdout, /\d+ passed, 0 failed/);
  const broken = await cli(["conformance", join(fixtures, "broken_target.ts"), "--json"]);
  assert.equal(broken.code, 4);
  const report = JSON.parse(broken.stdout);
  assert.ok(report.failed > 0 && report.passed > 0);
  assert.ok(
    report.cases.some((c: { name: string; status: string }) =>
      c.status === "failed" && c.name.startsWith("cancel:")
    ),
  );
  assert.match(broken.stderr, /^E_CLI_CONFORMANCE_FAILED: \d+ of \d+ conformance case\(s\) failed/);
  const notTarget = await cli([
    "conformance",
    fileURLToPath(new URL("./support.ts", import.meta.url)),
  ]);
  assert.equal(notTarget.code, 2);
  assert.match(notTarget.stderr, /^E_CLI_BAD_MODULE: /);
  assert.equal((await cli(["conformance", "/nonexistent.ts"])).code, 5);
});

test("the bundled sample rollout is exactly what its generator produces", () => {
  const expected = sampleFixtureBytes();
  const onDisk = Deno.readFileSync(SAMPLE_PATH);
  assert.equal(onDisk.length, expected.length);
  assert.ok(onDisk.every((byte, i) => byte === expected[i]));
  assert.ok(onDisk.length > 2_000_000);
});

test("progress: a redrawn bar on a terminal, throttled plain lines otherwise", async () => {
  const { plainReporter, ttyReporter } = await import("../src/progress.ts");
  const out = captureOutput(100);
  let clock = 0;
  const tty = ttyReporter(out, () => clock);
  const file = "/s/rollout-a.jsonl";
  const upload = (bytes: number) => ({
    event: "upload" as const,
    file,
    sourceId: "s",
    chunksUploaded: 1,
    bytesUploaded: bytes,
    chunksSkipped: 0,
    bytesSkipped: 0,
    totalBytes: 2048,
  });
  tty.report({
    event: "scanned",
    file,
    bytes: 2048,
    lines: 3,
    invalidLines: 0,
    pendingBytes: 0,
    newLines: 3,
    conversationId: "c",
    conversationIdFrom: "session_meta",
  });
  clock += 100;
  tty.report(upload(1024));
  tty.report({ event: "sealed", file, jobId: "j", chunkCount: 2, byteCount: 2048, digest: "d" });
  clock += 100;
  tty.report({ event: "applying", file, jobId: "j", state: "running", cursor: 1, total: 2 });
  const lines = out.text.split("\r\x1b[2K").filter(Boolean);
  assert.ok(lines.length >= 4, JSON.stringify(out.text));
  assert.match(
    lines.at(-1)!,
    /rollout-a\.jsonl \[█+░+\]\s+75%\s+2\.0 KiB\/2\.0 KiB up · 1\/2 applied$/,
  );
  assert.ok(lines.every((line) => Array.from(line).length < 100), "never wider than the terminal");
  tty.report({
    event: "imported",
    file,
    conversationId: "c",
    sourceId: "s",
    jobId: "j",
    records: 3,
    invalidLines: 0,
    bytes: 2048,
    digest: "d",
    pendingBytes: 0,
    mode: "full",
    newLines: 3,
    uploaded: { chunks: 2, bytes: 2048 },
    skipped: { chunks: 0, bytes: 0 },
    reused: { chunks: 0, bytes: 0 },
    verified: true,
    ms: 5,
  });
  assert.ok(
    out.text.includes("\r\x1b[2K✓ /s/rollout-a.jsonl: 3 records → conversation c, verified"),
  );

  const plain = captureOutput();
  clock = 0;
  const lines2 = plainReporter(plain, () => clock);
  for (let i = 1; i <= 5; i++) lines2.report(upload(i * 100)); // throttled: same second
  lines2.report(upload(2048)); // the final one always prints
  assert.equal(plain.text.split("\n").filter((l) => l.startsWith("upload")).length, 2);
  assert.ok(!plain.text.includes("\x1b"), "no escape codes in plain mode");
});

test("watch and export: where they look, and what they refuse", async () => {
  const dir = tempDir("unit-watch");
  try {
    // No sessions under CODEX_HOME (nor a directory given): not found, naming the place.
    const none = await cli(["watch", "--store", "memory"], dir, { CODEX_HOME: dir });
    assert.equal(none.code, 5);
    assert.match(none.stderr, new RegExp(`^E_CLI_NOT_FOUND: no Codex sessions in ${dir}/sessions`));
    Deno.writeTextFileSync(join(dir, "file.jsonl"), "{}\n");
    const notDir = await cli(["watch", "--store", "memory", "file.jsonl"], dir);
    assert.equal(notDir.code, 2);
    assert.match(notDir.stderr, /not a directory: file\.jsonl/);
    assert.equal((await cli(["watch", "--debounce", "0", "--store", "memory", "."], dir)).code, 2);
    // export and restore read a store that exists.
    assert.equal((await cli(["export", "x"], dir)).code, 5);
    assert.equal((await cli(["restore", "--all", "--store", "memory"], dir)).code, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("watch without a runtime watcher polls; an interrupt stops it (exit 0)", async () => {
  const dir = tempDir("unit-poll");
  try {
    const file = join(dir, "rollout-poll.jsonl");
    const lines = [...sampleRollout({ sessionId: "poll", targetBytes: 20_000, seed: 9 })];
    Deno.writeTextFileSync(file, lines.slice(0, 5).map((line) => line + "\n").join(""));
    let stdout = "";
    let stop: (() => void) | undefined;
    const changed: (() => void)[] = [];
    const { watch: _watch, ...base } = denoHost();
    const host = {
      ...base,
      stdout: {
        isTTY: false,
        columns: () => undefined,
        write: (text: string) => {
          stdout += text;
          changed.splice(0).forEach((wake) => wake());
        },
      },
      stderr: { isTTY: false, columns: () => undefined, write: () => {} },
      cwd: () => dir,
      onInterrupt: (listener: () => void) => {
        stop = listener;
        return () => {};
      },
    };
    const until = async (match: (events: Record<string, unknown>[]) => boolean) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const events = stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
        if (match(events)) return events;
        if (Date.now() > deadline) throw new Error(`timed out; stdout:\n${stdout}`);
        await new Promise<void>((resolve) => {
          changed.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    };
    const running = runCli(["watch", "--json", "--store", "memory", "--interval", "50", "."], host);
    const started = await until((events) => events.some((e) => e.event === "ready"));
    assert.equal(started[0].event, "watch");
    assert.equal(started[0].mode, "poll");
    Deno.writeTextFileSync(file, lines[5] + "\n" + lines[6].slice(0, 10), { append: true });
    await until((events) => events.some((e) => e.event === "imported" && e.records === 6));
    Deno.writeTextFileSync(file, lines[6].slice(10) + "\n", { append: true });
    const events = await until((list) =>
      list.some((e) => e.event === "imported" && e.records === 7)
    );
    assert.deepEqual(
      events.filter((e) => e.event === "imported").map((e) => [e.records, e.mode]),
      [[5, "full"], [6, "extension"], [7, "extension"]],
    );
    stop!();
    assert.equal(await running, 0);
    assert.ok(stdout.includes('"event":"stopped"'));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
