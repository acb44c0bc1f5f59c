/**
 * Builds the npm package into `npm/` (DESIGN §8): an unbundled ESM + `.d.ts` package
 * compiled by the TypeScript compiler from node_modules (no dnt, no JSR), with
 * package.json `exports` mirroring deno.json's one-to-one.
 *
 * Steps: validate deno.json (every export target, README.md and LICENSE must exist) →
 * compile the files reachable from its exports with tsc (`rewriteRelativeImportExtensions`)
 * → rewrite `.ts` → `.js` in the emitted `.d.ts` imports (tsc leaves them) → check every
 * import of the output (relative ones resolve, bare ones are declared in deno.json
 * `imports` and become `dependencies`; no `node:`/`npm:`/`jsr:`) → write
 * npm/package.json, copy README.md and LICENSE → verify the exports mirror →
 * `npm pack --dry-run` → the Node smoke test (`npm_smoke.ts`) unless `--no-smoke` → the
 * same for the Postgres adapter's package (`adapters/postgres/scripts/build_npm.ts`).
 *
 * Usage: `deno task build:npm` (or `deno task build:npm --no-smoke`).
 *
 * @module
 */

import ts from "typescript";
import { dirname, join, posix } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  compiledPaths,
  type DenoConfig,
  exists,
  NPM_DIR,
  type NpmExportEntry,
  readDenoConfig,
  removeRepoDir,
  ROOT,
  run,
  runMain,
  runTsc,
  verifyExportsMirror,
  walkFiles,
} from "./_build_common.ts";
import { smokeTest } from "./npm_smoke.ts";
import { buildPostgresPackage } from "../adapters/postgres/scripts/build_npm.ts";

const DESCRIPTION =
  "Backend-agnostic, durable and verified chunked sync of coding-agent conversations: " +
  "resumable parallel upload, sealed manifests, leased jobs with retries, verified terminal states.";

/** Files copied verbatim into the package. */
const COPIED_FILES = ["README.md", "LICENSE"];

/** Parses a deno.json import-map value such as `npm:zod@^4.1.0` into name and range. */
function parseNpmSpecifier(value: string): { name: string; range: string } | undefined {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?(?:\/.*)?$/.exec(value);
  if (!match) return undefined;
  return { name: match[1], range: match[2] ?? "*" };
}

/** Package name of a bare specifier (`zod/mini` → `zod`, `@a/b/c` → `@a/b`). */
function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * tsc keeps `.ts` extensions of relative imports in emitted `.d.ts` files even with
 * `rewriteRelativeImportExtensions` (microsoft/TypeScript#61037; tsc itself resolves them,
 * other tools may not). Rewrites them to `.js`, matching the `.js` output, and returns
 * the number of rewritten specifiers.
 */
