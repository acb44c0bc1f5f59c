/**
 * Runs the code blocks of every README — `README.md`, `adapters/<name>/README.md`,
 * `cli/README.md` — so that none can rot (issue 13). `deno task test:readme` runs them from
 * source under Deno; `scripts/tarball_install.ts` runs the module blocks again under Node,
 * Bun and Deno against the packed npm tarballs installed in an empty project.
 *
 * What happens to a block depends on its fence's language tag:
 *
 * - `ts`, `typescript`, `js`, `javascript`: a module. Every one is type-checked (`deno check`,
 *   all at once), then each runs as its own program (`deno run -A`, a fresh scratch working
 *   directory, `DATABASE_URL` unset so Postgres snippets get an in-memory PGlite) and must
 *   exit 0 within {@link RUN_TIMEOUT_MS}. A module importing `node:test` is a test file: the
 *   runtime's test runner runs it (`deno test`, `bun test`, `node --test`), and it passes
 *   when its tests do.
 * - `sh`, `bash`, `shell`: run by `bash -euo pipefail` with the commands as written, in a
 *   scratch copy of the repository (its tracked and unignored files; `node_modules/` and the
 *   built `npm/` directories linked) with `HOME` in a scratch directory, whose
 *   `~/.codex/sessions` holds one rollout, a copy of `cli/fixtures/sample-rollout.jsonl`
 *   (npm's and Deno's caches stay where they were); exit 0 within
 *   {@link RUN_TIMEOUT_MS}. Blocks of one README share that copy, in order. Commands that
 *   are this runner's own context are not run again but checked: `npm ci` (the runner runs
 *   after it: `node_modules/` must exist), `npm test` (the runner is one of its steps: the
 *   `test` script must exist) and `npx deno task build:npm` (the runner runs after the
 *   build: the built `package.json` files must exist).
 * - `json`: must parse as JSON, or as JSON Lines; a block containing `…` is an elided sketch
 *   and is only counted.
 * - anything else (`text`, `http`, `sql`, no tag): shown output or a sketch; counted only.
 *
 * Modules run per README in order, then its shell blocks. An HTML comment on the nearest
 * non-blank line before a fence annotates the block: `<!-- example: key="value" flag -->`,
 * with
 *
 * - `background ready="text"`: a server or watcher (`codex-sync serve`, `watch`, an HTTP
 *   server module). The runner starts it, waits up to {@link READY_TIMEOUT_MS} for `text` in
 *   its output, then stops it: SIGTERM to its process group, which must end it within
 *   {@link STOP_TIMEOUT_MS} (else SIGKILL, and the block fails). With `until="next"` it
 *   keeps running while the next block of the same README runs (a client of the server),
 *   and is stopped after that one.
 * - `file="convex/schema.ts"`: (module) a file of the README's example project rather than a
 *   program: written there, type-checked, and evaluated (imported) once all files of the
 *   README are written. A `convex/` project gets the `convex/_generated/api.ts` and
 *   `dataModel.ts` that `npx convex codegen` would write; imports may omit extensions, as
 *   Convex's bundler allows.
 * - `check-only reason="…"`: (module) type-checked but not run, because it needs a service a
 *   test cannot start (a Convex deployment). The reason is printed.
 * - `runtimes="deno,bun"`: (module) which runtimes run it in the tarball run (default all);
 *   a run for another runtime runs it on the first one listed (a Deno-only server).
 *
 * A failure names the README, the block's line and the output's tail; the run exits 1.
 *
 * Usage: `deno task test:readme [README.md …]` (default: every README).
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import { BuildError, exists, ROOT, runMain } from "./_build_common.ts";

/** Longest a block may run. */
export const RUN_TIMEOUT_MS = 180_000;
/** Longest a background block may take to print its ready text. */
export const READY_TIMEOUT_MS = 90_000;
/** Grace period between SIGTERM and SIGKILL of a background block. */
export const STOP_TIMEOUT_MS = 10_000;

/** How a block is treated, from its language tag. */
export type BlockKind = "module" | "shell" | "json" | "shown";

/** One fenced code block of a README. */
export interface CodeBlock {
  /** The README, relative to the repository root. */
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  kind: BlockKind;
  code: string;
  annotation: Annotation;
}

/** The parsed `<!-- example: … -->` comment before a block. */
export interface Annotation {
  background?: { ready: string; untilNext: boolean };
  file?: string;
  checkOnly?: string;
  runtimes?: string[];
}

