// The pieces the Deno and Node hosts share (lock file, file stream), and the Node host's
// file services run in-process (through Deno's node:* implementation; the subprocess
// tests in node_bin.test.ts run it on Node itself).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { CliError } from "../src/errors.ts";
import { lockFiles, type LockFileSystem } from "../src/lock_file.ts";
import { denoHost } from "../main.ts";
import { nodeHost } from "../node_main.ts";
import { tempDir } from "./support.ts";

function fakeFs(alive: boolean | undefined): LockFileSystem & { files: Map<string, string> } {
  const files = new Map<string, string>();
  return {
    files,
    pid: 42,
    createExclusive: (path, text) => {
      if (files.has(path)) return Promise.resolve(false);
      files.set(path, text);
      return Promise.resolve(true);
    },
    readText: (path) => Promise.resolve(files.get(path) ?? ""),
    remove: (path) => Promise.resolve(void files.delete(path)),
    removeSync: (path) => void files.delete(path),
    processAlive: () => alive,
  };
}

test("lock file: taken, refused while its owner lives, taken over from a dead one", async () => {
  const live = fakeFs(true);
  const unlock = await lockFiles(live).take("/s/lock");
  assert.equal(live.files.get("/s/lock"), "42\n");
  await assert.rejects(lockFiles(live).take("/s/lock"), (error: unknown) => {
    assert.ok(error instanceof CliError);
    assert.equal(error.code, "E_CLI_STORE_LOCKED");
    assert.match(error.message, /pid 42/);
    return true;
  });
  await unlock();
  assert.equal(live.files.size, 0);

  const dead = fakeFs(false);
  dead.files.set("/s/lock", "7\n");
  await lockFiles(dead).take("/s/lock");
  assert.equal(dead.files.get("/s/lock"), "42\n");

  // A runtime that cannot tell keeps the lock: the message says what to delete.
  const unknown = fakeFs(undefined);
  unknown.files.set("/s/lock", "7\n");
  await assert.rejects(lockFiles(unknown).take("/s/lock"), /delete \/s\/lock/);

  // An immediate exit (second Ctrl-C) removes every lock still held.
  const held = fakeFs(true);
  const locks = lockFiles(held);
  await locks.take("/a/lock");
  await locks.take("/b/lock");
  locks.releaseAllSync();
  assert.equal(held.files.size, 0);

  // Unlocking removes the file at once: an exit right after it cannot leave it behind, even
  // where asynchronous file operations never finish before the process ends.
  const exiting = { ...fakeFs(true), remove: () => new Promise<void>(() => {}) };
  const exitingLocks = lockFiles(exiting);
  const unlockNow = await exitingLocks.take("/c/lock");
  void unlockNow();
  exitingLocks.releaseAllSync(); // the immediate exit
  assert.equal(exiting.files.size, 0);
});

test("node host: lock file (wx, pid check), stat, readDir, readFile in pieces and from an offset, atomic writeFile", async () => {
  const dir = tempDir("node-host");
  try {
    const host = nodeHost();
    const lock = join(dir, "lock");
    const unlock = await host.lock(lock);
    assert.equal(Deno.readTextFileSync(lock).trim(), String(Deno.pid));
    await assert.rejects(host.lock(lock), /E_CLI_STORE_LOCKED|in use/);
    await unlock();
    assert.equal(await host.stat(lock), undefined);
    // A lock left by a process that no longer runs is taken over.
    Deno.writeTextFileSync(lock, "2147483646\n");
    await (await host.lock(lock))();

    const bytes = new Uint8Array(2_500_000).map((_, i) => i % 251);
    Deno.writeFileSync(join(dir, "data.bin"), bytes);
    Deno.mkdirSync(join(dir, "sub"));
    const info = await host.stat(join(dir, "data.bin"));
    const raw = Deno.statSync(join(dir, "data.bin"));
    assert.deepEqual({ ...info, mtimeMs: undefined, mtimeNs: undefined }, {
      isFile: true,
      isDirectory: false,
      size: bytes.length,
      mtimeMs: undefined,
      mtimeNs: undefined,
      fileId: `${raw.dev}:${raw.ino}`,
    });
    assert.ok(Math.abs(info!.mtimeMs! - Date.now()) < 60_000);
    // Nanoseconds, agreeing with the milliseconds.
    assert.match(info!.mtimeNs!, /^\d+$/);
    assert.equal(BigInt(info!.mtimeNs!) / 1_000_000n, BigInt(Math.floor(info!.mtimeMs!)));
    const entries = [];
    for await (const entry of host.readDir(dir)) entries.push(entry);
    assert.deepEqual(entries.map((e) => [e.name, e.isFile, e.isDirectory]).sort(), [
      ["data.bin", true, false],
      ["sub", false, true],
    ]);
    const pieces: Uint8Array[] = [];
    for await (const piece of host.readFile(join(dir, "data.bin"))) pieces.push(piece);
    assert.ok(pieces.length > 1, "read in several pieces");
    const joined = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
    pieces.reduce((offset, piece) => (joined.set(piece, offset), offset + piece.length), 0);
    assert.deepEqual(joined, bytes);

    // From an offset.
    const tail: Uint8Array[] = [];
    for await (const piece of host.readFile(join(dir, "data.bin"), 2_499_990)) tail.push(piece);
    assert.deepEqual(tail.flatMap((piece) => [...piece]), [...bytes.subarray(2_499_990)]);

    // Atomic writes: the file appears whole, and a failure leaves nothing behind.
    const target = join(dir, "sub", "out.jsonl");
    await host.writeFile(
      target,
      (async function* () {
        yield new Uint8Array([1, 2]);
        yield new Uint8Array([3]);
      })(),
    );
    assert.deepEqual(Deno.readFileSync(target), new Uint8Array([1, 2, 3]));
    await assert.rejects(
      host.writeFile(
        target,
        (async function* () {
          yield new Uint8Array([9]);
          throw new Error("stop");
        })(),
      ),
      /stop/,
    );
    assert.deepEqual(Deno.readFileSync(target), new Uint8Array([1, 2, 3]));
    assert.deepEqual([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["out.jsonl"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("deno host: readFile from an offset, atomic writeFile, a recursive watcher", async () => {
  const dir = tempDir("deno-host");
  try {
    const host = denoHost();
    Deno.writeTextFileSync(join(dir, "a.txt"), "hello world");
    const pieces: Uint8Array[] = [];
    for await (const piece of host.readFile(join(dir, "a.txt"), 6)) pieces.push(piece);
    assert.equal(new TextDecoder().decode(pieces[0]), "world");
    await host.writeFile(
      join(dir, "b.txt"),
      (async function* () {
        yield new TextEncoder().encode("b");
      })(),
    );
    assert.equal(Deno.readTextFileSync(join(dir, "b.txt")), "b");

    const seen: string[] = [];
    let notify: () => void = () => {};
    const watcher = host.watch!([dir], (paths) => {
      seen.push(...paths);
      notify();
    }, (error) => {
      throw error;
    });
    try {
      Deno.mkdirSync(join(dir, "2025", "11"), { recursive: true });
      const file = join(dir, "2025", "11", "rollout-x.jsonl");
      const deadline = Date.now() + 10_000;
      // Written until the watcher reports it (a new directory is watched once it exists).
      while (!seen.includes(file) && Date.now() < deadline) {
        Deno.writeTextFileSync(file, "{}\n", { append: true });
        await new Promise<void>((resolve) => {
          notify = resolve;
          setTimeout(resolve, 200);
        });
      }
      assert.ok(seen.includes(file), JSON.stringify(seen));
    } finally {
      watcher.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
