/**
 * How `import` reports: a redrawn progress line on a terminal, plain lines otherwise, or
 * JSON Lines events with `--json`. Several files may be in flight at once (`import
 * --files-at-once`): their events interleave, each file's in its own order; plain lines
 * name their file, and the redrawn line shows every file in flight.
 *
 * @module
 */

import { basename } from "node:path";
import { formatBytes, formatDuration, formatTime, middleEllipsis } from "./format.ts";
import type { TextOutput } from "./host.ts";

/** Everything `import` reports, one event at a time (the `--json` output). */
export type ImportEvent =
  | {
    event: "start";
    files: number;
    store: string;
    scope: string;
    /** Since the command started: finding the files and opening the store. */
    ms: number;
  }
  | {
    event: "scanned";
    file: string;
    /** Bytes of complete lines (what an import takes). */
    bytes: number;
    lines: number;
    /** Malformed lines among those judged (the ones not imported yet). */
    invalidLines: number;
    /** Bytes after the last newline: a line still being written, left for the next sync. */
    pendingBytes: number;
    /** Lines the current import lacks. */
    newLines: number;
    conversationId: string;
    conversationIdFrom: "session_meta" | "file name";
  }
  | { event: "pending"; file: string; conversationId: string; pendingBytes: number }
  | {
    event: "unchanged";
    file: string;
    conversationId: string;
    jobId: string;
    sourceId: string;
    lines: number;
    pendingBytes: number;
    /** The current import came from another path (a copy). */
    importedFrom?: string;
    /**
     * How it was found unchanged: its size and mtime are those recorded with the import
     * (the file was not read), the same checked against the embedded store's stat cache
     * (`stat-cache`: the store was not opened, see stat_cache.ts), or its content was read
     * and compared.
     */
    checked: "stat" | "stat-cache" | "content";
    /** The file was found moved from this path (same identity); the import follows it. */
    movedFrom?: string;
  }
  | {
    event: "older";
    file: string;
    conversationId: string;
    lines: number;
    currentLines: number;
    currentPath: string;
    jobId: string;
  }
  | {
    event: "diverged";
    file: string;
    conversationId: string;
    /** First line that differs from the current import. */
    line: number;
    lines: number;
    currentLines: number;
    currentPath: string;
    jobId: string;
  }
  | {
    event: "resuming";
    file: string;
    sourceId: string;
    stage: "upload" | "job";
    jobId?: string;
    /** A previous run's lease on the job, which must expire before the job continues. */
    leaseUntil?: number;
  }
  | {
    event: "upload";
    file: string;
    sourceId: string;
    chunksUploaded: number;
    bytesUploaded: number;
    chunksSkipped: number;
    bytesSkipped: number;
    totalBytes: number;
  }
  | {
    event: "sealed";
    file: string;
    jobId: string;
    chunkCount: number;
    byteCount: number;
    digest: string;
    /** The job builds on the base's applied job: it applies chunks from this index. */
    appliesFrom?: number;
  }
  | { event: "applying"; file: string; jobId: string; state: string; cursor: number; total: number }
  | {
    event: "imported";
    file: string;
    conversationId: string;
    sourceId: string;
    jobId: string;
    /** Lines of the conversation's import now. */
    records: number;
    invalidLines: number;
    bytes: number;
    digest: string;
    pendingBytes: number;
    /** `extension`: only the new lines were uploaded; `full`: the file's complete lines. */
    mode: "full" | "extension";
    /** The upload or job of an earlier, interrupted run was finished. */
    resumed?: boolean;
    /** Why a file was uploaded whole although the conversation had an import. */
    reason?: "new" | "replace" | "repair" | "forward" | "fallback";
    /** Lines added (all of them for a new conversation). */
    newLines: number;
    uploaded: { chunks: number; bytes: number };
    skipped: { chunks: number; bytes: number };
    /** Chunks of the base taken over by reference (an extension). */
    reused: { chunks: number; bytes: number };
    /** The job applied only the new chunks (it built on the base's applied job). */
    appliedNewOnly?: boolean;
    verified: true;
    ms: number;
  }
  | { event: "failed"; file: string; code: string; message: string; line?: number }
  | {
    event: "summary";
    files: number;
    imported: number;
    unchanged: number;
    older: number;
    diverged: number;
    pending: number;
    failed: number;
    interrupted: boolean;
    ms: number;
  };

