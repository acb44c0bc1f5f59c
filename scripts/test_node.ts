/**
 * Runs the test suite under Node's own test runner against compiled JavaScript
 * (DESIGN §8: under Node the tests run against the built package).
 *
 * 1. `tsc -p tsconfig.test.json`: compiles every `tests/**\/*.ts` (and, through their
 *    relative imports, the library sources) into `build/` with the same compiler
 *    options as the npm build, so `build/tests/x.test.js` imports `build/src/…js`.
 *    `zod` and `fast-check` resolve from the repository's node_modules (build/ lives
 *    inside the repository).
 * 2. Every compiled library module that the npm package also ships must be
 *    byte-identical to `npm/<same path>` (run `deno task build:npm` first): the code the
 *    tests exercise is the code that is published.
 * 3. `node --test --test-reporter=spec` on every `build/tests/**\/*.test.js` (other files
 *    under tests/, e.g. fixtures, are copied next to the compiled tests first).
 *
 * Usage: `deno task test:node` (extra arguments go to `node --test`, e.g.
 * `--test-name-pattern=seal`).
 *
 * @module
 */

import { dirname, join } from "node:path";
import {
  BUILD_DIR,
  BuildError,
  exists,
  NPM_DIR,
  removeRepoDir,
  ROOT,
  runMain,
  runNodeTests,
  runTsc,
  walkFiles,
} from "./_build_common.ts";

async function main(): Promise<void> {
  const sources = walkFiles(join(ROOT, "tests")).filter((f) => f.endsWith(".test.ts"));
  if (sources.length === 0) throw new BuildError("no tests/**/*.test.ts files found");

  if (exists(BUILD_DIR)) removeRepoDir(BUILD_DIR);
  await runTsc(join(ROOT, "tsconfig.test.json"));
  // Non-TypeScript files under tests/ (fixtures read at run time) go next to the
  // compiled tests, so `new URL("./x", import.meta.url)` finds them.
  for (const file of walkFiles(join(ROOT, "tests"))) {
    if (/\.[mc]?ts$/.test(file)) continue;
    const target = join(BUILD_DIR, "tests", file);
    Deno.mkdirSync(dirname(target), { recursive: true });
    Deno.copyFileSync(join(ROOT, "tests", file), target);
  }

  // The compiled library modules must be the ones the npm package ships.
  if (exists(join(NPM_DIR, "package.json"))) {
    let same = 0;
    const differ: string[] = [];
    for (const file of walkFiles(BUILD_DIR)) {
      if (!file.endsWith(".js") || file.startsWith("tests/")) continue;
      const shipped = join(NPM_DIR, file);
      if (!exists(shipped)) continue; // internal module used by tests only
      const a = Deno.readFileSync(join(BUILD_DIR, file));
      const b = Deno.readFileSync(shipped);
      if (a.length === b.length && a.every((byte, i) => byte === b[i])) same++;
      else differ.push(file);
    }
    if (differ.length > 0) {
      throw new BuildError(
        `compiled modules differ from npm/ (stale npm build? run \`deno task build:npm\`): ${
          differ.join(", ")
        }`,
      );
    }
    console.log(`${same} compiled library modules are identical to the npm package's`);
  } else {
    console.warn("warning: npm/ is not built; run `deno task build:npm` to compare with it");
  }

  const tests = walkFiles(join(BUILD_DIR, "tests"))
    .filter((f) => f.endsWith(".test.js"))
    .map((f) => join("build", "tests", f));
  if (tests.length !== sources.length) {
    throw new BuildError(
      `compiled ${tests.length} test files from ${sources.length} tests/**/*.test.ts files`,
    );
  }
  await runNodeTests(tests);
}

if (import.meta.main) await runMain("test:node", main);
