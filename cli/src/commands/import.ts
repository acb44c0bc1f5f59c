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
import { conversationGate, type FileTurn } from "../conversation_gate.ts";
import { CliError, errorCode, errorMessage, EXIT, exitCodeFor, formatError } from "../errors.ts";
import type { CliHost } from "../host.ts";
import { type ImportReporter, jsonReporter, plainReporter, ttyReporter } from "../progress.ts";
import { findRolloutFiles } from "../rollout.ts";
import { testHooks } from "../test_hooks.ts";
import { openForImport } from "../stat_cache.ts";
import { type StoreOptions, storeOptions } from "../store.ts";
import {
  type FileOutcome,
  preloadImports,
  syncFile,
  type SyncSession,
  type SyncSettings,
  unfinishedJobs,
} from "../sync_file.ts";

/**
 * Files `import` syncs at once by default with a PostgreSQL server (`--database-url`,
 * `--server`): one is uploaded while the server works on another's job. On the embedded
 * store and in memory, 1: the store runs in this thread, there is nothing to overlap with.
 */
export const DEFAULT_FILES_AT_ONCE = 2;
/** Bounded like --concurrency: each file in flight holds its own upload buffers. */
export const MAX_FILES_AT_ONCE = 16;

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

With a PostgreSQL server (--database-url, --server), ${DEFAULT_FILES_AT_ONCE} files are synced
at once by default (--files-at-once; 1 on the embedded store and memory, which run in
this process): one is read, hashed and uploaded while the server works on another's job.
Files of one conversation (a copy, a moved file) still go one after another, in the
order listed, so every outcome is the one a run of one file at a time gives.

Ctrl-C stops cleanly: no new file is started, the ones running stop after their current
step; running the same command again resumes the interrupted uploads or jobs (the source
id is derived from the file's path, content digest and base).`,
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
        name: "files-at-once",
        type: "integer",
        value: "<n>",
        description:
          `Files synced at once, 1 to ${MAX_FILES_AT_ONCE} (default ${DEFAULT_FILES_AT_ONCE} with a PostgreSQL server or --server, else 1)`,
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

/** `--files-at-once` (validated), or the default for a store of `kind`. */
export function filesAtOnceOf(args: ParsedArgs, kind: StoreOptions["kind"]): number {
  const value = (args.options["files-at-once"] as number | undefined) ??
    (kind === "postgres" || kind === "server" ? DEFAULT_FILES_AT_ONCE : 1);
  if (value < 1 || value > MAX_FILES_AT_ONCE) {
    throw new CliError(
      "E_CLI_USAGE",
      `--files-at-once must be between 1 and ${MAX_FILES_AT_ONCE}`,
    );
  }
  return value;
}

/**
 * Runs `sync` on each of `count` files, at most `limit` at once, started in their order,
 * each with its turn in one conversation gate (taken as it starts); none is started once
 * `signal` is aborted, or once `sync` let an error through. Settles when every started
 * one has ended (rejecting with the first error `sync` let through).
 */
async function forEachFile(
  count: number,
  limit: number,
  signal: AbortSignal,
  sync: (index: number, turn: FileTurn) => Promise<void>,
): Promise<void> {
  const gate = conversationGate(signal);
  let next = 0;
  let broken = false;
  const lane = async () => {
    while (next < count && !signal.aborted && !broken) {
      const index = next++;
      const turn = gate.next();
      try {
        await sync(index, turn);
      } catch (error) {
        broken = true;
        throw error;
      } finally {
        turn.finish();
      }
    }
  };
  const lanes = await Promise.allSettled(Array.from({ length: Math.min(limit, count) }, lane));
  for (const ended of lanes) if (ended.status === "rejected") throw ended.reason;
}

/** How one file's sync ended: an outcome, or a failure and its exit code. */
type FileEnd = { outcome: FileOutcome } | { failedWith: number };

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
  const filesAtOnce = filesAtOnceOf(args, target.kind);
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
    // On the embedded store, a tree its stat cache finds unchanged is answered without
    // opening the store (stat_cache.ts); closing the store writes the cache.
    const opened = await openForImport(host, target, {
      create: true,
      handler: { interrupt: interrupt.signal, ...testHooks(host, interrupt.signal) },
    }, {
      scope: settings.scope,
      files,
      answer: settings.rescan !== true && settings.replace !== true,
      verbose: context.verbose,
      signal: interrupt.signal,
    });
    if (opened.kind === "unchanged") {
      reporter.report({
        event: "start",
        files: files.length,
        store: opened.location,
        scope: settings.scope,
        ms: Date.now() - started,
      });
      for (const event of opened.events) reporter.report(event);
      counts.unchanged = opened.events.length;
      reportSummary(reporter, files.length, counts, false, started);
      return EXIT.ok;
    }
    const { store } = opened;
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
      // Kept by file and folded in the files' order: the exit code a sequential run gives.
      const ends: (FileEnd | undefined)[] = [];
      await forEachFile(files.length, filesAtOnce, interrupt.signal, async (index, turn) => {
        const file = files[index];
        try {
          const { outcome } = await syncFile(session, file, undefined, turn);
          ends[index] = { outcome };
        } catch (error) {
          if (interrupt.signal.aborted) return;
          ends[index] = { failedWith: exitCodeFor(error) };
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
      });
      for (const end of ends) {
        if (end === undefined) continue;
        if ("outcome" in end) {
          counts[end.outcome]++;
          if (end.outcome === "diverged" && exitCode === EXIT.ok) exitCode = EXIT.conflict;
          continue;
        }
        counts.failed++;
        const code = end.failedWith;
        // The most specific failure wins: invalid input over a generic failure.
        if (
          exitCode === EXIT.ok || exitCode === EXIT.conflict || code === EXIT.invalidInput
        ) exitCode = code;
      }
    } finally {
      reporter.flush();
      await store.close();
    }
  } finally {
    interrupt.stop();
  }
  const interrupted = interrupt.signal.aborted;
  reportSummary(reporter, files.length, counts, interrupted, started);
  if (interrupted) return EXIT.interrupted;
  return exitCode;
}

function reportSummary(
  reporter: ImportReporter,
  files: number,
  counts: Record<FileOutcome | "failed", number>,
  interrupted: boolean,
  started: number,
): void {
  reporter.report({
    event: "summary",
    files,
    ...counts,
    interrupted,
    ms: Date.now() - started,
  });
  reporter.flush();
}
