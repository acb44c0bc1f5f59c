/**
 * Shared helpers for the npm build scripts (`build_npm.ts`, `npm_smoke.ts`,
 * `test_node.ts`). Tooling only: not part of the published library, so Deno and
 * `node:*` APIs are fine here.
 *
 * @module
 */

import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (the directory holding deno.json). */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Output directory of the npm package. */
export const NPM_DIR: string = join(ROOT, "npm");
/** Scratch directory for compiled tests and generated tsconfigs. */
export const BUILD_DIR: string = join(ROOT, "build");

/** A failure with a message meant for the person running the build. */
export class BuildError extends Error {
  override name = "BuildError";
}

/** The parts of deno.json the build reads. */
export interface DenoConfig {
  name: string;
  version: string;
  license?: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
}

/** Reads and validates deno.json (plain JSON: the build does not parse comments). */
export function readDenoConfig(): DenoConfig {
  const path = join(ROOT, "deno.json");
  let raw: unknown;
  try {
    raw = JSON.parse(Deno.readTextFileSync(path));
  } catch (error) {
    throw new BuildError(`cannot read ${path} as plain JSON: ${error}`);
  }
  if (typeof raw !== "object" || raw === null) throw new BuildError("deno.json is not an object");
  const cfg = raw as Record<string, unknown>;
  if (typeof cfg.name !== "string" || !cfg.name.startsWith("@")) {
    throw new BuildError(`deno.json "name" must be a scoped package name, got ${cfg.name}`);
  }
  if (typeof cfg.version !== "string" || !/^\d+\.\d+\.\d+(?:[-+].+)?$/.test(cfg.version)) {
    throw new BuildError(`deno.json "version" must be a semver version, got ${cfg.version}`);
  }
  let exports: Record<string, string>;
  if (typeof cfg.exports === "string") exports = { ".": cfg.exports };
  else if (typeof cfg.exports === "object" && cfg.exports !== null) {
    exports = cfg.exports as Record<string, string>;
  } else throw new BuildError('deno.json has no "exports"');
  for (const [key, target] of Object.entries(exports)) {
    if (key !== "." && !key.startsWith("./")) {
      throw new BuildError(`deno.json export key ${JSON.stringify(key)} must be "." or "./…"`);
    }
    if (typeof target !== "string" || !target.startsWith("./") || !target.endsWith(".ts")) {
      throw new BuildError(
        `deno.json export ${key} → ${JSON.stringify(target)}: targets must be "./….ts" files`,
      );
    }
  }
  const imports = (cfg.imports ?? {}) as Record<string, string>;
  return {
    name: cfg.name,
    version: cfg.version,
    license: typeof cfg.license === "string" ? cfg.license : undefined,
    exports,
    imports,
  };
}

/** Exported file (relative to the package root) for a `./x.ts` source target. */
export function compiledPaths(target: string): { js: string; dts: string } {
  const base = target.replace(/\.ts$/, "");
  return { js: `${base}.js`, dts: `${base}.d.ts` };
}

/** True when `path` exists (file or directory). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Options for {@link run}. */
export interface RunOptions {
  cwd?: string;
  /** Capture stdout and return it instead of streaming it. */
  capture?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Runs a command, streaming its output; throws a {@link BuildError} when it fails. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const shown = [cmd, ...args].join(" ");
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, {
      args,
      cwd: opts.cwd ?? ROOT,
      env: opts.env,
      stdin: "null",
      stdout: opts.capture ? "piped" : "inherit",
      stderr: "inherit",
    }).output();
  } catch (error) {
    throw new BuildError(`cannot start \`${shown}\`: ${error}`);
  }
  if (!output.success) {
    throw new BuildError(`\`${shown}\` failed with exit code ${output.code}`);
  }
  return opts.capture ? new TextDecoder().decode(output.stdout) : "";
}

