/**
 * `codex-sync import <file-or-dir>...`: syncs rollout files into the store, verified.
 *
 * Per file: scan (digest, lines, conversation id; a malformed line stops here, before
 * anything is uploaded) → derive the source id from path + content digest → an existing
 * source with a succeeded job means "unchanged" (no-op); a collecting or sealed-but-
 * unfinished one is resumed → `syncConversation` uploads the bytes (skipping chunks
 * already stored), seals, and waits while the in-process worker applies the chunks
 * through the row-materialising handler and its verify hook.
 *
 * @module
 */

import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_CONCURRENCY,
  IncrementalSha256,
  isTerminalJobState,
  type Job,
  sha256Hex,
  type SyncAdapter,
  syncConversation,
  SyncError,
} from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { CliError, errorCode, errorMessage, EXIT, exitCodeFor, formatError } from "../errors.ts";
import { manifestDataValue, type RolloutManifestData } from "../handler.ts";
import type { CliHost } from "../host.ts";
import { type ImportReporter, jsonReporter, plainReporter, ttyReporter } from "../progress.ts";
import { findRolloutFiles, readPieces, type RolloutScan, scanRollout } from "../rollout.ts";
import { type OpenStore, openStore, storeOptions } from "../store.ts";

/** The `import` command. */
export const importCommand: Command = {
  spec: {
    name: "import",
    summary: "Sync Codex rollout files (or directories of them) into the store, verified",
    description: `
Syncs Codex CLI session files (JSON Lines, as under ~/.codex/sessions/YYYY/MM/DD/
rollout-*.jsonl; directories are walked for rollout-*.jsonl) into the store: one row per
line with the conversation id (from the session_meta record, else the file name), line
number, record type, the line's exact text and its parsed JSON. Each file becomes one
verified job: the stored rows are re-checked against the manifest (line count, bytes,
digest) before the job succeeds.

A malformed line fails that file before anything is uploaded, naming file and line;
--skip-invalid records such lines (as invalid rows) and reports their count instead.

Ctrl-C stops cleanly; running the same command again resumes the interrupted upload or
job (the source id is derived from the file's path and content digest). Re-importing an
unchanged file is a fast no-op that says so.`,
    positionals: [{ name: "file-or-dir", required: true, variadic: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "skip-invalid",
        type: "boolean",
        description: "Record malformed lines as invalid rows and count them instead of failing",
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

type Plan =
  | { kind: "new"; sourceId: string }
  | { kind: "resume-upload"; sourceId: string }
  | { kind: "resume-job"; sourceId: string; job: Job }
  | { kind: "unchanged"; sourceId: string; job: Job };

/** The deterministic source id of a file's content at a path, under given settings. */
export async function baseSourceId(
  scan: RolloutScan,
  chunkSize: number,
  skipInvalid: boolean,
): Promise<string> {
  const key = JSON.stringify([
    "codex-rollout/1",
    scan.path,
    scan.sha256,
    scan.conversationId,
    chunkSize,
    skipInvalid,
  ]);
  return `rollout-${(await sha256Hex(new TextEncoder().encode(key))).slice(0, 40)}`;
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof SyncError && error.code === code;
}

/**
 * Finds what to do with a source id: new, resume, or unchanged. A source that cannot
 * be resumed (its seal failed, it expired, its job failed or was cancelled) is passed
 * over for the next id in the series `<base>`, `<base>-1`, `<base>-2`, …
 */
async function planSource(adapter: SyncAdapter, scope: string, base: string): Promise<Plan> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const sourceId = attempt === 0 ? base : `${base}-${attempt}`;
    let source;
    try {
      source = await adapter.getSource({ scope, sourceId });
    } catch (error) {
      if (isCode(error, "E_SYNC_SOURCE_NOT_FOUND")) return { kind: "new", sourceId };
      throw error;
    }
    if (source.state === "collecting") return { kind: "resume-upload", sourceId };
    if (source.state === "sealed" && source.jobId) {
      const job = await adapter.getJob({ scope, jobId: source.jobId });
      if (job.state === "succeeded") return { kind: "unchanged", sourceId, job };
      if (!isTerminalJobState(job.state)) return { kind: "resume-job", sourceId, job };
    }
  }
  throw new SyncError("E_SYNC_INTERNAL", `no usable source id left after ${base}-999`);
}

/**
 * The file's bytes for upload: exactly the scanned length, checked against the scan's
 * digest at the end (a file rewritten since the scan fails before the seal).
 */
async function* scannedBytes(host: CliHost, scan: RolloutScan): AsyncGenerator<Uint8Array> {
  const hash = new IncrementalSha256();
  let length = 0;
  for await (const piece of readPieces(host.readFile(scan.path), scan.byteCount)) {
    hash.update(piece);
    length += piece.length;
    yield piece;
  }
  if (length !== scan.byteCount || hash.digestHex() !== scan.sha256) {
    throw new CliError(
      "E_CLI_FILE_CHANGED",
      `${scan.path} changed while it was being imported; run the import again`,
    );
  }
}

interface ImportSettings {
  scope: string;
  chunkSize: number;
  concurrency: number;
  skipInvalid: boolean;
}

type FileOutcome = "imported" | "unchanged";

async function importFile(
  context: CommandContext,
  store: OpenStore,
  path: string,
  settings: ImportSettings,
  reporter: ImportReporter,
  signal: AbortSignal,
): Promise<FileOutcome> {
  const started = Date.now();
  const { host } = context;
  const { scope } = settings;
  const scan = await scanRollout(host, path, { skipInvalid: settings.skipInvalid });
  if (signal.aborted) throw signal.reason;
  reporter.report({
    event: "scanned",
    file: path,
    bytes: scan.byteCount,
    lines: scan.lineCount,
    invalidLines: scan.invalidCount,
    conversationId: scan.conversationId,
    conversationIdFrom: scan.conversationIdFrom,
  });
  const base = await baseSourceId(scan, settings.chunkSize, settings.skipInvalid);
  const plan = await planSource(store.adapter, scope, base);
  if (plan.kind === "unchanged") {
    reporter.report({
      event: "unchanged",
      file: path,
      conversationId: scan.conversationId,
      jobId: plan.job.jobId,
      sourceId: plan.sourceId,
    });
    return "unchanged";
  }
  if (plan.kind === "resume-upload" || plan.kind === "resume-job") {
    reporter.report({
      event: "resuming",
      file: path,
      sourceId: plan.sourceId,
      stage: plan.kind === "resume-upload" ? "upload" : "job",
      ...(plan.kind === "resume-job" ? { jobId: plan.job.jobId } : {}),
      ...(plan.kind === "resume-job" && plan.job.state === "running" && plan.job.lease &&
          plan.job.lease.expiresAt > Date.now()
        ? { leaseUntil: plan.job.lease.expiresAt }
        : {}),
    });
  }
  const data: RolloutManifestData = {
    kind: "codex-rollout",
    version: 1,
    path: scan.path,
    fileSha256: scan.sha256,
    lineCount: scan.lineCount,
    invalidCount: scan.invalidCount,
    trailingNewline: scan.trailingNewline,
    chunkSize: settings.chunkSize,
    skipInvalid: settings.skipInvalid,
  };
  let poll: ReturnType<typeof setInterval> | undefined;
  let lastApplied = "";
  const watch = (jobId: string) => {
    let busy = false;
    poll = setInterval(() => {
      if (busy) return;
      busy = true;
      store.adapter.getJob({ scope, jobId }).then((job) => {
        const key = `${job.state}:${job.cursor}`;
        if (key === lastApplied) return;
        lastApplied = key;
        reporter.report({
          event: "applying",
          file: path,
          jobId,
          state: job.state,
          cursor: job.cursor,
          total: job.totalChunks,
        });
      }).catch(() => {}).finally(() => busy = false);
    }, 200);
  };
  try {
    const result = await syncConversation(store.adapter, {
      scope,
      conversationId: scan.conversationId,
      sourceId: plan.sourceId,
      payload: scannedBytes(host, scan),
      format: "bytes",
      chunkSize: settings.chunkSize,
      concurrency: settings.concurrency,
      manifestData: manifestDataValue(data),
      metadata: { path: scan.path, fileSha256: scan.sha256, tool: "codex-sync" },
      signal,
      onProgress(event) {
        if (event.phase === "uploading") {
          reporter.report({
            event: "upload",
            file: path,
            sourceId: event.sourceId,
            chunksUploaded: event.chunksUploaded,
            bytesUploaded: event.bytesUploaded,
            chunksSkipped: event.chunksSkipped,
            bytesSkipped: event.bytesSkipped,
            totalBytes: scan.byteCount,
          });
        } else if (event.phase === "sealed") {
          reporter.report({
            event: "sealed",
            file: path,
            jobId: event.job.jobId,
            chunkCount: event.manifest.chunkCount,
            byteCount: event.manifest.byteCount,
            digest: event.manifest.digest,
          });
        } else if (event.phase === "waiting") {
          watch(event.job.jobId);
        }
      },
    });
    const { job } = result;
    const imported = await store.tables.getImport(scope, job.conversationId);
    if (lastApplied !== `${job.state}:${job.cursor}`) {
      reporter.report({
        event: "applying",
        file: path,
        jobId: job.jobId,
        state: job.state,
        cursor: job.cursor,
        total: job.totalChunks,
      });
    }
    reporter.report({
      event: "imported",
      file: path,
      conversationId: job.conversationId,
      sourceId: job.sourceId,
      jobId: job.jobId,
      records: imported?.sourceId === job.sourceId ? imported.lineCount : scan.lineCount,
      invalidLines: imported?.sourceId === job.sourceId ? imported.invalidCount : scan.invalidCount,
      bytes: result.manifest.byteCount,
      digest: result.manifest.digest,
      uploaded: result.uploaded,
      skipped: result.skipped,
      verified: true,
      ms: Date.now() - started,
    });
    return "imported";
  } finally {
    if (poll !== undefined) clearInterval(poll);
  }
}

async function runImport(context: CommandContext, args: ParsedArgs): Promise<number> {
  const { host } = context;
  const started = Date.now();
  const settings: ImportSettings = {
    scope: scopeOf(context, args),
    chunkSize: (args.options["chunk-size"] as number | undefined) ?? DEFAULT_CHUNK_SIZE,
    concurrency: (args.options.concurrency as number | undefined) ?? DEFAULT_CONCURRENCY,
    skipInvalid: args.options["skip-invalid"] === true,
  };
  if (settings.chunkSize < 1024 || settings.chunkSize > 1024 * 1024) {
    throw new CliError("E_CLI_USAGE", "--chunk-size must be between 1KiB and 1MiB");
  }
  if (settings.concurrency < 1 || settings.concurrency > 64) {
    throw new CliError("E_CLI_USAGE", "--concurrency must be between 1 and 64");
  }
  const target = storeOptions(host, args.options);
  const files = await findRolloutFiles(host, args.positionals);
  if (files.length === 0) {
    throw new CliError(
      "E_CLI_NOT_FOUND",
      `no rollout-*.jsonl files under ${args.positionals.join(", ")}`,
    );
  }
  const reporter = context.json
    ? jsonReporter(host.stdout)
    : host.stdout.isTTY && args.options.plain !== true
    ? ttyReporter(host.stdout)
    : plainReporter(host.stdout);

  const interrupt = new AbortController();
  let interrupts = 0;
  const stopListening = host.onInterrupt(() => {
    interrupts++;
    if (interrupts > 1) host.exit(EXIT.interrupted);
    reporter.flush();
    host.stderr.write(
      "interrupted: stopping after the current step (Ctrl-C again to quit at once); " +
        "run the same command again to resume\n",
    );
    interrupt.abort(new SyncError("E_SYNC_ABORTED", "interrupted (Ctrl-C)"));
  });
  let imported = 0;
  let unchanged = 0;
  let failed = 0;
  let exitCode: number = EXIT.ok;
  try {
    const store = await openStore(host, target, {
      create: true,
      handler: { interrupt: interrupt.signal },
    });
    try {
      // Without --chunk-size: 1 MiB, or less where the adapter takes smaller chunks.
      if (args.options["chunk-size"] === undefined) {
        const limit = (store.adapter as { maxChunkBytes?: number }).maxChunkBytes;
        if (limit !== undefined && limit < settings.chunkSize) settings.chunkSize = limit;
      }
      store.startWorker();
      reporter.report({
        event: "start",
        files: files.length,
        store: store.location,
        scope: settings.scope,
      });
      for (const file of files) {
        if (interrupt.signal.aborted) break;
        try {
          const outcome = await importFile(
            context,
            store,
            file,
            settings,
            reporter,
            interrupt.signal,
          );
          if (outcome === "imported") imported++;
          else unchanged++;
        } catch (error) {
          if (interrupt.signal.aborted) break;
          failed++;
          const code = exitCodeFor(error);
          // The most specific failure wins: invalid input over a generic failure.
          if (exitCode === EXIT.ok || code === EXIT.invalidInput) exitCode = code;
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
    stopListening();
  }
  const interrupted = interrupt.signal.aborted;
  reporter.report({
    event: "summary",
    files: files.length,
    imported,
    unchanged,
    failed,
    interrupted,
    ms: Date.now() - started,
  });
  reporter.flush();
  if (interrupted) return EXIT.interrupted;
  return exitCode;
}
