/**
 * `codex-sync watch [dir...]`: imports the Codex sessions that are there, then follows
 * the directories and syncs each file as it grows (DESIGN §11).
 *
 * Changes come from the runtime's watcher (`CliHost.watch`: `Deno.watchFs`, Node's
 * recursive `fs.watch`), debounced per file; a slow poll (stat of every rollout file)
 * backs it up, and replaces it with `--poll` or when the watcher cannot start or fails.
 * One file syncs at a time: a file already synced in this run is read only from where
 * its import ended (after a check that the bytes before are unchanged), so an append
 * costs what its new lines cost. A line without its newline waits for it.
 *
 * Ctrl-C or SIGTERM stops it: the watcher closes, a sync in flight stops like an
 * interrupted `import` (its upload or job resumes on the next run), the store closes.
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, STORE_OPTIONS } from "../context.ts";
import { CliError, errorCode, errorMessage, EXIT, formatError } from "../errors.ts";
import { formatDuration, formatTime, middleEllipsis } from "../format.ts";
import type { FileWatcher } from "../host.ts";
import type { ImportEvent, ImportReporter } from "../progress.ts";
import { findRolloutFiles, ROLLOUT_FILE_PATTERN } from "../rollout.ts";
import { openStore, storeOptions } from "../store.ts";
import { type KnownFile, syncFile, type SyncSession, unfinishedJobs } from "../sync_file.ts";
import { fitChunkSize, interruptOnSignal, reporterFor, syncSettings } from "./import.ts";

/** What `watch` reports besides the import events (the `--json` output). */
export type WatchEvent =
  | { event: "watch"; dirs: string[]; mode: "native" | "poll"; store: string; scope: string }
  /** The initial pass is done: every file there was synced once; changes are followed. */
  | {
    event: "ready";
    files: number;
    imported: number;
    unchanged: number;
    failed: number;
    ms: number;
  }
  /** The runtime's watcher failed: polling from now on. */
  | { event: "polling"; reason: string; intervalMs: number }
  | { event: "stopped"; files: number; syncs: number; lines: number; ms: number };

/** Default debounce: changes of one file within this many ms make one sync. */
const DEFAULT_DEBOUNCE_MS = 150;
/** A file changing without pause still syncs this often. */
const MAX_DEBOUNCE_MS = 1_000;
/** Poll interval with `--poll` (or after the watcher failed). */
const DEFAULT_POLL_MS = 1_000;
/** Poll interval backing up the runtime's watcher (events can be lost). */
const SAFETY_POLL_MS = 30_000;

/** The `watch` command. */
export const watchCommand: Command = {
  spec: {
    name: "watch",
    summary: "Import Codex sessions, then follow them: each appended line synced as it lands",
    description: `
Imports the rollout files under the directories (default: $CODEX_HOME/sessions and
$CODEX_HOME/archived_sessions, CODEX_HOME defaulting to ~/.codex), like "import", then
watches them: each change syncs only the file's new complete lines, as an extension of
the conversation's current import (a line without its newline waits for it). Files that
appear later are imported as they come.

Uses the runtime's file watcher (Deno.watchFs, or Node's recursive fs.watch), debounced
per file, with a slow poll as a safety net; --poll polls instead (also the fallback when
the watcher cannot start). Ctrl-C or SIGTERM stops cleanly (exit code 0): an interrupted
sync resumes on the next run. On a terminal a status line shows what was synced last;
--json prints one event per line (the import events, plus watch, ready, polling,
stopped). The embedded store stays locked while watch runs.`,
    positionals: [{ name: "dir", required: false, variadic: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "skip-invalid",
        type: "boolean",
        description: "Record malformed lines as invalid rows instead of failing the file",
      },
      {
        name: "replace",
        type: "boolean",
        description: "Replace a conversation's import with an older or diverging copy",
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
        description: "Chunks uploaded at once",
      },
      { name: "poll", type: "boolean", description: "Poll the files instead of watching" },
      {
        name: "interval",
        type: "integer",
        value: "<ms>",
        description: `Poll interval (default ${DEFAULT_POLL_MS} ms with --poll)`,
      },
      {
        name: "debounce",
        type: "integer",
        value: "<ms>",
        description:
          `Wait for a file to be quiet this long before syncing (default ${DEFAULT_DEBOUNCE_MS})`,
      },
      {
        name: "plain",
        type: "boolean",
        description: "Plain lines even on a terminal (no status line)",
      },
    ],
    examples: [
      "codex-sync watch",
      "codex-sync watch --json ~/.codex/sessions",
      "codex-sync watch --database-url postgres://me@localhost/app",
    ],
  },
  run: runWatch,
};

