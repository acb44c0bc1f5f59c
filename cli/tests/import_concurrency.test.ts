// `import --files-at-once`: the conversation gate's order rule (in-process); a copy of a
// file synced at the same time as the file, made to overlap (the first file's upload held
// back) — the copy must wait, and is then left alone; the CLI on PGlite with 1, 2 and 16
// files at once giving the same outcomes, exit code, summary and rows
// (copies in both orders, an older and a longer copy, a diverging one, a malformed file
// amid good ones, then a moved file, a copy whose original is gone and an append); Ctrl-C
// stopping new files and a rerun finishing them; bad flag values; the reporters with two
// files in flight.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import { denoHost } from "../main.ts";
import {
  type CliHost,
  memoryRecordTables,
  rolloutHandler,
  runCli as runInProcess,
} from "../mod.ts";
import { DEFAULT_FILES_AT_ONCE, filesAtOnceOf } from "../src/commands/import.ts";
import { conversationGate } from "../src/conversation_gate.ts";
import { type ImportEvent, plainReporter, ttyReporter } from "../src/progress.ts";
import { memoryOpenStore, type OpenStore } from "../src/store.ts";
import { syncFile, type SyncSession } from "../src/sync_file.ts";
import { sampleRollout } from "../scripts/sample_rollout.ts";
import {
  captureOutput,
  copyDir,
  events,
  readStore,
  rebuild,
  runCli,
  startCli,
  tempDir,
} from "./support.ts";

const encoder = new TextEncoder();
const ID = {
  x: "0199a3c1-1111-7c2d-9f41-000000000001",
  y: "0199a3c1-2222-7c2d-9f41-000000000002",
  z: "0199a3c1-3333-7c2d-9f41-000000000003",
  w: "0199a3c1-4444-7c2d-9f41-000000000004",
  v: "0199a3c1-5555-7c2d-9f41-000000000005",
  u: "0199a3c1-6666-7c2d-9f41-000000000006",
};

function lines(sessionId: string, count: number, seed: number): string[] {
  const all = [...sampleRollout({ sessionId, targetBytes: 400_000, seed })];
  assert.ok(all.length >= count, `only ${all.length} sample lines`);
  return all.slice(0, count);
}

function text(list: readonly string[]): string {
  return list.map((line) => line + "\n").join("");
}

function write(path: string, content: string): void {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  Deno.writeFileSync(path, encoder.encode(content));
}

/** Resolves on the next macrotask: every promise reaction queued before it has run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Resolves once `ready()` holds, checked on each `poke()`; rejects after `ms`. */
function condition(ms = 20_000) {
  const checks = new Set<() => void>();
  return {
    poke: () => [...checks].forEach((check) => check()),
    until(ready: () => boolean, what: string): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          checks.delete(check);
          reject(new Error(`timed out waiting for ${what}`));
        }, ms);
        const check = () => {
          if (!ready()) return;
          checks.delete(check);
          clearTimeout(timer);
          resolve();
        };
        checks.add(check);
        check();
      });
    },
  };
}

test("gate: a later file enters another conversation once the earlier one settled, its own only once that one finished", async () => {
  const gate = conversationGate();
  const first = gate.next();
  const second = gate.next();
  const third = gate.next();
  await first.enter("a");
  const entered: string[] = [];
  const secondB = second.enter("b").then(() => void entered.push("second:b"));
  const thirdA = third.enter("a").then(() => void entered.push("third:a"));
  await turn();
  assert.deepEqual(entered, [], "the first file has not settled: it could still be b");
  first.settle();
  await secondB;
  assert.deepEqual(entered, ["second:b"]);
  second.settle();
  await turn();
  assert.deepEqual(entered, ["second:b"], "a stays the first file's until it finishes");
  first.finish();
  await thirdA;
  assert.deepEqual(entered, ["second:b", "third:a"]);
  // A file enters one conversation at a time; once settled it may take no other.
  await assert.rejects(second.enter("c"), /E_SYNC_INTERNAL|asked for c/);
  await third.enter("a");
  second.finish();
  third.finish();
  third.finish();

  // An earlier file that drops a conversation it entered (it turned out to be another)
  // lets a later file of that conversation in once it settles on the other.
  const fourth = gate.next();
  const fifth = gate.next();
  await fourth.enter("p");
  let fifthIn = false;
  const fifthP = fifth.enter("p").then(() => void (fifthIn = true));
  await fourth.enter("q");
  await turn();
  assert.equal(fifthIn, false);
  fourth.settle();
  await fifthP;
  assert.equal(fifthIn, true);
});