/** Receives the events of an import. */
export interface ImportReporter {
  report(event: ImportEvent): void;
  /** Ends any redrawn line (before an error is printed, and at the end). */
  flush(): void;
}

/** One JSON object per line on `out`. */
export function jsonReporter(out: TextOutput): ImportReporter {
  return { report: (event) => out.write(JSON.stringify(event) + "\n"), flush: () => {} };
}

const THROTTLE_MS = 1_000;

/** Plain lines (uploads and applies throttled to one line a second per file). */
export function plainReporter(out: TextOutput, now: () => number = Date.now): ImportReporter {
  /** When each file in flight last printed a throttled line. */
  const lastLine = new Map<string, number>();
  const throttled = (file: string, final: boolean, line: string) => {
    const at = now();
    if (!final && at - (lastLine.get(file) ?? -Infinity) < THROTTLE_MS) return;
    lastLine.set(file, at);
    out.write(line + "\n");
  };
  return {
    report(event) {
      switch (event.event) {
        case "start":
          out.write(
            `importing ${event.files} file(s) into ${event.store} (scope ${event.scope})\n`,
          );
          break;
        case "scanned":
          lastLine.delete(event.file);
          out.write(
            `scan      ${event.file}: ${event.lines} lines` +
              (event.newLines > 0 && event.newLines < event.lines
                ? ` (${event.newLines} new)`
                : "") +
              `, ${formatBytes(event.bytes)}, ` +
              `conversation ${event.conversationId} (from ${event.conversationIdFrom})` +
              (event.invalidLines > 0 ? `, ${event.invalidLines} invalid line(s)` : "") +
              pendingNote(event.pendingBytes) + "\n",
          );
          break;
        case "pending":
          out.write(
            `pending   ${event.file}: no complete line yet (${event.pendingBytes} bytes ` +
              `without a newline); nothing to import\n`,
          );
          break;
        case "unchanged":
          out.write(
            `unchanged ${event.file}: already imported (job ${event.jobId}` +
              (event.importedFrom ? `, from ${event.importedFrom}` : "") +
              (event.movedFrom ? `, moved from ${event.movedFrom}` : "") +
              `); nothing to do\n`,
          );
          break;
        case "older":
        case "diverged":
          out.write(conflictLine(event) + "\n");
          break;
        case "resuming":
          out.write(
            event.stage === "upload"
              ? `resume    ${event.file}: continuing the interrupted upload of ${event.sourceId}\n`
              : `resume    ${event.file}: upload complete; continuing job ${event.jobId}` +
                leaseNote(event.leaseUntil) + "\n",
          );
          break;
        case "upload": {
          const done = event.bytesUploaded + event.bytesSkipped;
          throttled(
            event.file,
            done >= event.totalBytes,
            `upload    ${event.file}: ${formatBytes(done)} / ${formatBytes(event.totalBytes)}` +
              ` (${event.chunksUploaded} chunk(s) uploaded, ${event.chunksSkipped} already stored)`,
          );
          break;
        }
        case "sealed":
          lastLine.delete(event.file);
          out.write(
            `sealed    ${event.file}: ${event.chunkCount} chunk(s), ${
              formatBytes(event.byteCount)
            }, ` +
              `digest ${event.digest}; job ${event.jobId}\n`,
          );
          break;
        case "applying":
          throttled(
            event.file,
            event.cursor >= event.total,
            `apply     ${event.file}: ${event.cursor}/${event.total} chunk(s) applied (${event.state})`,
          );
          break;
        case "imported":
          lastLine.delete(event.file);
          out.write(
            `imported  ${event.file}: ${event.records} records into conversation ` +
              `${event.conversationId}` + importedNote(event) +
              `; verified (job ${event.jobId}, digest ${event.digest}) in ${
                formatDuration(event.ms)
              }\n`,
          );
          break;
        case "failed":
          lastLine.delete(event.file);
          out.write(`failed    ${event.file}: ${event.code}\n`);
          break;
        case "summary":
          out.write(summaryLine(event) + "\n");
          break;
      }
    },
    flush: () => {},
  };
}

