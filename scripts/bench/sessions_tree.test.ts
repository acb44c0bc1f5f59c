import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  appendedLine,
  oneLineRollout,
  sessionsTreePlan,
  SMALL_FILE_BYTES,
  writeSessionsTree,
} from "./sessions_tree.ts";

const MB = 1000 * 1000;
const LAYOUT =
  /^(\d{4})\/(\d{2})\/(\d{2})\/rollout-(\d{4})-(\d{2})-(\d{2})T\d{2}-\d{2}-\d{2}-([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-9[0-9a-f]{3}-[0-9a-f]{12})\.jsonl$/;

test("the plan of issue 17's tree: 200 files, heavy-tailed, 316 MB in all", () => {
  const plan = sessionsTreePlan({ files: 200, totalBytes: 316 * MB, seed: 17 });
  assert.deepEqual(plan.length, 200);
  const total = plan.reduce((sum, file) => sum + file.bytes, 0);
  assert(Math.abs(total - 316 * MB) <= plan.length, `total ${total}`);
  const large = plan.filter((file) => file.bytes > SMALL_FILE_BYTES.max);
  assert.deepEqual(large.length, 5);
  for (const file of large) assert(file.bytes >= 20 * MB && file.bytes <= 80 * MB, `${file.bytes}`);
  for (const file of plan.filter((f) => f.bytes <= SMALL_FILE_BYTES.max)) {
    assert(file.bytes >= SMALL_FILE_BYTES.min, `${file.bytes}`);
  }
  // Log-uniform: the median small file is far below the range's middle.
  const small = plan.map((f) => f.bytes).filter((b) => b <= SMALL_FILE_BYTES.max).sort((a, b) =>
    a - b
  );
  assert(small[small.length >> 1] < 500_000, `median ${small[small.length >> 1]}`);
});

test("the plan lays files out as ~/.codex/sessions, one session id each", () => {
  const plan = sessionsTreePlan({ files: 40, totalBytes: 70 * MB, seed: 3 });
  const ids = new Set<string>();
  for (const file of plan) {
    const match = LAYOUT.exec(file.path);
    assert(match, file.path);
    assert.deepEqual(match.slice(1, 4), match.slice(4, 7)); // directory date = the name's date
    assert.deepEqual(match[7], file.sessionId);
    const start = new Date(file.startMs).toISOString();
    assert.deepEqual(start.slice(0, 10), `${match[1]}-${match[2]}-${match[3]}`);
    ids.add(file.sessionId);
  }
  assert.deepEqual(ids.size, 40);
});

test("the same seed gives the same plan, another seed another", () => {
  const options = { files: 30, totalBytes: 50 * MB };
  assert.deepEqual(
    sessionsTreePlan({ ...options, seed: 5 }),
    sessionsTreePlan({ ...options, seed: 5 }),
  );
  const other = sessionsTreePlan({ ...options, seed: 6 });
  assert(other[0].sessionId !== sessionsTreePlan({ ...options, seed: 5 })[0].sessionId);
});

test("a total too small for the files, or bad counts, are refused", () => {
  assert.throws(() => sessionsTreePlan({ files: 200, totalBytes: 50 * MB }), {
    name: "RangeError",
    message: /too few/,
  });
  assert.throws(() => sessionsTreePlan({ files: 0, totalBytes: MB }), {
    name: "RangeError",
    message: /files/,
  });
  assert.throws(() => sessionsTreePlan({ files: 2.5, totalBytes: MB }), {
    name: "RangeError",
    message: /files/,
  });
  assert.throws(() => sessionsTreePlan({ files: 2, totalBytes: -1 }), {
    name: "RangeError",
    message: /totalBytes/,
  });
  assert.throws(() => sessionsTreePlan({ files: 2, totalBytes: MB, seed: 0.5 }), RangeError);
});

async function digestOfTree(root: string, paths: string[]): Promise<string> {
  const parts: string[] = [];
  for (const path of paths) {
    const bytes = await Deno.readFile(join(root, path));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    parts.push(`${path}:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`);
  }
  return parts.join("\n");
}

test("a written tree: complete JSON lines, session_meta first, sizes as planned, reproducible", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sessions-tree-test-" });
  try {
    const options = { files: 3, totalBytes: 6 * MB, seed: 9 };
    const tree = await writeSessionsTree(join(dir, "a"), options);
    assert.deepEqual(tree.files.length, 3);
    let lines = 0;
    for (const file of tree.files) {
      const text = await Deno.readTextFile(file.file);
      assert(text.endsWith("\n"));
      const split = text.slice(0, -1).split("\n");
      assert.deepEqual(split.length, file.lines);
      lines += split.length;
      const records = split.map((line) => JSON.parse(line));
      assert.deepEqual(records[0].type, "session_meta");
      assert.deepEqual(records[0].payload.id, file.sessionId);
      assert.deepEqual(new TextEncoder().encode(text).length, file.writtenBytes);
      // A file stops after the turn that reaches its size: never short, never far over.
      assert(file.writtenBytes >= file.bytes, `${file.writtenBytes} < ${file.bytes}`);
      assert(file.writtenBytes < file.bytes + 200_000, `${file.writtenBytes} ≫ ${file.bytes}`);
    }
    assert.deepEqual(tree.lines, lines);
    assert.deepEqual(tree.bytes, tree.files.reduce((sum, f) => sum + f.writtenBytes, 0));
    const again = await writeSessionsTree(join(dir, "b"), options);
    const paths = tree.files.map((f) => f.path);
    assert.deepEqual(
      await digestOfTree(join(dir, "a"), paths),
      await digestOfTree(join(dir, "b"), paths),
    );
    assert.deepEqual(again.bytes, tree.bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("the appended line and the one-line rollout are one complete JSON line each", () => {
  for (const text of [appendedLine(Date.UTC(2026, 0, 1)), oneLineRollout("id-1", 0)]) {
    assert(text.endsWith("\n"));
    assert.deepEqual(text.indexOf("\n"), text.length - 1);
    JSON.parse(text);
  }
  const meta = JSON.parse(oneLineRollout("id-1", 0));
  assert.deepEqual([meta.type, meta.payload.id], ["session_meta", "id-1"]);
  assert.deepEqual(
    JSON.parse(appendedLine(Date.UTC(2026, 0, 1))).timestamp,
    "2026-01-01T00:00:00.000Z",
  );
});
