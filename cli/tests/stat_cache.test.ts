// In-process tests of the embedded store's stat cache (src/stat_cache.ts): a no-op
// re-import answered without opening the store (observable: it succeeds with the store's
// `base/` directory moved away, where opening the store fails), the same events the store's
// own stat check gives; a grown, touched, new or replaced file opens the store; every
// command that opens the store changes its fingerprint; a stale, corrupt or foreign cache
// is not trusted; the lock is honoured; a cache that cannot be written fails nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SyncAdapter } from "@zakstam/codex-sync-engine";
import { denoHost } from "../main.ts";
import { memoryRecordTables, runCli } from "../mod.ts";
import type { OpenStore } from "../src/store.ts";
import {
  parseStatCache,
  recordedFiles,
  STAT_CACHE_FORMAT,
  STAT_CACHE_VERSION,
  statCachePath,
  storeFingerprint,
} from "../src/stat_cache.ts";
import { sampleRollout } from "../scripts/sample_rollout.ts";
import { captureOutput, tempDir } from "./support.ts";

const ids = ["a", "b", "c", "d", "e"].map((letter) =>
  `0199a3c1-5e7b-7c2d-9f41-00000000000${letter}`
);

/** Runs the CLI in this process in `cwd`, output captured, no CODEX_SYNC_* from outside. */
async function cli(args: string[], cwd: string) {
  const out = captureOutput();
  const err = captureOutput();
  const code = await runCli(args, {
    ...denoHost(),
    stdout: out,
    stderr: err,
    cwd: () => cwd,
    env: (name: string) => name.startsWith("CODEX_SYNC_") ? undefined : Deno.env.get(name),
  });
  const stdout = out.text;
  const stderr = err.text;
  const events = stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
    JSON.parse(line) as Record<string, unknown>
  );
  return { code, stdout, stderr, events };
}

/** How each file of an import's events ended: `unchanged:<checked>`, `imported:<mode>`, … */
function outcomes(events: Record<string, unknown>[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const event of events) {
    const name = String(event.file ?? "").split("/").pop()!;
    if (event.event === "unchanged") out[name] = `unchanged:${event.checked}`;
    if (event.event === "imported") out[name] = `imported:${event.mode}`;
    if (event.event === "failed") out[name] = `failed:${event.code}`;
  }
  return out;
}

function summaryOf(events: Record<string, unknown>[]): Record<string, unknown> {
  const summary = events.find((event) => event.event === "summary");
  assert.ok(summary, "a summary event");
  return summary;
}

/** A work directory with a tree of `count` rollout files and the store in `.codex-sync`. */
function workspace(name: string, count: number) {
  const dir = tempDir(`stat-cache-${name}`);
  const tree = join(dir, "tree");
  Deno.mkdirSync(tree);
  const fileOf = (index: number) =>
    join(tree, `rollout-2025-11-0${index + 1}T09-00-00-${ids[index]}.jsonl`);
  const write = (index: number) => {
    const lines = [...sampleRollout({ sessionId: ids[index], targetBytes: 12_000, seed: index })];
    Deno.writeTextFileSync(fileOf(index), lines.join("\n") + "\n");
    return fileOf(index);
  };
  for (let index = 0; index < count; index++) write(index);
  const dataDir = join(dir, ".codex-sync");
  return {
    dir,
    tree,
    dataDir,
    pgdata: join(dataDir, "pgdata"),
    name: (index: number) => fileOf(index).split("/").pop()!,
    fileOf,
    write,
    /** `import --json tree` plus `extra` options. */
    importTree: (...extra: string[]) => cli(["import", "--json", ...extra, tree], dir),
    fingerprint: () => storeFingerprint(denoHost(), join(dataDir, "pgdata")),
    remove: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/** Every one of `names` with the same outcome. */
function all(names: string[], outcome: string): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, outcome]));
}

