// In-process tests of what an import remembers of a file (src/file_state.ts) on the memory
// store, through a host that records every read: an unchanged stat is not opened (and a
// rewrite keeping size and mtime is trusted until --rescan), a grown file is read only at
// its first line, the import's last bytes and the new ones, a moved file is recognised
// and the import's path follows it, a stat older than the read is not recorded, and the
// chunk payloads are released once an import is current (verify, export and a repair
// need none of them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import { denoHost } from "../main.ts";
import { checkStoredRows, memoryRecordTables, rolloutHandler } from "../mod.ts";
import { conversationBytes } from "../src/commands/export.ts";
import type { CliHost, FileInfo } from "../src/host.ts";
import type { ImportEvent } from "../src/progress.ts";
import { memoryOpenStore, type OpenStore } from "../src/store.ts";
import {
  type PreloadedImports,
  preloadImports,
  syncFile,
  type SyncSession,
} from "../src/sync_file.ts";
import { sampleRollout } from "../scripts/sample_rollout.ts";
import { tempDir } from "./support.ts";

const encoder = new TextEncoder();
const ID = "0199a3c1-eeee-7c2d-9f41-000000000005";

/** One read through the host: where it started and how many bytes were taken from it. */
interface Read {
  path: string;
  start: number;
  bytes: number;
}

/**
 * The Deno host, recording reads (bytes counted as the reader takes them: nothing read
 * ahead is counted), with the file identity the runtime's stat gives (`withIdentity`),
 * and a way to make the next stat of a file report an older size.
 */
function recordingHost(withIdentity: boolean): CliHost & {
  reads: Read[];
  staleSize: Map<string, number>;
} {
  const base = denoHost();
  const reads: Read[] = [];
  const staleSize = new Map<string, number>();
  return {
    ...base,
    reads,
    staleSize,
    async stat(path: string): Promise<FileInfo | undefined> {
      const info = await base.stat(path);
      if (!info) return info;
      // The Deno host tells the identity itself; a host without one (Windows) is played
      // by dropping it.
      if (!withIdentity) delete info.fileId;
      else assert.ok(info.fileId, "the Deno host tells a file's identity");
      const stale = staleSize.get(path);
      if (stale !== undefined) {
        staleSize.delete(path);
        info.size = stale;
      }
      return info;
    },
    readFile(path: string, start = 0): ReadableStream<Uint8Array> {
      const read: Read = { path, start, bytes: 0 };
      reads.push(read);
      const reader = base.readFile(path, start).getReader();
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) controller.close();
          else {
            read.bytes += value.length;
            controller.enqueue(value);
          }
        },
        cancel: (reason) => reader.cancel(reason),
      }, { highWaterMark: 0 });
    },
  };
}

interface Harness {
  dir: string;
  host: ReturnType<typeof recordingHost>;
  store: OpenStore;
  events: ImportEvent[];
  sync(
    path: string,
    options?: { rescan?: boolean; replace?: boolean; preloaded?: PreloadedImports },
  ): ReturnType<typeof syncFile>;
  /** Bytes taken from reads since the last call. */
  takeReads(): Read[];
  bytesOf(): Promise<Uint8Array>;
  close(): Promise<void>;
}

function harness(name: string, withIdentity = true): Harness {
  const dir = tempDir(`state-${name}`);
  const host = recordingHost(withIdentity);
  const tables = memoryRecordTables();
  const adapter = createMemoryAdapter({ handler: rolloutHandler(() => tables) });
  const store = memoryOpenStore(adapter, tables);
  const events: ImportEvent[] = [];
  let seen = 0;
  return {
    dir,
    host,
    store,
    events,
    sync(path, options = {}) {
      const session: SyncSession = {
        host,
        store,
        settings: {
          scope: "local",
          chunkSize: 64 * 1024,
          concurrency: 2,
          skipInvalid: false,
          replace: options.replace === true,
          rescan: options.rescan === true,
        },
        reporter: { report: (event) => void events.push(event), flush: () => {} },
        signal: new AbortController().signal,
        unfinishedAtStart: new Set(),
        ...(options.preloaded ? { preloaded: options.preloaded } : {}),
      };
      return syncFile(session, path);
    },
    takeReads() {
      const taken = host.reads.slice(seen);
      seen = host.reads.length;
      return taken;
    },
    async bytesOf() {
      const current = (await tables.getImport("local", ID))!;
      const parts: Uint8Array[] = [];
      for await (const piece of conversationBytes(tables, current, true)) parts.push(piece);
      return joined(parts);
    },
    async close() {
      await store.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, part) => (out.set(part, offset), offset + part.length), 0);
  return out;
}

