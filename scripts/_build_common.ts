/**
 * Shared helpers for the npm build scripts (`build_npm.ts`, `_build_member.ts`,
 * `npm_smoke.ts`, `test_node.ts`). Tooling only: not part of the published library, so Deno and
 * `node:*` APIs are fine here.
 *
 * @module
 */

import ts from "typescript";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
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

/**
 * Reads and validates the deno.json in `dir` (default: the root package's; plain JSON:
 * the build does not parse comments).
 */
export function readDenoConfig(dir: string = ROOT): DenoConfig {
  const path = join(dir, "deno.json");
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

/** Parses a deno.json import-map value such as `npm:zod@^4.1.0` into name and range. */
export function parseNpmSpecifier(value: string): { name: string; range: string } | undefined {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?(?:\/.*)?$/.exec(value);
  if (!match) return undefined;
  return { name: match[1], range: match[2] ?? "*" };
}

/** Package name of a bare specifier (`zod/mini` → `zod`, `@a/b/c` → `@a/b`). */
export function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * tsc keeps `.ts` extensions of relative imports in emitted `.d.ts` files even with
 * `rewriteRelativeImportExtensions` (microsoft/TypeScript#61037; tsc itself resolves them,
 * other tools may not). Rewrites them to `.js` under `outDir`, matching the `.js` output,
 * and returns the number of rewritten specifiers.
 */
export function rewriteDeclarationImports(outDir: string): number {
  let count = 0;
  for (const file of walkFiles(outDir)) {
    if (!file.endsWith(".d.ts")) continue;
    const path = join(outDir, file);
    let text = Deno.readTextFileSync(path);
    const refs = ts.preProcessFile(text, true, true).importedFiles
      .filter((ref) => /^\.\.?\//.test(ref.fileName) && /(?<!\.d)\.([mc]?)ts$/.test(ref.fileName))
      .sort((a, b) => b.pos - a.pos);
    for (const ref of refs) {
      // `pos` points at the opening quote of the string literal.
      const start = text.indexOf(ref.fileName, ref.pos);
      if (start < 0 || start > ref.pos + 1) {
        throw new BuildError(`${file}: cannot locate import ${ref.fileName} to rewrite it`);
      }
      const rewritten = ref.fileName.replace(/\.([mc]?)ts$/, ".$1js");
      text = text.slice(0, start) + rewritten + text.slice(start + ref.fileName.length);
      count++;
    }
    if (refs.length > 0) Deno.writeTextFileSync(path, text);
  }
  return count;
}

/** How {@link collectDependencies} treats bare imports. */
export interface DependencyOptions {
  /** Workspace packages built before this one: package name → version range. */
  workspace?: Record<string, string>;
  /** Allow `node:*` imports (a package that runs on Node only, such as the CLI). */
  nodeBuiltins?: boolean;
}

/**
 * Reads every import of the compiled output in `outDir` (comments ignored, via the
 * TypeScript scanner), checks relative ones resolve inside the package, and returns the
 * npm dependencies implied by the bare ones: workspace packages at their given range,
 * others as deno.json `imports` maps them to `npm:` packages.
 */
export function collectDependencies(
  outDir: string,
  cfg: DenoConfig,
  options: DependencyOptions = {},
): Record<string, string> {
  const workspace = options.workspace ?? {};
  const shown = relative(ROOT, outDir) + "/";
  const problems: string[] = [];
  const deps = new Map<string, string>();
  for (const file of walkFiles(outDir)) {
    const isDts = file.endsWith(".d.ts");
    if (!isDts && !file.endsWith(".js")) continue;
    const text = Deno.readTextFileSync(join(outDir, file));
    const { importedFiles } = ts.preProcessFile(text, true, true);
    for (const { fileName: spec } of importedFiles) {
      if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        const candidates = isDts && target.endsWith(".js")
          ? [target.replace(/\.js$/, ".d.ts"), target]
          : [target];
        if (!/\.js$/.test(spec)) {
          problems.push(`${file}: relative import ${spec} does not end in .js`);
        } else if (target.startsWith("../") || !candidates.some((c) => exists(join(outDir, c)))) {
          problems.push(`${file}: relative import ${spec} does not resolve inside ${shown}`);
        }
        continue;
      }
      if (spec.startsWith("node:") && options.nodeBuiltins) continue;
      if (/^(node|npm|jsr|https?|file|data):/.test(spec)) {
        problems.push(
          `${file}: imports ${spec}; library code must be runtime-agnostic (DESIGN §8)`,
        );
        continue;
      }
      const name = packageName(spec);
      if (name === cfg.name) {
        problems.push(`${file}: imports its own package (${spec}); use a relative import`);
        continue;
      }
      if (name in workspace) {
        deps.set(name, workspace[name]);
        continue;
      }
      // `convex/server` may be mapped on its own (`npm:convex@^1/server`), not as `convex`.
      const mapped = cfg.imports[name] ?? cfg.imports[`${name}/`] ?? cfg.imports[spec];
      const parsed = mapped === undefined ? undefined : parseNpmSpecifier(mapped);
      if (!parsed) {
        problems.push(
          `${file}: imports ${spec}, which deno.json "imports" does not map to an npm: package`,
        );
        continue;
      }
      deps.set(name, parsed.name === name ? parsed.range : `npm:${parsed.name}@${parsed.range}`);
    }
  }
  if (problems.length > 0) {
    throw new BuildError(
      `the compiled package in ${shown} has bad imports:\n  - ${
        [...new Set(problems)].join("\n  - ")
      }`,
    );
  }
  return Object.fromEntries([...deps].sort(([a], [b]) => a.localeCompare(b)));
}

/** The top-level entries of a built package, as package.json `files` lists them. */
export function topLevelFiles(outDir: string): string[] {
  return [...Deno.readDirSync(outDir)]
    .map((entry) => entry.isDirectory ? `${entry.name}/` : entry.name)
    .sort();
}

/**
 * Runs `npm pack --dry-run` in `outDir`; fails unless every path in `mustShip` (relative,
 * with or without a leading `./`) would be packed. Returns the file count and size.
 */
export async function packDryRun(
  outDir: string,
  mustShip: readonly string[],
): Promise<{ files: number; bytes: number }> {
  console.log(`$ npm pack --dry-run (in ${relative(ROOT, outDir)}/)`);
  const packJson = await run("npm", ["pack", "--dry-run", "--json", "--loglevel=warn"], {
    cwd: outDir,
    capture: true,
  });
  const packed = new Set<string>(
    (JSON.parse(packJson) as { files: { path: string }[] }[])[0].files.map((f) => f.path),
  );
  const missing = mustShip.map((path) => path.replace(/^\.\//, ""))
    .filter((path) => !packed.has(path));
  if (missing.length > 0) {
    throw new BuildError(`npm pack would not ship: ${missing.join(", ")}`);
  }
  const bytes = [...packed].reduce((sum, path) => sum + Deno.statSync(join(outDir, path)).size, 0);
  return { files: packed.size, bytes };
}

/** Packs the package in `dir` into `destination`; returns the tarball's path. */
export async function pack(dir: string, destination: string): Promise<string> {
  const out = await run(
    "npm",
    ["pack", "--json", "--loglevel=warn", "--pack-destination", destination],
    { cwd: dir, capture: true },
  );
  return join(destination, (JSON.parse(out) as { filename: string }[])[0].filename);
}

/**
 * Creates a scratch npm project in `appDir` and installs the tarballs into it
 * (dependencies come from npm's cache when present: `--prefer-offline`).
 */
export async function installTarballs(appDir: string, tarballs: readonly string[]): Promise<void> {
  Deno.mkdirSync(appDir, { recursive: true });
  Deno.writeTextFileSync(
    join(appDir, "package.json"),
    JSON.stringify({ name: "npm-smoke", private: true, type: "module" }, null, 2) + "\n",
  );
  console.log(`$ npm install ${tarballs.map((t) => t.split(sep).pop()).join(" ")} (scratch)`);
  await run(
    "npm",
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=warn",
      "--ignore-scripts",
      ...tarballs,
    ],
    { cwd: appDir },
  );
}

/**
 * Runs `body` in a fresh temp directory, removed when it succeeds and kept (path printed)
 * when it fails, for a look at what went wrong.
 */
export async function withScratchDir(
  label: string,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `codex-sync-${label}-` });
  let ok = false;
  try {
    await body(dir);
    ok = true;
  } finally {
    if (ok) await Deno.remove(dir, { recursive: true });
    else console.error(`${label}: scratch directory kept at ${dir}`);
  }
}