test("stat cache: a no-op re-import is answered without opening the store", async () => {
  const work = workspace("no-op", 3);
  const names = [0, 1, 2].map(work.name);
  try {
    const first = await work.importTree();
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(outcomes(first.events), all(names, "imported:full"));
    const cache = parseStatCache(Deno.readTextFileSync(statCachePath(work.dataDir)));
    assert.ok(cache, "the import left a readable cache");
    assert.equal(cache.scope, "local");
    assert.equal(cache.store, await work.fingerprint());
    assert.deepEqual(cache.files.map((entry) => entry.path).sort(), [0, 1, 2].map(work.fileOf));

    const cached = await work.importTree();
    assert.equal(cached.code, 0, cached.stderr);
    assert.deepEqual(outcomes(cached.events), all(names, "unchanged:stat-cache"));
    assert.equal(summaryOf(cached.events).unchanged, 3);
    assert.equal(summaryOf(cached.events).imported, 0);
    const start = cached.events[0];
    assert.equal(start.event, "start");
    assert.equal(start.store, work.dataDir);
    assert.equal(start.scope, "local");

    // The store's own check gives the same events, but for how they were checked.
    const opened = await cli(["import", "--json", "--replace", work.tree], work.dir);
    assert.equal(opened.code, 0, opened.stderr);
    assert.deepEqual(outcomes(opened.events), all(names, "unchanged:stat"));
    const unchanged = (events: Record<string, unknown>[]) =>
      events.filter((event) => event.event === "unchanged").map(({ checked: _, ...rest }) => rest);
    assert.deepEqual(unchanged(cached.events), unchanged(opened.events));

    // Without base/ the store cannot be opened: an answer then is one from the cache.
    const away = join(work.dir, "base.away");
    Deno.renameSync(join(work.pgdata, "base"), away);
    try {
      const blind = await work.importTree();
      assert.equal(blind.code, 0, blind.stderr);
      assert.deepEqual(outcomes(blind.events), all(names, "unchanged:stat-cache"));
      // --rescan never answers from the cache: it opens the store, and that fails here.
      const rescan = await work.importTree("--rescan");
      assert.notEqual(rescan.code, 0);
      assert.equal(outcomes(rescan.events)[names[0]], undefined);
    } finally {
      Deno.renameSync(away, join(work.pgdata, "base"));
    }
    const again = await work.importTree();
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(outcomes(again.events), all(names, "unchanged:stat"));
  } finally {
    work.remove();
  }
});

test("stat cache: a grown, touched, new or replaced file opens the store and is synced", async () => {
  const work = workspace("changes", 3);
  const name = work.name;
  try {
    assert.equal((await work.importTree()).code, 0);
    const expectCached = async (count: number) => {
      const run = await work.importTree();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        outcomes(run.events),
        all([...Array(count).keys()].map(name), "unchanged:stat-cache"),
      );
    };
    await expectCached(3);

    // Grown: one line appended to file 0.
    const grown = work.fileOf(0);
    const last = Deno.readTextFileSync(grown).trimEnd().split("\n").at(-1)!;
    Deno.writeTextFileSync(grown, last + "\n", { append: true });
    let run = await work.importTree();
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(outcomes(run.events), {
      [name(0)]: "imported:extension",
      [name(1)]: "unchanged:stat",
      [name(2)]: "unchanged:stat",
    });
    await expectCached(3);

    // Touched: a new mtime at the same size is read whole (and found unchanged).
    const touched = work.fileOf(1);
    const mtime = Deno.statSync(touched).mtime!;
    Deno.utimeSync(touched, mtime, new Date(mtime.getTime() + 5_000));
    run = await work.importTree();
    assert.equal(run.code, 0, run.stderr);
    assert.equal(outcomes(run.events)[name(1)], "unchanged:content");
    assert.equal(outcomes(run.events)[name(0)], "unchanged:stat");
    await expectCached(3);

    // New: a file the store has never seen.
    work.write(3);
    run = await work.importTree();
    assert.equal(run.code, 0, run.stderr);
    assert.equal(outcomes(run.events)[name(3)], "imported:full");
    assert.equal(outcomes(run.events)[name(2)], "unchanged:stat");
    await expectCached(4);

    // Replaced: another file (another identity) at the same path, size and mtime.
    const replaced = work.fileOf(2);
    const stat = Deno.statSync(replaced);
    Deno.copyFileSync(replaced, replaced + ".copy");
    Deno.removeSync(replaced);
    Deno.renameSync(replaced + ".copy", replaced);
    Deno.utimeSync(replaced, stat.atime!, stat.mtime!);
    assert.notEqual(Deno.statSync(replaced).ino, stat.ino);
    run = await work.importTree();
    assert.equal(run.code, 0, run.stderr);
    assert.equal(outcomes(run.events)[name(2)], "unchanged:content");
    await expectCached(4);

    // Removed: nothing the store knows of the others changes; the cache answers for them.
    Deno.removeSync(work.fileOf(3));
    await expectCached(3);
  } finally {
    work.remove();
  }
});

