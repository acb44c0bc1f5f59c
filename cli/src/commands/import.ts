/**
 * `codex-sync import <file-or-dir>...`: syncs rollout files into the store, verified.
 * Each file goes through `syncFile` (see `../sync_file.ts`): new lines only, as an
 * extension of the conversation's current import, when the file grew; nothing when it
 * is unchanged, older or diverges (without `--replace`); the whole file otherwise.
 *
 * @module
 */

import { DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY, SyncError } from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { CliError, errorCode, errorMessage, EXIT, exitCodeFor, formatError } from "../errors.ts";
import type { CliHost } from "../host.ts";
import { type ImportReporter, jsonReporter, plainReporter, ttyReporter } from "../progress.ts";
import { findRolloutFiles } from "../rollout.ts";
import { openStore, storeOptions } from "../store.ts";
import {
  type FileOutcome,
  preloadImports,
  syncFile,
  type SyncSession,
  type SyncSettings,
  unfinishedJobs,
} from "../sync_file.ts";

/** The `import` command. */
export const importCommand: Command = {
  spec: {
    name: "import",
    summary: "Sync Codex rollout files (or directories of them) into the store, verified",
    description: `
Syncs Codex CLI session files (JSON Lines, as under ~/.codex/sessions/YYYY/MM/DD/
rollout-*.jsonl; directories are walked for rollout-*.jsonl) into the store: one row per
line with the conversation id (from the session_meta record, else the file name), line
number, record type and the line's exact text. Each sync is one verified job: the stored
rows are re-checked against the manifest (lines, bytes, SHA-256) before it succeeds.

Sessions in progress: a last line without its newline is pending, left for the next
import. A file that grew uploads and applies only its new lines (an extension of the
conversation's current import). A conversation's import only moves forward: a copy whose
lines are a prefix of it is reported as older, one that differs as diverged (exit code
6), and neither changes anything without --replace. An unchanged file is a fast no-op,
unless "verify" found its rows damaged: then it is imported again, repairing them.

Files are taken as append-only: a file whose size and mtime (and identity, where the
runtime tells it) are those recorded at its last import is unchanged without being read;
of a grown one only the first line, the imported part's last bytes (compared with the
stored rows) and the new bytes are read. A file moved to another path (Codex moves
sessions to archived_sessions) is recognised, and its import follows it. --rescan reads
and checks every file whole instead; "verify" re-checks the stored rows.

A malformed line fails that file before anything is uploaded, naming file and line;
--skip-invalid records such lines (as invalid rows) and reports their count instead.

Ctrl-C stops cleanly; running the same command again resumes the interrupted upload or
job (the source id is derived from the file's path, content digest and base).`,
    positionals: [{ name: "file-or-dir", required: true, variadic: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "skip-invalid",
        type: "boolean",
        description: "Record malformed lines as invalid rows and count them instead of failing",
      },
      {
        name: "replace",
        type: "boolean",
        description: "Replace a conversation's import with an older or diverging copy",
      },
      {
        name: "rescan",
        type: "boolean",
        description: "Read and check every file whole, even one whose size and mtime are unchanged",
      },
      {
        name: "chunk-size",
        type: "size",
        value: "<size>",
        description: "Upload chunk size, e.g. 256k or 1MiB (default 1MiB)",
      },
      {
        name: "concurrency",
        type: "integer",
        value: "<n>",
        description: `Chunks uploaded at once (default ${DEFAULT_CONCURRENCY})`,
      },
      {
        name: "plain",
        type: "boolean",
        description: "Plain progress lines even on a terminal (no progress bar)",
      },
    ],
    examples: [
      "codex-sync import cli/fixtures/sample-rollout.jsonl",
      "codex-sync import ~/.codex/sessions",
      "codex-sync import --store memory --json ~/.codex/sessions/2025/11",
      "codex-sync import --database-url postgres://me@localhost/app ~/.codex/sessions",
    ],
  },
  run: runImport,
};

/** The reporter for `context` (JSON, a progress bar on a terminal, or plain lines). */
export function reporterFor(
  context: CommandContext,
  plain: boolean,
): ImportReporter {
  const { host } = context;
  return context.json
    ? jsonReporter(host.stdout)
    : host.stdout.isTTY && !plain
    ? ttyReporter(host.stdout)
    : plainReporter(host.stdout);
}

