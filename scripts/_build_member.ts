/**
 * Builds the npm package of a workspace member that depends on other workspace packages
 * (the core, the Postgres adapter) — one implementation for `adapters/postgres/npm/` and
 * `cli/npm/`. Same approach as the core's build: unbundled ESM + `.d.ts` compiled by tsc,
 * package.json `exports` mirroring the member's deno.json, `npm pack --dry-run`, then a
 * Node smoke test in a scratch project that installs the tarballs of the member and of
 * the workspace packages it depends on.
 *
 * Workspace packages are imported by name (`@zakstam/codex-sync-engine`): tsc resolves
 * them to their built declarations (tsconfig `paths` from their npm package.json
 * `exports`), and they become `^version` dependencies.
 *
 * @module
 */

import { join, relative } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  collectDependencies,
  compiledPaths,
  type DenoConfig,
  exists,
  installTarballs,
  type NpmExportEntry,
  pack,
  packDryRun,
  readDenoConfig,
  removeRepoDir,
  rewriteDeclarationImports,
  ROOT,
  runTsc,
  topLevelFiles,
  verifyExportsMirror,
  withScratchDir,
} from "./_build_common.ts";
import { specifiers, typeCheckConsumer } from "./npm_smoke.ts";

/** Files copied verbatim from the member's directory into its package. */
const COPIED_FILES = ["README.md", "LICENSE"];

/** What the smoke test of a member gets: the scratch project with every tarball installed. */
export interface SmokeContext {
  /** The scratch npm project (holds node_modules). */
  appDir: string;
  /** The tarballs installed, workspace dependencies first, the member's last. */
  tarballs: string[];
}

/** A workspace member to build. */
export interface MemberPackage {
  /** The member's directory (holds deno.json, README.md and LICENSE). */
  dir: string;
  description: string;
  /** npm directories of the workspace packages it imports, built before it. */
  workspaceDeps: string[];
  /** deno.json exports that only work on Deno (not shipped on npm). */
  denoOnlyExports?: string[];
  /** Allow `node:*` imports and compile with Node's types (a Node-only package). */
  node?: boolean;
  /**
   * Packages the host brings itself (declared `peerDependencies` at the range deno.json
   * maps them to, e.g. `convex`): one copy shared with the host's own code.
   */
  peerDependencies?: string[];
  /**
   * Ambient type packages a consumer of this package needs (`node` → `@types/node`, at the
   * workspace's devDependency range): installed into the smoke project and listed in its
   * consumer's `types`. A Node-only package (`node`) always gets `node`.
   */
  consumerTypes?: string[];
  /** Executables: command name → the text of `bin/<name>.js`. */
  bins?: Record<string, string>;
  /** The member's own checks under Node, after the tarballs are installed. */
  smoke?: (context: SmokeContext) => Promise<void>;
}

interface BuiltPackage {
  dir: string;
  name: string;
  version: string;
  exports: Record<string, NpmExportEntry>;
}

function readBuilt(npmDir: string): BuiltPackage {
  const path = join(npmDir, "package.json");
  if (!exists(path)) {
    throw new BuildError(`${relative(ROOT, npmDir)}/ is not built: run \`deno task build:npm\``);
  }
  const pkg = JSON.parse(Deno.readTextFileSync(path)) as Omit<BuiltPackage, "dir">;
  return { dir: npmDir, name: pkg.name, version: pkg.version, exports: pkg.exports };
}

/** tsconfig `paths` sending each export of the built packages to its declarations. */
function declarationPaths(deps: readonly BuiltPackage[]): Record<string, string[]> {
  const paths: Record<string, string[]> = {};
  for (const dep of deps) {
    for (const [key, entry] of Object.entries(dep.exports)) {
      const specifier = key === "." ? dep.name : dep.name + key.slice(1);
      paths[specifier] = [relative(BUILD_DIR, join(dep.dir, entry.types))];
    }
  }
  return paths;
}

/** `@types/<name>@<range>` at the range of the workspace's devDependency. */
function typesPackage(name: string): string {
  const pkg = JSON.parse(Deno.readTextFileSync(join(ROOT, "package.json"))) as {
    devDependencies?: Record<string, string>;
  };
  const range = pkg.devDependencies?.[`@types/${name}`];
  if (range === undefined) {
    throw new BuildError(`@types/${name} is not a devDependency of the workspace's package.json`);
  }
  return `@types/${name}@${range}`;
}

/** Moves the `peers` out of the imported dependencies; fails on a peer never imported. */
function splitPeers(
  imported: Record<string, string>,
  peers: readonly string[],
): { dependencies: Record<string, string>; peerDependencies: Record<string, string> } {
  const dependencies = { ...imported };
  const peerDependencies: Record<string, string> = {};
  for (const name of peers) {
    if (!(name in dependencies)) {
      throw new BuildError(`peer dependency ${name} is not imported by the compiled package`);
    }
    peerDependencies[name] = dependencies[name];
    delete dependencies[name];
  }
  return { dependencies, peerDependencies };
}

