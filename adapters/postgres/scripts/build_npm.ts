/**
 * Builds the adapter's npm package into `adapters/postgres/npm/` with the TypeScript
 * compiler, after the core's (`npm/`, built first by `scripts/build_npm.ts`, which calls
 * this). Same approach as the core: unbundled ESM + `.d.ts`, package.json `exports`
 * mirroring this package's deno.json, `npm pack --dry-run`, then a Node smoke test that
 * installs both tarballs into a scratch project and syncs a conversation on an in-memory
 * PGlite under Node.
 *
 * The core is imported by package name (`@zakstam/codex-sync-engine`): tsc resolves it to
 * the core's built declarations, and it becomes a dependency of the package.
 *
 * @module
 */

import ts from "typescript";
import { join, posix } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  compiledPaths,
  exists,
  NPM_DIR,
  removeRepoDir,
  ROOT,
  run,
  runMain,
  runTsc,
  walkFiles,
} from "../../../scripts/_build_common.ts";

const PACKAGE_DIR = join(ROOT, "adapters", "postgres");
const OUT_DIR = join(PACKAGE_DIR, "npm");
const CORE_NAME = "@zakstam/codex-sync-engine";
const COPIED_FILES = ["README.md", "LICENSE"];
const DESCRIPTION = "PostgreSQL adapter of @zakstam/codex-sync-engine: durable, " +
  "multi-worker, exactly-once sync on PGlite (embedded) or a PostgreSQL server (postgres.js).";

interface PackageConfig {
  name: string;
  version: string;
  license?: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
}

function readJson<T>(path: string): T {
  return JSON.parse(Deno.readTextFileSync(path)) as T;
}

function npmRange(specifier: string): string {
  const match = /^npm:(?:@[^/@]+\/)?[^/@]+@(.+)$/.exec(specifier);
  if (!match) throw new BuildError(`deno.json import ${specifier} is not an npm: specifier`);
  return match[1];
}

/** tsc keeps `.ts` in the relative imports of emitted `.d.ts` files: point them at `.js`. */
function rewriteDeclarationImports(): void {
  for (const file of walkFiles(OUT_DIR)) {
    if (!file.endsWith(".d.ts")) continue;
    const path = join(OUT_DIR, file);
    let text = Deno.readTextFileSync(path);
    const refs = ts.preProcessFile(text, true, true).importedFiles
      .filter((ref) => /^\.\.?\//.test(ref.fileName) && /(?<!\.d)\.ts$/.test(ref.fileName))
      .sort((a, b) => b.pos - a.pos);
    for (const ref of refs) {
      const start = text.indexOf(ref.fileName, ref.pos);
      text = text.slice(0, start) + ref.fileName.replace(/\.ts$/, ".js") +
        text.slice(start + ref.fileName.length);
    }
    if (refs.length > 0) Deno.writeTextFileSync(path, text);
  }
}

/** Checks every import of the output; returns the npm dependencies. */
function dependenciesOf(cfg: PackageConfig, coreVersion: string): Record<string, string> {
  const problems: string[] = [];
  const deps = new Map<string, string>();
  for (const file of walkFiles(OUT_DIR)) {
    if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue;
    const text = Deno.readTextFileSync(join(OUT_DIR, file));
    for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
      if (spec.startsWith(".")) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        const candidates = [target, target.replace(/\.js$/, ".d.ts")];
        if (!spec.endsWith(".js") || !candidates.some((c) => exists(join(OUT_DIR, c)))) {
          problems.push(`${file}: relative import ${spec} does not resolve inside npm/`);
        }
        continue;
      }
      const name = spec.startsWith("@")
        ? spec.split("/").slice(0, 2).join("/")
        : spec.split("/")[0];
      if (name === CORE_NAME) deps.set(name, `^${coreVersion}`);
      else if (cfg.imports[name]) deps.set(name, npmRange(cfg.imports[name]));
      else problems.push(`${file}: imports ${spec}, which deno.json "imports" does not declare`);
    }
  }
  if (problems.length > 0) {
    throw new BuildError(`bad imports in the adapter package:\n  - ${problems.join("\n  - ")}`);
  }
  return Object.fromEntries([...deps].sort(([a], [b]) => a.localeCompare(b)));
}

/** Packs `dir` into `destination`; returns the tarball's path. */
async function pack(dir: string, destination: string): Promise<string> {
  const out = await run("npm", [
    "pack",
    "--json",
    "--loglevel=warn",
    "--pack-destination",
    destination,
  ], {
    cwd: dir,
    capture: true,
  });
  return join(destination, (JSON.parse(out) as { filename: string }[])[0].filename);
}

