// The CLI's subprocess tests (import_suite.ts, serve_suite.ts) on the built npm package
// under Node: the core, Postgres adapter, HTTP transport and CLI tarballs (from `deno task build:npm`) installed into a
// scratch project, run as `node node_modules/.bin/codex-sync`.
//
// CODEX_SYNC_CLI_NODE_TESTS: unset, they run when the npm build exists and is newer than
// the sources, and are skipped with the reason otherwise; `require` (`deno task
// test:cli:node`, run by scripts/test_all.sh after the build) turns a missing or stale
// build into a failure; `skip` skips them (test_all's `test:cli` step, before the build).
import { after, test } from "node:test";
import { join } from "node:path";
import {
  exists,
  installTarballs,
  NPM_DIR,
  pack,
  ROOT,
  walkFiles,
} from "../../scripts/_build_common.ts";
import { POSTGRES_NPM_DIR as POSTGRES_NPM } from "../../adapters/postgres/scripts/build_npm.ts";
import { HTTP_NPM_DIR as HTTP_NPM } from "../../adapters/http/scripts/build_npm.ts";
import { importSuite } from "./import_suite.ts";
import { serveSuite } from "./serve_suite.ts";
import { nodeEntry, tempDir } from "./support.ts";

const CLI_NPM = join(ROOT, "cli", "npm");
/** Sources of the four packages: a newer one means the build is stale. */
const SOURCES = [
  "mod.ts",
  "src",
  "memory",
  "conformance",
  "adapters/postgres",
  "adapters/http",
  "cli",
];

function mtime(path: string): number {
  return Deno.statSync(path).mtime?.getTime() ?? 0;
}

/** Why the built package cannot be tested, or undefined when it can. */
function notReady(): string | undefined {
  const built = [NPM_DIR, POSTGRES_NPM, HTTP_NPM, CLI_NPM].map((dir) => join(dir, "package.json"));
  const missing = built.filter((path) => !exists(path));
  if (missing.length > 0) {
    return `not built (${missing.map((path) => path.slice(ROOT.length + 1)).join(", ")} ` +
      "missing): run `deno task build:npm`";
  }
  const builtAt = Math.min(...built.map(mtime));
  for (const source of SOURCES) {
    const path = join(ROOT, source);
    const files = source.endsWith(".ts") ? [""] : walkFiles(path)
      .filter((file) => file.endsWith(".ts") && !/(^|\/)(npm|tests|scripts)\//.test(file));
    const newer = files.find((file) => mtime(join(path, file)) > builtAt);
    if (newer !== undefined) {
      return `the npm build is older than ${join(source, newer)}: run \`deno task build:npm\``;
    }
  }
  return undefined;
}

const mode = Deno.env.get("CODEX_SYNC_CLI_NODE_TESTS");
const reason = mode === "skip"
  ? "CODEX_SYNC_CLI_NODE_TESTS=skip (`deno task test:cli:node` runs them)"
  : notReady();
if (reason !== undefined) {
  if (mode === "require") {
    throw new Error(`codex-sync npm bin under Node: ${reason}`);
  }
  test("node bin: the CLI's subprocess tests on the built npm package", { skip: reason }, () => {});
} else {
  const scratch = tempDir("node-bin");
  after(() => Deno.removeSync(scratch, { recursive: true }));
  const packs = join(scratch, "packs");
  Deno.mkdirSync(packs);
  const tarballs = [];
  for (const dir of [NPM_DIR, POSTGRES_NPM, HTTP_NPM, CLI_NPM]) {
    tarballs.push(await pack(dir, packs));
  }
  const app = join(scratch, "app");
  await installTarballs(app, tarballs);
  const entry = nodeEntry(join(app, "node_modules", ".bin", "codex-sync"));
  await importSuite(entry);
  serveSuite(entry);
}
