/**
 * Builds the CLI's npm package into `cli/npm/` with the shared workspace-member build
 * (`scripts/_build_member.ts`), after the core's and the Postgres adapter's
 * (`scripts/build_npm.ts` builds all three in that order). On npm the package ships the
 * Node host (`node_main.ts`, export `./node`) and a `codex-sync` bin running it; the Deno
 * host (`./main`) is JSR-only.
 *
 * Smoke test, with the three tarballs installed into a scratch project: under Node,
 * `node_modules/.bin/codex-sync import <the bundled sample>` into the default embedded
 * store (exit 0, verified), the same import again (a no-op that says so), and `--help`.
 *
 * Usage: `deno task build:npm:cli` (needs `npm/`, `adapters/postgres/npm/` and `adapters/http/npm/`).
 *
 * @module
 */

import { join } from "node:path";
import { BuildError, NPM_DIR, ROOT, runMain } from "../../scripts/_build_common.ts";
import { buildMemberPackage, type SmokeContext } from "../../scripts/_build_member.ts";
import { POSTGRES_NPM_DIR } from "../../adapters/postgres/scripts/build_npm.ts";
import { HTTP_NPM_DIR } from "../../adapters/http/scripts/build_npm.ts";

const PACKAGE_DIR = join(ROOT, "cli");
const SAMPLE = join(PACKAGE_DIR, "fixtures", "sample-rollout.jsonl");
const DESCRIPTION = "codex-sync: sync Codex CLI session files (rollout JSON Lines) into a " +
  "durable store, verified — embedded PGlite by default, or a PostgreSQL server.";

/** `bin/codex-sync.js`: the Node host's entry. */
const BIN = `#!/usr/bin/env node
import { runNodeCli } from "../node_main.js";

await runNodeCli();
`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function codexSync(bin: string, args: string[], cwd: string): Promise<Result> {
  console.log(`$ codex-sync ${args.join(" ")}`);
  const output = await new Deno.Command(bin, {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function expect(result: Result, what: string, ok: (result: Result) => boolean): void {
  if (!ok(result)) {
    throw new BuildError(
      `codex-sync under Node: ${what} (exit ${result.code})\n` +
        `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  console.log(`ok   ${what}`);
}

async function smoke({ appDir }: SmokeContext): Promise<void> {
  const bin = join(appDir, "node_modules", ".bin", "codex-sync");
  const work = join(appDir, "work");
  Deno.mkdirSync(work);
  const first = await codexSync(bin, ["import", SAMPLE], work);
  expect(
    first,
    "import of the sample into ./.codex-sync: exit 0, verified",
    (r) => r.code === 0 && /^imported .*; verified/m.test(r.stdout),
  );
  const again = await codexSync(bin, ["import", SAMPLE], work);
  expect(
    again,
    "the same import again is a no-op",
    (r) => r.code === 0 && /^unchanged .*nothing to do/m.test(r.stdout),
  );
  const help = await codexSync(bin, ["--help"], work);
  expect(help, "--help: exit 0", (r) => r.code === 0 && /^Usage: codex-sync /m.test(r.stdout));
}

/** Builds (and, with `smoke`, smoke-tests) the CLI's npm package. */
export async function buildCliPackage(smokeTest: boolean): Promise<void> {
  await buildMemberPackage({
    dir: PACKAGE_DIR,
    description: DESCRIPTION,
    workspaceDeps: [NPM_DIR, POSTGRES_NPM_DIR, HTTP_NPM_DIR],
    denoOnlyExports: ["./main"],
    node: true,
    bins: { "codex-sync": BIN },
    smoke,
  }, smokeTest);
}

if (import.meta.main) {
  await runMain("build:npm (cli)", () => buildCliPackage(!Deno.args.includes("--no-smoke")));
}