const SMOKE_SCRIPT = `
import { syncConversation } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
const applied = [];
const adapter = await createPostgresAdapter({
  handler: {
    async apply(chunk, ctx) {
      await ctx.sql.query("SELECT 1");
      applied.push(chunk.index);
    },
  },
});
const records = Array.from({ length: 200 }, (_, i) => ({ i, text: "héllo ✓ " + i }));
const { job } = await syncConversation(adapter, {
  scope: "smoke", conversationId: "c", payload: records, chunkSize: 1024,
});
await adapter.close();
if (job.state !== "succeeded" || applied.length !== job.totalChunks) {
  console.error("FAIL", job.state, applied.length, job.totalChunks);
  process.exit(1);
}
console.log("ok   synced " + job.totalChunks + " chunks on PGlite under Node " + process.version);
`;

/** Installs the core and adapter tarballs into a scratch project and syncs under Node. */
async function smokeTest(): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "codex-sync-postgres-npm-smoke-" });
  let ok = false;
  try {
    const packs = join(tmp, "packs");
    const app = join(tmp, "app");
    await Deno.mkdir(packs);
    await Deno.mkdir(app);
    const tarballs = [await pack(NPM_DIR, packs), await pack(OUT_DIR, packs)];
    await Deno.writeTextFile(
      join(app, "package.json"),
      JSON.stringify({ name: "postgres-npm-smoke", private: true, type: "module" }) + "\n",
    );
    console.log("$ npm install <core tarball> <adapter tarball> (in scratch project)");
    await run("npm", [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=warn",
      "--ignore-scripts",
      ...tarballs,
    ], { cwd: app });
    await Deno.writeTextFile(join(app, "smoke.mjs"), SMOKE_SCRIPT);
    await run("node", ["smoke.mjs"], { cwd: app });
    ok = true;
  } finally {
    if (ok) await Deno.remove(tmp, { recursive: true });
    else console.error(`postgres npm smoke test: scratch directory kept at ${tmp}`);
  }
}

/** Builds (and, with `smoke`, smoke-tests) the adapter's npm package. */
export async function buildPostgresPackage(smoke: boolean): Promise<void> {
  const cfg = readJson<PackageConfig>(join(PACKAGE_DIR, "deno.json"));
  if (!exists(join(NPM_DIR, "package.json"))) {
    throw new BuildError("the core npm package (npm/) is not built: run `deno task build:npm`");
  }
  const core = readJson<{ version: string }>(join(NPM_DIR, "package.json"));
  if (exists(OUT_DIR)) removeRepoDir(OUT_DIR);
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const tsconfig = join(BUILD_DIR, "tsconfig.npm-postgres.json");
  Deno.writeTextFileSync(
    tsconfig,
    JSON.stringify(
      {
        extends: "../tsconfig.build.json",
        compilerOptions: {
          rootDir: "../adapters/postgres",
          outDir: "../adapters/postgres/npm",
          paths: { [CORE_NAME]: ["../npm/mod.d.ts"] },
        },
        files: Object.values(cfg.exports).map((target) => `../adapters/postgres/${target}`),
      },
      null,
      2,
    ) + "\n",
  );
  await runTsc(tsconfig);
  rewriteDeclarationImports();
  const dependencies = dependenciesOf(cfg, core.version);

  const exportsField: Record<string, { types: string; import: string; default: string }> = {};
  for (const [key, target] of Object.entries(cfg.exports)) {
    const { js, dts } = compiledPaths(target);
    for (const file of [js, dts]) {
      if (!exists(join(OUT_DIR, file))) throw new BuildError(`export ${key}: ${file} not emitted`);
    }
    exportsField[key] = { types: dts, import: js, default: js };
  }
  const files = [...Deno.readDirSync(OUT_DIR)]
    .map((entry) => entry.isDirectory ? `${entry.name}/` : entry.name)
    .sort();
  for (const name of COPIED_FILES) Deno.copyFileSync(join(PACKAGE_DIR, name), join(OUT_DIR, name));
  const main = exportsField["."];
  Deno.writeTextFileSync(
    join(OUT_DIR, "package.json"),
    JSON.stringify(
      {
        name: cfg.name,
        version: cfg.version,
        description: DESCRIPTION,
        license: cfg.license ?? "MIT",
        type: "module",
        main: main.import,
        types: main.types,
        exports: exportsField,
        files: [...files, ...COPIED_FILES],
        dependencies,
        engines: { node: ">=20" },
      },
      null,
      2,
    ) + "\n",
  );
  console.log(
    `wrote adapters/postgres/npm/package.json: ${cfg.name}@${cfg.version}, ` +
      `dependencies ${JSON.stringify(dependencies)}`,
  );
  await run("npm", ["pack", "--dry-run", "--loglevel=warn"], { cwd: OUT_DIR, capture: true });
  console.log("npm pack --dry-run (adapters/postgres/npm): ok");
  if (smoke) await smokeTest();
}

if (import.meta.main) {
  await runMain(
    "build:npm (postgres)",
    () => buildPostgresPackage(!Deno.args.includes("--no-smoke")),
  );
}
