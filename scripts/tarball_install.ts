/**
 * The README examples as an npm user meets them (issue 13, acceptance): pack the built npm
 * packages (`npm/`, `adapters/{postgres,http,convex}/npm/`, `cli/npm/`, from
 * `deno task build:npm`), `npm install` the tarballs into an empty project (their
 * dependencies come from the npm registry, or npm's cache when present), then run every
 * README's module blocks there under Node, Bun and Deno, importing the packages by name
 * from that project's `node_modules`.
 *
 * Blocks are read, annotated and reported as `scripts/readme_examples.ts` describes. Here:
 *
 * - Node runs each block transpiled to JavaScript (TypeScript's `transpileModule`: types
 *   stripped, nothing else changed), Bun and Deno the TypeScript as written (Deno through
 *   the project's package.json and node_modules).
 * - A block with `runtimes="…"` that leaves the current runtime out runs under the first
 *   one it lists instead (the Deno-only HTTP server still serves the next block).
 * - `file=` blocks (a Convex project's files) and `check-only` blocks are left to the source
 *   run, which type-checks and evaluates them; shell blocks too (they run in a copy of the
 *   repository, and the CLI's tarball install is one of them).
 *
 * Usage: `deno task test:tarball [--runtime node|bun|deno]… [README.md …]`.
 *
 * @module
 */

import ts from "typescript";
import { join } from "node:path";
import {
  BuildError,
  exists,
  installTarballs,
  NPM_DIR,
  pack,
  ROOT,
  run,
  runMain,
  withScratchDir,
} from "./_build_common.ts";
import {
  blockEnv,
  blockStem,
  type CodeBlock,
  isTestModule,
  Proc,
  readBlocks,
  readmePaths,
  Report,
  runInOrder,
} from "./readme_examples.ts";

/** The runtimes the examples run on. */
export const RUNTIMES = ["node", "bun", "deno"] as const;
/** One of {@link RUNTIMES}. */
export type Runtime = typeof RUNTIMES[number];

/** The built packages, in install order (the core first). */
const PACKAGE_DIRS = [
  NPM_DIR,
  join(ROOT, "adapters", "postgres", "npm"),
  join(ROOT, "adapters", "http", "npm"),
  join(ROOT, "adapters", "convex", "npm"),
  join(ROOT, "cli", "npm"),
];

const BIN = join(ROOT, "node_modules", ".bin");

/** The command line running `file` on `runtime` (its test runner for a test file). */
function command(runtime: Runtime, file: string, test = false): [string, string[]] {
  switch (runtime) {
    case "node":
      return ["node", test ? ["--test", file] : [file]];
    case "bun":
      return [join(BIN, "bun"), test ? ["test", file] : ["run", file]];
    case "deno":
      // Not type-checked here (the source run did): `deno run` does not, `deno test` would.
      return [join(BIN, "deno"), test ? ["test", "-A", "--no-check", file] : ["run", "-A", file]];
  }
}

/** Writes a block as the file `runtime` runs: JavaScript for Node, the TypeScript else. */
function writeBlock(block: CodeBlock, runtime: Runtime, dir: string): string {
  const typescript = block.lang === "ts" || block.lang === "typescript";
  if (runtime === "node" && typescript) {
    const path = join(dir, `${blockStem(block)}.mjs`);
    const js = ts.transpileModule(block.code, {
      fileName: `${blockStem(block)}.ts`,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: false,
      },
      reportDiagnostics: true,
    });
    const errors = (js.diagnostics ?? []).map((d) =>
      ts.flattenDiagnosticMessageText(d.messageText, "\n")
    );
    if (errors.length > 0) throw new BuildError(`cannot transpile: ${errors.join("; ")}`);
    Deno.writeTextFileSync(path, js.outputText);
    return path;
  }
  const path = join(dir, `${blockStem(block)}.${typescript ? "ts" : "mjs"}`);
  Deno.writeTextFileSync(path, block.code);
  return path;
}

/** The runtime a block runs on when the run is for `runtime`. */
function runtimeOf(block: CodeBlock, runtime: Runtime): Runtime {
  const allowed = block.annotation.runtimes;
  if (!allowed || allowed.includes(runtime)) return runtime;
  const first = allowed[0];
  if (!(RUNTIMES as readonly string[]).includes(first)) {
    throw new BuildError(`${block.readme}:${block.line}: unknown runtime ${first}`);
  }
  return first as Runtime;
}

/** Runs the README module blocks in `appDir` (tarballs installed) on each runtime. */
export async function runTarballExamples(
  appDir: string,
  runtimes: readonly Runtime[],
  paths: readonly string[],
): Promise<void> {
  const blocks = readBlocks(paths).filter((block) =>
    block.kind === "module" && !block.annotation.file && block.annotation.checkOnly === undefined
  );
  const report = new Report();
  for (const runtime of runtimes) {
    const dir = join(appDir, `readme-${runtime}`);
    Deno.mkdirSync(dir, { recursive: true });
    for (const readme of paths) {
      const own = blocks.filter((block) => block.readme === readme);
      await runInOrder(own, runtime, report, (block) => {
        const on = runtimeOf(block, runtime);
        let file: string;
        try {
          file = writeBlock(block, on, dir);
        } catch (error) {
          return Promise.resolve({ failure: String(error) });
        }
        const [cmd, args] = command(on, file, isTestModule(block));
        const runsOn = on === runtime ? undefined : on;
        return Promise.resolve(
          new Proc(cmd, args, { cwd: appDir, env: blockEnv(), runtime: runsOn }),
        );
      });
    }
  }
  report.finish(`tarball examples (${runtimes.join(", ")})`);
}

/** Packs the built packages, installs them into an empty project, runs the examples. */
async function main(args: string[]): Promise<void> {
  const runtimes: Runtime[] = [];
  const paths: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--runtime") {
      const value = args[++i];
      if (!(RUNTIMES as readonly string[]).includes(value)) {
        throw new BuildError(`--runtime must be one of ${RUNTIMES.join(", ")}`);
      }
      runtimes.push(value as Runtime);
    } else paths.push(args[i]);
  }
  for (const dir of PACKAGE_DIRS) {
    if (!exists(join(dir, "package.json"))) {
      throw new BuildError(`${dir} is not built: run \`deno task build:npm\` first`);
    }
  }
  await withScratchDir("tarball-install", async (tmp) => {
    const packDir = join(tmp, "packs");
    Deno.mkdirSync(packDir);
    const tarballs: string[] = [];
    for (const dir of PACKAGE_DIRS) tarballs.push(await pack(dir, packDir));
    const appDir = join(tmp, "app");
    await installTarballs(appDir, tarballs);
    const versions = await Promise.all(
      (runtimes.length > 0 ? runtimes : RUNTIMES).map(async (runtime) => {
        const [cmd] = command(runtime, "");
        const version = await run(cmd, ["--version"], { capture: true });
        return `${runtime} ${version.trim().split("\n")[0]}`;
      }),
    );
    console.log(`runtimes: ${versions.join("; ")}`);
    await runTarballExamples(
      appDir,
      runtimes.length > 0 ? runtimes : RUNTIMES,
      paths.length > 0 ? paths : readmePaths(),
    );
  });
}

if (import.meta.main) {
  await runMain("test:tarball", () => main(Deno.args));
}
