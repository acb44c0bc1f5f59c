/**
 * Benchmark (not a test) of issue 17: `codex-sync import` of a realistic Codex sessions
 * tree beside the importer a user would write instead (scripts/bench/naive_import.mjs:
 * Node, one row per line with its text and jsonb, one transaction per file, no
 * verification), on the same PostgreSQL server and on PGlite. Both run as child processes
 * exactly as a user runs them (the CLI as `deno run … cli/main.ts import`), each on a
 * fresh store, alternating rounds (A B, B A, …). Figures:
 *
 * - 20 throughput: the CLI's rate ÷ the naive importer's, per store (target ≥ 0.8)
 * - 21 peak RSS of the CLI's process ÷ the naive importer's, per store (target ≤ 1.0)
 * - 22 store size ÷ the tree's bytes after `codex-sync gc` (server: pg_database_size less
 *   an empty database's; PGlite: the data directory after a CHECKPOINT, WAL included),
 *   the naive importer's beside it (targets ≤ 1.8 server, ≤ 2.0 PGlite)
 * - 23 no-op re-import of the unchanged tree, wall time of the command (target ≤ 1 s)
 * - 24 one line appended to the largest file, `import` of that file ÷ `import` of a new
 *   one-line file (target ≤ 2.0, as figure 8)
 *
 * The tree (scripts/bench/sessions_tree.ts) is seeded: default 36 files, 60 MB; `--full`
 * (or env CODEX_SYNC_BENCH_IMPORT_FULL=1) gives issue 17's 200 files, 316 MB.
 *
 * Run: deno task bench:import [--files N] [--mb M] [--rounds R] [--seed S] [--full]
 * [--quick] [--stores server,pglite] (or with every group: deno task bench)
 * Output: JSON on stdout (`figures`, see scripts/bench/figure.ts), progress on stderr.
 */

import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { startTestServer, type TestServer } from "../adapters/postgres/tests/support/cluster.ts";
import { directoryBytes } from "./bench/directory_bytes.ts";
import {
  emit,
  type Figure,
  log as logTo,
  mib,
  ms,
  numberOption,
  round,
  stats,
} from "./bench/figure.ts";
import { type MeasuredRun, measuredSuccess, type PeakRssMethod } from "./bench/measured_run.ts";
import { parentPid, processTreeCpuMs } from "./bench/process_cpu.ts";
import {
  appendedLine,
  oneLineRollout,
  type SessionsTree,
  writeSessionsTree,
} from "./bench/sessions_tree.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const NAIVE = join(root, "scripts/bench/naive_import.mjs");
const CHECKPOINT = join(root, "scripts/bench/pglite_checkpoint.mjs");
const CLI = join(root, "cli/main.ts");
/** The permissions of `deno task cli`. */
const CLI_FLAGS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-sys"];
const MB = 1000 * 1000;

export type StoreKind = "server" | "pglite";

function log(message: string): void {
  logTo("bench:import", message);
}

interface Settings {
  files: number;
  totalBytes: number;
  rounds: number;
  seed: number;
  stores: StoreKind[];
  full: boolean;
}

function settings(args: readonly string[]): Settings {
  const quick = args.includes("--quick");
  const full = args.includes("--full") || Deno.env.get("CODEX_SYNC_BENCH_IMPORT_FULL") === "1";
  const at = args.indexOf("--stores");
  const stores = (at < 0 ? "server,pglite" : args[at + 1] ?? "").split(",").filter(Boolean);
  if (stores.length === 0 || stores.some((s) => s !== "server" && s !== "pglite")) {
    throw new Error("--stores takes server, pglite or server,pglite");
  }
  return {
    files: numberOption(args, "files", full ? 200 : quick ? 12 : 36),
    totalBytes: numberOption(args, "mb", full ? 316 : quick ? 16 : 60) * MB,
    rounds: numberOption(args, "rounds", quick ? 1 : 2),
    seed: numberOption(args, "seed", 17),
    stores: stores as StoreKind[],
    full,
  };
}

/** One store of one side: where it is, how to size it, how to drop it. */
interface Store {
  kind: StoreKind;
  /** The CLI's store flags. */
  cliArgs: string[];
  /** The naive importer's store flags. */
  naiveArgs: string[];
  /** CPU ms the server has used so far (all its processes), when it runs on this host. */
  serverCpuMs?: () => Promise<number>;
  /** Bytes the store takes (server: beyond an empty database; PGlite: after CHECKPOINT). */
  bytes(): Promise<number>;
  drop(): Promise<void>;
}

