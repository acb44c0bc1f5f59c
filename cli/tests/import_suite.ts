/**
 * The CLI as a subprocess against the embedded PGlite store, for one entry (the Deno
 * entry from source in `import.test.ts`, the built npm bin under Node in
 * `node_bin.test.ts`): several files (directory walk, CRLF, a pending last line, no
 * session_meta, the bundled sample) compared byte for byte with the stored rows; a
 * re-import that is a no-op without reading the files (and --rescan reading them), then gc
 * giving the released payloads' space back; a malformed line; a session in progress (BOM + --skip-invalid
 * on PGlite, an append imported as an extension, export and restore byte for byte,
 * damaged rows repaired, a diverging copy); watch following appends (a line written in
 * two steps), then Ctrl-C and a restart; Ctrl-C in the middle of the upload and of the
 * apply, each followed by a resume that says so; cancel + gc.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createPGliteDriver } from "@zakstam/codex-sync-engine-postgres";
import { sampleRollout, sampleRolloutText } from "../scripts/sample_rollout.ts";
import {
  type CliEntry,
  type CliResult,
  copyDir,
  events,
  readStore,
  rebuild,
  rowsOfConversation,
  type RunningCli,
  SAMPLE,
  SAMPLE_ID,
  startCli as start,
  tempDir,
} from "./support.ts";

const encoder = new TextEncoder();
const ID_A = "0199a3c1-aaaa-7c2d-9f41-000000000001";
const ID_B = "0199a3c1-bbbb-7c2d-9f41-000000000002";
const ID_C = "0199a3c1-cccc-7c2d-9f41-000000000003";

function write(path: string, content: string | Uint8Array): Uint8Array {
  const bytes = typeof content === "string" ? encoder.encode(content) : content;
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  Deno.writeFileSync(path, bytes);
  return bytes;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Bytes of the files under `dir`. */
function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) total += dirBytes(path);
    else if (entry.isFile) total += Deno.statSync(path).size;
  }
  return total;
}

/** Resolves once `path` exists (a hold point's marker); rejects if `cli` ends first. */
async function waitForFile(path: string, cli: RunningCli, timeoutMs = 60_000): Promise<void> {
  let ended = false;
  cli.done.then(() => ended = true, () => ended = true);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      Deno.statSync(path);
      return;
    } catch { /* not yet */ }
    if (ended) throw new Error(`the CLI ended before it wrote ${path}: ${(await cli.done).stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${path} did not appear within ${timeoutMs} ms`);
}

function find(list: Record<string, unknown>[], event: string, file?: string) {
  return list.filter((entry) => entry.event === event && (!file || entry.file === file));
}

/**
 * Registers the suite's tests for `entry`, after creating the template store with it.
 * Await it at the top level, not in before(): Deno's node:test runs tests without
 * awaiting a root hook.
 */
