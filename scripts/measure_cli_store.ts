/**
 * What the CLI's import costs once a tree is imported, measured with the CLI itself
 * (`cli/main.ts` as a subprocess, as a user runs it) on a seeded sessions tree built from
 * the repository's sample rollout (`cli/scripts/sample_rollout.ts`; heavy-tailed sizes:
 * most files 20 KB–2 MB, one large one):
 *
 * - store size ÷ the tree's bytes after `import` + `gc` (PGlite: its data directory on
 *   disk, WAL included, and beside it what a store holding one line weighs; server:
 *   `pg_database_size`);
 * - the no-op re-import of the unchanged tree (wall time of the command, and the time its
 *   per-file work took: the summary's `ms` minus the store's opening, the `start` event's
 *   `ms`);
 * - one line appended to the largest file, re-imported, ÷ one line appended to a one-line
 *   file (each the `imported` event's `ms`, alternating, median of `--rounds`).
 *
 * Prints one JSON object. Loopback only: the server is a throwaway cluster on 127.0.0.1
 * (`adapters/postgres/tests/support/cluster.ts`).
 *
 * Run: `deno run -A scripts/measure_cli_store.ts [--store pglite|postgres|both]
 * [--tree-mb 40] [--files 40] [--big-mb 20] [--rounds 3]`.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createPostgresJsDriver } from "@zakstam/codex-sync-engine-postgres";
import { sampleRollout } from "../cli/scripts/sample_rollout.ts";
import { mulberry32 } from "./seeded_random.ts";

const DENO = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
const MAIN = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

function option(name: string, fallback: string): string {
  const index = Deno.args.indexOf(`--${name}`);
  return index >= 0 && Deno.args[index + 1] !== undefined ? Deno.args[index + 1] : fallback;
}

const MB = 1_000_000;
const settings = {
  store: option("store", "both"),
  treeBytes: Number(option("tree-mb", "40")) * MB,
  files: Number(option("files", "40")),
  bigBytes: Number(option("big-mb", "20")) * MB,
  rounds: Number(option("rounds", "3")),
};

const encoder = new TextEncoder();

/** Writes the tree: one big file, one one-line file, the rest log-uniform 20 KB–2 MB. */
function writeTree(root: string): { big: string; small: string; bytes: number } {
  const random = mulberry32(17);
  let bytes = 0;
  const write = (index: number, target: number, maxLines = Infinity) => {
    const id = `0199a3c1-${(1000 + index).toString(16).padStart(4, "0")}-7c2d-9f41-` +
      index.toString(16).padStart(12, "0");
    const dir = join(root, "2025", "11", String(1 + (index % 28)).padStart(2, "0"));
    Deno.mkdirSync(dir, { recursive: true });
    const path = join(dir, `rollout-2025-11-01T09-00-00-${id}.jsonl`);
    const lines = [...sampleRollout({ sessionId: id, targetBytes: target, seed: 100 + index })]
      .slice(0, maxLines);
    const content = encoder.encode(lines.map((line) => line + "\n").join(""));
    Deno.writeFileSync(path, content);
    bytes += content.length;
    return path;
  };
  const big = write(0, settings.bigBytes);
  const small = write(1, 1_000, 1);
  const rest = settings.files - 2;
  const budget = Math.max(0, settings.treeBytes - settings.bigBytes);
  const sizes = Array.from(
    { length: rest },
    () => Math.exp(Math.log(20e3) + random() * Math.log(100)),
  );
  const scale = Math.min(1, budget / sizes.reduce((a, b) => a + b, 0));
  sizes.forEach((size, i) => write(2 + i, Math.max(2_000, Math.round(size * scale))));
  return { big, small, bytes };
}

interface Run {
  code: number;
  ms: number;
  events: Record<string, unknown>[];
  stderr: string;
}

async function cli(args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  const started = performance.now();
  const output = await new Deno.Command(DENO, {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  const events = new TextDecoder().decode(output.stdout).split("\n").filter((line) => line.trim())
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return { event: "text", line };
      }
    });
  const run = { code: output.code, ms, events, stderr: new TextDecoder().decode(output.stderr) };
  if (run.code !== 0) {
    throw new Error(`codex-sync ${args.join(" ")}: exit ${run.code}\n${run.stderr}`);
  }
  return run;
}

function du(path: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(path)) {
    const full = join(path, entry.name);
    if (entry.isDirectory) total += du(full);
    else if (entry.isFile) total += Deno.statSync(full).size;
  }
  return total;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function appendLine(path: string): void {
  const lines = Deno.readTextFileSync(path).split("\n");
  const line = lines[lines.length - 2];
  Deno.writeTextFileSync(path, line + "\n", { append: true });
}