function rewriteDeclarationImports(): number {
  let count = 0;
  for (const file of walkFiles(NPM_DIR)) {
    if (!file.endsWith(".d.ts")) continue;
    const path = join(NPM_DIR, file);
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

/**
 * Reads every import of the compiled output (comments ignored, via the TypeScript
 * scanner), checks relative ones resolve inside the package, and returns the npm
 * dependencies implied by the bare ones.
 */
function collectDependencies(cfg: DenoConfig): Record<string, string> {
  const problems: string[] = [];
  const deps = new Map<string, string>();
  for (const file of walkFiles(NPM_DIR)) {
    const isDts = file.endsWith(".d.ts");
    if (!isDts && !file.endsWith(".js")) continue;
    const text = Deno.readTextFileSync(join(NPM_DIR, file));
    const { importedFiles } = ts.preProcessFile(text, true, true);
    for (const { fileName: spec } of importedFiles) {
      if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        const candidates = isDts && target.endsWith(".js")
          ? [target.replace(/\.js$/, ".d.ts"), target]
          : [target];
        if (!/\.js$/.test(spec)) {
          problems.push(`${file}: relative import ${spec} does not end in .js`);
        } else if (target.startsWith("../") || !candidates.some((c) => exists(join(NPM_DIR, c)))) {
          problems.push(`${file}: relative import ${spec} does not resolve inside npm/`);
        }
        continue;
      }
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
      const mapped = cfg.imports[name] ?? cfg.imports[`${name}/`];
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
    throw new BuildError(`the compiled package has bad imports:\n  - ${problems.join("\n  - ")}`);
  }
  return Object.fromEntries([...deps].sort(([a], [b]) => a.localeCompare(b)));
}

async function build(smoke: boolean): Promise<void> {
  const cfg = readConfigAndCheckTargets();

  // 1. Compile the export targets (and everything they import) with tsc.
  if (exists(NPM_DIR)) removeRepoDir(NPM_DIR);
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const tsconfig = join(BUILD_DIR, "tsconfig.npm.json");
  Deno.writeTextFileSync(
    tsconfig,
    JSON.stringify(
      {
        extends: "../tsconfig.build.json",
        files: Object.values(cfg.exports).map((target) => `.${target}`),
      },
      null,
      2,
    ) + "\n",
  );
  await runTsc(tsconfig);

  // 2. Every export target must have been emitted as .js + .d.ts.
  const exportsField: Record<string, NpmExportEntry> = {};
  for (const [key, target] of Object.entries(cfg.exports)) {
    const { js, dts } = compiledPaths(target);
    exportsField[key] = { types: dts, import: js, default: js };
  }

  // 3. Imports of the output: `.d.ts` ones rewritten to `.js`; relative ones must
  //    resolve, bare ones become dependencies.
  console.log(`rewrote ${rewriteDeclarationImports()} relative .ts imports in .d.ts files to .js`);
  const dependencies = collectDependencies(cfg);

  // 4. package.json, README, LICENSE.
  const compiledTopLevel = [...Deno.readDirSync(NPM_DIR)]
    .map((entry) => entry.isDirectory ? `${entry.name}/` : entry.name)
    .sort();
  for (const name of COPIED_FILES) Deno.copyFileSync(join(ROOT, name), join(NPM_DIR, name));
  const main = exportsField["."];
  const pkg = {
    name: cfg.name,
    version: cfg.version,
    description: DESCRIPTION,
    license: cfg.license ?? "MIT",
    type: "module",
    ...(main ? { main: main.import, types: main.types } : {}),
    exports: exportsField,
    files: [...compiledTopLevel, ...COPIED_FILES],
    dependencies,
    engines: { node: ">=20" },
  };
  Deno.writeTextFileSync(join(NPM_DIR, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  console.log(
    `wrote npm/package.json: ${cfg.name}@${cfg.version}, ${
      Object.keys(exportsField).length
    } exports, dependencies ${JSON.stringify(dependencies)}`,
  );

  // 5. The written package must mirror deno.json's exports, with every file present.
  verifyExportsMirror(cfg, NPM_DIR);

  // 6. npm pack --dry-run must succeed and ship every export file.
  console.log("$ npm pack --dry-run (in npm/)");
  const packJson = await run("npm", ["pack", "--dry-run", "--json", "--loglevel=warn"], {
    cwd: NPM_DIR,
    capture: true,
  });
  const packed = new Set<string>(
    (JSON.parse(packJson) as { files: { path: string }[] }[])[0].files.map((f) => f.path),
  );
  const missing = [
    "package.json",
    ...COPIED_FILES,
    ...Object.values(exportsField).flatMap((e) => [e.import, e.types]).map((p) => p.slice(2)),
  ].filter((path) => !packed.has(path));
  if (missing.length > 0) {
    throw new BuildError(`npm pack would not ship: ${missing.join(", ")}`);
  }
  const size = [...packed].reduce(
    (sum, path) => sum + Deno.statSync(join(NPM_DIR, path)).size,
    0,
  );
  console.log(`npm pack --dry-run: ok, ${packed.size} files, ${(size / 1024).toFixed(1)} KiB`);

  // 7. Install the tarball into a scratch project and import every export under Node.
  if (smoke) await smokeTest(cfg);

  // 8. The Postgres adapter's package (adapters/postgres/npm/), compiled against this one.
  await buildPostgresPackage(smoke);
}

/** Reads deno.json and fails unless every export target exists in the source tree. */
function readConfigAndCheckTargets(): DenoConfig {
  const cfg = readDenoConfig();
  const missing = Object.entries(cfg.exports)
    .filter(([, target]) => !exists(join(ROOT, target)))
    .map(([key, target]) => `${key} → ${target}`);
  if (missing.length > 0) {
    throw new BuildError(
      `deno.json export targets do not exist:\n  - ${missing.join("\n  - ")}`,
    );
  }
  for (const target of Object.values(cfg.exports)) {
    if (dirname(join(ROOT, target)).startsWith(NPM_DIR)) {
      throw new BuildError(`export target ${target} lies inside npm/`);
    }
  }
  for (const name of COPIED_FILES) {
    if (!exists(join(ROOT, name))) {
      throw new BuildError(`${name} is missing at the repository root (it ships in the package)`);
    }
  }
  return cfg;
}

if (import.meta.main) {
  await runMain("build:npm", () => build(!Deno.args.includes("--no-smoke")));
}