test("gate: an interrupt ends every wait with its reason", async () => {
  const interrupt = new AbortController();
  const gate = conversationGate(interrupt.signal);
  const first = gate.next();
  const second = gate.next();
  await first.enter("a");
  const waiting = second.enter("a");
  interrupt.abort(new Error("interrupted (Ctrl-C)"));
  await assert.rejects(waiting, /interrupted/);
  await assert.rejects(gate.next().enter("b"), /interrupted/);
});

/** A memory store like `--store memory`'s. */
function memoryStore(): OpenStore {
  const tables = memoryRecordTables();
  return memoryOpenStore(createMemoryAdapter({ handler: rolloutHandler(() => tables) }), tables);
}

test("a copy synced at the same time as its file waits for it (the file's upload held back), then is left alone", async () => {
  const dir = tempDir("concurrency-race");
  const store = memoryStore();
  try {
    const original = join(dir, "a", `rollout-${ID.x}.jsonl`);
    const copy = join(dir, "b", `rollout-${ID.x}.jsonl`);
    const content = text(lines(ID.x, 40, 3));
    write(original, content);
    write(copy, content);

    const log: ImportEvent[] = [];
    const ofCopy = (event: ImportEvent) => "file" in event && event.file === copy;
    const progress = condition();
    let originalScanned = false;
    let uploadHeld = false;
    let releaseUpload!: () => void;
    const released = new Promise<void>((resolve) => releaseUpload = resolve);
    let copyReads = 0;
    const real = denoHost();
    const host: CliHost = {
      ...real,
      readFile(path, start) {
        const stream = real.readFile(path, start);
        if (path === copy) copyReads++;
        progress.poke();
        if (path !== original || !originalScanned) return stream;
        // The original's upload reads it again: held back until the test lets it go,
        // while the file holds its conversation.
        uploadHeld = true;
        progress.poke();
        const reader = stream.getReader();
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            await released;
            const { done, value } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          cancel: (reason) => reader.cancel(reason),
        });
      },
    };
    const session: SyncSession = {
      host,
      store,
      settings: {
        scope: "local",
        chunkSize: 1024,
        concurrency: 2,
        skipInvalid: false,
        replace: false,
      },
      reporter: {
        report(event) {
          log.push(event);
          if (event.event === "scanned" && event.file === original) originalScanned = true;
          progress.poke();
        },
        flush: () => {},
      },
      signal: new AbortController().signal,
      unfinishedAtStart: new Set(),
    };
    const gate = conversationGate();
    const first = gate.next();
    const second = gate.next();
    const copyEntered: string[] = [];
    let copyIn = false;
    const watched = {
      enter(conversationId: string) {
        copyEntered.push(conversationId);
        progress.poke();
        return second.enter(conversationId).then(() => void (copyIn = true));
      },
      settle: () => second.settle(),
    };
    const syncOriginal = syncFile(session, original, undefined, first).finally(first.finish);
    const syncCopy = syncFile(session, copy, undefined, watched).finally(second.finish);

    // The copy has read its first line (its conversation) and asked for it, or — were it
    // not held up — read on; the original is uploading.
    await progress.until(
      () => copyReads >= 2 || (uploadHeld && copyEntered.includes(ID.x)),
      "the copy to ask for its conversation",
    );
    assert.equal(copyReads, 1, "the copy read on while the original was being synced");
    await turn();
    assert.equal(copyIn, false, "the copy entered the conversation the original holds");
    assert.equal(copyReads, 1);
    assert.deepEqual(log.filter(ofCopy), []);

    releaseUpload();
    assert.equal((await syncOriginal).outcome, "imported");
    assert.equal((await syncCopy).outcome, "unchanged");
    const copyEvents = log.filter(ofCopy);
    assert.deepEqual(copyEvents.map((event) => event.event), ["scanned", "unchanged"]);
    assert.equal((copyEvents[1] as { importedFrom?: string }).importedFrom, original);
    assert.ok(
      log.findIndex(ofCopy) >
        log.findIndex((event) => event.event === "imported"),
    );
    assert.equal((await store.tables.getImport("local", ID.x))?.path, original);
  } finally {
    await store.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------
// The CLI on PGlite

const root = tempDir("concurrency");
const template = join(root, "template");
Deno.mkdirSync(template);
write(join(template, "rollout-template.jsonl"), text(lines("template", 5, 1)));
{
  const result = await runCli(["import", "rollout-template.jsonl"], template);
  assert.equal(result.code, 0, result.stderr);
}
after(() => Deno.removeSync(root, { recursive: true }));

/** A test directory holding a copy of the template store. */
async function workspace(name: string): Promise<string> {
  const dir = join(root, name);
  Deno.mkdirSync(dir);
  await copyDir(join(template, ".codex-sync"), join(dir, ".codex-sync"));
  return dir;
}

/** What a run did, with paths relative to its directory (comparable across runs). */
interface RunView {
  code: number;
  summary: Record<string, unknown>;
  /** Per file: its last event and what it says about where the import came from. */
  outcomes: Record<string, string>;
  stored: Record<string, { path: string; lineCount: number; bytes: number[] }>;
}

const OUTCOMES = ["imported", "unchanged", "older", "diverged", "pending", "failed"];

async function importRun(dir: string, extra: string[]): Promise<RunView> {
  const result = await runCli(
    ["import", "--json", "--chunk-size", "16k", ...extra, "sessions"],
    dir,
  );
  const log = events(result.stdout);
  const rel = (path: unknown) => relative(dir, String(path));
  const outcomes: Record<string, string> = {};
  for (const event of log) {
    if (!OUTCOMES.includes(String(event.event))) continue;
    const file = rel(event.file);
    assert.equal(outcomes[file], undefined, `${file} ended twice`);
    outcomes[file] = [
      event.event,
      event.mode,
      event.reason,
      event.code,
      event.importedFrom === undefined ? undefined : `from ${rel(event.importedFrom)}`,
      event.movedFrom === undefined ? undefined : `moved from ${rel(event.movedFrom)}`,
      event.currentPath === undefined ? undefined : `current ${rel(event.currentPath)}`,
    ].filter((part) => part !== undefined).join(" ");
  }
  // Two files of one conversation never interleave their events.
  const conversationOf = new Map<string, string>();
  for (const event of log) {
    if (typeof event.conversationId === "string") {
      conversationOf.set(String(event.file), event.conversationId);
    }
  }
  const lastFileOf = new Map<string, string>();
  const ended = new Set<string>();
  for (const event of log) {
    const file = event.file === undefined ? undefined : String(event.file);
    const conversation = file && conversationOf.get(file);
    if (!file || !conversation) continue;
    const before = lastFileOf.get(conversation);
    if (before !== undefined && before !== file) {
      assert.ok(ended.has(before), `${file} synced while ${before} (${conversation}) was`);
    }
    lastFileOf.set(conversation, file);
    if (OUTCOMES.includes(String(event.event))) ended.add(file);
  }
  const { ms: _ms, ...summary } = log.at(-1) ?? {};
  const store = await readStore(join(dir, ".codex-sync"));
  const stored: RunView["stored"] = {};
  for (const [conversation, row] of store.imports) {
    stored[conversation] = {
      path: rel(row.path),
      lineCount: row.lineCount,
      bytes: [...rebuild(store.rows.get(conversation)!, true)],
    };
  }
  return { code: result.code, summary, outcomes, stored };
}

test("import: 1, 2 and 16 files at once give the same outcomes, exit code, summary and rows", async () => {
  const at = {
    x: lines(ID.x, 60, 11),
    y: lines(ID.y, 80, 12),
    z: lines(ID.z, 70, 13),
    w: lines(ID.w, 50, 14),
    v: lines(ID.v, 30, 15),
    u: lines(ID.u, 40, 16),
  };
  const day = (n: number, name: string) =>
    join("sessions", "2025", "11", String(n).padStart(2, "0"), `rollout-${name}.jsonl`);
  const tree: Record<string, string> = {
    // X, then an identical copy of it; Y, then an older (shorter) copy; Z's shorter copy,
    // then the longer file; W, then a copy that diverges at line 31; a malformed file
    // amid good ones.
    [day(1, "x")]: text(at.x),
    [day(2, "x-copy")]: text(at.x),
    [day(3, "y")]: text(at.y),
    [day(4, "y-older")]: text(at.y.slice(0, 50)),
    [day(5, "z-older")]: text(at.z.slice(0, 40)),
    [day(6, "z")]: text(at.z),
    [day(7, "w")]: text(at.w),
    [day(8, "w-diverged")]: text([...at.w.slice(0, 30), at.u[5], ...at.w.slice(31)]),
    [day(9, "v-malformed")]: text([...at.v.slice(0, 12), "{not json", ...at.v.slice(12)]),
    [day(10, "u")]: text(at.u),
  };
  const settings = [["--files-at-once", "1"], ["--files-at-once", "2"], ["--files-at-once", "16"]];
  const dirs: string[] = [];
  for (const [i] of settings.entries()) {
    const dir = await workspace(`same-${i}`);
    for (const [path, content] of Object.entries(tree)) write(join(dir, path), content);
    dirs.push(dir);
  }
  const first = await Promise.all(dirs.map((dir, i) => importRun(dir, settings[i])));
  const [sequential] = first;
  assert.equal(sequential.code, 3, "the malformed file's exit code wins over the divergence's");
  assert.deepEqual(sequential.summary, {
    event: "summary",
    files: 10,
    imported: 6,
    unchanged: 1,
    older: 1,
    diverged: 1,
    pending: 0,
    failed: 1,
    interrupted: false,
  });
  assert.equal(sequential.outcomes[day(2, "x-copy")], `unchanged from ${day(1, "x")}`);
  assert.equal(sequential.outcomes[day(4, "y-older")], `older current ${day(3, "y")}`);
  assert.equal(sequential.outcomes[day(6, "z")], "imported extension");
  assert.equal(sequential.outcomes[day(9, "v-malformed")], "failed E_CLI_INVALID_RECORD");
  assert.equal(sequential.stored[ID.z].path, day(6, "z"));
  assert.equal(sequential.stored[ID.z].lineCount, 70);
  assert.equal(sequential.stored[ID.v], undefined);
  assert.deepEqual(sequential.stored[ID.u].bytes, [...encoder.encode(text(at.u))]);
  for (const run of first.slice(1)) assert.deepEqual(run, sequential);

  // Then: X moved away (the copy, first in order, is content-checked and the import
  // follows it, its own path gone; the moved file is a copy of that), Z appended to.
  for (const dir of dirs) {
    Deno.mkdirSync(join(dir, "sessions", "archived"));
    Deno.renameSync(join(dir, day(1, "x")), join(dir, "sessions", "archived", "rollout-x.jsonl"));
    Deno.writeTextFileSync(join(dir, day(6, "z")), text(lines(ID.z, 72, 13).slice(70)), {
      append: true,
    });
  }
  const second = await Promise.all(dirs.map((dir, i) => importRun(dir, settings[i])));
  assert.equal(second[0].code, 3);
  assert.equal(second[0].outcomes[day(6, "z")], "imported extension");
  assert.equal(second[0].outcomes[day(2, "x-copy")], `unchanged from ${day(1, "x")}`);
  assert.equal(
    second[0].outcomes[join("sessions", "archived", "rollout-x.jsonl")],
    `unchanged from ${day(2, "x-copy")}`,
  );
  assert.equal(second[0].stored[ID.x].path, day(2, "x-copy"));
  assert.equal(second[0].stored[ID.z].lineCount, 72);
  for (const run of second.slice(1)) assert.deepEqual(run, second[0]);
});

test("import: Ctrl-C with two files at once starts no new file; the same command then finishes", async () => {
  const dir = await workspace("interrupt");
  const ids = Array.from({ length: 6 }, (_, i) => `0199a3c1-7777-7c2d-9f41-00000000001${i}`);
  const contents = ids.map((id, i) =>
    [...sampleRollout({ sessionId: id, targetBytes: 200_000, seed: 50 + i })].join("\n") + "\n"
  );
  ids.forEach((id, i) => write(join(dir, "sessions", `rollout-${i}-${id}.jsonl`), contents[i]));
  const args = [
    "import",
    "--json",
    "--files-at-once",
    "2",
    "--chunk-size",
    "4k",
    "--concurrency",
    "1",
    "sessions",
  ];
  const running = startCli(args, dir);
  await running.waitForLine((line) =>
    line.includes('"event":"upload"') && /"chunksUploaded":([5-9]|\d\d)/.test(line)
  );
  running.signal("SIGINT");
  const interrupted = await running.done;
  assert.equal(interrupted.code, 130, interrupted.stderr);
  const log = events(interrupted.stdout);
  const summary = log.at(-1)!;
  assert.equal(summary.event, "summary");
  assert.equal(summary.interrupted, true);
  const touched = new Set(log.filter((event) => event.file !== undefined).map((e) => e.file));
  assert.ok(touched.size <= 3, `${touched.size} files started after two were in flight`);
  assert.ok(Number(summary.imported) < ids.length);

  const rerun = await runCli(args, dir);
  assert.equal(rerun.code, 0, rerun.stderr);
  const resumed = events(rerun.stdout);
  const last = resumed.at(-1)!;
  assert.equal(Number(last.imported) + Number(last.unchanged), ids.length);
  const stored = await readStore(join(dir, ".codex-sync"));
  ids.forEach((id, i) =>
    assert.deepEqual(rebuild(stored.rows.get(id)!, true), encoder.encode(contents[i]))
  );
});

test("import: --files-at-once takes 1 to 16; by default 2 with a PostgreSQL server, else 1", async () => {
  const none = { options: {}, positionals: [] };
  assert.equal(filesAtOnceOf(none, "postgres"), DEFAULT_FILES_AT_ONCE);
  assert.equal(filesAtOnceOf(none, "server"), DEFAULT_FILES_AT_ONCE);
  assert.equal(DEFAULT_FILES_AT_ONCE, 2);
  assert.equal(filesAtOnceOf(none, "pglite"), 1);
  assert.equal(filesAtOnceOf(none, "memory"), 1);
  assert.equal(filesAtOnceOf({ options: { "files-at-once": 3 }, positionals: [] }, "pglite"), 3);
  const dir = tempDir("concurrency-flag");
  try {
    write(join(dir, "rollout-a.jsonl"), text(lines("flag", 5, 2)));
    for (const value of ["0", "17", "-1", "two", "1.5"]) {
      const stderr = captureOutput();
      const host: CliHost = {
        ...denoHost(),
        stdout: captureOutput(),
        stderr,
        cwd: () => dir,
      };
      const code = await runInProcess(
        ["import", "--store", "memory", "--files-at-once", value, "rollout-a.jsonl"],
        host,
      );
      assert.equal(code, 2, `--files-at-once ${value}: ${stderr.text}`);
      assert.match(stderr.text, /^E_CLI_USAGE: --files-at-once /, value);
    }
    const stdout = captureOutput();
    const ok = await runInProcess(
      ["import", "--store", "memory", "--json", "--files-at-once", "16", "rollout-a.jsonl"],
      { ...denoHost(), stdout, cwd: () => dir },
    );
    assert.equal(ok, 0);
    assert.equal(events(stdout.text).at(-1)!.imported, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("progress with two files in flight: the terminal line shows both; plain lines are throttled per file", () => {
  let clock = 0;
  const out = captureOutput(80);
  const tty = ttyReporter(out, () => clock);
  const scanned = (file: string): ImportEvent => ({
    event: "scanned",
    file,
    bytes: 4096,
    lines: 10,
    invalidLines: 0,
    pendingBytes: 0,
    newLines: 10,
    conversationId: file,
    conversationIdFrom: "session_meta",
  });
  const upload = (file: string, bytes: number): ImportEvent => ({
    event: "upload",
    file,
    sourceId: "s",
    chunksUploaded: 1,
    bytesUploaded: bytes,
    chunksSkipped: 0,
    bytesSkipped: 0,
    totalBytes: 4096,
  });
  const a = "/s/rollout-a.jsonl";
  const b = "/s/rollout-b.jsonl";
  tty.report(scanned(a));
  tty.report(scanned(b));
  clock += 100;
  tty.report(upload(a, 4096));
  tty.report({ event: "failed", file: b, code: "E_CLI_INVALID_RECORD", message: "bad" });
  const drawn = out.text.split("\r\x1b[2K").filter(Boolean);
  assert.ok(
    drawn.some((line) => /^2 files: rollout-a\.jsonl\s+50% · rollout-b\.jsonl\s+0%$/.test(line)),
    JSON.stringify(drawn),
  );
  assert.ok(drawn.some((line) => line === `✗ ${b}: E_CLI_INVALID_RECORD\n`));
  // The file still in flight is drawn again, alone, with its bar.
  assert.match(
    drawn.at(-1)!,
    /^rollout-a\.jsonl \[█+░*\]\s+50%\s+4\.0 KiB\/4\.0 KiB up · 0\/\? applied$/,
  );
  assert.ok(drawn.every((line) => Array.from(line).length < 80));

  const plain = captureOutput();
  clock = 0;
  const reporter = plainReporter(plain, () => clock);
  reporter.report(upload(a, 100));
  reporter.report(upload(b, 100));
  reporter.report(upload(a, 200));
  clock += 1_000;
  reporter.report(upload(b, 300));
  const uploads = plain.text.split("\n").filter((line) => line.startsWith("upload"));
  assert.deepEqual(
    uploads.map((line) => line.match(/rollout-\w/)![0] + line.match(/(\d+) B \//)![1]),
    [
      "rollout-a100",
      "rollout-b100",
      "rollout-b300",
    ],
  );
});