async function measure(kind: "pglite" | "postgres", work: string, url?: string) {
  const tree = join(work, `tree-${kind}`);
  const { big, small, bytes } = writeTree(tree);
  const store = kind === "pglite" ? ["--data-dir", join(work, `store-${kind}`)] : [];
  const env: Record<string, string> = url ? { CODEX_SYNC_DATABASE_URL: url } : {};
  const imported = await cli(["import", "--json", ...store, tree], work, env);
  const summary = (run: Run) => run.events.find((e) => e.event === "summary")!;
  await cli(["gc", "--json", ...store], work, env);
  let storeBytes: number;
  let walBytes: number | undefined;
  let emptyStoreBytes: number | undefined;
  let emptyWalBytes: number | undefined;
  if (kind === "pglite") {
    const pgdata = join(work, `store-${kind}`, "pgdata");
    storeBytes = du(pgdata);
    walBytes = du(join(pgdata, "pg_wal"));
    // What an embedded store weighs with nothing in it (the same commands on one line).
    const emptyDir = join(work, "empty");
    Deno.mkdirSync(emptyDir);
    Deno.copyFileSync(small, join(emptyDir, "rollout-empty.jsonl"));
    await cli(["import", "--json", "--data-dir", join(work, "store-empty"), emptyDir], work, env);
    await cli(["gc", "--json", "--data-dir", join(work, "store-empty")], work, env);
    emptyStoreBytes = du(join(work, "store-empty", "pgdata"));
    emptyWalBytes = du(join(work, "store-empty", "pgdata", "pg_wal"));
  } else {
    const db = createPostgresJsDriver({ connectionString: url! });
    const [row] = await db.query(`SELECT pg_database_size(current_database())::bigint AS n`);
    await db.close();
    storeBytes = Number(row.n);
  }
  const noop: {
    wallMs: number;
    summaryMs: number;
    openMs: number;
    filesMs: number;
    unchangedByStat: number;
    /** Of those, answered by the embedded store's stat cache without opening the store. */
    unchangedByStatCache: number;
  }[] = [];
  for (let i = 0; i < settings.rounds; i++) {
    const run = await cli(["import", "--json", ...store, tree], work, env);
    const openMs = Number(run.events.find((e) => e.event === "start")!.ms);
    noop.push({
      wallMs: Math.round(run.ms),
      summaryMs: Number(summary(run).ms),
      openMs,
      filesMs: Number(summary(run).ms) - openMs,
      unchangedByStat: run.events.filter((e) =>
        e.event === "unchanged" && (e.checked === "stat" || e.checked === "stat-cache")
      ).length,
      unchangedByStatCache: run.events.filter((e) =>
        e.event === "unchanged" && e.checked === "stat-cache"
      ).length,
    });
  }
  const bigMs: number[] = [];
  const smallMs: number[] = [];
  for (let i = 0; i < settings.rounds; i++) {
    for (const [file, into] of [[big, bigMs], [small, smallMs]] as const) {
      appendLine(file);
      const run = await cli(["import", "--json", ...store, file], work, env);
      const event = run.events.find((e) => e.event === "imported")!;
      if (event.mode !== "extension") throw new Error(`${file}: not imported as an extension`);
      into.push(Number(event.ms));
    }
  }
  return {
    store: kind,
    files: settings.files,
    treeBytes: bytes,
    importMs: Number(summary(imported).ms),
    storeBytesAfterGc: storeBytes,
    storeRatio: Number((storeBytes / bytes).toFixed(3)),
    ...(walBytes === undefined ? {} : { walBytesAfterGc: walBytes }),
    ...(emptyStoreBytes === undefined || walBytes === undefined ? {} : {
      emptyStoreBytes,
      emptyWalBytes,
      // The tables alone (WAL left out), less what an empty store's tables weigh.
      tablesRatioOverEmpty: Number(
        ((storeBytes - walBytes - (emptyStoreBytes - emptyWalBytes!)) / bytes).toFixed(3),
      ),
    }),
    noopReimport: {
      medianWallMs: median(noop.map((n) => n.wallMs)),
      medianSummaryMs: median(noop.map((n) => n.summaryMs)),
      medianOpenMs: median(noop.map((n) => n.openMs)),
      medianFilesMs: median(noop.map((n) => n.filesMs)),
      rounds: noop,
    },
    appendOneLine: {
      bigFileBytes: Deno.statSync(big).size,
      bigMedianMs: median(bigMs),
      smallMedianMs: median(smallMs),
      ratio: Number((median(bigMs) / median(smallMs)).toFixed(2)),
      bigMs,
      smallMs,
    },
  };
}

const work = Deno.makeTempDirSync({ prefix: "codex-sync-measure-" });
const results: unknown[] = [];
try {
  if (settings.store === "pglite" || settings.store === "both") {
    results.push(await measure("pglite", work));
  }
  if (settings.store === "postgres" || settings.store === "both") {
    const { startTestServer } = await import("../adapters/postgres/tests/support/cluster.ts");
    const server = await startTestServer();
    try {
      results.push(await measure("postgres", work, server.url));
    } finally {
      await server.dispose();
    }
  }
} finally {
  Deno.removeSync(work, { recursive: true });
}
console.log(JSON.stringify({ settings, results }, null, 2));
