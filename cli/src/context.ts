/**
 * What every command receives, and the options several commands share.
 *
 * @module
 */

import type { CommandSpec, OptionSpec, ParsedArgs } from "./args.ts";
import type { CliHost } from "./host.ts";

/** A running command's view of the CLI. */
export interface CommandContext {
  host: CliHost;
  /** Name the CLI is invoked as, for messages. */
  program: string;
  json: boolean;
  verbose: boolean;
}

/** A command: its spec and what it does (returns the exit code). */
export interface Command {
  spec: CommandSpec;
  run(context: CommandContext, args: ParsedArgs): Promise<number>;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: "json", type: "boolean", description: "Machine-readable output (JSON) on stdout" },
  {
    name: "verbose",
    short: "v",
    type: "boolean",
    description: "Print stack traces and causes with errors",
  },
  { name: "help", short: "h", type: "boolean", description: "Show this help" },
];

/** Options of a local store (`serve`'s). */
export const LOCAL_STORE_OPTIONS: readonly OptionSpec[] = [
  {
    name: "store",
    type: "string",
    value: "<kind>",
    choices: ["pglite", "postgres", "memory"],
    description: "Where to sync: embedded PGlite (default), a Postgres server, or memory (dry run)",
  },
  {
    name: "data-dir",
    type: "string",
    value: "<dir>",
    description: "Embedded store directory (default ./.codex-sync, env CODEX_SYNC_DATA_DIR)",
  },
  {
    name: "database-url",
    type: "string",
    value: "<url>",
    description:
      "PostgreSQL connection string (env CODEX_SYNC_DATABASE_URL); implies --store postgres",
  },
  {
    name: "scope",
    type: "string",
    value: "<scope>",
    description:
      'Owner the records belong to (default "local", env CODEX_SYNC_SCOPE; with --server, the token\'s)',
  },
];

/** Options of the commands that can run through a `codex-sync serve`. */
export const SERVER_OPTIONS: readonly OptionSpec[] = [
  {
    name: "server",
    type: "string",
    value: "<url>",
    description: "Work through a codex-sync serve at this URL (env CODEX_SYNC_SERVER)",
  },
  {
    name: "token",
    type: "string",
    value: "<token>",
    description: "Bearer token for --server (env CODEX_SYNC_TOKEN); it decides the scope",
  },
];

/** The scope option, its environment variable, or `local`. */
export function scopeOf(context: CommandContext, args: ParsedArgs): string {
  return (args.options.scope as string | undefined) ?? context.host.env("CODEX_SYNC_SCOPE") ??
    "local";
}

/** Options of the commands that open a store: a local one, or a server. */
export const STORE_OPTIONS: readonly OptionSpec[] = [...LOCAL_STORE_OPTIONS, ...SERVER_OPTIONS];