const KINDS: Record<string, BlockKind> = {
  ts: "module",
  typescript: "module",
  js: "module",
  javascript: "module",
  sh: "shell",
  bash: "shell",
  shell: "shell",
  json: "json",
};

/** Where a block is, as `README.md:47`. */
export function where(block: CodeBlock): string {
  return `${block.readme}:${block.line}`;
}

/** Every README the runner covers, relative to the root. */
export function readmePaths(): string[] {
  const paths = ["README.md"];
  for (
    const entry of [...Deno.readDirSync(join(ROOT, "adapters"))].sort((a, b) =>
      a.name.localeCompare(b.name)
    )
  ) {
    const path = `adapters/${entry.name}/README.md`;
    if (entry.isDirectory && exists(join(ROOT, path))) paths.push(path);
  }
  paths.push("cli/README.md");
  return paths;
}

function parseAnnotation(text: string, at: string): Annotation {
  const annotation: Annotation = {};
  const pattern = /([a-z-]+)(?:="([^"]*)")?/g;
  for (const match of text.matchAll(pattern)) {
    const [, key, value] = match;
    if (key === "background") {
      annotation.background = { ready: "", untilNext: false, ...annotation.background };
    } else if (key === "ready" && value) {
      annotation.background = { untilNext: false, ...annotation.background, ready: value };
    } else if (key === "until" && value === "next") {
      annotation.background = { ready: "", ...annotation.background, untilNext: true };
    } else if (key === "file" && value) annotation.file = value;
    else if (key === "check-only") annotation.checkOnly = value ?? "not run";
    else if (key === "reason" && value !== undefined) annotation.checkOnly = value;
    else if (key === "runtimes" && value) annotation.runtimes = value.split(",");
    else throw new BuildError(`${at}: unknown example annotation ${match[0]}`);
  }
  if (annotation.background && !annotation.background.ready) {
    throw new BuildError(`${at}: background needs ready="<text it prints when ready>"`);
  }
  return annotation;
}

/** The fenced code blocks of a Markdown text, with their annotations. */
export function extractBlocks(readme: string, text: string): CodeBlock[] {
  const lines = text.split("\n");
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j].trimStart().startsWith(fence) && lines[j].trim() === fence) break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
    }
    if (j === lines.length) throw new BuildError(`${readme}:${i + 1}: unclosed code fence`);
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === "") before--;
    const comment = /^\s*<!--\s*example:(.*?)-->\s*$/.exec(lines[before] ?? "");
    const at = `${readme}:${i + 1}`;
    blocks.push({
      readme,
      line: i + 1,
      lang: lang.toLowerCase(),
      kind: KINDS[lang.toLowerCase()] ?? "shown",
      code: body.join("\n") + "\n",
      annotation: comment ? parseAnnotation(comment[1], at) : {},
    });
    i = j;
  }
  return blocks;
}

/** The blocks of the given READMEs (default: every README). */
export function readBlocks(paths: readonly string[] = readmePaths()): CodeBlock[] {
  return paths.flatMap((path) => extractBlocks(path, Deno.readTextFileSync(join(ROOT, path))));
}

/** A block's name as a file stem: `adapters_postgres_README_L9` (`….test` for a test file). */
export function blockStem(block: CodeBlock): string {
  const stem = `${block.readme.replace(/\.md$/i, "").replaceAll("/", "_")}_L${block.line}`;
  return isTestModule(block) ? `${stem}.test` : stem;
}

