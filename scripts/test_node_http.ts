/**
 * Runs the conformance suite over the HTTP transport under Node's own test runner,
 * against the built npm packages (DESIGN §8), as scripts/test_node_postgres.ts does for
 * the Postgres adapter: the server is `createSyncHttpHandler` on a `node:http` server on
 * 127.0.0.1 (adapters/http/tests/support/node_loopback.ts), the client
 * `createHttpSyncAdapter` over Node's fetch, the backend the memory adapter and the
 * Postgres adapter on a throwaway cluster (or `DATABASE_URL`). Needs
 * `deno task build:npm` first (the core in `npm/`, the adapters in `adapters/*\/npm/`).
 *
 * 1. `npm pack` the core, Postgres and HTTP packages into `build/http-node/` and unpack
 *    the tarballs into `build/http-node/node_modules/@zakstam/…` (exactly the files npm
 *    would publish; one copy of the core, which both adapters import). Their npm
 *    dependencies resolve from the repository's node_modules.
 * 2. Stage the test entry points (`adapters/http/tests/node/*.node.ts`) and every test
 *    module they reach by relative import into `build/http-node/stage/` (same layout).
 *    A relative import of a library entry point (e.g. `../../memory/mod.ts` in
 *    tests/support/memory_harness.ts) becomes its package specifier, so library code
 *    comes only from the packages; a relative import of any other library module is
 *    refused.
 * 3. `tsc` the staged tests with the npm build's options (package specifiers type-check
 *    against the unpacked declarations), then `node --test --test-reporter=spec`.
 *
 * Usage: `deno task test:http:node` (extra arguments go to `node --test`, e.g.
 * `--test-name-pattern=seal`).
 *
 * @module
 */

import { dirname, join, normalize, relative } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  compileAndRunNodeTests,
  exists,
  NPM_DIR,
  ROOT,
  runMain,
  unpackBuiltPackages,
} from "./_build_common.ts";

const OUT_DIR = join(BUILD_DIR, "http-node");
const STAGE_DIR = join(OUT_DIR, "stage");
/** The entry points (repository-relative), one `node --test` file each. */
const ENTRIES = [
  "adapters/http/tests/node/conformance_memory.node.ts",
  "adapters/http/tests/node/conformance_postgres.node.ts",
];
/** Built packages the tests import (their npm output directories). */
const PACKAGE_DIRS = [
  NPM_DIR,
  join(ROOT, "adapters", "postgres", "npm"),
  join(ROOT, "adapters", "http", "npm"),
];
/** Library entry points (repository-relative) and the package specifier that ships each. */
const PACKAGE_OF: Record<string, string> = {
  "mod.ts": "@zakstam/codex-sync-engine",
  "src/engine/engine.ts": "@zakstam/codex-sync-engine",
  "conformance/mod.ts": "@zakstam/codex-sync-engine/conformance",
  "memory/mod.ts": "@zakstam/codex-sync-engine/memory",
  "adapters/http/mod.ts": "@zakstam/codex-sync-engine-http",
  "adapters/postgres/mod.ts": "@zakstam/codex-sync-engine-postgres",
};
/** Library code: reachable from the staged tests only through {@link PACKAGE_OF}. */
const LIBRARY = /^(mod\.ts$|src\/|memory\/|conformance\/|adapters\/[^/]+\/(mod\.ts$|src\/))/;
const RELATIVE_IMPORT = /((?:from|import)\s*\(?\s*)(["'])(\.\.?\/[^"']+)\2/g;

/**
 * Copies `entries` and the test modules they import into `STAGE_DIR`, rewriting relative
 * imports of library entry points to package specifiers. Returns the staged files.
 */
function stageTests(entries: readonly string[]): string[] {
  const staged = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (staged.has(file)) continue;
    staged.add(file);
    const text = Deno.readTextFileSync(join(ROOT, file)).replace(
      RELATIVE_IMPORT,
      (_match, head: string, quote: string, specifier: string) => {
        const target = normalize(join(dirname(file), specifier)).replaceAll("\\", "/");
        const packaged = PACKAGE_OF[target];
        if (packaged !== undefined) return `${head}${quote}${packaged}${quote}`;
        if (LIBRARY.test(target)) {
          throw new BuildError(
            `${file} imports library module ${target}: import it from its package instead`,
          );
        }
        if (!exists(join(ROOT, target))) throw new BuildError(`${file}: no such file ${target}`);
        queue.push(target);
        return `${head}${quote}${specifier}${quote}`;
      },
    );
    const out = join(STAGE_DIR, file);
    Deno.mkdirSync(dirname(out), { recursive: true });
    Deno.writeTextFileSync(out, text);
  }
  return [...staged];
}

async function main(): Promise<void> {
  // 1. The packed packages, unpacked where Node looks for them.
  const paths = await unpackBuiltPackages(PACKAGE_DIRS, OUT_DIR);
  // 2. The tests, staged with library imports through the packages.
  const staged = stageTests(ENTRIES);
  console.log(`staged ${staged.length} test modules into ${relative(ROOT, STAGE_DIR)}/`);
  // 3. Compiled against the unpacked packages' declarations, run by Node.
  await compileAndRunNodeTests({ outDir: OUT_DIR, rootDir: "stage", entries: ENTRIES, paths });
}

if (import.meta.main) await runMain("test:http:node", main);