/**
 * Node's test runner (spec reporter) on compiled test files, from the repository root;
 * the script's own arguments go to node first (e.g. `--test-name-pattern`).
 */
export async function runNodeTests(tests: readonly string[]): Promise<void> {
  const args = ["--test", "--test-reporter=spec", ...Deno.args, ...tests];
  console.log(`$ node ${args.join(" ")}`);
  const { code } = await new Deno.Command("node", {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new BuildError(`node --test failed with exit code ${code}`);
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

/** What the Node test scripts read of a built package's package.json. */
interface BuiltPackage {
  name: string;
  exports: Record<string, { types: string }>;
}

function readBuiltPackage(dir: string): BuiltPackage {
  const path = join(dir, "package.json");
  if (!exists(path)) {
    throw new BuildError(`${relative(ROOT, dir)}/ is not built: run \`deno task build:npm\``);
  }
  return JSON.parse(Deno.readTextFileSync(path)) as BuiltPackage;
}

/**
 * Packs the built packages in `dirs` and unpacks each into `outDir/node_modules/…`
 * (after emptying `outDir`): the tests see exactly the files npm would publish. Returns
 * the tsconfig `paths` of every export, onto the unpacked declarations.
 */
export async function unpackBuiltPackages(
  dirs: readonly string[],
  outDir: string,
): Promise<Record<string, string[]>> {
  const packages = dirs.map((dir) => ({ dir, pkg: readBuiltPackage(dir) }));
  if (exists(outDir)) removeRepoDir(outDir);
  const packDir = join(outDir, "packs");
  Deno.mkdirSync(packDir, { recursive: true });
  const paths: Record<string, string[]> = {};
  for (const { dir, pkg } of packages) {
    const tarball = await pack(dir, packDir);
    const target = join(outDir, "node_modules", ...pkg.name.split("/"));
    Deno.mkdirSync(target, { recursive: true });
    await run("tar", ["-xzf", tarball, "-C", target, "--strip-components=1"]);
    console.log(`unpacked ${relative(ROOT, tarball)} into ${relative(ROOT, target)}/`);
    for (const [key, entry] of Object.entries(pkg.exports)) {
      const specifier = key === "." ? pkg.name : pkg.name + key.slice(1);
      paths[specifier] = [`./${relative(outDir, join(target, entry.types))}`];
    }
  }
  return paths;
}

/** Test sources to compile under `outDir` and run with Node. */
export interface NodeTestBuild {
  outDir: string;
  /** The sources' root, relative to `outDir`; compiled into `outDir/tests/`. */
  rootDir: string;
  /** The test entry points, relative to `rootDir`. */
  entries: readonly string[];
  /** From {@link unpackBuiltPackages}. */
  paths: Record<string, string[]>;
}

/** Compiles the tests with the npm build's options against the packages, then runs them. */
export async function compileAndRunNodeTests(build: NodeTestBuild): Promise<void> {
  const { outDir, rootDir, entries } = build;
  const tsconfig = join(outDir, "tsconfig.json");
  Deno.writeTextFileSync(
    tsconfig,
    JSON.stringify(
      {
        extends: relative(outDir, join(ROOT, "tsconfig.build.json")),
        compilerOptions: {
          rootDir,
          outDir: "tests",
          declaration: false,
          types: ["node"],
          paths: build.paths,
        },
        files: entries.map((file) => posix.join(rootDir, file)),
      },
      null,
      2,
    ) + "\n",
  );
  await runTsc(tsconfig);
  const tests = entries.map((file) => join(outDir, "tests", file.replace(/\.ts$/, ".js")));
  for (const test of tests) {
    if (!exists(test)) throw new BuildError(`tsc did not emit ${relative(ROOT, test)}`);
  }
  await runNodeTests(tests.map((test) => relative(ROOT, test)));
}
