// The import benchmark's baseline and PGlite helper, run under Node as the benchmark runs
// them, on PGlite and on a throwaway PostgreSQL server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { PGlite } from "@electric-sql/pglite";
import { startTestServer, type TestServer } from "../../adapters/postgres/tests/support/cluster.ts";
import { sampleRolloutText } from "../../cli/scripts/sample_rollout.ts";
import { oneLineRollout } from "./sessions_tree.ts";

const NAIVE = fileURLToPath(new URL("./naive_import.mjs", import.meta.url));
const CHECKPOINT = fileURLToPath(new URL("./pglite_checkpoint.mjs", import.meta.url));
const TIMEOUT_MS = 120_000;

interface Row {
  conversation_id: string;
  line_number: number;
  line: string;
  type: string;
}

async function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("node", { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  try {
    const output = await child.output();
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

const ID_A = "0199aaaa-0000-7000-9000-00000000000a";
const ID_B = "0199bbbb-0000-7000-9000-00000000000b";
let dir = "";
let tree = "";
let expected: Map<string, string[]>;

before(async () => {
  dir = await Deno.makeTempDir({ prefix: "naive-import-test-" });
  tree = join(dir, "sessions");
  const a = sampleRolloutText({ sessionId: ID_A, targetBytes: 40_000, seed: 4 });
  const b = oneLineRollout(ID_B, Date.UTC(2025, 10, 2));
  await Deno.mkdir(join(tree, "2025/11/01"), { recursive: true });
  await Deno.mkdir(join(tree, "2025/11/02"), { recursive: true });
  await Deno.writeTextFile(join(tree, `2025/11/01/rollout-2025-11-01T09-00-00-${ID_A}.jsonl`), a);
  await Deno.writeTextFile(join(tree, `2025/11/02/rollout-2025-11-02T00-00-00-${ID_B}.jsonl`), b);
  await Deno.writeTextFile(join(tree, "2025/11/02/notes.txt"), "not a rollout\n");
  expected = new Map([[ID_A, a.slice(0, -1).split("\n")], [ID_B, [b.slice(0, -1)]]]);
});

after(async () => {
  await Deno.remove(dir, { recursive: true });
});

function checkRows(rows: Row[]): void {
  assert.equal(rows.length, [...expected.values()].reduce((n, lines) => n + lines.length, 0));
  for (const row of rows) {
    const line = expected.get(row.conversation_id)?.[row.line_number - 1];
    assert.equal(row.line, line, `${row.conversation_id}:${row.line_number}`);
    assert.equal(row.type, JSON.parse(line!).type);
  }
}

function checkReport(stdout: string): void {
  const report = JSON.parse(stdout);
  assert.equal(report.files, 2);
  assert.equal(report.lines, expected.get(ID_A)!.length + 1);
  assert.ok(Number.isInteger(report.ms));
}

const SELECT =
  "SELECT conversation_id, line_number, line, record->>'type' AS type FROM naive_lines";

test("naive importer on PGlite: one row per line, its text and jsonb, checkpointed", async () => {
  const data = join(dir, "pglite");
  const run = await node([NAIVE, "--pglite", data, tree]);
  assert.equal(run.code, 0, run.stderr);
  checkReport(run.stdout);
  const db = await PGlite.create({ dataDir: data });
  try {
    checkRows((await db.query<Row>(SELECT)).rows);
  } finally {
    await db.close();
  }
  const checkpoint = await node([CHECKPOINT, data]);
  assert.equal(checkpoint.code, 0, checkpoint.stderr);
});

test("naive importer on a PostgreSQL server, with postgres.js", async () => {
  let server: TestServer | undefined;
  try {
    server = await startTestServer();
    const run = await node([NAIVE, "--database-url", server.url, tree]);
    assert.equal(run.code, 0, run.stderr);
    checkReport(run.stdout);
    const sql = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      checkRows(await sql.unsafe<Row[]>(SELECT));
    } finally {
      await sql.end();
    }
  } finally {
    await server?.dispose();
  }
});

test("naive importer: bad arguments exit 2 with a usage line", async () => {
  for (
    const args of [
      [tree],
      ["--pglite", join(dir, "x"), "--database-url", "postgres://127.0.0.1:1/x", tree],
      ["--pglite", join(dir, "x")],
      ["--pglite", join(dir, "x"), "--fast", tree],
      ["--pglite"],
    ]
  ) {
    const run = await node([NAIVE, ...args]);
    assert.equal(run.code, 2, args.join(" "));
    assert.match(run.stderr, /usage: node naive_import\.mjs/);
  }
});

test("pglite_checkpoint refuses a directory without a database, --create makes one", async () => {
  const empty = join(dir, "empty", "nested");
  const missing = await node([CHECKPOINT, empty]);
  assert.equal(missing.code, 5);
  assert.match(missing.stderr, /no PGlite database/);
  const created = await node([CHECKPOINT, "--create", empty]);
  assert.equal(created.code, 0, created.stderr);
  assert.ok((await Deno.stat(join(empty, "PG_VERSION"))).isFile);
  assert.equal((await node([CHECKPOINT])).code, 2);
});