test("stat cache: every command that opens the store changes its fingerprint", async () => {
  const work = workspace("commands", 2);
  const names = [0, 1].map(work.name);
  try {
    const first = await work.importTree();
    assert.equal(first.code, 0, first.stderr);
    const jobId = String(first.events.find((event) => event.event === "imported")!.jobId);
    let before = await work.fingerprint();
    assert.ok(before);
    assert.equal(await work.fingerprint(), before, "stable while nothing opens the store");
    const commands: string[][] = [
      ["status"],
      ["jobs"],
      ["verify", ids[0]],
      ["export", ids[0], "--out", join(work.dir, "exported")],
      ["restore", "--all", "--codex-home", join(work.dir, "codex-home")],
      ["gc"],
      ["cancel", jobId],
    ];
    for (const args of commands) {
      const ran = await cli(args, work.dir);
      // (cancel of a finished job changes nothing, but opens the store to look it up)
      assert.equal(ran.code, 0, `${args.join(" ")}: ${ran.stderr}`);
      const after = await work.fingerprint();
      assert.ok(after);
      assert.notEqual(after, before, `${args[0]} changes the store's fingerprint`);
      // The cache written before is stale now: the import opens the store.
      const run = await work.importTree();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat"), args[0]);
      before = await work.fingerprint();
      assert.notEqual(before, after, "the import that opened the store changed it too");
    }
    const cached = await work.importTree();
    assert.deepEqual(outcomes(cached.events), all(names, "unchanged:stat-cache"));
  } finally {
    work.remove();
  }
});

test("stat cache: a cache the store moved on from is not trusted", async () => {
  const work = workspace("stale", 2);
  const names = [0, 1].map(work.name);
  const other = join(work.dir, "other");
  try {
    assert.equal((await work.importTree()).code, 0);
    const stale = Deno.readTextFileSync(statCachePath(work.dataDir));

    // Another tree imported into the same store: the cache it writes vouches for both.
    Deno.mkdirSync(other);
    Deno.renameSync(work.write(2), join(other, work.name(2)));
    const second = await cli(["import", "--json", other], work.dir);
    assert.equal(second.code, 0, second.stderr);
    let run = await work.importTree();
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat-cache"));

    // The old cache put back: its fingerprint is not the store's any more.
    Deno.writeTextFileSync(statCachePath(work.dataDir), stale);
    run = await work.importTree();
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat"));

    // Another scope's import leaves a cache of that scope only.
    run = await work.importTree("--scope", "elsewhere");
    assert.deepEqual(outcomes(run.events), all(names, "imported:full"));
    run = await work.importTree("--scope", "elsewhere");
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat-cache"));
    run = await work.importTree();
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat"));
  } finally {
    work.remove();
  }
});

test("stat cache: a corrupt, foreign or old-version cache is ignored and rewritten", async () => {
  const work = workspace("corrupt", 1);
  const names = [work.name(0)];
  try {
    assert.equal((await work.importTree()).code, 0);
    const good = JSON.parse(Deno.readTextFileSync(statCachePath(work.dataDir)));
    const broken = [
      "{not json",
      "",
      JSON.stringify({ ...good, version: STAT_CACHE_VERSION + 1 }),
      JSON.stringify({ ...good, format: "something-else" }),
      JSON.stringify({ ...good, files: [{ ...good.files[0], file: { size: "12" } }] }),
      JSON.stringify({ ...good, files: [{ ...good.files[0], lineCount: -1 }] }),
    ];
    for (const text of broken) {
      assert.equal(parseStatCache(text), undefined, text.slice(0, 60));
      Deno.writeTextFileSync(statCachePath(work.dataDir), text);
      const run = await work.importTree();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat"), text.slice(0, 60));
      const rewritten = parseStatCache(Deno.readTextFileSync(statCachePath(work.dataDir)));
      assert.equal(rewritten?.format, STAT_CACHE_FORMAT);
    }
    const run = await work.importTree();
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat-cache"));
  } finally {
    work.remove();
  }
});

