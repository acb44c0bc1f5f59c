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
 * same for the workspace members that depend on it (`scripts/_build_member.ts`): the
 * Postgres adapter (`adapters/postgres/scripts/build_npm.ts`), the HTTP transport
 * (`adapters/http/scripts/build_npm.ts`), the Convex adapter
 * (`adapters/convex/scripts/build_npm.ts`, `convex` as a peer dependency), then the CLI (`cli/scripts/build_npm.ts`, with
 * its `codex-sync` bin).
 *
 * Usage: `deno task build:npm` (or `deno task build:npm --no-smoke`).
 *
 * @module
 */

import { dirname, join } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  collectDependencies,
  compiledPaths,
  type DenoConfig,
  exists,
  NPM_DIR,
  type NpmExportEntry,
  packDryRun,
  readDenoConfig,
  removeRepoDir,
  rewriteDeclarationImports,
  ROOT,
  runMain,
  runTsc,
  topLevelFiles,
  verifyExportsMirror,
} from "./_build_common.ts";
import { smokeTest } from "./npm_smoke.ts";
import { buildPostgresPackage } from "../adapters/postgres/scripts/build_npm.ts";
import { buildHttpPackage } from "../adapters/http/scripts/build_npm.ts";
import { buildConvexPackage } from "../adapters/convex/scripts/build_npm.ts";
import { buildCliPackage } from "../cli/scripts/build_npm.ts";

const DESCRIPTION =
  "Backend-agnostic, durable and verified chunked sync of coding-agent conversations: " +
  "resumable parallel upload, sealed manifests, leased jobs with retries, verified terminal states.";

/** Files copied verbatim into the package. */
const COPIED_FILES = ["README.md", "LICENSE"];

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
  console.log(
    `rewrote ${rewriteDeclarationImports(NPM_DIR)} relative .ts imports in .d.ts files to .js`,
  );
  const dependencies = collectDependencies(NPM_DIR, cfg);

  // 4. package.json, README, LICENSE.
  const compiledTopLevel = topLevelFiles(NPM_DIR);
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
  const packed = await packDryRun(NPM_DIR, [
    "package.json",
    ...COPIED_FILES,
    ...Object.values(exportsField).flatMap((e) => [e.import, e.types]),
  ]);
  console.log(
    `npm pack --dry-run: ok, ${packed.files} files, ${(packed.bytes / 1024).toFixed(1)} KiB`,
  );

  // 7. Install the tarball into a scratch project and import every export under Node.
  if (smoke) await smokeTest(cfg);

  // 8. The Postgres adapter's package (adapters/postgres/npm/), the HTTP transport's
  //    (adapters/http/npm/) and the Convex adapter's (adapters/convex/npm/), compiled
  //    against this one, then the CLI's (cli/npm/),
  //    compiled against the core and Postgres.
  await buildPostgresPackage(smoke);
  await buildHttpPackage(smoke);
  await buildConvexPackage(smoke);
  await buildCliPackage(smoke);
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