function text(count: number, seed = 1, targetBytes = 1_000_000): string {
  return [...sampleRollout({ sessionId: ID, targetBytes, seed })].slice(0, count)
    .map((line) => line + "\n").join("");
}

function last<T extends ImportEvent["event"]>(
  events: ImportEvent[],
  event: T,
): Extract<ImportEvent, { event: T }> {
  const found = events.filter((e) => e.event === event);
  assert.ok(found.length > 0, `no ${event} event in ${JSON.stringify(events.map((e) => e.event))}`);
  return found.at(-1) as Extract<ImportEvent, { event: T }>;
}

function bytesRead(reads: Read[]): number {
  return reads.reduce((n, read) => n + read.bytes, 0);
}

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

test("file state: an unchanged stat is not opened; a rewrite keeping size and mtime is trusted until --rescan; a new mtime is read", async () => {
  const h = harness("unchanged");
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    const content = text(40, 1);
    Deno.writeTextFileSync(file, content);
    assert.equal((await h.sync(file)).outcome, "imported");
    assert.ok(bytesRead(h.takeReads()) >= content.length);

    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), [], "not opened");
    assert.equal(last(h.events, "unchanged").checked, "stat");

    // Same size, same mtime, other bytes (not what an append-only file does): trusted.
    const { mtime } = Deno.statSync(file);
    const rewritten = content.replace('"session_meta"', '"session_mEta"');
    assert.equal(rewritten.length, content.length);
    Deno.writeTextFileSync(file, rewritten);
    Deno.utimeSync(file, mtime!, mtime!);
    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), []);
    // --rescan reads it whole and finds it differs.
    assert.equal((await h.sync(file, { rescan: true })).outcome, "diverged");
    assert.ok(bytesRead(h.takeReads()) >= content.length);

    // The same bytes again with a new mtime: read (a rewrite could have changed them), found
    // unchanged by content, and the new stat recorded.
    Deno.writeTextFileSync(file, content);
    Deno.utimeSync(file, new Date(mtime!.getTime() + 5_000), new Date(mtime!.getTime() + 5_000));
    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.equal(last(h.events, "unchanged").checked, "content");
    assert.ok(bytesRead(h.takeReads()) >= content.length);
    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), []);
  } finally {
    await h.close();
  }
});

