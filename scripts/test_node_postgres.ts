/**
 * Runs the Postgres adapter's conformance suite on a PostgreSQL server (a throwaway
 * cluster, or `DATABASE_URL`; Deno also runs it on PGlite, Bun on PGlite only), under
 * Node's own test runner against the built npm packages (DESIGN §8: under Node the
 * tests run against the built package). Needs
 * `deno task build:npm` first (the core in `npm/`, the adapter in `adapters/postgres/npm/`).
 *
 * 1. `npm pack` both packages into `build/postgres-node/` and unpack the tarballs into
 *    `build/postgres-node/node_modules/@zakstam/…`: the tests see exactly the files npm
 *    would publish, and the adapter's own `import "@zakstam/codex-sync-engine"` resolves
 *    to the same unpacked core (one copy of it, as in an install). Their npm dependencies
 *    (`zod`, `postgres`, `@electric-sql/pglite`) resolve from the repository's
 *    node_modules (build/ lives inside the repository), with no network access.
 * 2. `tsc`: compiles the conformance tests of `adapters/postgres/tests/` and their support
 *    modules into `build/postgres-node/tests/` with the npm build's options; the package
 *    specifiers type-check against the unpacked packages' declarations.
 * 3. `node --test --test-reporter=spec` on the compiled tests.
 *
 * The adapter's other tests (fault, restart, server, adapter) run under Deno only
 * (`deno task test:postgres`).
 *
 * Usage: `deno task test:postgres:node` (extra arguments go to `node --test`, e.g.
 * `--test-name-pattern=seal`).
 *
 * @module
 */

import { join, relative } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  exists,
  NPM_DIR,
  pack,
  removeRepoDir,
  ROOT,
  run,
  runMain,
  runNodeTests,
  runTsc,
} from "./_build_common.ts";

const ADAPTER_DIR = join(ROOT, "adapters", "postgres");
const ADAPTER_NPM_DIR = join(ADAPTER_DIR, "npm");
/** The test files compiled and run (relative to the adapter's tests/). */
const TESTS = ["conformance_server.test.ts"];
const OUT_DIR = join(BUILD_DIR, "postgres-node");

interface PackageJson {
  name: string;
  exports: Record<string, { types: string }>;
}

function readPackage(dir: string): PackageJson {
  const path = join(dir, "package.json");
  if (!exists(path)) {
    throw new BuildError(`${relative(ROOT, dir)}/ is not built: run \`deno task build:npm\``);
  }
  return JSON.parse(Deno.readTextFileSync(path)) as PackageJson;
}

async function main(): Promise<void> {
  const packages = [NPM_DIR, ADAPTER_NPM_DIR].map((dir) => ({ dir, pkg: readPackage(dir) }));
  if (exists(OUT_DIR)) removeRepoDir(OUT_DIR);
  const packDir = join(OUT_DIR, "packs");
  Deno.mkdirSync(packDir, { recursive: true });

  // 1. The packed packages, unpacked where Node looks for them.
  const paths: Record<string, string[]> = {};
  for (const { dir, pkg } of packages) {
    const tarball = await pack(dir, packDir);
    const target = join(OUT_DIR, "node_modules", ...pkg.name.split("/"));
    Deno.mkdirSync(target, { recursive: true });
    await run("tar", ["-xzf", tarball, "-C", target, "--strip-components=1"]);
    console.log(`unpacked ${relative(ROOT, tarball)} into ${relative(ROOT, target)}/`);
    for (const [key, entry] of Object.entries(pkg.exports)) {
      const specifier = key === "." ? pkg.name : pkg.name + key.slice(1);
      paths[specifier] = [`./${relative(OUT_DIR, join(target, entry.types))}`];
    }
  }

  // 2. The tests, compiled against the unpacked packages' declarations.
  const testsDir = join(ADAPTER_DIR, "tests");
  const tsconfig = join(OUT_DIR, "tsconfig.json");
  Deno.writeTextFileSync(
    tsconfig,
    JSON.stringify(
      {
        extends: relative(OUT_DIR, join(ROOT, "tsconfig.build.json")),
        compilerOptions: {
          rootDir: relative(OUT_DIR, testsDir),
          outDir: "tests",
          declaration: false,
          types: ["node"],
          paths,
        },
        files: TESTS.map((file) => relative(OUT_DIR, join(testsDir, file))),
      },
      null,
      2,
    ) + "\n",
  );
  await runTsc(tsconfig);

  // 3. Node's test runner on the compiled tests.
  const tests = TESTS.map((file) => join(OUT_DIR, "tests", file.replace(/\.ts$/, ".js")));
  for (const test of tests) {
    if (!exists(test)) throw new BuildError(`tsc did not emit ${relative(ROOT, test)}`);
  }
  await runNodeTests(tests.map((test) => relative(ROOT, test)));
}

if (import.meta.main) await runMain("test:postgres:node", main);
