/**
 * All of issue 6's benchmark figures in one run. Each group of figures is measured by
 * its own entry point, run here as a child process with the flags it needs (a fresh
 * process per group, so no group inherits another's heap); each prints JSON with a
 * `figures` array (scripts/bench/figure.ts), collected here. Every figure is a ratio of
 * two timings taken side by side in the same run, or an amount against its target.
 *
 * Run: deno task bench [--md] [--quick]
 * [--only memory,client-memory,postgres,postgres-workers,extensions,http,import]
 * (or `deno task bench --from run.json` for the markdown table of a saved JSON run)
 *
 * - `memory` (scripts/bench_memory.ts): 1 checksum, 2 end to end 64 MiB, 3 per-chunk
 *   overhead, 4 scaling, 6 wait latency (memory adapter)
 * - `client-memory` (scripts/bench_client_memory.ts): 5 client memory, 256 MiB stream
 * - `postgres` (scripts/bench_postgres.ts): 7 end-to-end rate ÷ one bulk INSERT
 * - `postgres-workers` (scripts/bench_postgres_workers.ts): 6 wait latency over NOTIFY,
 *   7 2 000 one-chunk sources ÷ pg-boss
 * - `extensions` (scripts/bench_extensions.ts): 8 one line appended to a 200 MiB
 *   conversation and re-synced ÷ a fresh one-line sync, 9 the 1000th extension ÷ the
 *   first, 10 bytes uploaded and stored per extension (memory and a PostgreSQL server)
 * - `http` (scripts/bench_http.ts): 11 a 64 MiB sync through the HTTP transport on
 *   loopback ÷ the same in-process
 * - `import` (scripts/bench_import.ts): 20–24 `codex-sync import` of a seeded sessions
 *   tree beside a naive Node importer, on a server and on PGlite: rate, peak RSS, store
 *   size after gc, no-op re-import, one appended line (env CODEX_SYNC_BENCH_IMPORT_FULL=1
 *   for issue 17's 316 MB tree)
 *
 * The Postgres groups start a throwaway cluster of the machine's PostgreSQL (or use
 * `DATABASE_URL`). Output: one JSON document on stdout, or with `--md` a markdown table
 * (paste it into README.md's benchmarks section); progress on stderr. Exits 1 when a
 * group failed (its error is in the output; the other groups still run).
 */

import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import type { Figure } from "./bench/figure.ts";

const PG_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  "--allow-net=127.0.0.1",
];

const GROUPS: { name: string; script: string; flags: string[] }[] = [
  { name: "memory", script: "scripts/bench_memory.ts", flags: ["--v8-flags=--expose-gc"] },
  {
    name: "client-memory",
    script: "scripts/bench_client_memory.ts",
    flags: ["--v8-flags=--expose-gc"],
  },
  { name: "postgres", script: "scripts/bench_postgres.ts", flags: PG_FLAGS },
  { name: "postgres-workers", script: "scripts/bench_postgres_workers.ts", flags: PG_FLAGS },
  { name: "extensions", script: "scripts/bench_extensions.ts", flags: PG_FLAGS },
  {
    name: "http",
    script: "scripts/bench_http.ts",
    flags: ["--v8-flags=--expose-gc", "--allow-read", "--allow-run", "--allow-net=127.0.0.1"],
  },
  { name: "import", script: "scripts/bench_import.ts", flags: PG_FLAGS },
];

interface GroupResult {
  seconds: number;
  ok: boolean;
  error?: string;
  /** The entry point's JSON without its figures. */
  report?: Record<string, unknown>;
}

const root = fileURLToPath(new URL("../", import.meta.url));
const args = Deno.args;
const markdown = args.includes("--md");
const quick = args.includes("--quick");

function selectedGroups(): typeof GROUPS {
  const at = args.indexOf("--only");
  if (at < 0) return GROUPS;
  const names = (args[at + 1] ?? "").split(",").map((name) => name.trim()).filter(Boolean);
  const unknown = names.filter((name) => !GROUPS.some((group) => group.name === name));
  if (names.length === 0 || unknown.length > 0) {
    console.error(
      `bench: --only takes a comma-separated list of ${GROUPS.map((g) => g.name).join(", ")}`,
    );
    Deno.exit(2);
  }
  return GROUPS.filter((group) => names.includes(group.name));
}