/** The directories to watch: the arguments, or Codex's own. */
async function watchedDirs(context: CommandContext, args: ParsedArgs): Promise<string[]> {
  const { host } = context;
  const dirs: string[] = [];
  if (args.positionals.length > 0) {
    for (const input of args.positionals) {
      const path = resolve(host.cwd(), input);
      const info = await host.stat(path);
      if (!info) throw new CliError("E_CLI_NOT_FOUND", `no such directory: ${input}`);
      if (!info.isDirectory) throw new CliError("E_CLI_USAGE", `not a directory: ${input}`);
      dirs.push(await host.realPath(path));
    }
    return [...new Set(dirs)];
  }
  const home = codexHome(context);
  for (const name of ["sessions", "archived_sessions"]) {
    const path = join(home, name);
    if ((await host.stat(path))?.isDirectory) dirs.push(await host.realPath(path));
  }
  if (dirs.length === 0) {
    throw new CliError(
      "E_CLI_NOT_FOUND",
      `no Codex sessions in ${join(home, "sessions")} (set CODEX_HOME, or name a directory)`,
    );
  }
  return dirs;
}

/** `$CODEX_HOME`, else `~/.codex`. */
export function codexHome(context: CommandContext): string {
  const { host } = context;
  const home = host.env("CODEX_HOME");
  if (home) return resolve(host.cwd(), home);
  const user = host.env("HOME") ?? host.env("USERPROFILE");
  if (!user) throw new CliError("E_CLI_USAGE", "neither CODEX_HOME nor HOME is set");
  return join(user, ".codex");
}

function positive(args: ParsedArgs, name: string, fallback: number): number {
  const value = (args.options[name] as number | undefined) ?? fallback;
  if (value < 1 || value > 3_600_000) {
    throw new CliError("E_CLI_USAGE", `--${name} must be between 1 and 3600000 ms`);
  }
  return value;
}

/** A status line redrawn in place on a terminal, kept below the reporter's lines. */
interface StatusLine {
  show(text: string): void;
  clear(): void;
}

function statusLine(context: CommandContext, enabled: boolean): StatusLine {
  const out = context.host.stdout;
  let drawn = false;
  return {
    show(text) {
      if (!enabled) return;
      const columns = Math.max(20, Math.min(out.columns() || 80, 200));
      out.write(`\r\x1b[2K${Array.from(text).slice(0, columns - 1).join("")}`);
      drawn = true;
    },
    clear() {
      if (drawn) out.write("\r\x1b[2K");
      drawn = false;
    },
  };
}