function leaseNote(until: number | undefined): string {
  return until === undefined
    ? ""
    : ` (a previous run still holds its lease until ${formatTime(until)}; waiting for it)`;
}

function summaryLine(event: Extract<ImportEvent, { event: "summary" }>): string {
  const extra = (["older", "diverged", "pending"] as const)
    .filter((key) => event[key] > 0).map((key) => `${event[key]} ${key}, `).join("");
  return `${event.files} file(s): ${event.imported} imported, ${event.unchanged} unchanged, ` +
    extra +
    `${event.failed} failed${event.interrupted ? ", interrupted (run again to resume)" : ""} ` +
    `in ${formatDuration(event.ms)}`;
}

function pendingNote(bytes: number): string {
  return bytes > 0 ? `; a last line of ${bytes} bytes without its newline is pending` : "";
}

function importedNote(event: Extract<ImportEvent, { event: "imported" }>): string {
  const notes: string[] = [];
  if (event.mode === "extension") notes.push(`+${event.newLines} new line(s) appended`);
  if (event.reason === "repair") notes.push("damaged rows repaired");
  if (event.reason === "replace") notes.push("replaced the previous import");
  if (event.reason === "fallback") notes.push("uploaded whole: its import could not be extended");
  if (event.resumed) notes.push("resumed");
  if (event.invalidLines > 0) notes.push(`${event.invalidLines} invalid line(s) recorded`);
  if (event.pendingBytes > 0) notes.push(`${event.pendingBytes} pending bytes left`);
  return notes.length > 0 ? ` (${notes.join(", ")})` : "";
}

function conflictLine(event: Extract<ImportEvent, { event: "older" | "diverged" }>): string {
  return event.event === "older"
    ? `older     ${event.file}: its ${event.lines} lines are a prefix of the current import ` +
      `(${event.currentLines} lines, from ${event.currentPath}); nothing changed ` +
      `(--replace imports it anyway)`
    : `diverged  ${event.file}: differs from the current import (${event.currentLines} lines, ` +
      `from ${event.currentPath}) at line ${event.line}; nothing changed ` +
      `(--replace replaces the import with it)`;
}

/** Where one file in flight is. */
interface FileProgress {
  totalBytes: number;
  sentBytes: number;
  applied: number;
  chunks: number;
  phase: "upload" | "apply";
}

/** Upload and apply, each half of the way. */
function fractionOf(progress: FileProgress): number {
  const upload = progress.totalBytes === 0 ? 1 : progress.sentBytes / progress.totalBytes;
  const apply = progress.chunks === 0
    ? (progress.phase === "apply" ? 1 : 0)
    : progress.applied / progress.chunks;
  return Math.min(1, (upload + apply) / 2);
}

function percent(fraction: number): string {
  return `${String(Math.floor(fraction * 100)).padStart(3)}%`;
}

/**
 * One line redrawn in place (`\r`) on a terminal: a progress bar for the file in flight,
 * or, while several are, each one's name and percentage.
 */