async function runGroup(
  group: typeof GROUPS[number],
): Promise<{ figures: Figure[]; result: GroupResult }> {
  console.error(`bench: ${group.name} (${group.script})`);
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...group.flags, group.script, ...(quick ? ["--quick"] : [])],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  console.error(`bench: ${group.name} done in ${seconds} s`);
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    return {
      figures: [],
      result: { seconds, ok: false, error: `exit code ${output.code}; stdout: ${text.trim()}` },
    };
  }
  try {
    const { figures, ...report } = JSON.parse(text) as { figures: Figure[] };
    return { figures, result: { seconds, ok: true, report } };
  } catch (error) {
    return {
      figures: [],
      result: { seconds, ok: false, error: `unreadable output (${error}): ${text.trim()}` },
    };
  }
}

function machine() {
  let cpu = "unknown CPU";
  let ramGiB: number | undefined;
  try {
    cpu = cpus()[0]?.model?.trim() || cpu;
    ramGiB = Math.round(totalmem() / 1024 ** 3 * 10) / 10;
  } catch { /* no --allow-sys */ }
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    ramGiB,
    os: `${Deno.build.os}/${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    date: new Date().toISOString().slice(0, 10),
  };
}

function ratioCell(figure: Figure): string {
  if (figure.unit !== "ratio") return "—";
  const value = figure.value.toFixed(2);
  if (!figure.spread || figure.spread.rounds < 2) return value;
  const { min, max, rounds } = figure.spread;
  return `${value} (${min.toFixed(2)}–${max.toFixed(2)}, median of ${rounds})`;
}

/** The table, already laid out as `deno fmt` lays out markdown, so it can be pasted as is. */
function markdownTable(
  info: ReturnType<typeof machine>,
  figures: Figure[],
  groups: Record<string, GroupResult>,
  seconds: number,
  quickRun: boolean = quick,
): string {
  const postgres = figures.find((f) => typeof f.details.serverVersion === "string");
  const lines = [
    `- Machine: ${info.cores} × ${info.cpu}, ${info.ramGiB ?? "?"} GiB RAM, ${info.os}`,
    `- Deno ${info.deno}` +
    (postgres ? `, PostgreSQL ${postgres.details.serverVersion}` : ""),
    `- ${info.date}, \`deno task bench${quickRun ? " --quick" : ""}\` took ${seconds.toFixed(0)} s`,
    "",
  ];
  const rows = [["#", "figure", "measured", "baseline", "ratio", "target", "met"]];
  for (const f of figures) {
    const met = f.met === undefined ? "—" : f.met ? "yes" : "**no**";
    rows.push([
      String(f.figure),
      f.name,
      f.measured,
      f.baseline,
      ratioCell(f),
      f.target ?? "—",
      met,
    ].map((cell) => cell.replaceAll("|", "\\|")));
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  lines.push(line(rows[0]), line(widths.map((w) => "-".repeat(w))));
  for (const row of rows.slice(1)) lines.push(line(row));
  for (const [name, group] of Object.entries(groups)) {
    if (!group.ok) lines.push("", `Group \`${name}\` failed: ${group.error}`);
  }
  return lines.join("\n");
}

/** A saved JSON run, as `deno task bench` printed it. */
interface SavedRun {
  machine: ReturnType<typeof machine>;
  quick: boolean;
  seconds: number;
  figures: Figure[];
  groups: Record<string, GroupResult>;
}

async function main(): Promise<void> {
  const from = args.indexOf("--from");
  if (from >= 0) {
    // Renders a saved run instead of measuring again (the table and the JSON agree).
    const run = JSON.parse(await Deno.readTextFile(args[from + 1])) as SavedRun;
    console.log(markdownTable(run.machine, run.figures, run.groups, run.seconds, run.quick));
    return;
  }
  const started = performance.now();
  const figures: Figure[] = [];
  const groups: Record<string, GroupResult> = {};
  for (const group of selectedGroups()) {
    const run = await runGroup(group);
    figures.push(...run.figures);
    groups[group.name] = run.result;
  }
  figures.sort((a, b) => a.figure - b.figure); // stable: groups keep their order within
  const seconds = (performance.now() - started) / 1000;
  const info = machine();
  if (markdown) {
    console.log(markdownTable(info, figures, groups, seconds));
  } else {
    console.log(JSON.stringify(
      { machine: info, quick, seconds: Math.round(seconds), figures, groups },
      null,
      2,
    ));
  }
  if (Object.values(groups).some((group) => !group.ok)) Deno.exit(1);
}

if (import.meta.main) await main();