/** The server: a database per store, sized by pg_database_size less an empty one's. */
class ServerStores {
  readonly #admin: postgres.Sql;
  readonly #url: URL;
  #emptyBytes = 0;
  #count = 0;
  #postmaster: number | undefined;

  constructor(url: string) {
    this.#url = new URL(url);
    this.#admin = postgres(url, { max: 1, onnotice: () => {} });
  }

  get emptyBytes(): number {
    return this.#emptyBytes;
  }

  /** `local`: the server runs on this host, so its processes' CPU can be read. */
  async init(local: boolean): Promise<string> {
    const [{ server_version: version }] = await this.#admin<
      { server_version: string }[]
    >`SHOW server_version`;
    if (local) {
      const [{ pid }] = await this.#admin<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      this.#postmaster = await parentPid(pid);
    }
    const empty = await this.create("empty");
    this.#emptyBytes = await empty.bytes();
    await empty.drop();
    return version;
  }

  async create(name: string): Promise<Store> {
    const database = `bench_import_${name}_${++this.#count}`;
    await this.#admin.unsafe(`CREATE DATABASE ${database}`);
    const url = new URL(this.#url);
    url.pathname = `/${database}`;
    return {
      kind: "server",
      cliArgs: ["--database-url", url.href],
      naiveArgs: ["--database-url", url.href],
      serverCpuMs: this.#postmaster === undefined
        ? undefined
        : () => processTreeCpuMs(this.#postmaster!),
      bytes: async () => {
        const [{ size }] = await this.#admin<{ size: string }[]>`
          SELECT pg_database_size(${database})::text AS size`;
        return Number(size) - this.#emptyBytes;
      },
      drop: async () => {
        await this.#admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      },
    };
  }

  close(): Promise<void> {
    return this.#admin.end();
  }
}

/**
 * PGlite: a directory per store, checkpointed (by the same script for both sides) and
 * sized on disk, WAL included, less the size of an empty PGlite database.
 */
class PGliteStores {
  readonly #dir: string;
  #emptyBytes = 0;
  #count = 0;

  constructor(dir: string) {
    this.#dir = dir;
  }

  get emptyBytes(): number {
    return this.#emptyBytes;
  }

  async init(): Promise<void> {
    const dir = join(this.#dir, "pglite-empty");
    await measuredSuccess("pglite_checkpoint --create", "node", [
      CHECKPOINT,
      "--create",
      join(dir, "pgdata"),
    ]);
    this.#emptyBytes = await directoryBytes(dir);
    await Deno.remove(dir, { recursive: true });
  }

  async create(name: string): Promise<Store> {
    const dir = join(this.#dir, `pglite-${name}-${++this.#count}`);
    await Deno.mkdir(dir);
    // The CLI keeps its database in <data-dir>/pgdata; the naive importer gets the same.
    const data = join(dir, "pgdata");
    return {
      kind: "pglite",
      cliArgs: ["--data-dir", dir],
      naiveArgs: ["--pglite", data],
      bytes: async () => {
        await measuredSuccess("pglite_checkpoint", "node", [CHECKPOINT, data]);
        return await directoryBytes(dir) - this.#emptyBytes;
      },
      drop: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
    };
  }
}

export interface Run {
  ms: number;
  peakRssBytes: number;
  method: PeakRssMethod;
  /** The process's user + system CPU ms (GNU time only). */
  cpuMs?: number;
  /** The server's CPU ms during the run (a server on this host only). */
  serverCpuMs?: number;
}

/** `run` with the server's CPU during it, when the store can tell. */
async function withServerCpu(store: Store, run: () => Promise<MeasuredRun>): Promise<Run> {
  const before = await store.serverCpuMs?.();
  const measured = await run();
  const after = await store.serverCpuMs?.();
  return {
    ms: measured.ms,
    peakRssBytes: measured.peakRssBytes,
    method: measured.method,
    cpuMs: measured.cpuMs,
    serverCpuMs: before === undefined || after === undefined ? undefined : after - before,
  };
}

interface CliSummary {
  files: number;
  imported: number;
  unchanged: number;
  failed: number;
  ms: number;
}

/** The `summary` event of `import --json`, failing unless `check` holds. */
function cliSummary(run: MeasuredRun, what: string, check: (s: CliSummary) => boolean) {
  const last = run.stdout.trim().split("\n").at(-1) ?? "";
  let summary: CliSummary & { event?: string };
  try {
    summary = JSON.parse(last);
  } catch {
    throw new Error(`${what}: no summary in the CLI's output: ${run.stdout.slice(-1000)}`);
  }
  if (summary.event !== "summary" || !check(summary)) {
    throw new Error(`${what}: unexpected summary ${last}`);
  }
  return summary;
}

class Bench {
  readonly timeoutMs: number;

  constructor(readonly work: string, readonly tree: SessionsTree) {
    // Far beyond the slowest rate seen (1 MB/s), so only a hang hits it.
    this.timeoutMs = 120_000 + tree.bytes / 200;
  }

  cli(store: Store, command: string, args: string[]): Promise<MeasuredRun> {
    return measuredSuccess(
      `codex-sync ${command}`,
      Deno.execPath(),
      ["run", ...CLI_FLAGS, CLI, command, "--json", ...store.cliArgs, ...args],
      { cwd: this.work, timeoutMs: this.timeoutMs },
    );
  }

  naiveImport(store: Store, tree: string, expectedLines: number): Promise<Run> {
    return withServerCpu(store, async () => {
      const run = await measuredSuccess(
        "naive_import",
        "node",
        [NAIVE, ...store.naiveArgs, tree],
        { cwd: this.work, timeoutMs: this.timeoutMs },
      );
      const report = JSON.parse(run.stdout) as { lines: number };
      if (report.lines !== expectedLines) {
        throw new Error(`naive_import wrote ${report.lines} rows, the tree has ${expectedLines}`);
      }
      return run;
    });
  }

  cliImport(store: Store, paths: string[], expectedFiles: number): Promise<Run> {
    return withServerCpu(store, async () => {
      const run = await this.cli(store, "import", ["--plain", ...paths]);
      cliSummary(
        run,
        "import",
        (s) => s.imported === expectedFiles && s.failed === 0 && s.files === expectedFiles,
      );
      return run;
    });
  }
}

export interface StoreResult {
  naive: Run[];
  cli: Run[];
  /** naive ms ÷ CLI ms per round: the CLI's rate ÷ the naive importer's. */
  rateRatios: number[];
  naiveStoreBytes: number;
  cliStoreBytes: number;
  cliStoreBytesBeforeGc: number;
  noOp: { ms: number[]; cliMs: number[] };
  incremental: { appendMs: number[]; oneLineMs: number[]; ratios: number[] };
}

/** Runs every round of one store kind, then the re-imports on the CLI's last store. */
async function measureStore(
  bench: Bench,
  create: (name: string) => Promise<Store>,
  rounds: number,
): Promise<StoreResult> {
  const { tree } = bench;
  const naive: Run[] = [];
  const cli: Run[] = [];
  let naiveStoreBytes = 0;
  let cliStore: Store | undefined;
  for (let i = 0; i < rounds; i++) {
    const last = i === rounds - 1;
    const runNaive = async () => {
      const store = await create("naive");
      try {
        naive.push(await bench.naiveImport(store, tree.root, tree.lines));
        if (last) naiveStoreBytes = await store.bytes();
      } finally {
        await store.drop();
      }
    };
    const runCli = async () => {
      const store = await create("cli");
      try {
        cli.push(await bench.cliImport(store, [tree.root], tree.files.length));
      } catch (error) {
        await store.drop();
        throw error;
      }
      if (last) cliStore = store;
      else await store.drop();
    };
    log(`  round ${i + 1}/${rounds}: ${i % 2 === 0 ? "naive, then CLI" : "CLI, then naive"}`);
    if (i % 2 === 0) {
      await runNaive();
      await runCli();
    } else {
      await runCli();
      await runNaive();
    }
    log(`    naive ${ms(naive.at(-1)!.ms)}, CLI ${ms(cli.at(-1)!.ms)}`);
  }
  const store = cliStore!;
  try {
    const cliStoreBytesBeforeGc = await store.bytes();
    await bench.cli(store, "gc", []);
    const cliStoreBytes = await store.bytes();
    log(`  store: naive ${mib(naiveStoreBytes)}, CLI ${mib(cliStoreBytes)} after gc`);

    const noOp = { ms: [] as number[], cliMs: [] as number[] };
    for (let i = 0; i < 3; i++) {
      const run = await bench.cli(store, "import", ["--plain", tree.root]);
      const summary = cliSummary(
        run,
        "no-op import",
        (s) => s.unchanged === tree.files.length && s.imported === 0,
      );
      noOp.ms.push(run.ms);
      noOp.cliMs.push(summary.ms);
    }
    log(`  no-op re-import: ${noOp.ms.map((v) => ms(v)).join(", ")}`);

    const largest = tree.files.reduce((a, b) => b.writtenBytes > a.writtenBytes ? b : a);
    const oneLineDir = join(bench.work, `one-line-${store.kind}`);
    await Deno.mkdir(oneLineDir, { recursive: true });
    const incremental: StoreResult["incremental"] = { appendMs: [], oneLineMs: [], ratios: [] };
    let clock = Date.UTC(2026, 0, 1);
    const appendOne = async () => {
      await Deno.writeTextFile(largest.file, appendedLine(clock += 1000), { append: true });
      incremental.appendMs.push((await bench.cliImport(store, [largest.file], 1)).ms);
    };
    const oneLine = async () => {
      const id = `0199ffff-0000-7000-9000-${
        String(incremental.oneLineMs.length).padStart(12, "0")
      }`;
      const file = join(oneLineDir, `rollout-2026-01-01T00-00-00-${id}.jsonl`);
      await Deno.writeTextFile(file, oneLineRollout(id, clock += 1000));
      incremental.oneLineMs.push((await bench.cliImport(store, [file], 1)).ms);
    };
    try {
      for (let i = 0; i < 3; i++) {
        if (i % 2 === 0) {
          await oneLine();
          await appendOne();
        } else {
          await appendOne();
          await oneLine();
        }
      }
    } finally {
      // The next store's rounds import the tree as it was written.
      await Deno.truncate(largest.file, largest.writtenBytes);
    }
    incremental.ratios = incremental.appendMs.map((v, i) => v / incremental.oneLineMs[i]);
    log(
      `  largest file + 1 line: ${incremental.appendMs.map((v) => ms(v)).join(", ")}; ` +
        `1-line file: ${incremental.oneLineMs.map((v) => ms(v)).join(", ")}`,
    );
    return {
      naive,
      cli,
      rateRatios: naive.map((run, i) => run.ms / cli[i].ms),
      naiveStoreBytes,
      cliStoreBytes,
      cliStoreBytesBeforeGc,
      noOp,
      incremental,
    };
  } finally {
    await store.drop();
  }
}

const STORE_NAMES: Record<StoreKind, string> = {
  server: "PostgreSQL server",
  pglite: "PGlite (embedded)",
};

/** Per round, the naive importer's CPU ÷ the CLI's (process + server), when measured. */
function cpuRateRatios(result: StoreResult): number[] | undefined {
  const total = (run: Run) =>
    run.cpuMs === undefined ? undefined : run.cpuMs + (run.serverCpuMs ?? 0);
  const ratios = result.cli.map((cli, i) => {
    const [c, n] = [total(cli), total(result.naive[i])];
    return c === undefined || n === undefined ? undefined : n / c;
  });
  return ratios.every((v) => v !== undefined) ? ratios as number[] : undefined;
}

/** "; CPU 12 s, server 20 s" from the rounds' medians, what of it was measured. */
function cpuText(runs: Run[]): string {
  const median = (values: (number | undefined)[]) => {
    const known = values.filter((v): v is number => v !== undefined);
    return known.length === values.length && known.length > 0 ? stats(known).median : undefined;
  };
  const own = median(runs.map((r) => r.cpuMs));
  const server = median(runs.map((r) => r.serverCpuMs));
  return (own === undefined ? "" : `; CPU ${ms(own)}`) +
    (server === undefined ? "" : `, server ${ms(server)}`);
}

function spread(values: number[]) {
  const s = stats(values);
  return { min: round(s.min), max: round(s.max), rounds: s.rounds };
}

/** The figures of one store kind; `emptyStoreBytes` is what the store sizes leave out. */
export function figuresOf(
  kind: StoreKind,
  result: StoreResult,
  tree: Pick<SessionsTree, "files" | "bytes">,
  emptyStoreBytes: number,
): Figure[] {
  const name = STORE_NAMES[kind];
  const treeText = `${tree.files.length} files, ${(tree.bytes / MB).toFixed(0)} MB`;
  const rate = (v: number) => `${(tree.bytes / MB / (v / 1000)).toFixed(1)} MB/s`;
  const cliMs = stats(result.cli.map((r) => r.ms)).median;
  const naiveMs = stats(result.naive.map((r) => r.ms)).median;
  const rateRatio = stats(result.rateRatios).median;
  const cpuRatios = cpuRateRatios(result);
  const cliRss = stats(result.cli.map((r) => r.peakRssBytes)).median;
  const naiveRss = stats(result.naive.map((r) => r.peakRssBytes)).median;
  const rssRatios = result.cli.map((r, i) => r.peakRssBytes / result.naive[i].peakRssBytes);
  const storeTarget = kind === "server" ? 1.8 : 2.0;
  const storeRatio = result.cliStoreBytes / tree.bytes;
  const naiveStoreRatio = result.naiveStoreBytes / tree.bytes;
  const noOp = stats(result.noOp.ms).median;
  const incremental = stats(result.incremental.ratios).median;
  const largest = Math.max(...tree.files.map((f) => f.writtenBytes));
  return [
    {
      figure: 20,
      name: `${name}: \`codex-sync import\` rate ÷ the naive importer's (Node), ${treeText}`,
      measured: `${ms(cliMs)} (${rate(cliMs)}${cpuText(result.cli)})`,
      baseline: `${ms(naiveMs)} (${rate(naiveMs)}${cpuText(result.naive)})`,
      value: round(rateRatio),
      unit: "ratio",
      spread: spread(result.rateRatios),
      target: "≥ 0.8",
      met: rateRatio >= 0.8,
      details: {
        cliMs: result.cli.map((r) => round(r.ms, 0)),
        naiveMs: result.naive.map((r) => round(r.ms, 0)),
        // The same ratio in CPU (the process's and, on a local server, the server's): less
        // sensitive than wall time to other processes competing for the cores.
        cpuRateRatios: cpuRatios?.map((v) => round(v)),
        cliCpuMs: result.cli.map((r) => r.cpuMs),
        naiveCpuMs: result.naive.map((r) => r.cpuMs),
        ...(kind === "server"
          ? {
            cliServerCpuMs: result.cli.map((r) => r.serverCpuMs),
            naiveServerCpuMs: result.naive.map((r) => r.serverCpuMs),
          }
          : {}),
      },
    },
    {
      figure: 21,
      name: `${name}: peak RSS of \`codex-sync import\` ÷ the naive importer's`,
      measured: mib(cliRss),
      baseline: mib(naiveRss),
      value: round(stats(rssRatios).median),
      unit: "ratio",
      spread: spread(rssRatios),
      target: "≤ 1.0",
      met: stats(rssRatios).median <= 1.0,
      details: {
        method: result.cli[0].method,
        cliPeakRssBytes: result.cli.map((r) => r.peakRssBytes),
        naivePeakRssBytes: result.naive.map((r) => r.peakRssBytes),
      },
    },
    {
      figure: 22,
      name: `${name}: store size ÷ the tree's bytes, after \`codex-sync gc\`` +
        (kind === "server"
          ? " (pg_database_size)"
          : " (data dir on disk, WAL included, after CHECKPOINT)"),
      measured: `${mib(result.cliStoreBytes)} (${storeRatio.toFixed(2)}×)`,
      baseline: `naive ${mib(result.naiveStoreBytes)} (${naiveStoreRatio.toFixed(2)}×)`,
      value: round(storeRatio),
      unit: "ratio",
      target: `≤ ${storeTarget.toFixed(1)}`,
      met: storeRatio <= storeTarget,
      details: {
        treeBytes: tree.bytes,
        cliStoreBytes: result.cliStoreBytes,
        cliStoreBytesBeforeGc: result.cliStoreBytesBeforeGc,
        naiveStoreBytes: result.naiveStoreBytes,
        naiveStoreRatio: round(naiveStoreRatio),
        emptyStoreBytes,
        sizedAs: kind === "server"
          ? "pg_database_size less an empty database's"
          : "the data directory's files after CHECKPOINT (WAL included), less an empty PGlite's",
      },
    },
    {
      figure: 23,
      name: `${name}: no-op re-import of the unchanged tree (the command's wall time)`,
      measured: `${ms(noOp)} (the CLI's own ${ms(stats(result.noOp.cliMs).median)})`,
      baseline: "—",
      value: round(noOp, 0),
      unit: "ms",
      spread: spread(result.noOp.ms),
      target: "≤ 1 s",
      met: noOp <= 1000,
      details: {
        wallMs: result.noOp.ms.map((v) => round(v, 0)),
        cliReportedMs: result.noOp.cliMs,
      },
    },
    {
      figure: 24,
      name: `${name}: import of the largest file (${(largest / MB).toFixed(1)} MB) + 1 line ÷ ` +
        "import of a new 1-line file",
      measured: ms(stats(result.incremental.appendMs).median),
      baseline: ms(stats(result.incremental.oneLineMs).median),
      value: round(incremental),
      unit: "ratio",
      spread: spread(result.incremental.ratios),
      target: "≤ 2.0",
      met: incremental <= 2.0,
      details: {
        appendMs: result.incremental.appendMs.map((v) => round(v, 0)),
        oneLineMs: result.incremental.oneLineMs.map((v) => round(v, 0)),
      },
    },
  ];
}

async function main(): Promise<void> {
  const options = settings(Deno.args);
  const work = await Deno.makeTempDir({ prefix: "codex-sync-bench-import-" });
  const removeWork = () => {
    try {
      Deno.removeSync(work, { recursive: true });
    } catch { /* already gone */ }
  };
  // The cluster's own handlers exit on SIGINT/SIGTERM; "exit" then removes the tree too.
  process.on("exit", removeWork);
  let server: TestServer | undefined;
  let serverStores: ServerStores | undefined;
  try {
    log(`writing ${options.files} files, ${options.totalBytes / MB} MB (seed ${options.seed})`);
    const tree = await writeSessionsTree(join(work, "sessions"), options);
    const largest = Math.max(...tree.files.map((f) => f.writtenBytes));
    log(`tree: ${tree.bytes} bytes, ${tree.lines} lines, largest file ${largest} bytes`);
    const bench = new Bench(work, tree);
    const warmTree = await writeSessionsTree(join(work, "warm-up"), {
      files: 2,
      totalBytes: 3 * MB,
      seed: options.seed + 1,
    });
    const makers: Partial<Record<StoreKind, (name: string) => Promise<Store>>> = {};
    let serverVersion: string | undefined;
    const emptyStoreBytes: Partial<Record<StoreKind, number>> = {};
    if (options.stores.includes("server")) {
      server = await startTestServer({ durable: true });
      serverStores = new ServerStores(server.url);
      serverVersion = await serverStores.init(server.controllable);
      emptyStoreBytes.server = serverStores.emptyBytes;
      makers.server = (name) => serverStores!.create(name);
    }
    if (options.stores.includes("pglite")) {
      const pglite = new PGliteStores(work);
      await pglite.init();
      emptyStoreBytes.pglite = pglite.emptyBytes;
      makers.pglite = (name) => pglite.create(name);
    }
    const figures: Figure[] = [];
    const results: Partial<Record<StoreKind, StoreResult>> = {};
    for (const kind of options.stores) {
      const create = makers[kind]!;
      log(`${STORE_NAMES[kind]}: warm-up (not recorded)`);
      for (const side of ["naive", "cli"] as const) {
        const store = await create(`warm_${side}`);
        try {
          if (side === "naive") await bench.naiveImport(store, warmTree.root, warmTree.lines);
          else await bench.cliImport(store, [warmTree.root], warmTree.files.length);
        } finally {
          await store.drop();
        }
      }
      log(`${STORE_NAMES[kind]}: ${options.rounds} rounds, naive importer and CLI alternating`);
      results[kind] = await measureStore(bench, create, options.rounds);
      figures.push(...figuresOf(kind, results[kind]!, tree, emptyStoreBytes[kind]!));
    }
    for (const figure of figures) {
      if (serverVersion && figure.name.startsWith(STORE_NAMES.server)) {
        figure.details.serverVersion = serverVersion;
      }
    }
    emit(figures, {
      tree: {
        files: tree.files.length,
        bytes: tree.bytes,
        lines: tree.lines,
        largestFileBytes: largest,
        seed: options.seed,
        full: options.full,
      },
      peakRssMethod: figures.find((f) => f.figure === 21)?.details.method,
      server: Deno.env.get("DATABASE_URL")
        ? "DATABASE_URL"
        : "throwaway cluster, fsync and synchronous_commit on, data on disk",
    });
  } finally {
    await serverStores?.close();
    await server?.dispose();
    removeWork();
    process.off("exit", removeWork);
  }
}

if (import.meta.main) await main();