test("file state: a grown file is read at its first line, the import's last bytes and the new ones only", async () => {
  const h = harness("grown");
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    const all = text(100_000, 2, 6_000_000);
    const lines = all.split("\n");
    const base = lines.slice(0, -40).join("\n") + "\n";
    assert.ok(base.length > 4_000_000);
    Deno.writeTextFileSync(file, base);
    await h.sync(file);
    h.takeReads();
    let content = base;
    for (const added of [1, 3]) {
      const before = encoder.encode(content).length;
      content = lines.slice(0, content.split("\n").length - 1 + added).join("\n") + "\n";
      Deno.writeTextFileSync(file, content);
      const result = await h.sync(file);
      assert.equal(result.imported?.mode, "extension");
      assert.equal(result.imported?.newLines, added);
      const reads = h.takeReads();
      // The first line (one piece read from 0), and from just before the import's end on.
      assert.ok(bytesRead(reads) < 1024 * 1024 + 64 * 1024, JSON.stringify(reads));
      assert.ok(reads.every((read) => read.start === 0 ? read.bytes <= 1024 * 1024 : true));
      assert.ok(reads.some((read) => read.start > before - 8192 && read.start < before));
    }
    // The digest continued from the recorded state is the whole file's.
    const current = (await h.store.tables.getImport("local", ID))!;
    assert.equal(current.fileSha256, sha256(content));
    assert.deepEqual(await h.bytesOf(), encoder.encode(content));

    // The import's last line changed, and lines added: not an append — read whole.
    assert.notEqual(content.at(-3), "#");
    const changedTail = content.slice(0, -3) + "#" + content.slice(-2) +
      lines.slice(-40, -38).join("\n") + "\n";
    Deno.writeTextFileSync(file, changedTail);
    assert.equal((await h.sync(file)).outcome, "diverged");
    assert.ok(bytesRead(h.takeReads()) >= content.length);
    // The first line changed (same length), lines added: read whole too.
    const grown = content + lines.slice(-40, -38).join("\n") + "\n";
    const changedHead = grown.replace('"session_meta"', '"session_mEta"');
    Deno.writeTextFileSync(file, changedHead);
    assert.notEqual((await h.sync(file)).imported?.mode, "extension");
    assert.ok(bytesRead(h.takeReads()) >= content.length);
  } finally {
    await h.close();
  }
});

test("file state: a moved file is recognised without reading past its first line; the import's path follows it; a copy leaves it", async () => {
  const h = harness("moved");
  try {
    const sessions = join(h.dir, "sessions");
    const archived = join(h.dir, "archived_sessions");
    Deno.mkdirSync(sessions);
    Deno.mkdirSync(archived);
    const file = join(sessions, `rollout-${ID}.jsonl`);
    const content = text(60, 3);
    Deno.writeTextFileSync(file, content);
    const jobId = (await h.sync(file)).imported!.jobId;
    h.takeReads();

    const moved = join(archived, `rollout-${ID}.jsonl`);
    Deno.renameSync(file, moved);
    assert.equal((await h.sync(moved)).outcome, "unchanged");
    const event = last(h.events, "unchanged");
    assert.equal(event.movedFrom, file);
    assert.equal(event.checked, "stat");
    assert.equal(event.jobId, jobId, "not imported again");
    const reads = h.takeReads();
    assert.deepEqual(reads.map((read) => read.start), [0], "only the first line is looked at");
    assert.equal((await h.store.tables.getImport("local", ID))!.path, moved);
    // From now on the new path is the import's: unchanged by stat, and an append extends.
    assert.equal((await h.sync(moved)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), []);
    const grown = content + text(61, 3).slice(content.length);
    Deno.writeTextFileSync(moved, grown);
    assert.equal((await h.sync(moved)).imported?.mode, "extension");
    assert.deepEqual(await h.bytesOf(), encoder.encode(grown));
    h.takeReads();

    // A copy elsewhere (another identity; the import's file still exists): same bytes,
    // unchanged by content, and the import stays with its own file.
    const copy = join(sessions, `rollout-copy-${ID}.jsonl`);
    Deno.copyFileSync(moved, copy);
    assert.equal((await h.sync(copy)).outcome, "unchanged");
    assert.equal(last(h.events, "unchanged").importedFrom, moved);
    assert.equal((await h.store.tables.getImport("local", ID))!.path, moved);
  } finally {
    await h.close();
  }
});

test("file state: without a file identity a moved file is recognised by its content, and the path follows", async () => {
  const h = harness("moved-no-id", false);
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    Deno.writeTextFileSync(file, text(30, 4));
    const jobId = (await h.sync(file)).imported!.jobId;
    const moved = join(h.dir, `rollout-moved-${ID}.jsonl`);
    Deno.renameSync(file, moved);
    assert.equal((await h.sync(moved)).outcome, "unchanged");
    assert.equal(last(h.events, "unchanged").jobId, jobId);
    assert.equal(last(h.events, "unchanged").checked, "content");
    assert.equal((await h.store.tables.getImport("local", ID))!.path, moved);
    h.takeReads();
    assert.equal((await h.sync(moved)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), [], "then known by its stat");
  } finally {
    await h.close();
  }
});