test("stat cache: the store's lock is honoured, and an unwritable cache fails nothing", async () => {
  const work = workspace("lock", 1);
  const names = [work.name(0)];
  try {
    assert.equal((await work.importTree()).code, 0);
    // The lock held by another live process (as a running codex-sync holds it).
    const lockPath = join(work.dataDir, "lock");
    const holder = new Deno.Command("sleep", { args: ["120"] }).spawn();
    try {
      Deno.writeTextFileSync(lockPath, `${holder.pid}\n`, { createNew: true });
      const locked = await work.importTree();
      assert.equal(locked.code, 1, locked.stdout + locked.stderr);
      assert.match(locked.stderr, /E_CLI_STORE_LOCKED/);
      assert.equal(locked.events.filter((event) => event.event === "unchanged").length, 0);
      assert.equal(Deno.readTextFileSync(lockPath), `${holder.pid}\n`, "still the holder's");
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
    // Its holder gone: the Deno host cannot tell under these permissions (see main.ts's
    // processAlive), so the lock stays refused until it is deleted; then the cache answers.
    const stale = await work.importTree();
    assert.equal(stale.code, 1, stale.stdout + stale.stderr);
    assert.match(stale.stderr, /E_CLI_STORE_LOCKED[\s\S]*delete /);
    Deno.removeSync(lockPath);
    let run = await work.importTree();
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat-cache"));

    // A directory in the cache's way: it cannot be read or written; the import succeeds.
    Deno.removeSync(statCachePath(work.dataDir));
    Deno.mkdirSync(statCachePath(work.dataDir));
    run = await work.importTree();
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(outcomes(run.events), all(names, "unchanged:stat"));
    assert.equal(run.stderr, "");
    run = await work.importTree("--verbose");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /stat cache .*stat-cache\.json was not written/);
    assert.ok(Deno.statSync(statCachePath(work.dataDir)).isDirectory);
  } finally {
    work.remove();
  }
});

test("stat cache: what the store recorded, and nothing while jobs are unfinished", async () => {
  const tables = memoryRecordTables();
  const base = {
    scope: "local",
    rowSet: "r",
    fileSha256: "0".repeat(64),
    lineCount: 3,
    invalidCount: 0,
    byteCount: 300,
    digest: "d",
    importedAt: 1,
  };
  const file = { size: 310, mtimeNs: "1000", fileId: "1:2", hashState: "300:x" };
  for (const [conversationId, path] of [["c1", "/t/one"], ["c2", "/t/two"], ["c3", "/t/three"]]) {
    await tables.setImport({
      ...base,
      conversationId,
      sourceId: `s-${conversationId}`,
      jobId: `j-${conversationId}`,
      path,
    });
  }
  await tables.setFileState("local", "c1", "s-c1", "/t/one", file);
  await tables.setFileState("local", "c2", "s-c2", "/t/two", file);
  await tables.markDamaged("local", "c2", true);
  let unfinished: string[] = [];
  const adapter = {
    listJobs: ({ state }: { state: string }) =>
      Promise.resolve({
        items: state === "queued" ? unfinished.map((jobId) => ({ jobId })) : [],
      }),
  } as unknown as SyncAdapter;
  const store = { adapter, tables } as unknown as OpenStore;
  // c2 is damaged (its next import repairs it), c3 has no file state: neither is cached.
  assert.deepEqual(await recordedFiles(store, "local"), [{
    path: "/t/one",
    conversationId: "c1",
    sourceId: "s-c1",
    jobId: "j-c1",
    lineCount: 3,
    byteCount: 300,
    file,
  }]);
  assert.deepEqual(await recordedFiles(store, "other"), []);
  unfinished = ["j-c9"];
  assert.equal(await recordedFiles(store, "local"), undefined);
});