export async function importSuite(entry: CliEntry): Promise<void> {
  const startCli = (args: string[], cwd: string, env?: Record<string, string>): RunningCli =>
    start(args, cwd, entry, env);
  const runCli = (args: string[], cwd: string, env?: Record<string, string>): Promise<CliResult> =>
    startCli(args, cwd, env).done;
  const root = tempDir(`import-${entry.name.split(" ")[0]}`);
  const template = join(root, "template");

  /** A test directory holding a copy of the template store (PGlite init takes seconds). */
  async function workspace(name: string): Promise<string> {
    const dir = join(root, name);
    Deno.mkdirSync(dir);
    await copyDir(join(template, ".codex-sync"), join(dir, ".codex-sync"));
    return dir;
  }

  Deno.mkdirSync(template);
  write(
    join(template, "rollout-template.jsonl"),
    sampleRolloutText({ sessionId: "template", targetBytes: 2_000 }),
  );
  {
    const result = await runCli(["import", "rollout-template.jsonl"], template);
    assert.equal(result.code, 0, result.stderr);
  }

  after(() => {
    Deno.removeSync(root, { recursive: true });
  });

  test(`${entry.name}: import of several files: stored rows equal the input files byte for byte`, async () => {
    const dir = await workspace("several");
    const sessions = join(dir, "sessions");
    const fileA = join(sessions, `2025/11/01/rollout-2025-11-01T09-00-00-${ID_A}.jsonl`);
    const fileB = join(sessions, `2025/11/02/rollout-2025-11-02T10-00-00-${ID_B}.jsonl`);
    const fileC = join(sessions, `2025/11/02/rollout-2025-11-02T11-00-00-${ID_C}.jsonl`);
    const files = new Map<string, { bytes: Uint8Array; conversation: string; trailing: boolean }>();
    files.set(fileA, {
      bytes: write(fileA, sampleRolloutText({ sessionId: ID_A, targetBytes: 600_000, seed: 11 })),
      conversation: ID_A,
      trailing: true,
    });
    // CRLF line ends, and no newline after the last line: a session still being written,
    // so its last line is pending (not imported); the rest must survive exactly.
    const linesB = [...sampleRollout({ sessionId: ID_B, targetBytes: 300_000, seed: 12 })];
    write(fileB, linesB.join("\r\n"));
    files.set(fileB, {
      bytes: encoder.encode(linesB.slice(0, -1).map((line) => line + "\r\n").join("")),
      conversation: ID_B,
      trailing: true,
    });
    // No session_meta: the conversation id comes from the file name. The last line is
    // valid JSON that jsonb cannot hold (\u0000, a lone surrogate): stored with record NULL.
    const unsafe = String.raw`{"type":"event_msg","payload":{"message":"nul \u0000, lone \ud83e"}}`;
    files.set(fileC, {
      bytes: write(
        fileC,
        [...sampleRollout({ sessionId: "ignored", targetBytes: 200_000, seed: 13 })].slice(1)
          .concat(unsafe).map((line) => line + "\n").join(""),
      ),
      conversation: ID_C,
      trailing: true,
    });
    files.set(SAMPLE, {
      bytes: Deno.readFileSync(SAMPLE),
      conversation: SAMPLE_ID,
      trailing: true,
    });
    write(join(sessions, "2025/11/notes.txt"), "not a rollout\n");
    write(join(sessions, "2025/11/other.jsonl"), "{not a rollout either\n");

    // Small chunks: most lines straddle a chunk boundary.
    const result = await runCli(
      ["import", "--json", "--chunk-size", "64k", "sessions", SAMPLE],
      dir,
    );
    assert.equal(result.code, 0, result.stderr);
    const log = events(result.stdout);
    const summary = find(log, "summary")[0];
    assert.equal(summary.imported, 4);
    assert.equal(summary.failed, 0);
    assert.deepEqual(find(log, "scanned").map((e) => e.file).sort(), [...files.keys()].sort());
    assert.equal(find(log, "scanned", fileC)[0].conversationIdFrom, "file name");
    assert.equal(
      find(log, "imported", fileB)[0].pendingBytes,
      encoder.encode(linesB.at(-1)!).length,
    );

    const stored = await readStore(join(dir, ".codex-sync"));
    for (const [path, expected] of files) {
      const rows = stored.rows.get(expected.conversation);
      assert.ok(rows, `no rows for ${path}`);
      assert.equal(stored.imports.get(expected.conversation)?.path, path);
      assert.deepEqual(rows.map((row) => row.line_no), rows.map((_, i) => i + 1));
      const rebuilt = rebuild(rows, expected.trailing);
      assert.equal(rebuilt.length, expected.bytes.length, `${path}: byte count`);
      assert.ok(rebuilt.every((byte, i) => byte === expected.bytes[i]), `${path}: bytes differ`);
      for (const row of rows) {
        assert.equal(row.conversation_id, expected.conversation);
        assert.equal(row.valid, true);
        const parsed = JSON.parse(row.line!);
        assert.equal(row.record_type, parsed.type);
        if (row.line === unsafe) assert.equal(row.record, null);
        else assert.deepEqual(JSON.parse(row.record!), parsed);
      }
    }
    assert.equal(stored.rows.get(ID_C)!.at(-1)!.line, unsafe);
    assert.ok(stored.rows.get(ID_B)!.every((row) => row.line!.endsWith("\r")));
    assert.match(stored.rows.get(SAMPLE_ID)!.map((row) => row.line).join("\n"), /请把|テスト|🦀|é/);

    // The rows were compared byte for byte above; verify, on the CRLF file with a pending
    // line and on the one without session_meta.
    for (const conversation of [ID_B, ID_C]) {
      const verify = await runCli(["verify", conversation], dir);
      assert.equal(verify.code, 0, verify.stderr);
      assert.match(verify.stdout, /matches the manifest/);
    }

    // Re-importing the unchanged files is a no-op that says so.
    const jobsBefore = stored.jobCount;
    const again = await runCli(
      ["import", "--json", "--chunk-size", "64k", "sessions", SAMPLE],
      dir,
    );
    assert.equal(again.code, 0, again.stderr);
    const second = events(again.stdout);
    assert.equal(find(second, "unchanged").length, 4);
    // Known by their size and mtime, recorded at the import: not even scanned.
    assert.equal(find(second, "unchanged").filter((e) => e.checked === "stat").length, 4);
    assert.equal(find(second, "scanned").length, 0);
    assert.equal(find(second, "upload").length, 0);
    assert.equal(find(second, "summary")[0].imported, 0);
    assert.equal((await readStore(join(dir, ".codex-sync"))).jobCount, jobsBefore);
    const plain = await runCli(["import", SAMPLE, "--chunk-size", "64k"], dir);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /unchanged .*already imported .*nothing to do/);
    // --rescan reads them all again (and finds them unchanged by content).
    const rescan = events(
      (await runCli(["import", "--json", "--rescan", "sessions", SAMPLE], dir))
        .stdout,
    );
    assert.equal(find(rescan, "scanned").length, 4);
    assert.equal(find(rescan, "unchanged").filter((e) => e.checked === "content").length, 4);

    // The chunks' payloads were released after each import: gc gives their space back
    // (the tables rewritten), and leaves the WAL at its floor (two 16 MB segments, or one
    // being written on top).
    const pgdata = join(dir, ".codex-sync", "pgdata");
    const tablesBefore = dirBytes(join(pgdata, "base"));
    const gc = await runCli(["gc", "--json"], dir);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(JSON.parse(gc.stdout).vacuumed, true);
    const importedBytes = [...files.values()].reduce((n, file) => n + file.bytes.length, 0);
    assert.ok(
      tablesBefore - dirBytes(join(pgdata, "base")) > importedBytes / 2,
      `tables: ${tablesBefore} bytes before gc, ${dirBytes(join(pgdata, "base"))} after`,
    );
    assert.ok(dirBytes(join(pgdata, "pg_wal")) <= 3 * 16 * 1024 * 1024);
    for (const conversation of [ID_A, SAMPLE_ID]) {
      const verify = await runCli(["verify", conversation], dir);
      assert.equal(verify.code, 0, verify.stderr);
    }
  });

  test(`${entry.name}: a malformed line fails its file with file and line, nothing of it imported`, async () => {
    const dir = await workspace("malformed");
    const good = join(dir, "in", `rollout-good-${ID_A}.jsonl`);
    const bad = join(dir, "in", `rollout-bad-${ID_B}.jsonl`);
    write(good, sampleRolloutText({ sessionId: ID_A, targetBytes: 50_000, seed: 21 }));
    const lines = [...sampleRollout({ sessionId: ID_B, targetBytes: 80_000, seed: 22 })];
    lines[6] = `{"timestamp":"2025-11-01T09:00:01.000Z","type":"event_msg","payload":{"type":`;
    const badBytes = write(bad, lines.map((line) => line + "\n").join(""));
    const before = await readStore(join(dir, ".codex-sync"));

    const result = await runCli(["import", "in"], dir);
    assert.equal(result.code, 3, result.stderr);
    assert.ok(
      result.stderr.includes(`E_CLI_INVALID_RECORD: ${bad}:7: malformed JSON`),
      result.stderr,
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace without --verbose");
    assert.match(result.stdout, /1 imported, 0 unchanged, 1 failed/);
    const after = await readStore(join(dir, ".codex-sync"));
    assert.ok(after.imports.has(ID_A));
    assert.ok(!after.imports.has(ID_B));
    assert.equal(await rowsOfConversation(join(dir, ".codex-sync"), ID_B), 0);
    // Only the good file created a source: the bad one failed before anything was uploaded.
    assert.equal(after.sourceCount, before.sourceCount + 1);
    const jobs = await runCli(["jobs", "--json", "--conversation", ID_B], dir);
    assert.deepEqual(JSON.parse(jobs.stdout).jobs, []);

    // --skip-invalid on the valid file imported above: a no-op, naming the current job
    // (it once re-imported the file, and a later plain import named the older job).
    const goodJob =
      find(events((await runCli(["import", "--json", good], dir)).stdout), "unchanged")[0]
        .jobId;
    const again = await runCli(["import", "--json", "--skip-invalid", good], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(find(events(again.stdout), "unchanged")[0]?.jobId, goodJob);
    assert.equal((await readStore(join(dir, ".codex-sync"))).sourceCount, after.sourceCount);

    // --skip-invalid records the line as an invalid row and reports the count.
    const skipped = await runCli(["import", "--json", "--skip-invalid", bad], dir);
    assert.equal(skipped.code, 0, skipped.stderr);
    const imported = find(events(skipped.stdout), "imported")[0];
    assert.equal(imported.invalidLines, 1);
    const rows = (await readStore(join(dir, ".codex-sync"))).rows.get(ID_B)!;
    assert.equal(rows[6].valid, false);
    assert.equal(rows[6].record, null);
    assert.equal(rows[6].line, lines[6]);
    const rebuilt = rebuild(rows, true);
    assert.ok(rebuilt.length === badBytes.length && rebuilt.every((b, i) => b === badBytes[i]));
  });

  test(`${entry.name}: a session in progress (BOM, CRLF, a pending last line): appends import only the new lines; export and restore give the exact bytes; damaged rows are repaired`, async () => {
    const dir = await workspace("in-progress");
    const name = `rollout-2025-11-05T08-30-00-${ID_A}.jsonl`;
    const file = join(dir, "sessions", "2025", "11", "05", name);
    const lines = [...sampleRollout({ sessionId: ID_A, targetBytes: 120_000, seed: 41 })];
    const crlf = (list: string[]) => list.map((line) => line + "\r\n").join("");
    // A UTF-8 byte order mark, CRLF line ends, and a last line still being written.
    const complete = encoder.encode("\ufeff" + crlf(lines.slice(0, 60)));
    const partial = encoder.encode(lines[60].slice(0, 30));
    write(file, concatBytes(complete, partial));

    // The BOM with --skip-invalid once failed verification on PGlite (22660 vs 22663 bytes).
    const first = await runCli(["import", "--json", "--skip-invalid", "sessions"], dir);
    assert.equal(first.code, 0, first.stderr);
    const imported = find(events(first.stdout), "imported")[0];
    assert.equal(imported.records, 60);
    assert.equal(imported.invalidLines, 0, "a BOM on the first line is not an error");
    assert.equal(imported.pendingBytes, partial.length);
    const exported = await runCli(["export", ID_A], dir);
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(exported.stdoutBytes, complete, "export: the imported bytes exactly");

    // The line completes and two more follow: only they are uploaded and applied.
    const grown = concatBytes(complete, encoder.encode(crlf(lines.slice(60, 63))));
    write(file, grown);
    const second = await runCli(["import", "--json", file], dir);
    assert.equal(second.code, 0, second.stderr);
    const appended = find(events(second.stdout), "imported")[0] as Record<string, unknown> & {
      uploaded: { bytes: number };
      reused: { chunks: number };
    };
    assert.equal(appended.mode, "extension");
    assert.equal(appended.newLines, 3);
    assert.equal(appended.records, 63);
    assert.equal(appended.appliedNewOnly, true);
    assert.equal(appended.uploaded.bytes, grown.length - complete.length);
    assert.ok(appended.reused.chunks > 0);
    const stored = (await readStore(join(dir, ".codex-sync"))).rows.get(ID_A)!;
    assert.deepEqual(stored.map((row) => row.line_no), lines.slice(0, 63).map((_, i) => i + 1));
    assert.deepEqual(JSON.parse(stored[0].record!), JSON.parse(lines[0]), "record via the view");

    // Export to a directory and restore into CODEX_HOME: Codex's layout, the exact bytes.
    const out = join(dir, "backup");
    const toDir = await runCli(["export", "--json", "--out", out, ID_A], dir);
    assert.equal(toDir.code, 0, toDir.stderr);
    const target = join(out, "sessions", "2025", "11", "05", name);
    assert.equal(JSON.parse(toDir.stdout).path, target);
    assert.deepEqual(Deno.readFileSync(target), grown);
    const home = join(dir, "codex-home");
    const restored = await runCli(["restore", ID_A], dir, { CODEX_HOME: home });
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual(Deno.readFileSync(join(home, "sessions", "2025", "11", "05", name)), grown);
    write(join(home, "sessions", "2025", "11", "05", name), encoder.encode("other\n"));
    const refused = await runCli(["restore", ID_A], dir, { CODEX_HOME: home });
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /E_CLI_FILE_EXISTS/);

    // A stored row damaged behind the store's back: verify fails, re-importing repairs.
    const db = await createPGliteDriver({ dataDir: join(dir, ".codex-sync", "pgdata") });
    try {
      await db.query(
        `UPDATE codex_rollout_records SET line = line || ' ' WHERE conversation_id = $1
          AND line_no = 7`,
        [ID_A],
      );
    } finally {
      await db.close();
    }
    const broken = await runCli(["verify", ID_A], dir);
    assert.equal(broken.code, 4, broken.stderr);
    assert.match(broken.stderr, /E_CLI_VERIFY_FAILED: .*importing its file again repairs it/);
    const repair = await runCli(["import", "--json", file], dir);
    assert.equal(repair.code, 0, repair.stderr);
    assert.equal(find(events(repair.stdout), "imported")[0].reason, "repair");
    assert.equal((await runCli(["verify", ID_A], dir)).code, 0);

    // A copy that diverges changes nothing (exit 6) unless --replace.
    const copy = join(dir, `rollout-copy-${ID_A}.jsonl`);
    write(copy, encoder.encode("\ufeff" + crlf([lines[0], lines[2]])));
    const diverged = await runCli(["import", copy], dir);
    assert.equal(diverged.code, 6, diverged.stderr);
    assert.match(diverged.stdout, /diverged .* at line 2; nothing changed/);
    assert.equal((await readStore(join(dir, ".codex-sync"))).imports.get(ID_A)?.lineCount, 63);
  });

  test(`${entry.name}: watch follows a file as lines are appended (a partial line in two steps); Ctrl-C and a restart lose nothing`, async () => {
    const dir = await workspace("watch");
    const sessions = join(dir, "sessions");
    const file = join(sessions, "2025", "11", "06", `rollout-2025-11-06T07-00-00-${ID_B}.jsonl`);
    const lines = [...sampleRollout({ sessionId: ID_B, targetBytes: 60_000, seed: 51 })];
    let count = 20;
    const append = (text: string) =>
      Deno.writeFileSync(file, encoder.encode(text), { append: true });
    write(file, lines.slice(0, count).map((line) => line + "\n").join(""));
    const untilRecords = (watch: RunningCli, records: number) =>
      watch.waitForLine((line) => {
        const event = JSON.parse(line);
        return event.event === "imported" && event.file === file && event.records === records;
      }, 30_000);

    const watch = startCli(["watch", "--json", "--debounce", "50", sessions], dir);
    await watch.waitForLine((line) => line.includes('"event":"ready"'), 60_000);
    await untilRecords(watch, 20);
    for (let i = 0; i < 3; i++) {
      append(lines[count++] + "\n");
      await untilRecords(watch, count);
    }
    // A line written in two steps: nothing of it before its newline, then the whole line.
    const line = lines[count];
    append(line.slice(0, 40));
    append(line.slice(40) + "\n" + lines[count + 1] + "\n");
    count += 2;
    await untilRecords(watch, count);
    watch.signal("SIGINT");
    const stopped = await watch.done;
    assert.equal(stopped.code, 0, stopped.stderr);
    const log = events(stopped.stdout);
    assert.equal(find(log, "stopped").length, 1);
    assert.deepEqual(find(log, "failed"), []);
    const follows = find(log, "imported").slice(1);
    assert.ok(follows.every((event) => event.mode === "extension"), JSON.stringify(follows));

    // Written while nothing watches: the restart's first pass picks it up.
    append(lines[count++] + "\n" + lines[count++] + "\n");
    const again = startCli(["watch", "--json", sessions], dir);
    await again.waitForLine((line) => line.includes('"event":"ready"'), 60_000);
    await untilRecords(again, count);
    again.signal("SIGTERM");
    assert.equal((await again.done).code, 0);

    const rows = (await readStore(join(dir, ".codex-sync"))).rows.get(ID_B)!;
    assert.deepEqual(
      rows.map((row) => row.line),
      lines.slice(0, count),
      "each line once, in order",
    );
    assert.equal((await runCli(["verify", ID_B], dir)).code, 0);
  });

  test(`${entry.name}: Ctrl-C during the upload, then the same command resumes without re-uploading`, async () => {
    const dir = await workspace("sigint-upload");
    const args = ["import", "--json", "--chunk-size", "16k", "--concurrency", "1", SAMPLE];
    const first = startCli(args, dir);
    await first.waitForLine((line) =>
      line.includes('"event":"upload"') && /"chunksUploaded":([5-9]|\d\d)/.test(line)
    );
    first.signal("SIGINT");
    const interrupted = await first.done;
    assert.equal(interrupted.code, 130, interrupted.stderr);
    assert.match(interrupted.stderr, /interrupted/);
    const log1 = events(interrupted.stdout);
    assert.equal(find(log1, "summary")[0].interrupted, true);
    assert.equal(find(log1, "sealed").length, 0, "interrupted before the seal");
    const uploadedBefore = Math.max(...find(log1, "upload").map((e) => e.chunksUploaded as number));

    const second = await runCli(args, dir);
    assert.equal(second.code, 0, second.stderr);
    const log2 = events(second.stdout);
    assert.equal(find(log2, "resuming")[0].stage, "upload");
    const done = find(log2, "imported")[0] as {
      uploaded: { chunks: number };
      skipped: { chunks: number };
    };
    const total = find(log2, "sealed")[0].chunkCount as number;
    assert.ok(done.skipped.chunks >= uploadedBefore, `skipped ${done.skipped.chunks}`);
    assert.equal(done.uploaded.chunks + done.skipped.chunks, total);
    assert.ok(done.uploaded.chunks < total);

    const stored = await readStore(join(dir, ".codex-sync"));
    const bytes = Deno.readFileSync(SAMPLE);
    const rebuilt = rebuild(stored.rows.get(SAMPLE_ID)!, true);
    assert.ok(rebuilt.length === bytes.length && rebuilt.every((b, i) => b === bytes[i]));
  });

  test(`${entry.name}: Ctrl-C while chunks are applied: the job resumes, nothing is uploaded again; cancel + gc`, async () => {
    const dir = await workspace("sigint-apply");
    const file = join(dir, `rollout-2025-11-03T08-00-00-${ID_C}.jsonl`);
    const bytes = write(
      file,
      // Enough chunks that the interrupt lands while they are applied.
      sampleRolloutText({ sessionId: ID_C, targetBytes: 3_000_000, seed: 31 }),
    );
    const args = ["import", "--json", "--chunk-size", "8k", file];
    // Held before chunk 5 is applied (cli/src/test_hooks.ts), so the interrupt lands
    // while chunks are applied, whatever the machine's speed.
    const held = join(dir, "held-c");
    const first = startCli(args, dir, { CODEX_SYNC_TEST_HOLD_APPLY: `5:${held}` });
    const sealed = JSON.parse(await first.waitForLine((line) => line.includes('"event":"sealed"')));
    await waitForFile(held, first);
    first.signal("SIGINT");
    const interrupted = await first.done;
    assert.equal(interrupted.code, 130, interrupted.stderr);
    const status = JSON.parse((await runCli(["status", "--json", sealed.jobId], dir)).stdout);
    assert.ok(["retry_wait", "running", "queued"].includes(status.job.state), status.job.state);
    assert.equal(status.job.cursor, 5, "held before chunk 5: chunks 0-4 applied");
    assert.ok(sealed.chunkCount > 5);

    const second = await runCli(args, dir);
    assert.equal(second.code, 0, second.stderr);
    const log = events(second.stdout);
    assert.equal(find(log, "resuming")[0].stage, "job");
    const done = find(log, "imported")[0] as {
      jobId: string;
      uploaded: { chunks: number };
      resumed: boolean;
    };
    assert.equal(done.jobId, sealed.jobId);
    assert.equal(done.uploaded.chunks, 0);
    assert.equal(done.resumed, true, "the resume says what it did");
    assert.match(
      (await runCli(["import", "--chunk-size", "8k", file], dir)).stdout,
      /unchanged .*nothing to do/,
    );
    const rows = (await readStore(join(dir, ".codex-sync"))).rows.get(ID_C)!;
    const rebuilt = rebuild(rows, true);
    assert.ok(rebuilt.length === bytes.length && rebuilt.every((b, i) => b === bytes[i]));

    // An interrupted job that is cancelled instead: its partial rows never become current,
    // gc drops them, and the next import starts over under a new source.
    const other = join(dir, `rollout-2025-11-03T09-00-00-${ID_B}.jsonl`);
    // Enough chunks that the interrupt lands while they are applied.
    write(other, sampleRolloutText({ sessionId: ID_B, targetBytes: 3_000_000, seed: 32 }));
    const heldOther = join(dir, "held-b");
    const third = startCli(["import", "--json", "--chunk-size", "8k", other], dir, {
      CODEX_SYNC_TEST_HOLD_APPLY: `5:${heldOther}`,
    });
    const sealedOther = JSON.parse(
      await third.waitForLine((line) => line.includes('"event":"sealed"')),
    );
    await waitForFile(heldOther, third);
    third.signal("SIGINT");
    assert.equal((await third.done).code, 130);
    const cancel = await runCli(["cancel", sealedOther.jobId], dir);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /cancelled job/);
    assert.ok(await rowsOfConversation(join(dir, ".codex-sync"), ID_B) > 0, "partial rows exist");
    const gc = await runCli(["gc", "--json"], dir);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(JSON.parse(gc.stdout).unlinkedSources, 1);
    assert.equal(await rowsOfConversation(join(dir, ".codex-sync"), ID_B), 0);
    const retry = await runCli(["import", "--json", "--chunk-size", "8k", other], dir);
    assert.equal(retry.code, 0, retry.stderr);
    const retried = find(events(retry.stdout), "imported")[0];
    assert.notEqual(retried.jobId, sealedOther.jobId);
    assert.equal((await runCli(["verify", ID_B], dir)).code, 0);
  });
}
