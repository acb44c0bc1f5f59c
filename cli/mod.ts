/**
 * @zakstam/codex-sync-cli — the `codex-sync` command: sync Codex CLI session files
 * (rollout JSON Lines) into a durable store, verified, and follow them as they grow
 * (`watch`); write them back byte for byte (`export`, `restore`). Embedded PGlite by
 * default, a PostgreSQL server with `--database-url`, memory for a dry run.
 *
 * Run it with `deno run -A jsr:@zakstam/codex-sync-cli/main import ~/.codex/sessions`
 * (or `deno task cli …` in the repository), or on Node.js with the npm package's
 * `codex-sync` bin. Embed it with {@link runCli} and a {@link CliHost} for your runtime
 * (`main.ts` has the Deno one, `node_main.ts` — export `./node` — the Node.js one).
 *
 * @module
 */

export { CLI_VERSION, COMMANDS, EXIT_CODE_HELP, runCli, type RunCliOptions } from "./src/cli.ts";
export type { CliHost, DirEntry, FileInfo, FileWatcher, TextOutput, Unlock } from "./src/host.ts";
export { CliError, type CliErrorCode, EXIT, exitCodeFor, formatError } from "./src/errors.ts";
export {
  type CheckOptions,
  checkStoredRows,
  type RolloutBaseData,
  rolloutDataOf,
  rolloutHandler,
  type RolloutHandlerOptions,
  type RolloutManifestData,
  type RowCheck,
} from "./src/handler.ts";
export {
  ensureRecordTables,
  type ImportRow,
  memoryRecordTables,
  RECORD_SCHEMA_VERSION,
  type RecordTableNames,
  recordTableNames,
  type RecordTables,
  sqlRecordTables,
} from "./src/records.ts";
export {
  conversationIdFromFileName,
  findConversationId,
  findRolloutFiles,
  type ParsedLine,
  parseLine,
  type RolloutScan,
  type ScanOptions,
  scanRollout,
  sessionIdOf,
} from "./src/rollout.ts";
export type { ImportEvent } from "./src/progress.ts";
export type { WatchEvent } from "./src/commands/watch.ts";
export { codexLayoutPath, conversationBytes } from "./src/commands/export.ts";
