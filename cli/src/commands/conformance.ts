/**
 * `codex-sync conformance <module>`: runs the adapter conformance suite against the
 * target a user's module exports, printing a per-case table.
 *
 * @module
 */

import { resolve } from "node:path";
import {
  type CaseResult,
  type ConformanceFactory,
  type HarnessHook,
  planConformance,
  type SuiteTarget,
} from "@zakstam/codex-sync-engine/conformance";
import type { Capability } from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import type { Command, CommandContext } from "../context.ts";
import { CliError, EXIT } from "../errors.ts";
import { formatDuration, table } from "../format.ts";

/** A suite target with an optional clean-up the module may attach. */
type LoadedTarget = SuiteTarget & { dispose?: () => unknown };

function isTarget(value: unknown): value is LoadedTarget {
  return typeof value === "object" && value !== null &&
    typeof (value as SuiteTarget).factory === "function" &&
    Array.isArray((value as SuiteTarget).capabilities);
}

/**
 * The target a module exports, tried in this order: `default` (a target, or a function
 * returning one), `target`, `createTarget()`, or `factory` with optional `capabilities`
 * and `hooks` exports.
 */
export async function targetOf(
  module: Record<string, unknown>,
  path: string,
): Promise<LoadedTarget> {
  const candidates: unknown[] = [module.default, module.target];
  for (const candidate of candidates) {
    if (isTarget(candidate)) return candidate;
  }
  if (typeof module.default === "function" && module.default.length === 0) {
    const built = await (module.default as () => unknown)();
    if (isTarget(built)) return built;
  }
  if (typeof module.createTarget === "function") {
    const built = await (module.createTarget as () => unknown)();
    if (isTarget(built)) return built;
    throw new CliError("E_CLI_BAD_MODULE", `${path}: createTarget() did not return a suite target`);
  }
  if (typeof module.factory === "function") {
    const capabilities = module.capabilities ?? [];
    if (!Array.isArray(capabilities)) {
      throw new CliError("E_CLI_BAD_MODULE", `${path}: "capabilities" must be an array`);
    }
    const target: LoadedTarget = {
      factory: module.factory as ConformanceFactory,
      capabilities: capabilities as Capability[],
    };
    if (Array.isArray(module.hooks)) target.hooks = module.hooks as HarnessHook[];
    return target;
  }
  throw new CliError(
    "E_CLI_BAD_MODULE",
    `${path} exports no conformance target: export default (or "target") a SuiteTarget ` +
      `{ factory, capabilities, hooks? }, a "createTarget()" returning one, or a "factory" ` +
      `with "capabilities" and "hooks"`,
  );
}

/** The `conformance` command. */
export const conformanceCommand: Command = {
  spec: {
    name: "conformance",
    summary: "Run the adapter conformance suite against a module's adapter factory",
    description: `
Imports <module> (a .ts or .js file) and runs the conformance suite against the adapter
it exports, one case at a time, then prints a table of every case (passed, failed with
the reason, or skipped with the missing capability or hook). Exit code 0 when no case
failed, 4 otherwise.

The module exports one of:
  export default { factory, capabilities, hooks }   (a SuiteTarget; or "export const target")
  export async function createTarget() { return { factory, capabilities, hooks, dispose } }
  export const factory = …; export const capabilities = [...]; export const hooks = [...]
where factory({ handler, policy, clock, random }) builds a fresh adapter under test (see
the README section "Running the conformance suite"). A target's optional dispose() is
called at the end.`,
    positionals: [{ name: "module", required: true }],
    options: [
      {
        name: "only",
        type: "list",
        value: "<text>",
        description: "Run only cases whose name contains this text (repeatable)",
      },
    ],
    examples: [
      "codex-sync conformance ./my_adapter_target.ts",
      "codex-sync conformance ./my_adapter_target.ts --only seal --only cancel",
    ],
  },
  run: runConformanceCommand,
};

async function runConformanceCommand(context: CommandContext, args: ParsedArgs): Promise<number> {
  const { host } = context;
  const path = resolve(host.cwd(), args.positionals[0]);
  if (!(await host.stat(path))?.isFile) {
    throw new CliError("E_CLI_NOT_FOUND", `no such module: ${args.positionals[0]}`);
  }
  let module: Record<string, unknown>;
  try {
    module = await host.importModule(path);
  } catch (error) {
    throw new CliError(
      "E_CLI_BAD_MODULE",
      `cannot import ${path}: ${error instanceof Error ? error.message : error}`,
      {
        cause: error,
      },
    );
  }
  const loaded = await targetOf(module, path);
  const only = args.options.only as string[] | undefined;
  const target: SuiteTarget = only ? { ...loaded, only } : loaded;
  const started = Date.now();
  const results: (CaseResult & { ms: number })[] = [];
  try {
    const planned = planConformance(target);
    if (planned.length === 0) throw new CliError("E_CLI_USAGE", "no case matches --only");
    for (const [i, entry] of planned.entries()) {
      const caseStarted = Date.now();
      let result: CaseResult;
      if (entry.skip) result = { name: entry.name, status: "skipped", reason: entry.skip };
      else {
        try {
          await entry.run();
          result = { name: entry.name, status: "passed" };
        } catch (error) {
          result = {
            name: entry.name,
            status: "failed",
            reason: error instanceof Error ? error.message : String(error),
            error,
          };
        }
      }
      results.push({ ...result, ms: Date.now() - caseStarted });
      if (!context.json && host.stderr.isTTY) {
        host.stderr.write(`\r\x1b[2K[${i + 1}/${planned.length}] ${entry.name}`);
      }
    }
  } finally {
    if (!context.json && host.stderr.isTTY) host.stderr.write("\r\x1b[2K");
    await loaded.dispose?.();
  }
  const count = (status: CaseResult["status"]) => results.filter((r) => r.status === status).length;
  const summary = {
    module: path,
    passed: count("passed"),
    failed: count("failed"),
    skipped: count("skipped"),
    ms: Date.now() - started,
  };
  if (context.json) {
    host.stdout.write(
      JSON.stringify({
        ...summary,
        cases: results.map(({ name, status, reason, ms }) => ({ name, status, reason, ms })),
      }) + "\n",
    );
  } else {
    const oneLine = (text = "") => text.replace(/\s+/g, " ").slice(0, 160);
    host.stdout.write(
      table(
        ["RESULT", "CASE", "MS", "REASON"],
        results.map((r) => [
          r.status === "passed" ? "pass" : r.status === "failed" ? "FAIL" : "skip",
          r.name,
          String(r.ms),
          oneLine(r.reason),
        ]),
      ),
    );
    host.stdout.write(
      `\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped ` +
        `in ${formatDuration(summary.ms)}\n`,
    );
    if (context.verbose) {
      for (const r of results) {
        if (r.status === "failed" && r.error instanceof Error && r.error.stack) {
          host.stderr.write(`\n${r.name}:\n${r.error.stack}\n`);
        }
      }
    }
  }
  if (summary.failed > 0) {
    throw new CliError(
      "E_CLI_CONFORMANCE_FAILED",
      `${summary.failed} of ${results.length} conformance case(s) failed`,
    );
  }
  return EXIT.ok;
}
