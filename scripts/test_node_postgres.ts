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
  compileAndRunNodeTests,
  NPM_DIR,
  ROOT,
  runMain,
  unpackBuiltPackages,
} from "./_build_common.ts";

const ADAPTER_DIR = join(ROOT, "adapters", "postgres");
const ADAPTER_NPM_DIR = join(ADAPTER_DIR, "npm");
/** The test files compiled and run (relative to the adapter's tests/). */
const TESTS = ["conformance_server.test.ts"];
const OUT_DIR = join(BUILD_DIR, "postgres-node");

async function main(): Promise<void> {
  // 1. The packed packages, unpacked where Node looks for them.
  const paths = await unpackBuiltPackages([NPM_DIR, ADAPTER_NPM_DIR], OUT_DIR);
  // 2. and 3. The tests, compiled against the unpacked packages' declarations, run by Node.
  await compileAndRunNodeTests({
    outDir: OUT_DIR,
    rootDir: relative(OUT_DIR, join(ADAPTER_DIR, "tests")),
    entries: TESTS,
    paths,
  });
}

if (import.meta.main) await runMain("test:postgres:node", main);
