// Opens a PGlite data directory, runs CHECKPOINT and closes it, so that what is left on
// disk (tables, indexes, WAL) is the store's settled size. The import benchmark runs it
// on every PGlite store it measures, whoever wrote it, so both sides are measured alike;
// with --create on a directory without a database, it makes the empty one the benchmark
// measures as the baseline of every PGlite store.
//
// Usage: node scripts/bench/pglite_checkpoint.mjs [--create] <PGlite data dir>

import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";

const args = process.argv.slice(2);
const create = args[0] === "--create";
if (create) args.shift();
if (args.length !== 1 || args[0].startsWith("--")) {
  process.stderr.write("usage: node pglite_checkpoint.mjs [--create] <PGlite data dir>\n");
  process.exit(2);
}
const dir = args[0];
// Without --create, a directory that holds no database is an error, not a new database.
if (create) {
  await mkdir(dir, { recursive: true }); // PGlite makes the last level only
} else {
  try {
    await stat(join(dir, "PG_VERSION"));
  } catch {
    process.stderr.write(`pglite_checkpoint: no PGlite database in ${dir}\n`);
    process.exit(5);
  }
}
const { PGlite } = await import("@electric-sql/pglite");
const db = await PGlite.create({ dataDir: dir });
await db.exec("CHECKPOINT");
await db.close();