/** The sync settings of `import` and `watch` (validated). */
export function syncSettings(context: CommandContext, args: ParsedArgs): SyncSettings {
  const settings: SyncSettings = {
    scope: scopeOf(context, args),
    chunkSize: (args.options["chunk-size"] as number | undefined) ?? DEFAULT_CHUNK_SIZE,
    concurrency: (args.options.concurrency as number | undefined) ?? DEFAULT_CONCURRENCY,
    skipInvalid: args.options["skip-invalid"] === true,
    replace: args.options.replace === true,
    rescan: args.options.rescan === true,
  };
  if (settings.chunkSize < 1024 || settings.chunkSize > 1024 * 1024) {
    throw new CliError("E_CLI_USAGE", "--chunk-size must be between 1KiB and 1MiB");
  }
  if (settings.concurrency < 1 || settings.concurrency > 64) {
    throw new CliError("E_CLI_USAGE", "--concurrency must be between 1 and 64");
  }
  return settings;
}

/** Without --chunk-size: 1 MiB, or less where the adapter takes smaller chunks. */
export function fitChunkSize(
  settings: SyncSettings,
  args: ParsedArgs,
  adapter: { maxChunkBytes?: number },
): void {
  if (args.options["chunk-size"] !== undefined) return;
  const limit = adapter.maxChunkBytes;
  if (limit !== undefined && limit < settings.chunkSize) settings.chunkSize = limit;
}

/** Stops on the first interrupt, quits at once on the second. */
export function interruptOnSignal(
  host: CliHost,
  onFirst: () => void,
  message: string,
): { signal: AbortSignal; stop: () => void } {
  const interrupt = new AbortController();
  let interrupts = 0;
  const stop = host.onInterrupt(() => {
    interrupts++;
    if (interrupts > 1) host.exit(EXIT.interrupted);
    onFirst();
    host.stderr.write(message);
    interrupt.abort(new SyncError("E_SYNC_ABORTED", "interrupted (Ctrl-C)"));
  });
  return { signal: interrupt.signal, stop };
}

async function runImport(context: CommandContext, args: ParsedArgs): Promise<number> {
  const { host } = context;
  const started = Date.now();
  const settings = syncSettings(context, args);
  const target = storeOptions(host, args.options);
  const files = await findRolloutFiles(host, args.positionals);
  if (files.length === 0) {
    throw new CliError(
      "E_CLI_NOT_FOUND",
      `no rollout-*.jsonl files under ${args.positionals.join(", ")}`,
    );
  }
  const reporter = reporterFor(context, args.options.plain === true);
  const interrupt = interruptOnSignal(
    host,
    () => reporter.flush(),
    "interrupted: stopping after the current step (Ctrl-C again to quit at once); " +
      "run the same command again to resume\n",
  );
  const counts: Record<FileOutcome | "failed", number> = {
    imported: 0,
    unchanged: 0,
    older: 0,
    diverged: 0,
    pending: 0,
    failed: 0,
  };
  let exitCode: number = EXIT.ok;
  try {
    const store = await openStore(host, target, {
      create: true,
      handler: { interrupt: interrupt.signal },
    });
    try {
      fitChunkSize(settings, args, store.adapter as { maxChunkBytes?: number });
      // Before the worker starts: a job among these that has succeeded by the time its
      // file is looked at was finished by this run.
      const unfinishedAtStart = await unfinishedJobs(store.adapter, settings.scope);
      store.startWorker();
      reporter.report({
        event: "start",
        files: files.length,
        store: store.location,
        scope: store.kind === "server" ? "the token's" : settings.scope,
        ms: Date.now() - started,
      });
      const session: SyncSession = {
        host,
        store,
        settings,
        reporter,
        signal: interrupt.signal,
        unfinishedAtStart,
        preloaded: await preloadImports(store, settings.scope),
      };
      for (const file of files) {
        if (interrupt.signal.aborted) break;
        try {
          const { outcome } = await syncFile(session, file);
          counts[outcome]++;
          if (outcome === "diverged" && exitCode === EXIT.ok) exitCode = EXIT.conflict;
        } catch (error) {
          if (interrupt.signal.aborted) break;
          counts.failed++;
          const code = exitCodeFor(error);
          // The most specific failure wins: invalid input over a generic failure.
          if (
            exitCode === EXIT.ok || exitCode === EXIT.conflict || code === EXIT.invalidInput
          ) exitCode = code;
          const line = error instanceof CliError
            ? error.details?.line as number | undefined
            : undefined;
          reporter.report({
            event: "failed",
            file,
            code: errorCode(error),
            message: errorMessage(error),
            ...(line === undefined ? {} : { line }),
          });
          reporter.flush();
          host.stderr.write(formatError(error, context.verbose) + "\n");
        }
      }
    } finally {
      reporter.flush();
      await store.close();
    }
  } finally {
    interrupt.stop();
  }
  const interrupted = interrupt.signal.aborted;
  reporter.report({
    event: "summary",
    files: files.length,
    ...counts,
    interrupted,
    ms: Date.now() - started,
  });
  reporter.flush();
  if (interrupted) return EXIT.interrupted;
  return exitCode;
}
