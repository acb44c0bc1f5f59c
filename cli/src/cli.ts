/**
 * `runCli(argv, host)`: parses the command line, runs the command, prints errors as
 * `CODE: message` and returns the exit code. No runtime APIs beyond the host.
 *
 * @module
 */

import { commandHelp, parseArgs } from "./args.ts";
import { conformanceCommand } from "./commands/conformance.ts";
import { exportCommand, restoreCommand } from "./commands/export.ts";
import { importCommand } from "./commands/import.ts";
import { cancelCommand, jobsCommand, statusCommand } from "./commands/jobs.ts";
import { gcCommand, verifyCommand } from "./commands/maintenance.ts";
import { serveCommand } from "./commands/serve.ts";
import { watchCommand } from "./commands/watch.ts";
import { type Command, type CommandContext, GLOBAL_OPTIONS } from "./context.ts";
import { EXIT, exitCodeFor, formatError, usage } from "./errors.ts";
import type { CliHost } from "./host.ts";

/** Version printed by `--version`. */
export const CLI_VERSION = "0.1.0";

/** Every command, in help order. */
export const COMMANDS: readonly Command[] = [
  importCommand,
  watchCommand,
  statusCommand,
  jobsCommand,
  cancelCommand,
  gcCommand,
  verifyCommand,
  exportCommand,
  restoreCommand,
  serveCommand,
  conformanceCommand,
];

/** The documented exit codes, for help and README. */
export const EXIT_CODE_HELP: readonly (readonly [number, string])[] = [
  [EXIT.ok, "success (unchanged, older and pending files, skipped, count as success)"],
  [EXIT.failure, "an operation failed (job failed or cancelled, store unreachable or locked)"],
  [EXIT.usage, "usage error (unknown command or option, missing argument, bad module)"],
  [EXIT.invalidInput, "invalid input: a malformed line (without --skip-invalid), a file changed"],
  [EXIT.checkFailed, "a check failed: verify mismatch, or failing conformance cases"],
  [EXIT.notFound, "not found: job, conversation, store or path"],
  [EXIT.conflict, "conflict: a copy diverges from the current import, or a file is in the way"],
  [EXIT.interrupted, "interrupted by Ctrl-C (run the same import again to resume)"],
];

function mainHelp(program: string): string {
  const width = Math.max(...COMMANDS.map((command) => command.spec.name.length)) + 2;
  const lines = [
    `${program} — sync Codex CLI conversations into a durable store, verified`,
    "",
    `Usage: ${program} <command> [options] [arguments]`,
    "",
    "Commands:",
    ...COMMANDS.map((command) => `  ${command.spec.name.padEnd(width)}${command.spec.summary}`),
    "",
    "Options for every command:",
    "  --json         machine-readable output (JSON) on stdout",
    "  -v, --verbose  stack traces and causes with errors",
    "  -h, --help     help (of the command when given after it)",
    "  --version      print the version",
    "",
    "Store (every command but conformance): the embedded PGlite database in ./.codex-sync",
    "by default (--data-dir), a PostgreSQL server with --database-url, or --store memory",
    "for a dry run of import or watch; or a codex-sync serve with --server <url> --token <t>",
    "(env CODEX_SYNC_SERVER, CODEX_SYNC_TOKEN).",
    "",
    "Errors are printed as CODE: message (with --verbose: stack and causes).",
    "Exit codes:",
    ...EXIT_CODE_HELP.map(([code, text]) => `  ${String(code).padEnd(5)}${text}`),
    "",
    `Run "${program} <command> --help" for a command's options.`,
  ];
  return lines.join("\n") + "\n";
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  /** Name used in help and messages (default `codex-sync`). */
  program?: string;
}

/** Runs the CLI with `argv` (arguments after the program) and returns the exit code. */
export async function runCli(
  argv: readonly string[],
  host: CliHost,
  options: RunCliOptions = {},
): Promise<number> {
  const program = options.program ?? "codex-sync";
  const verbose = argv.includes("--verbose") || argv.includes("-v");
  try {
    const index = argv.findIndex((arg) => !arg.startsWith("-"));
    const name = index < 0 ? undefined : argv[index];
    const before = index < 0 ? argv : argv.slice(0, index);
    if (before.includes("--version")) {
      host.stdout.write(`${program} ${CLI_VERSION}\n`);
      return EXIT.ok;
    }
    if (name === undefined || name === "help") {
      const topic = name === "help" ? argv[index + 1] : undefined;
      const command = COMMANDS.find((entry) => entry.spec.name === topic);
      if (topic !== undefined && !command) throw usage(`unknown command "${topic}"`);
      host.stdout.write(
        command ? commandHelp(program, withGlobals(command)) : mainHelp(program),
      );
      const asked = name === "help" || before.includes("--help") || before.includes("-h");
      return asked ? EXIT.ok : EXIT.usage;
    }
    const command = COMMANDS.find((entry) => entry.spec.name === name);
    if (!command) {
      throw usage(
        `unknown command "${name}" (commands: ${COMMANDS.map((c) => c.spec.name).join(", ")})`,
      );
    }
    const spec = withGlobals(command);
    const args = parseArgs([...before, ...argv.slice(index + 1)], spec);
    if (args.options.help) {
      host.stdout.write(commandHelp(program, spec));
      return EXIT.ok;
    }
    const context: CommandContext = {
      host,
      program,
      json: args.options.json === true,
      verbose: args.options.verbose === true,
    };
    return await command.run(context, args);
  } catch (error) {
    host.stderr.write(formatError(error, verbose) + "\n");
    const code = exitCodeFor(error);
    if (code === EXIT.usage && !verbose) {
      host.stderr.write(`Run "${program} --help" for usage.\n`);
    }
    return code;
  }
}

function withGlobals(command: Command): Command["spec"] {
  return { ...command.spec, options: [...command.spec.options, ...GLOBAL_OPTIONS] };
}