test("file state: a stat taken before bytes were appended is not recorded", async () => {
  const h = harness("stale");
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    const first = text(20, 5);
    Deno.writeTextFileSync(file, first);
    await h.sync(file);
    const more = text(25, 5);
    Deno.writeTextFileSync(file, more);
    // The stat saw the old size; the read then found the appended lines.
    h.host.staleSize.set(file, first.length);
    assert.equal((await h.sync(file)).outcome, "imported");
    assert.equal((await h.store.tables.getImport("local", ID))!.file, undefined);
    h.takeReads();
    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.ok(bytesRead(h.takeReads()) >= more.length, "looked at again, by content");
    assert.equal((await h.sync(file)).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), []);
  } finally {
    await h.close();
  }
});

test("file state: an import's chunk payloads are released once it is current; verify, export and a repair need none", async () => {
  const h = harness("release");
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    const content = text(300, 6);
    Deno.writeTextFileSync(file, content);
    await h.sync(file);
    let current = (await h.store.tables.getImport("local", ID))!;
    const source = await h.store.adapter.getSource({ scope: "local", sourceId: current.sourceId });
    assert.notEqual(source.payloadsReleasedAt, undefined, "released");
    assert.ok(source.manifest!.chunkCount > 1);
    // What verify does: the rows against the manifest and the chunks' (kept) digests.
    const page = await h.store.adapter.listChunks({
      scope: "local",
      sourceId: current.sourceId,
      limit: 1000,
    });
    assert.equal(page.items.length, source.manifest!.chunkCount);
    const check = await checkStoredRows(h.store.tables, "local", current.rowSet, source.manifest!, {
      chunks: page.items,
    });
    assert.ok(check.ok, check.problems.join("; "));
    assert.deepEqual(await h.bytesOf(), encoder.encode(content));
    // An append extends the released source (its job starts after the base's chunks).
    const grown = text(310, 6);
    Deno.writeTextFileSync(file, grown);
    const appended = await h.sync(file);
    assert.equal(appended.imported?.mode, "extension");
    assert.equal(appended.imported?.appliedNewOnly, true);
    // Rows damaged after the release: a re-import of the file repairs them, whole.
    current = (await h.store.tables.getImport("local", ID))!;
    await h.store.tables.deleteRowsAfter("local", current.rowSet, 100);
    await h.store.tables.markDamaged("local", ID, true);
    const repaired = await h.sync(file);
    assert.equal(repaired.imported?.reason, "repair");
    assert.deepEqual(await h.bytesOf(), encoder.encode(grown));
  } finally {
    await h.close();
  }
});

test("file state: imports read once for a run; a conversation synced since is looked up again", async () => {
  const h = harness("preloaded");
  try {
    const file = join(h.dir, `rollout-${ID}.jsonl`);
    Deno.writeTextFileSync(file, text(20, 7));
    await h.sync(file);
    const run = await preloadImports(h.store, "local");
    assert.equal(run.byPath.get(file)?.conversationId, ID);
    // In the same run, a fuller copy of the session from elsewhere becomes the import…
    const fuller = join(h.dir, `rollout-fuller-${ID}.jsonl`);
    Deno.writeTextFileSync(fuller, text(30, 7));
    assert.equal((await h.sync(fuller, { preloaded: run })).imported?.mode, "extension");
    // …so the first file, unchanged on disk, is now an older copy, not "unchanged".
    assert.equal((await h.sync(file, { preloaded: run })).outcome, "older");
    // A file no other sync touched is answered from what was read at the start.
    const otherId = "0199a3c1-ffff-7c2d-9f41-000000000006";
    const other = join(h.dir, `rollout-${otherId}.jsonl`);
    Deno.writeTextFileSync(other, text(10, 8).replaceAll(ID, otherId));
    await h.sync(other);
    const next = await preloadImports(h.store, "local");
    h.takeReads();
    assert.equal((await h.sync(other, { preloaded: next })).outcome, "unchanged");
    assert.deepEqual(h.takeReads(), []);
  } finally {
    await h.close();
  }
});