/** Builds (and, with `smoke`, smoke-tests) a member's npm package into `<dir>/npm/`. */
export async function buildMemberPackage(member: MemberPackage, smoke: boolean): Promise<void> {
  const cfg = readDenoConfig(member.dir);
  const label = relative(ROOT, member.dir);
  const outDir = join(member.dir, "npm");
  const deps = member.workspaceDeps.map(readBuilt);
  const denoOnly = new Set(member.denoOnlyExports ?? []);
  for (const key of denoOnly) {
    if (!(key in cfg.exports)) throw new BuildError(`${label}: no deno.json export ${key}`);
  }
  const shipped: DenoConfig = {
    ...cfg,
    exports: Object.fromEntries(Object.entries(cfg.exports).filter(([key]) => !denoOnly.has(key))),
  };
  for (const name of COPIED_FILES) {
    if (!exists(join(member.dir, name))) throw new BuildError(`${label}/${name} is missing`);
  }

  // 1. Compile the shipped export targets with tsc, against the built workspace packages.
  if (exists(outDir)) removeRepoDir(outDir);
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const tsconfig = join(BUILD_DIR, `tsconfig.npm-${label.replaceAll("/", "-")}.json`);
  const fromBuild = (path: string) => relative(BUILD_DIR, path);
  Deno.writeTextFileSync(
    tsconfig,
    JSON.stringify(
      {
        extends: "../tsconfig.build.json",
        compilerOptions: {
          rootDir: fromBuild(member.dir),
          outDir: fromBuild(outDir),
          paths: declarationPaths(deps),
          ...(member.node ? { types: ["node"] } : {}),
        },
        files: Object.values(shipped.exports).map((target) => fromBuild(join(member.dir, target))),
      },
      null,
      2,
    ) + "\n",
  );
  await runTsc(tsconfig);

  // 2. Imports: `.d.ts` ones rewritten to `.js`; relative ones must resolve, bare ones
  //    become dependencies.
  rewriteDeclarationImports(outDir);
  const imported = collectDependencies(outDir, cfg, {
    workspace: Object.fromEntries(deps.map((dep) => [dep.name, `^${dep.version}`])),
    nodeBuiltins: member.node,
  });
  const { dependencies, peerDependencies } = splitPeers(imported, member.peerDependencies ?? []);

  // 3. bin scripts, package.json, README, LICENSE.
  const exportsField: Record<string, NpmExportEntry> = {};
  for (const [key, target] of Object.entries(shipped.exports)) {
    const { js, dts } = compiledPaths(target);
    exportsField[key] = { types: dts, import: js, default: js };
  }
  const bin: Record<string, string> = {};
  for (const [name, text] of Object.entries(member.bins ?? {})) {
    Deno.mkdirSync(join(outDir, "bin"), { recursive: true });
    const path = join(outDir, "bin", `${name}.js`);
    Deno.writeTextFileSync(path, text);
    Deno.chmodSync(path, 0o755);
    // No leading "./": npm ≥ 11 drops such a bin from the manifest it publishes.
    bin[name] = `bin/${name}.js`;
  }
  const files = topLevelFiles(outDir);
  for (const name of COPIED_FILES) Deno.copyFileSync(join(member.dir, name), join(outDir, name));
  const main = exportsField["."];
  Deno.writeTextFileSync(
    join(outDir, "package.json"),
    JSON.stringify(
      {
        name: cfg.name,
        version: cfg.version,
        description: member.description,
        license: cfg.license ?? "MIT",
        type: "module",
        ...(main ? { main: main.import, types: main.types } : {}),
        ...(member.bins ? { bin } : {}),
        exports: exportsField,
        files: [...files, ...COPIED_FILES],
        dependencies,
        ...(member.peerDependencies ? { peerDependencies } : {}),
        engines: { node: ">=20" },
      },
      null,
      2,
    ) + "\n",
  );
  console.log(
    `wrote ${label}/npm/package.json: ${cfg.name}@${cfg.version}, ` +
      `dependencies ${JSON.stringify(dependencies)}` +
      (member.peerDependencies ? `, peerDependencies ${JSON.stringify(peerDependencies)}` : ""),
  );

  // 4. The package mirrors the shipped exports, and npm would pack every file of them.
  verifyExportsMirror(shipped, outDir);
  const packed = await packDryRun(outDir, [
    "package.json",
    ...COPIED_FILES,
    ...Object.values(bin),
    ...Object.values(exportsField).flatMap((entry) => [entry.import, entry.types]),
  ]);
  console.log(
    `npm pack --dry-run (${label}/npm): ok, ${packed.files} files, ` +
      `${(packed.bytes / 1024).toFixed(1)} KiB`,
  );

  // 5. Install with its workspace dependencies into a scratch project; type-check a strict
  //    consumer of every shipped export; the member's own checks.
  if (!smoke) return;
  await withScratchDir(`${label.replaceAll("/", "-")}-npm-smoke`, async (tmp) => {
    const packDir = join(tmp, "packs");
    Deno.mkdirSync(packDir);
    const tarballs: string[] = [];
    for (const dir of [...deps.map((dep) => dep.dir), outDir]) {
      tarballs.push(await pack(dir, packDir));
    }
    const appDir = join(tmp, "app");
    const types = [...new Set([...(member.node ? ["node"] : []), ...(member.consumerTypes ?? [])])];
    await installTarballs(appDir, [...tarballs, ...types.map(typesPackage)]);
    await typeCheckConsumer(appDir, specifiers(shipped), types);
    await member.smoke?.({ appDir, tarballs });
  });
}