export function ttyReporter(out: TextOutput, now: () => number = Date.now): ImportReporter {
  let drawn = false;
  let lastDraw = 0;
  /** The files in flight (scanned, not yet ended), in the order they started. */
  const inFlight = new Map<string, FileProgress>();
  const width = () => Math.max(20, Math.min(out.columns() || 80, 200));
  const clear = () => {
    if (drawn) out.write("\r\x1b[2K");
    drawn = false;
  };
  const progressOf = (file: string): FileProgress => {
    let progress = inFlight.get(file);
    if (!progress) {
      progress = { totalBytes: 0, sentBytes: 0, applied: 0, chunks: 0, phase: "upload" };
      inFlight.set(file, progress);
    }
    return progress;
  };
  const oneFile = (file: string, progress: FileProgress, columns: number): string => {
    const fraction = fractionOf(progress);
    const stats = ` ${percent(fraction)}  ` +
      `${formatBytes(progress.sentBytes)}/${
        formatBytes(progress.totalBytes)
      } up · ${progress.applied}/${progress.chunks || "?"} applied`;
    const barWidth = columns >= 100 ? 20 : 10;
    const filled = Math.round(fraction * barWidth);
    const bar = `[${"█".repeat(filled)}${"░".repeat(barWidth - filled)}]`;
    const nameWidth = Math.max(8, columns - 1 - stats.length - barWidth - 3);
    return `${middleEllipsis(basename(file), nameWidth)} ${bar}${stats}`;
  };
  const severalFiles = (columns: number): string => {
    const prefix = `${inFlight.size} files: `;
    const each = Math.floor((columns - 1 - prefix.length) / inFlight.size) - 8;
    return prefix +
      [...inFlight].map(([file, progress]) =>
        `${middleEllipsis(basename(file), Math.max(8, each))} ${percent(fractionOf(progress))}`
      ).join(" · ");
  };
  const draw = (force = false) => {
    if (inFlight.size === 0) return;
    const at = now();
    if (!force && at - lastDraw < 80) return;
    lastDraw = at;
    const columns = width();
    const [first] = inFlight;
    const text = inFlight.size === 1 ? oneFile(first[0], first[1], columns) : severalFiles(columns);
    // Never wider than the terminal: a wrapped line cannot be redrawn in place.
    out.write(`\r\x1b[2K${Array.from(text).slice(0, columns - 1).join("")}`);
    drawn = true;
  };
  /** A line that stays (above the redrawn one). */
  const line = (text: string) => {
    clear();
    out.write(text + "\n");
    draw(true);
  };
  /** A file's last line: it is not in flight any more. */
  const ended = (file: string, text: string) => {
    inFlight.delete(file);
    line(text);
  };
  return {
    report(event) {
      switch (event.event) {
        case "start":
          line(`importing ${event.files} file(s) into ${event.store} (scope ${event.scope})`);
          break;
        case "scanned":
          inFlight.set(event.file, {
            totalBytes: event.bytes,
            sentBytes: 0,
            applied: 0,
            chunks: 0,
            phase: "upload",
          });
          draw(true);
          break;
        case "resuming":
          progressOf(event.file);
          line(
            event.stage === "upload"
              ? `↻ ${basename(event.file)}: resuming the interrupted upload`
              : `↻ ${basename(event.file)}: upload complete; resuming job ${event.jobId}` +
                leaseNote(event.leaseUntil),
          );
          break;
        case "upload":
          progressOf(event.file).sentBytes = event.bytesUploaded + event.bytesSkipped;
          draw();
          break;
        case "sealed": {
          const progress = progressOf(event.file);
          progress.chunks = event.chunkCount;
          progress.sentBytes = progress.totalBytes;
          progress.phase = "apply";
          draw(true);
          break;
        }
        case "applying": {
          const progress = progressOf(event.file);
          progress.applied = event.cursor;
          progress.chunks = event.total;
          draw();
          break;
        }
        case "unchanged":
          ended(event.file, `= ${event.file}: unchanged, already imported (job ${event.jobId})`);
          break;
        case "pending":
          ended(event.file, `… ${event.file}: no complete line yet; nothing to import`);
          break;
        case "older":
        case "diverged":
          ended(
            event.file,
            `! ${conflictLine(event).replace(/^\w+\s+/, `${event.event}: `)}`,
          );
          break;
        case "imported":
          ended(
            event.file,
            `✓ ${event.file}: ${event.records} records → conversation ${event.conversationId}` +
              importedNote(event) +
              `, verified (job ${event.jobId}) in ${formatDuration(event.ms)}`,
          );
          break;
        case "failed":
          ended(event.file, `✗ ${event.file}: ${event.code}`);
          break;
        case "summary":
          inFlight.clear();
          line(summaryLine(event));
          break;
      }
    },
    flush: clear,
  };
}
