/**
 * Node smoke test of the built npm package (`npm/`): `npm pack` it into a scratch
 * directory, `npm install` the tarball into a scratch project (dependencies come from
 * npm's cache when present: `--prefer-offline`), then under Node
 *
 * - import every export subpath **by package name** and require at least one export each;
 * - type-check a consumer that imports every subpath (`moduleResolution: NodeNext`,
 *   `skipLibCheck: false`), so the shipped `.d.ts` files and `types` conditions resolve.
 *
 * Run by `deno task build:npm`, or alone on an existing build by
 * `deno task test:npm-smoke`. The scratch directory is removed on success and kept (path
 * printed) on failure.
 *
 * @module
 */

import { join } from "node:path";
import {
  type DenoConfig,
  installTarballs,
  NPM_DIR,
  pack,
  readDenoConfig,
  run,
  runMain,
  tscPath,
  verifyExportsMirror,
} from "./_build_common.ts";

/** Import specifier, by package name, of each export key. */
export function specifiers(cfg: DenoConfig): string[] {
  return Object.keys(cfg.exports).map((key) => key === "." ? cfg.name : cfg.name + key.slice(1));
}

/**
 * Type-checks, in the scratch project `appDir`, a consumer importing every specifier as an
 * npm user's strict project would (`moduleResolution: NodeNext`, `skipLibCheck: false`):
 * the shipped `.d.ts` files, their `types` conditions and those of their dependencies must
 * resolve and check clean. `types` lists the ambient type packages the consumer opts into
 * (e.g. `node` for a Node-only package; they must be installed in `appDir`).
 */
export async function typeCheckConsumer(
  appDir: string,
  specs: readonly string[],
  types: readonly string[] = [],
): Promise<void> {
  await Deno.writeTextFile(
    join(appDir, "consumer.ts"),
    specs.map((spec, i) => `import * as m${i} from ${JSON.stringify(spec)};`).join("\n") +
      `\nexport const modules: object[] = [${specs.map((_, i) => `m${i}`).join(", ")}];\n`,
  );
  await Deno.writeTextFile(
    join(appDir, "tsconfig.json"),
    JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2023", "DOM", "DOM.Iterable", "DOM.AsyncIterable"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types,
        },
        files: ["consumer.ts"],
      },
      null,
      2,
    ),
  );
  console.log(
    `$ tsc -p tsconfig.json (a consumer importing ${specs.join(", ")}; skipLibCheck: false)`,
  );
  await run("node", [tscPath(), "-p", join(appDir, "tsconfig.json")], { cwd: appDir });
}

/** Packs, installs and imports the package under Node; throws a BuildError on failure. */
export async function smokeTest(cfg: DenoConfig): Promise<void> {
  verifyExportsMirror(cfg, NPM_DIR);
  const tmp = await Deno.makeTempDir({ prefix: "codex-sync-npm-smoke-" });
  let ok = false;
  try {
    console.log(`npm smoke test in ${tmp}`);
    const packDir = join(tmp, "pack");
    const appDir = join(tmp, "app");
    await Deno.mkdir(packDir);

    const tarball = await pack(NPM_DIR, packDir);
    console.log(`packed ${tarball}`);
    await installTarballs(appDir, [tarball]);

    const specs = specifiers(cfg);
    const importCheck = `
const specs = ${JSON.stringify(specs)};
let failed = 0;
for (const spec of specs) {
  try {
    const mod = await import(spec);
    const names = Object.keys(mod);
    if (names.length === 0) {
      failed++;
      console.error("FAIL " + spec + ": no exports");
    } else {
      console.log("ok   " + spec + " (" + names.length + " exports)");
    }
  } catch (error) {
    failed++;
    console.error("FAIL " + spec + ": " + (error && error.stack || error));
  }
}
if (failed > 0) process.exit(1);
`;
    const nodeVersion = (await run("node", ["--version"], { capture: true })).trim();
    console.log(`$ node -e <import every export by package name> (node ${nodeVersion})`);
    await run("node", ["--input-type=module", "-e", importCheck], { cwd: appDir });

    await typeCheckConsumer(appDir, specs);
    console.log(`npm smoke test: ok, ${specs.length} exports imported and type-checked`);
    ok = true;
  } finally {
    if (ok) await Deno.remove(tmp, { recursive: true });
    else console.error(`npm smoke test: scratch directory kept at ${tmp}`);
  }
}

if (import.meta.main) {
  await runMain("test:npm-smoke", () => smokeTest(readDenoConfig()));
}
