// The import benchmark's baseline (issue 17): the importer a user would write instead of
// `codex-sync import` — read each rollout file, split it into lines, and insert one row per
// line (conversation id, line number, line text, the line as jsonb) in one transaction per
// file; no checksums, no manifest, no verification. Node script (the user's runtime), on a
// PostgreSQL server with postgres.js or on an embedded PGlite, the same logic on both.
//
// Usage: node scripts/bench/naive_import.mjs (--database-url <url> | --pglite <dir>) <tree>
// Prints {"files","lines","bytes","ms"} as JSON on stdout. With --pglite it ends with a
// CHECKPOINT, so the directory's size on disk is the store's (WAL included).

import { mkdir, readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import process from "node:process";

/** Rows per INSERT statement (4 parameters a row, well under the protocol's 65 535). */
const ROWS_PER_INSERT = 1000;

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS naive_lines (
  conversation_id text NOT NULL,
  line_number integer NOT NULL,
  line text NOT NULL,
  record jsonb NOT NULL,
  PRIMARY KEY (conversation_id, line_number)
)`;

function usage(message) {
  process.stderr.write(
    `naive_import: ${message}\n` +
      "usage: node naive_import.mjs (--database-url <url> | --pglite <dir>) <tree>\n",
  );
  process.exit(2);
}

function parseArguments(argv) {
  const options = {};
  const positionals = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--database-url" || argv[i] === "--pglite") {
      if (argv[i + 1] === undefined) usage(`${argv[i]} needs a value`);
      options[argv[i].slice(2)] = argv[++i];
    } else if (argv[i].startsWith("--")) {
      usage(`unknown option ${argv[i]}`);
    } else {
      positionals.push(argv[i]);
    }
  }
  if ((options["database-url"] === undefined) === (options.pglite === undefined)) {
    usage("give exactly one of --database-url and --pglite");
  }
  if (positionals.length !== 1) usage("give one tree directory");
  return { ...options, tree: positionals[0] };
}

/** Every rollout-*.jsonl under `root`, sorted. */
async function rolloutFiles(root) {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && /^rollout-.*\.jsonl$/.test(entry.name))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

/** The session id of the first line's session_meta, else the file name. */
function conversationId(file, firstLine) {
  try {
    const record = JSON.parse(firstLine);
    if (record?.type === "session_meta" && typeof record.payload?.id === "string") {
      return record.payload.id;
    }
  } catch { /* not JSON: fall back to the name */ }
  return basename(file, ".jsonl");
}

/**
 * One multi-row INSERT of `batch`. The jsonb is cast from the line's text by the server
 * (a text parameter: postgres.js would serialize a string bound to jsonb as a JSON string).
 */
function insertStatement(batch) {
  const values = batch.map((_, i) =>
    `($${4 * i + 1}, $${4 * i + 2}, $${4 * i + 3}, $${4 * i + 4}::text::jsonb)`
  );
  const params = batch.flatMap((row) => [row.id, row.number, row.line, row.line]);
  return { text: `INSERT INTO naive_lines VALUES ${values.join(", ")}`, params };
}

/** A file's rows in one transaction, in batches: `query(text, params)` runs one statement. */
async function insertRows(rows, query) {
  for (let at = 0; at < rows.length; at += ROWS_PER_INSERT) {
    const { text, params } = insertStatement(rows.slice(at, at + ROWS_PER_INSERT));
    await query(text, params);
  }
}

/** The server store: postgres.js. */
async function serverStore(url) {
  const { default: postgres } = await import("postgres");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql.unsafe(CREATE_TABLE);
  return {
    insertFile: (rows) =>
      sql.begin((tx) => insertRows(rows, (text, params) => tx.unsafe(text, params))),
    close: () => sql.end(),
  };
}

/** The embedded store: PGlite, the same statements. */
async function pgliteStore(dir) {
  const { PGlite } = await import("@electric-sql/pglite");
  await mkdir(dir, { recursive: true }); // PGlite makes the last level only
  const db = await PGlite.create({ dataDir: dir });
  await db.exec(CREATE_TABLE);
  return {
    insertFile: (rows) =>
      db.transaction((tx) => insertRows(rows, (text, params) => tx.query(text, params))),
    close: async () => {
      await db.exec("CHECKPOINT");
      await db.close();
    },
  };
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  const started = performance.now();
  const store = options.pglite !== undefined
    ? await pgliteStore(options.pglite)
    : await serverStore(options["database-url"]);
  let files = 0;
  let lines = 0;
  let bytes = 0;
  try {
    for (const file of await rolloutFiles(options.tree)) {
      const text = await readFile(file, "utf8");
      bytes += Buffer.byteLength(text);
      const split = text.split("\n");
      if (split.at(-1) === "") split.pop();
      if (split.length === 0) continue;
      const id = conversationId(file, split[0]);
      const rows = split.map((line, i) => ({ id, number: i + 1, line }));
      await store.insertFile(rows);
      files++;
      lines += rows.length;
    }
  } finally {
    await store.close();
  }
  const ms = Math.round(performance.now() - started);
  process.stdout.write(JSON.stringify({ files, lines, bytes, ms }) + "\n");
}

await main();