async function runWatch(context: CommandContext, args: ParsedArgs): Promise<number> {
  const { host } = context;
  const started = Date.now();
  const settings = syncSettings(context, args);
  const debounceMs = positive(args, "debounce", DEFAULT_DEBOUNCE_MS);
  const pollOnly = args.options.poll === true;
  const pollMs = positive(args, "interval", pollOnly ? DEFAULT_POLL_MS : SAFETY_POLL_MS);
  const dirs = await watchedDirs(context, args);
  const target = storeOptions(host, args.options);
  const tty = !context.json && host.stdout.isTTY && args.options.plain !== true;
  const status = statusLine(context, tty);
  const inner = reporterFor(context, args.options.plain === true);
  /** Once the initial pass is done, per-sync chatter of known files is left out. */
  let following = false;
  let quietNow = false;
  const reporter: ImportReporter = {
    report(event: ImportEvent) {
      if (quietNow && QUIET_WHEN_FOLLOWING.has(event.event)) return;
      status.clear();
      inner.report(event);
    },
    flush() {
      status.clear();
      inner.flush();
    },
  };
  const emit = (event: WatchEvent) => {
    status.clear();
    inner.flush();
    if (context.json) host.stdout.write(JSON.stringify(event) + "\n");
    else host.stdout.write(watchLine(event) + "\n");
  };
  const interrupt = interruptOnSignal(
    host,
    () => reporter.flush(),
    "stopping: closing the watcher and the store (Ctrl-C again to quit at once)\n",
  );
  const known = new Map<string, KnownFile>();
  /** Size of each file when it was last synced (or found unsyncable). */
  const seen = new Map<string, number>();
  const queue = new Set<string>();
  const timers = new Map<string, { first: number; timer: ReturnType<typeof setTimeout> }>();
  let watcher: FileWatcher | undefined;
  let poller: ReturnType<typeof setInterval> | undefined;
  let mode: "native" | "poll" = pollOnly ? "poll" : "native";
  let syncs = 0;
  let lines = 0;
  let last = "";
  /** One sync at a time: the initial pass and the followed changes queue in one lane. */
  let lane: Promise<unknown> = Promise.resolve();
  const inLane = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lane.then(fn);
    lane = run.catch(() => {});
    return run;
  };

  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    store = await openStore(host, target, {
      create: true,
      handler: { interrupt: interrupt.signal },
    });
  } catch (error) {
    interrupt.stop();
    throw error;
  }
  try {
    fitChunkSize(settings, args, store.adapter as { maxChunkBytes?: number });
    const session: SyncSession = {
      host,
      store,
      settings,
      reporter,
      signal: interrupt.signal,
      unfinishedAtStart: await unfinishedJobs(store.adapter, settings.scope),
    };
    store.startWorker();

    const drawStatus = () => {
      if (!following || interrupt.signal.aborted) return;
      // The newest first: the line is cut at the terminal's width.
      status.show(
        (last ? `last: ${last} · ` : "") +
          `${syncs} sync(s), +${lines} line(s) · watching ${seen.size} file(s) · Ctrl-C stops`,
      );
    };
    type Outcome = "imported" | "unchanged" | "skipped" | "failed" | "other";
    const syncOne = async (path: string): Promise<Outcome> => {
      if (interrupt.signal.aborted) return "skipped";
      const info = await host.stat(path).catch(() => undefined);
      if (!info?.isFile) {
        known.delete(path);
        seen.delete(path);
        return "skipped";
      }
      const before = known.get(path);
      if (before && info.size === before.size) return "skipped";
      if (!before && seen.get(path) === info.size) return "skipped";
      // Known: synced earlier in this run (a file found unchanged by its stat has no
      // KnownFile; its next sync reads only its new bytes through the recorded state).
      quietNow = following && (before !== undefined || seen.has(path));
      try {
        const result = await syncFile(session, path, before);
        if (result.known) known.set(path, result.known);
        else known.delete(path);
        seen.set(path, result.known?.size ?? info.size);
        if (result.imported) {
          syncs++;
          lines += result.imported.newLines;
          last = `${middleEllipsis(basename(path), 32)} +${result.imported.newLines} at ` +
            formatTime(Date.now()).slice(11, 19);
          return "imported";
        }
        return result.outcome === "unchanged" ? "unchanged" : "other";
      } catch (error) {
        if (interrupt.signal.aborted) return "skipped";
        // A malformed line, say: tried again once the file changes.
        seen.set(path, info.size);
        known.delete(path);
        const line = error instanceof CliError
          ? error.details?.line as number | undefined
          : undefined;
        reporter.report({
          event: "failed",
          file: path,
          code: errorCode(error),
          message: errorMessage(error),
          ...(line === undefined ? {} : { line }),
        });
        reporter.flush();
        host.stderr.write(formatError(error, context.verbose) + "\n");
        return "failed";
      } finally {
        quietNow = false;
      }
    };
    let draining = false;
    const drain = () => {
      if (draining || interrupt.signal.aborted) return;
      draining = true;
      inLane(async () => {
        while (queue.size > 0 && !interrupt.signal.aborted) {
          const [path] = queue;
          queue.delete(path);
          await syncOne(path);
        }
      }).finally(() => {
        draining = false;
        drawStatus();
        if (queue.size > 0) drain();
      });
    };
    const schedule = (path: string, delay = debounceMs) => {
      if (interrupt.signal.aborted) return;
      const now = Date.now();
      const pending = timers.get(path);
      const first = pending?.first ?? now;
      if (pending) clearTimeout(pending.timer);
      const wait = Math.max(0, Math.min(delay, first + MAX_DEBOUNCE_MS - now));
      timers.set(path, {
        first,
        timer: setTimeout(() => {
          timers.delete(path);
          queue.add(path);
          drain();
        }, wait),
      });
    };
    /** Schedules every rollout file whose size differs from when it was last synced. */
    const rescan = async () => {
      let files: string[];
      try {
        files = await findRolloutFiles(host, dirs);
      } catch {
        return;
      }
      for (const file of files) {
        const info = await host.stat(file).catch(() => undefined);
        if (!info?.isFile) continue;
        const size = known.get(file)?.size ?? seen.get(file);
        if (size !== info.size) schedule(file, 0);
      }
    };
    const startPolling = (intervalMs: number) => {
      if (poller !== undefined) clearInterval(poller);
      let busy = false;
      poller = setInterval(() => {
        if (busy || !following || interrupt.signal.aborted) return;
        busy = true;
        rescan().finally(() => busy = false);
      }, intervalMs);
    };
    const onChange = (paths: string[]) => {
      for (const path of paths) {
        if (ROLLOUT_FILE_PATTERN.test(basename(path))) {
          if (following) schedule(path);
          continue;
        }
        // A new directory (a new day), or an event without a file name: look inside.
        host.stat(path).then(async (info) => {
          if (!info?.isDirectory || !following) return;
          for (const file of await findRolloutFiles(host, [path])) schedule(file);
        }).catch(() => {});
      }
    };
    const fallBack = (reason: string) => {
      watcher?.close();
      watcher = undefined;
      mode = "poll";
      const intervalMs = args.options.interval === undefined ? DEFAULT_POLL_MS : pollMs;
      startPolling(intervalMs);
      emit({ event: "polling", reason, intervalMs });
    };

    // Watch first, so nothing written during the initial pass goes unnoticed.
    if (!pollOnly) {
      if (!host.watch) mode = "poll";
      else {
        try {
          watcher = host.watch(dirs, onChange, (error) => {
            if (!interrupt.signal.aborted) {
              fallBack(`the file watcher failed: ${errorMessage(error)}`);
            }
          });
        } catch (error) {
          mode = "poll";
          emit({
            event: "polling",
            reason: `the file watcher did not start: ${errorMessage(error)}`,
            intervalMs: DEFAULT_POLL_MS,
          });
        }
      }
    }
    emit({
      event: "watch",
      dirs,
      mode,
      store: store.location,
      scope: store.kind === "server" ? "the token's" : settings.scope,
    });
    startPolling(
      mode === "poll" && args.options.interval === undefined ? DEFAULT_POLL_MS : pollMs,
    );

    // The initial pass: everything there, once, like `import`.
    const initial = await findRolloutFiles(host, dirs);
    const counts = { imported: 0, unchanged: 0, failed: 0 };
    for (const file of initial) {
      if (interrupt.signal.aborted) break;
      const outcome = await inLane(() => syncOne(file));
      if (outcome === "imported" || outcome === "unchanged" || outcome === "failed") {
        counts[outcome]++;
      }
    }
    if (!interrupt.signal.aborted) {
      following = true;
      emit({ event: "ready", files: initial.length, ...counts, ms: Date.now() - started });
      drawStatus();
      // What changed or appeared during the initial pass.
      await rescan();
    }
    // Follow until interrupted.
    await new Promise<void>((resolve) => {
      if (interrupt.signal.aborted) resolve();
      else interrupt.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    watcher?.close();
    if (poller !== undefined) clearInterval(poller);
    for (const { timer } of timers.values()) clearTimeout(timer);
    timers.clear();
    queue.clear();
    // A sync in flight was aborted: let it stop before the store closes.
    await lane;
    status.clear();
    reporter.flush();
    await store.close();
    interrupt.stop();
  }
  emit({ event: "stopped", files: seen.size, syncs, lines, ms: Date.now() - started });
  return EXIT.ok;
}

/** Import events left out for files already synced once in this run. */
const QUIET_WHEN_FOLLOWING = new Set<ImportEvent["event"]>([
  "scanned",
  "unchanged",
  "upload",
  "sealed",
  "applying",
]);

function watchLine(event: WatchEvent): string {
  switch (event.event) {
    case "watch":
      return `watching ${event.dirs.join(", ")} (${
        event.mode === "native" ? "file watcher" : "polling"
      }) into ${event.store} (scope ${event.scope})`;
    case "ready":
      return `ready: ${event.files} file(s) (${event.imported} imported, ${event.unchanged} ` +
        `unchanged, ${event.failed} failed) in ${formatDuration(event.ms)}; following changes ` +
        `(Ctrl-C to stop)`;
    case "polling":
      return `polling every ${event.intervalMs} ms: ${event.reason}`;
    case "stopped":
      return `stopped: ${event.syncs} sync(s), +${event.lines} line(s), ${event.files} file(s) ` +
        `current, after ${formatDuration(event.ms)}`;
  }
}