/** Path of the TypeScript compiler's CLI entry in node_modules. */
export function tscPath(): string {
  const path = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  if (!exists(path)) {
    throw new BuildError(`TypeScript not found at ${path}: run \`npm ci\` first`);
  }
  return path;
}

/** Runs tsc (through node) on a project file. */
export async function runTsc(project: string): Promise<void> {
  console.log(`$ tsc -p ${relative(ROOT, project)}`);
  await run("node", [tscPath(), "-p", project]);
}

/** All files under `dir` (recursive), as paths relative to `dir` with `/` separators. */
export function walkFiles(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    for (const entry of Deno.readDirSync(join(dir, rel))) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory) visit(child);
      else if (entry.isFile) out.push(child);
    }
  };
  if (exists(dir)) visit("");
  return out.sort();
}

/** Removes a directory inside the repository (refuses anything else). */
export function removeRepoDir(dir: string): void {
  const rel = relative(ROOT, dir);
  if (rel === "" || rel.startsWith("..") || rel.includes(sep + "..")) {
    throw new BuildError(`refusing to remove ${dir}: not inside ${ROOT}`);
  }
  Deno.removeSync(dir, { recursive: true });
}

/** The npm package.json fields the build writes and checks. */
export interface NpmExportEntry {
  types: string;
  import: string;
  default: string;
}

/**
 * Fails when the npm package in `npmDir` does not mirror deno.json's exports one-to-one:
 * the key sets differ, an entry points elsewhere than the compiled export target, or a
 * target file is missing.
 */
export function verifyExportsMirror(cfg: DenoConfig, npmDir: string): void {
  const pkgPath = join(npmDir, "package.json");
  if (!exists(pkgPath)) throw new BuildError(`${pkgPath} is missing: run \`deno task build:npm\``);
  const pkg = JSON.parse(Deno.readTextFileSync(pkgPath)) as {
    name?: string;
    version?: string;
    exports?: Record<string, NpmExportEntry>;
  };
  const problems: string[] = [];
  if (pkg.name !== cfg.name) problems.push(`name ${pkg.name} ≠ deno.json ${cfg.name}`);
  if (pkg.version !== cfg.version) {
    problems.push(`version ${pkg.version} ≠ deno.json ${cfg.version}`);
  }
  const npmExports = pkg.exports ?? {};
  const denoKeys = Object.keys(cfg.exports).sort();
  const npmKeys = Object.keys(npmExports).sort();
  for (const key of denoKeys) {
    if (!(key in npmExports)) problems.push(`export ${key} is in deno.json but not in npm`);
  }
  for (const key of npmKeys) {
    if (!(key in cfg.exports)) problems.push(`export ${key} is in npm but not in deno.json`);
  }
  for (const key of denoKeys) {
    const entry = npmExports[key];
    if (!entry) continue;
    const want = compiledPaths(cfg.exports[key]);
    if (entry.import !== want.js || entry.default !== want.js || entry.types !== want.dts) {
      problems.push(
        `export ${key}: npm points to ${JSON.stringify(entry)}, expected ${want.js} / ${want.dts}`,
      );
    }
    for (const file of [want.js, want.dts]) {
      if (!exists(join(npmDir, file))) {
        problems.push(`export ${key} → ${cfg.exports[key]}: ${file} is missing in npm/`);
      }
    }
  }
  if (problems.length > 0) {
    throw new BuildError(
      `npm package exports drifted from deno.json:\n  - ${problems.join("\n  - ")}`,
    );
  }
}

/** Runs `main`, printing a {@link BuildError} as a one-line failure and exiting 1. */
export async function runMain(label: string, main: () => Promise<void>): Promise<void> {
  const started = performance.now();
  try {
    await main();
  } catch (error) {
    if (error instanceof BuildError) {
      console.error(`\n${label}: ERROR: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
  console.log(`${label}: ok (${((performance.now() - started) / 1000).toFixed(1)}s)`);
}