/** Whether a module block is a test file (it imports `node:test`). */
export function isTestModule(block: CodeBlock): boolean {
  return block.kind === "module" && /\bfrom\s+["']node:test["']/.test(block.code);
}

/** The README's example-project directory name: `adapters_convex_README`. */
export function projectStem(readme: string): string {
  return readme.replace(/\.md$/i, "").replaceAll("/", "_");
}

/** What `npx convex codegen` writes, as far as type-checking and evaluating needs it. */
export const CONVEX_GENERATED: Record<string, string> = {
  "convex/_generated/api.ts":
    `// What \`npx convex codegen\` writes (the README example runner's stand-in).
import { anyApi } from "convex/server";
export const api: any = anyApi;
export const internal: any = anyApi;
`,
  "convex/_generated/dataModel.ts":
    `// What \`npx convex codegen\` writes (the README example runner's stand-in).
import type { DataModelFromSchemaDefinition } from "convex/server";
import type schema from "../schema.ts";
export type DataModel = DataModelFromSchemaDefinition<typeof schema>;
`,
};

/** The summary's category of an outcome: `ran`, `evaluated`, `check-only`, `parsed`, … */
function tally(what: string): string {
  if (what.startsWith("type-checked, not run")) return "check-only";
  if (what.startsWith("type-checked, evaluated")) return "evaluated";
  return what.split(/[ ,(]/)[0];
}

/** One block's failure. */
export interface Failure {
  block: CodeBlock;
  runtime: string;
  message: string;
}

/** Counts and failures of a run. */
export class Report {
  readonly failures: Failure[] = [];
  readonly counts = new Map<string, number>();

  count(what: string): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
  }

  ok(block: CodeBlock, runtime: string, what: string, ms?: number): void {
    this.count(`${block.kind} ${tally(what)}`);
    const time = ms === undefined ? "" : ` (${(ms / 1000).toFixed(1)} s)`;
    console.log(`ok    ${where(block)} ${block.lang || "(untagged)"} ${what} [${runtime}]${time}`);
  }

  fail(block: CodeBlock, runtime: string, message: string): void {
    this.failures.push({ block, runtime, message });
    console.error(`FAIL  ${where(block)} ${block.lang} [${runtime}]: ${message}`);
  }

  /** Prints the summary; throws a BuildError naming every failed block. */
  finish(label: string): void {
    const counts = [...this.counts].map(([what, n]) => `${n} ${what}`).join(", ");
    console.log(`${label}: ${counts || "no blocks"}; ${this.failures.length} failed`);
    if (this.failures.length > 0) {
      throw new BuildError(
        `${this.failures.length} README block(s) failed:\n` +
          this.failures.map((f) =>
            `  - ${where(f.block)} (${f.block.lang}, ${f.runtime}): ${f.message.split("\n")[0]}`
          ).join("\n"),
      );
    }
  }
}

/** Output of a finished process. */
interface Finished {
  code: number | null;
  output: string;
  timedOut: boolean;
}

const decoder = new TextDecoder();

/** The last lines of a process's output, for a failure message. */
export function tail(output: string, lines = 40): string {
  const all = output.trimEnd().split("\n");
  return (all.length > lines ? ["…", ...all.slice(-lines)] : all).map((l) => `      ${l}`)
    .join("\n");
}

/** A process in its own process group, its stdout and stderr collected together. */
export class Proc {
  readonly child: Deno.ChildProcess;
  output = "";
  #readers: Promise<void>[];
  #waiters: { text: string; resolve: () => void }[] = [];

  /** The runtime it runs on, when not the run's own (reports name it). */
  readonly runtime?: string;

  constructor(
    command: string,
    args: string[],
    options: { cwd: string; env: Record<string, string>; runtime?: string },
  ) {
    this.runtime = options.runtime;
    // setsid: the block and what it starts share a group we can signal as one.
    this.child = new Deno.Command("setsid", {
      args: [command, ...args],
      cwd: options.cwd,
      env: options.env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#readers = [this.child.stdout, this.child.stderr].map((stream) => this.#read(stream));
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const bytes of stream) {
      this.output += decoder.decode(bytes, { stream: true });
      this.#waiters = this.#waiters.filter((w) => {
        if (!this.output.includes(w.text)) return true;
        w.resolve();
        return false;
      });
    }
  }

  /** Resolves true once `text` was printed, false if the process ends or time runs out. */
  async waitFor(text: string, timeoutMs: number): Promise<boolean> {
    if (this.output.includes(text)) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const printed = new Promise<boolean>((resolve) =>
      this.#waiters.push({ text, resolve: () => resolve(true) })
    );
    const ended = this.child.status.then(() => this.output.includes(text));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([printed, ended, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  #signal(signal: Deno.Signal): void {
    try {
      Deno.kill(-this.child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** Whether a process of the block's group still runs (`kill -0` on the group). */
  async #groupAlive(): Promise<boolean> {
    const { code } = await new Deno.Command("kill", {
      args: ["-0", "--", `-${this.child.pid}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0;
  }

  /** Waits for the end (killing the group after `timeoutMs`). */
  async finish(timeoutMs: number): Promise<Finished> {
    const deadline = Date.now() + timeoutMs;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#signal("SIGKILL");
    }, timeoutMs);
    const status = await this.child.status;
    // The shell may end before what it started: the CLI under npm and deno task, still
    // stopping (removing its store's lock file). It gets until the deadline, as a user
    // who pressed Ctrl-C waits for the prompt.
    while (!timedOut && Date.now() < deadline && await this.#groupAlive()) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    clearTimeout(timer);
    // Anything the block left running in its group goes too.
    this.#signal("SIGKILL");
    await Promise.all(this.#readers);
    return { code: status.signal ? null : status.code, output: this.output, timedOut };
  }

  /** SIGTERM to the group, SIGKILL after the grace period; waits for the end. */
  async stop(): Promise<Finished> {
    this.#signal("SIGTERM");
    return await this.finish(STOP_TIMEOUT_MS);
  }
}

/** Stops a background block; a failure message unless SIGTERM ended it in time. */
export async function stopBackground(proc: Proc): Promise<string | undefined> {
  const done = await proc.stop();
  if (!done.timedOut) return undefined;
  return `SIGTERM did not stop it within ${STOP_TIMEOUT_MS / 1000} s\n${tail(done.output)}`;
}

/** A block settled without a process: passed (`ok` says how) or failed. */
export type Settled = { ok: string } | { failure: string };

/**
 * Runs the module or shell blocks of one README in order, background blocks as the module
 * comment says; `start` spawns a block, or settles it without a process.
 */
export async function runInOrder(
  blocks: readonly CodeBlock[],
  runtime: string,
  report: Report,
  start: (block: CodeBlock) => Promise<Proc | Settled>,
): Promise<void> {
  let serving: { block: CodeBlock; proc: Proc } | undefined;
  const release = async () => {
    if (!serving) return;
    const failure = await stopBackground(serving.proc);
    if (failure) report.fail(serving.block, serving.proc.runtime ?? runtime, failure);
    serving = undefined;
  };
  for (const block of blocks) {
    const started = performance.now();
    const proc = await start(block);
    if (!(proc instanceof Proc)) {
      if ("ok" in proc) report.ok(block, runtime, proc.ok);
      else report.fail(block, runtime, proc.failure);
      await release();
      continue;
    }
    const background = block.annotation.background;
    let failure = background ? await awaitReady(proc, background.ready) : await runToEnd(proc);
    await release();
    if (background && !failure) {
      if (background.untilNext) serving = { block, proc };
      else failure = await stopBackground(proc);
    }
    const ms = performance.now() - started;
    const on = proc.runtime ?? runtime;
    const passed = background ? "ready, stopped" : isTestModule(block) ? "passed its tests" : "ran";
    if (failure) report.fail(block, on, failure);
    else report.ok(block, on, passed, ms);
  }
  await release();
}

/** The environment blocks run with: this one, colour off, no database URL. */
export function blockEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", ...extra };
  delete env.DATABASE_URL;
  delete env.FORCE_COLOR;
  return env;
}

/** Runs a program to its end; a failure message, or undefined when it exited 0. */
export async function runToEnd(proc: Proc): Promise<string | undefined> {
  const done = await proc.finish(RUN_TIMEOUT_MS);
  if (done.timedOut) return `still running after ${RUN_TIMEOUT_MS / 1000} s\n${tail(done.output)}`;
  if (done.code !== 0) return `exit ${done.code ?? "by signal"}\n${tail(done.output)}`;
  return undefined;
}

/** Waits for a background block's ready text; a failure message, or undefined. */
export async function awaitReady(proc: Proc, ready: string): Promise<string | undefined> {
  if (await proc.waitFor(ready, READY_TIMEOUT_MS)) return undefined;
  const done = await proc.stop();
  return `did not print ${JSON.stringify(ready)} within ${READY_TIMEOUT_MS / 1000} s ` +
    `(exit ${done.code ?? "by signal"})\n${tail(done.output)}`;
}

// ---------------------------------------------------------------------------------------
// Source run (Deno).

const DENO = join(ROOT, "node_modules", ".bin", "deno");
/**
 * Where the source run writes the blocks, with the deno.json they run under: a scratch
 * directory outside the repository (whose builds wipe build/, and Deno strips no types
 * under node_modules), with a `node_modules` link to the repository's.
 */
interface SourceDir {
  dir: string;
  config: string;
}

/**
 * The source run's deno.json: every workspace package's exports by package name (to the
 * source files) plus every package's `imports`, npm packages from node_modules. (The
 * workspace's own config does not resolve its members' names for files it excludes.)
 */
function writeSourceConfig(dir: string): SourceDir {
  const imports: Record<string, string> = {};
  const members = ["", ...(readDenoJson("").workspace ?? [])];
  for (const member of members) {
    const cfg = readDenoJson(member);
    Object.assign(imports, cfg.imports ?? {});
  }
  for (const member of members) {
    const cfg = readDenoJson(member);
    for (const [key, target] of Object.entries(cfg.exports ?? {})) {
      const specifier = key === "." ? cfg.name : cfg.name + key.slice(1);
      imports[specifier] = join(ROOT, member, target);
    }
  }
  // Deno types `node:*` imports with @types/node, which it looks up through a package.json
  // (found in the repository's node_modules).
  const rootPackage = JSON.parse(Deno.readTextFileSync(join(ROOT, "package.json"))) as {
    devDependencies?: Record<string, string>;
  };
  const nodeTypes = rootPackage.devDependencies?.["@types/node"];
  Deno.writeTextFileSync(
    join(dir, "package.json"),
    JSON.stringify(
      {
        private: true,
        type: "module",
        devDependencies: nodeTypes ? { "@types/node": nodeTypes } : {},
      },
      null,
      2,
    ) + "\n",
  );
  const config = join(dir, "deno.json");
  Deno.writeTextFileSync(
    config,
    JSON.stringify({ imports, nodeModulesDir: "manual" }, null, 2) + "\n",
  );
  Deno.symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return { dir, config };
}

function readDenoJson(member: string): {
  name: string;
  exports?: Record<string, string>;
  imports?: Record<string, string>;
  workspace?: string[];
} {
  return JSON.parse(Deno.readTextFileSync(join(ROOT, member, "deno.json")));
}

/** The bash prelude of shell blocks: the runner's own context commands, checked only. */
const SHELL_PRELUDE = `
npm() {
  case "$*" in
    ci) [[ -d node_modules ]] || { echo "readme-examples: npm ci: node_modules/ missing" >&2; return 1; }
        echo "(readme-examples: npm ci already done: this runner runs after it)"; return 0 ;;
    test) grep -q '"test":' package.json || { echo "readme-examples: no test script" >&2; return 1; }
        echo "(readme-examples: npm test not re-run: this runner is one of its steps)"; return 0 ;;
  esac
  command npm "$@"
}
npx() {
  if [[ "$*" == "deno task build:npm" ]]; then
    for p in npm adapters/postgres/npm adapters/http/npm adapters/convex/npm cli/npm; do
      [[ -f "$p/package.json" ]] || { echo "readme-examples: $p is not built" >&2; return 1; }
    done
    echo "(readme-examples: npm packages already built: this runner runs after the build)"
    return 0
  fi
  command npx "$@"
}
`;

/** Copies the repository's tracked and unignored files; links node_modules and npm builds. */
async function copyRepository(dest: string): Promise<void> {
  const listed = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  if (!listed.success) throw new BuildError("git ls-files failed");
  for (const path of decoder.decode(listed.stdout).split("\0").filter(Boolean)) {
    const from = join(ROOT, path);
    if (!exists(from)) continue; // deleted in the working tree
    Deno.mkdirSync(dirname(join(dest, path)), { recursive: true });
    Deno.copyFileSync(from, join(dest, path));
  }
  const links = ["node_modules", "npm", "adapters/postgres/npm", "adapters/http/npm"];
  links.push("adapters/convex/npm", "cli/npm");
  for (const path of links) {
    if (exists(join(ROOT, path))) Deno.symlinkSync(join(ROOT, path), join(dest, path));
  }
}

/** Where `npm` and Deno keep their caches and settings, kept under a scratch HOME. */
async function cacheEnv(): Promise<Record<string, string>> {
  const home = Deno.env.get("HOME") ?? "";
  const npmCache = await new Deno.Command("npm", {
    args: ["config", "get", "cache"],
    stdout: "piped",
  })
    .output();
  return {
    npm_config_cache: decoder.decode(npmCache.stdout).trim(),
    npm_config_userconfig: Deno.env.get("npm_config_userconfig") ?? join(home, ".npmrc"),
    DENO_DIR: Deno.env.get("DENO_DIR") ?? join(home, ".cache", "deno"),
  };
}

/** Runs the shell blocks of one README, in order, in one repository copy. */
async function runShellBlocks(blocks: CodeBlock[], report: Report, scratch: string) {
  const repo = join(scratch, "repo");
  await copyRepository(repo);
  const home = join(scratch, "home");
  const day = join(home, ".codex", "sessions", "2025", "10", "01");
  Deno.mkdirSync(day, { recursive: true });
  Deno.copyFileSync(
    join(ROOT, "cli", "fixtures", "sample-rollout.jsonl"),
    join(day, "rollout-2025-10-01T09-00-00-sample.jsonl"),
  );
  const env = blockEnv({ HOME: home, ...(await cacheEnv()) });
  delete env.CODEX_HOME;
  delete env.INIT_CWD;
  await runInOrder(blocks, "bash", report, (block) =>
    Promise.resolve(
      new Proc("bash", ["-euo", "pipefail", "-c", SHELL_PRELUDE + block.code], { cwd: repo, env }),
    ));
}

/** Writes a README's `file=` blocks into its project; returns the files written. */
function writeProjectFiles(blocks: CodeBlock[], projectDir: string): string[] {
  const files: string[] = [];
  for (const block of blocks) {
    const file = block.annotation.file!;
    const path = join(projectDir, file);
    Deno.mkdirSync(dirname(path), { recursive: true });
    Deno.writeTextFileSync(path, block.code);
    files.push(path);
  }
  if (files.some((path) => relative(projectDir, path).startsWith("convex/"))) {
    for (const [file, text] of Object.entries(CONVEX_GENERATED)) {
      Deno.mkdirSync(dirname(join(projectDir, file)), { recursive: true });
      Deno.writeTextFileSync(join(projectDir, file), text);
    }
  }
  return files;
}

/** Type-checks the written module files at once; a failure message per block, if any. */
async function checkModules(
  entries: { block: CodeBlock; path: string }[],
  config: string,
): Promise<Map<CodeBlock, string>> {
  const failed = new Map<CodeBlock, string>();
  if (entries.length === 0) return failed;
  console.log(`$ deno check (${entries.length} README modules)`);
  const out = await new Deno.Command(DENO, {
    args: [
      "check",
      "--config",
      config,
      "--unstable-sloppy-imports",
      "--quiet",
      ...entries.map((e) => e.path),
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.success) return failed;
  const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  // Deno lists each error with `at file:///…/<file>:line:col`: pin it on its block.
  for (const { block, path } of entries) {
    const mentions = text.split(/\n\s*\n/).filter((chunk) => chunk.includes(path));
    if (mentions.length > 0) {
      failed.set(
        block,
        `type check failed (the file's line n is README line ${block.line} + n)\n` +
          tail(mentions.join("\n"), 60),
      );
    }
  }
  if (failed.size === 0) {
    // Not pinned on a block (a resolution error): none of them is known to check.
    for (const { block } of entries) failed.set(block, `deno check failed\n${tail(text)}`);
  }
  return failed;
}

/** The source run: every block of the READMEs, modules under Deno from source. */
export async function runSourceExamples(paths: readonly string[] = readmePaths()) {
  const blocks = readBlocks(paths);
  const report = new Report();
  const scratch = await Deno.makeTempDir({ prefix: "codex-sync-readme-examples-" });
  try {
    const source = writeSourceConfig(await Deno.makeTempDir({ dir: scratch, prefix: "source" }));
    // 1. Data blocks.
    for (const block of blocks.filter((b) => b.kind === "json")) checkJson(block, report);
    for (const block of blocks.filter((b) => b.kind === "shown")) {
      report.ok(block, "-", "shown only");
    }

    // 2. Modules: write, type-check at once, then run per README in order.
    const modules = blocks.filter((b) => b.kind === "module");
    const entries: { block: CodeBlock; path: string }[] = [];
    for (const readme of paths) {
      const own = modules.filter((b) => b.readme === readme);
      const files = own.filter((b) => b.annotation.file);
      const written = writeProjectFiles(files, join(source.dir, projectStem(readme)));
      files.forEach((block, i) => entries.push({ block, path: written[i] }));
      for (const block of own.filter((b) => !b.annotation.file)) {
        const path = join(source.dir, `${blockStem(block)}.ts`);
        Deno.writeTextFileSync(path, block.code);
        entries.push({ block, path });
      }
    }
    const typeErrors = await checkModules(entries, source.config);
    const pathOf = new Map(entries.map((e) => [e.block, e.path]));

    for (const readme of paths) {
      const own = blocks.filter((b) => b.readme === readme);
      // Project files: evaluated together once written.
      const files = own.filter((b) => b.kind === "module" && b.annotation.file);
      if (files.length > 0) {
        await evaluateProjectFiles(files, pathOf, typeErrors, report, scratch, source.config);
      }
      const programs = own.filter((b) => b.kind === "module" && !b.annotation.file);
      await runInOrder(programs, "deno", report, async (block) => {
        const typeError = typeErrors.get(block);
        if (typeError) return { failure: typeError };
        if (block.annotation.checkOnly !== undefined) {
          return { ok: `type-checked, not run: ${block.annotation.checkOnly}` };
        }
        const cwd = await Deno.makeTempDir({ dir: scratch, prefix: blockStem(block) });
        return new Proc(DENO, [
          isTestModule(block) ? "test" : "run",
          "-A",
          "--config",
          source.config,
          pathOf.get(block)!,
        ], {
          cwd,
          env: blockEnv(),
        });
      });

      // 3. Shell blocks, in order, in one repository copy per README.
      const shells = own.filter((b) => b.kind === "shell");
      if (shells.length > 0) {
        await runShellBlocks(shells, report, await Deno.makeTempDir({ dir: scratch }));
      }
    }
    report.finish("readme-examples");
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** Imports a README's project files (after their type check) in one Deno program. */
async function evaluateProjectFiles(
  projectFiles: CodeBlock[],
  pathOf: Map<CodeBlock, string>,
  typeErrors: Map<CodeBlock, string>,
  report: Report,
  scratch: string,
  config: string,
): Promise<void> {
  let files = projectFiles;
  const broken = files.filter((block) => typeErrors.has(block));
  for (const block of broken) report.fail(block, "deno", typeErrors.get(block)!);
  if (broken.length > 0) return;
  for (const block of files.filter((b) => b.annotation.checkOnly !== undefined)) {
    report.ok(block, "deno", `type-checked, not run: ${block.annotation.checkOnly}`);
  }
  files = files.filter((b) => b.annotation.checkOnly === undefined);
  if (files.length === 0) return;
  const loader = join(dirname(pathOf.get(files[0])!), "..", "_evaluate.ts");
  Deno.writeTextFileSync(
    loader,
    files.map((block, i) =>
      `import * as m${i} from ${
        JSON.stringify("./" + relative(dirname(loader), pathOf.get(block)!))
      };`
    ).join("\n") + `\nconsole.log([${
      files.map((_, i) => `Object.keys(m${i}).length`).join(", ")
    }].join(" "));\n`,
  );
  const started = performance.now();
  const proc = new Proc(DENO, [
    "run",
    "-A",
    "--config",
    config,
    "--unstable-sloppy-imports",
    loader,
  ], {
    cwd: await Deno.makeTempDir({ dir: scratch }),
    env: blockEnv(),
  });
  const failure = await runToEnd(proc);
  for (const block of files) {
    if (failure) report.fail(block, "deno", `evaluating the project's files: ${failure}`);
    else {report.ok(
        block,
        "deno",
        `type-checked, evaluated as ${block.annotation.file}`,
        performance.now() - started,
      );}
  }
}

/** A `json` block parses as JSON or JSON Lines (unless it elides with `…`). */
export function checkJson(block: CodeBlock, report: Report): void {
  if (block.code.includes("…")) {
    report.ok(block, "-", "sketch (elided with …), not parsed");
    return;
  }
  try {
    JSON.parse(block.code);
    report.ok(block, "-", "parsed as JSON");
  } catch {
    try {
      for (const line of block.code.split("\n").filter((l) => l.trim())) JSON.parse(line);
      report.ok(block, "-", "parsed as JSON Lines");
    } catch (error) {
      report.fail(block, "-", `not JSON nor JSON Lines: ${error}`);
    }
  }
}

if (import.meta.main) {
  await runMain(
    "test:readme",
    () => runSourceExamples(Deno.args.length > 0 ? Deno.args : readmePaths()),
  );
}
