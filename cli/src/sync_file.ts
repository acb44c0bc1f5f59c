/**
 * Syncing one rollout file into the store — what `import` does per file and `watch` per
 * change (DESIGN §11).
 *
 * 1. The conversation id (the first `session_meta` record, else the file name) names the
 *    conversation's current import: how many bytes and lines of which file it holds.
 * 2. The scan hashes the file's complete lines (a last line without its newline is
 *    pending: left for the next sync) and judges only the lines the import lacks.
 * 3. A conversation's current import only moves forward. The file's first bytes equal
 *    the import: the same length is `unchanged` (unless its rows were found damaged —
 *    then it is imported again whole, a repair); more complete lines are uploaded as an
 *    extension of the import's source (`appendTo`), whose job applies and verifies only
 *    the new lines. A file whose lines are a prefix of the import is `older`, one that
 *    differs is `diverged`: both change nothing, unless `--replace`.
 * 4. The source id derives from path, content digest, chunk size and base, so running
 *    the same sync again after Ctrl-C resumes the upload or the job.
 * 5. Before any of this, the file's stat is compared with the state recorded with the
 *    import (`file_state.ts`): the same size and mtime is `unchanged` without opening the
 *    file; a grown file is read only from where the import ended, after its first line and
 *    the import's last bytes are found unchanged (append-only files; `rescan` reads every
 *    file whole). A file of a known conversation found at a new path (moved, same
 *    identity) is recognised the same way, and the import's path follows it. After each
 *    import or content check the state is recorded again, and the import's chunk payloads
 *    are released where the adapter can (`release-payloads`): the rows hold the data.
 *
 * @module
 */

import {
  type IncrementalSha256,
  isTerminalJobState,
  type Job,
  JOB_STATES,
  sha256Hex,
  type SyncAdapter,
  syncConversation,
  type SyncConversationResult,
  SyncError,
} from "@zakstam/codex-sync-engine";
import type { ConversationClaim } from "./conversation_gate.ts";
import { CliError } from "./errors.ts";
import {
  type FileStamp,
  recordFileState,
  sameFile,
  sameStamp,
  stampOf,
  storedKnownFile,
} from "./file_state.ts";
import { manifestDataValue, type RolloutManifestData } from "./handler.ts";
import type { CliHost } from "./host.ts";
import type { ImportEvent, ImportReporter } from "./progress.ts";
import type { ImportRow } from "./records.ts";
import {
  findConversationId,
  rangeBytes,
  readPieces,
  type RolloutScan,
  sameBytes,
  scanRollout,
  splitLines,
} from "./rollout.ts";
import type { OpenStore } from "./store.ts";

/** How files are synced. */
export interface SyncSettings {
  scope: string;
  chunkSize: number;
  concurrency: number;
  skipInvalid: boolean;
  /** Replace the current import with an older or diverging copy. */
  replace: boolean;
  /** Read every file whole, whatever its recorded state says (`import --rescan`). */
  rescan?: boolean;
}

/** What a sync of files runs in. */
export interface SyncSession {
  host: CliHost;
  store: OpenStore;
  settings: SyncSettings;
  reporter: ImportReporter;
  signal: AbortSignal;
  /**
   * Jobs that had not finished when the store was opened: one that succeeded since was
   * finished by this run's worker (a resumed import), not "unchanged".
   */
  unfinishedAtStart: ReadonlySet<string>;
  /**
   * The scope's imports by path, read once when a run over many files starts (one query
   * instead of one per file); conversations synced since are looked up again.
   */
  preloaded?: PreloadedImports;
}

/** See {@link SyncSession.preloaded}. */
export interface PreloadedImports {
  byPath: Map<string, ImportRow>;
  /** Conversations whose import this run may have changed. */
  touched: Set<string>;
}

/** Reads the scope's imports for {@link SyncSession.preloaded}. */
export async function preloadImports(
  store: OpenStore,
  scope: string,
): Promise<PreloadedImports> {
  const byPath = new Map<string, ImportRow>();
  // Newest first: where two imports name one path, the newest is the one found by path.
  for (const row of await store.tables.listImports(scope, 1_000_000)) {
    if (!byPath.has(row.path)) byPath.set(row.path, row);
  }
  return { byPath, touched: new Set() };
}

/** What a sync knows of a file after it: enough to read only what is appended next. */
export interface KnownFile {
  path: string;
  conversationId: string;
  /** The conversation's current import's source. */
  sourceId: string;
  /** Bytes of complete lines imported. */
  byteCount: number;
  lineCount: number;
  invalidCount: number;
  sha256: string;
  /** The hash over those bytes, unfinished. */
  hash: IncrementalSha256;
  /** Their last bytes. */
  tail: Uint8Array;
  /** The file's size when last read (complete lines and the pending part). */
  size: number;
}

/** How a file's sync ended. */
export type FileOutcome = "imported" | "unchanged" | "older" | "diverged" | "pending";

/** The result of {@link syncFile}. */
export interface FileResult {
  outcome: FileOutcome;
  /** Set when the file is the conversation's current import (imported or unchanged). */
  known?: KnownFile;
  /** The import event, when something was imported. */
  imported?: Extract<ImportEvent, { event: "imported" }>;
}

/** The non-terminal jobs of `scope` (before the worker starts, for {@link SyncSession}). */
export async function unfinishedJobs(adapter: SyncAdapter, scope: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const state of JOB_STATES.filter((state) => !isTerminalJobState(state))) {
    let cursor: string | undefined;
    do {
      const page = await adapter.listJobs({
        scope,
        state,
        limit: 1000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const job of page.items) ids.add(job.jobId);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }
  return ids;
}

/** The deterministic source id of a file's content at a path (and the import it extends). */
export async function sourceIdFor(
  path: string,
  sha256: string,
  conversationId: string,
  chunkSize: number,
  baseSourceId: string | undefined,
): Promise<string> {
  const key = JSON.stringify([
    "codex-rollout/2",
    path,
    sha256,
    conversationId,
    chunkSize,
    baseSourceId ?? null,
  ]);
  return `rollout-${(await sha256Hex(new TextEncoder().encode(key))).slice(0, 40)}`;
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof SyncError && error.code === code;
}

type Plan =
  | { kind: "new"; sourceId: string }
  | { kind: "resume-upload"; sourceId: string }
  | { kind: "resume-job"; sourceId: string; job: Job }
  /** The source's job succeeded meanwhile (the worker finished it): nothing to upload. */
  | { kind: "finished"; sourceId: string; job: Job };

/**
 * What to do with a source id: new, resume, or already finished. A source that cannot
 * be resumed (its seal failed, it expired, its job failed or was cancelled, or it
 * succeeded but is not the current import any more) is passed over for the next id in
 * the series `<id>`, `<id>-1`, `<id>-2`, …
 */
async function planSource(
  session: SyncSession,
  conversationId: string,
  id: string,
): Promise<Plan> {
  const { adapter, tables } = session.store;
  const { scope } = session.settings;
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const sourceId = attempt === 0 ? id : `${id}-${attempt}`;
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
      if (!isTerminalJobState(job.state)) return { kind: "resume-job", sourceId, job };
      if (job.state === "succeeded") {
        const current = await tables.getImport(scope, conversationId);
        if (current?.sourceId === sourceId && !current.damaged) {
          return { kind: "finished", sourceId, job };
        }
      }
    }
  }
  throw new SyncError("E_SYNC_INTERNAL", `no usable source id left after ${id}-999`);
}

/** True for the engine refusing `baseSourceId` as the base of an extension. */
function isBaseRefusal(error: unknown, baseSourceId: string): boolean {
  if (!(error instanceof SyncError)) return false;
  const details = error.details ?? {};
  switch (error.code) {
    case "E_SYNC_SOURCE_NOT_FOUND":
      return details.sourceId === baseSourceId;
    case "E_SYNC_CHUNK_CONFLICT":
    case "E_SYNC_SOURCE_EXPIRED":
      return true;
    case "E_SYNC_INVALID_ARGUMENT":
      return details.baseSourceId === baseSourceId;
    default:
      return false;
  }
}

/** Where the file stands against the current import when its first bytes differ. */
type Comparison = { kind: "older" } | { kind: "diverged"; line: number };

/**
 * Compares the file's complete lines with the current import's rows, line by line: a
 * prefix of them is older, anything else diverges at the first differing line.
 */
async function compareWithImport(
  session: SyncSession,
  scan: RolloutScan,
  current: ImportRow,
): Promise<Comparison> {
  const { tables } = session.store;
  const { scope } = session.settings;
  const PAGE = 1_000;
  let page: { lineNo: number; bytes: Uint8Array }[] = [];
  let index = 0;
  let after = 0;
  let line = 0;
  const lines = splitLines(
    readPieces(session.host.readFile(scan.path), scan.byteCount),
  );
  for await (const { bytes } of lines) {
    line++;
    if (index >= page.length) {
      page = line > current.lineCount
        ? []
        : await tables.readLines(scope, current.rowSet, after, PAGE, current.lineCount);
      index = 0;
      if (page.length > 0) after = page[page.length - 1].lineNo;
    }
    const stored = page[index++];
    if (!stored || stored.lineNo !== line || !sameBytes(stored.bytes, bytes)) {
      return { kind: "diverged", line };
    }
  }
  return line < current.lineCount ? { kind: "older" } : { kind: "diverged", line: line + 1 };
}

function invalidRecord(
  scan: RolloutScan,
  importedLines: number,
): CliError {
  const { line, reason } = scan.invalidLines[0];
  const kept = importedLines > 0
    ? `its new lines were not imported (lines 1-${importedLines} stay imported)`
    : "nothing of this file was imported";
  return new CliError(
    "E_CLI_INVALID_RECORD",
    `${scan.path}:${line}: ${reason}; ${kept} ` +
      `(fix the line, or pass --skip-invalid to record and skip such lines)`,
    { details: { path: scan.path, line, reason } },
  );
}

function knownOf(
  scan: RolloutScan,
  conversationId: string,
  sourceId: string,
  invalidCount: number,
): KnownFile {
  return {
    path: scan.path,
    conversationId,
    sourceId,
    byteCount: scan.byteCount,
    lineCount: scan.lineCount,
    invalidCount,
    sha256: scan.sha256,
    hash: scan.hash,
    tail: scan.tail,
    size: scan.byteCount + scan.pendingBytes,
  };
}

/** Why a file is imported whole. */
type FullReason = "new" | "replace" | "repair" | "forward" | "fallback";

/** What the recorded file state says without reading the file's content. */
type StatCheck =
  | { kind: "unchanged"; row: ImportRow; movedFrom?: string }
  | { kind: "grown"; known: KnownFile };

/** The import last read from `path` (from the run's preloaded imports where they serve). */
async function importAtPath(session: SyncSession, path: string): Promise<ImportRow | undefined> {
  const { tables } = session.store;
  const { scope } = session.settings;
  const { preloaded } = session;
  const row = preloaded ? preloaded.byPath.get(path) : await tables.findImportByPath(scope, path);
  return row && preloaded?.touched.has(row.conversationId)
    ? await tables.findImportByPath(scope, path)
    : row;
}

/**
 * Compares the stat of `path` with the state recorded with the import read from it (or,
 * for a file at a new path, with that of the conversation its first line names, when the
 * identity is the same and the import's path is gone: a moved file).
 */
async function checkStat(
  session: SyncSession,
  path: string,
  stamp: FileStamp,
  claim: ConversationClaim | undefined,
): Promise<StatCheck | undefined> {
  const { tables } = session.store;
  const { scope } = session.settings;
  const { preloaded } = session;
  let row = await importAtPath(session, path);
  if (claim) {
    // Another file of that conversation may be syncing: look again once this one holds it.
    let held: string | undefined;
    while (row && row.conversationId !== held) {
      held = row.conversationId;
      await claim.enter(held);
      row = await importAtPath(session, path);
    }
  }
  let movedFrom: string | undefined;
  if (!row && stamp.fileId !== undefined) {
    const { conversationId } = await findConversationId(session.host, path);
    await claim?.enter(conversationId);
    const candidate = await tables.getImport(scope, conversationId);
    if (
      candidate?.file?.fileId === stamp.fileId && candidate.path !== path &&
      (await session.host.stat(candidate.path)) === undefined
    ) {
      row = candidate;
      movedFrom = candidate.path;
    }
  }
  if (
    !row?.file || row.damaged || !sameFile(row.file, stamp) ||
    // Its job was finished by this run's worker: reported as imported (see syncContent).
    session.unfinishedAtStart.has(row.jobId)
  ) return undefined;
  if (sameStamp(row.file, stamp)) {
    if (movedFrom !== undefined) {
      await tables.setFileState(scope, row.conversationId, row.sourceId, path, row.file);
      preloaded?.touched.add(row.conversationId);
    }
    return { kind: "unchanged", row, ...(movedFrom === undefined ? {} : { movedFrom }) };
  }
  if (stamp.size > row.file.size) {
    const known = await storedKnownFile(session, row, path);
    if (known) return { kind: "grown", known };
  }
  return undefined;
}

/** Where the adapter can, drops the chunk bytes of a verified, current import's source. */
async function releasePayloads(session: SyncSession, sourceId: string): Promise<void> {
  // A narrow local type: the operation is optional (capability `release-payloads`).
  const adapter = session.store.adapter as
    & { capabilities: readonly string[] }
    & { releasePayloads?: (input: { scope: string; sourceId: string }) => Promise<unknown> };
  if (
    !adapter.capabilities.includes("release-payloads") ||
    typeof adapter.releasePayloads !== "function"
  ) return;
  try {
    await adapter.releasePayloads({ scope: session.settings.scope, sourceId });
  } catch (error) {
    // Refused because the conversation moved on meanwhile (a newer job): nothing to do.
    const reason = error instanceof SyncError ? error.details?.reason : undefined;
    if (reason === "not-current" || reason === "job-active") return;
    throw error;
  }
}

/**
 * Syncs one file (see the module doc). With `known` (what an earlier sync of the same
 * file in this process learnt), only the bytes after the known part are read, after a
 * check that the known part's last bytes are unchanged. With `claim` (files synced at
 * once, `conversation_gate.ts`), the file enters each conversation before it reads or
 * writes anything of it, and settles as soon as its conversation is final.
 */
export async function syncFile(
  session: SyncSession,
  path: string,
  known?: KnownFile,
  claim?: ConversationClaim,
): Promise<FileResult> {
  // Before anything is read: bytes appended after this stat make the state recorded
  // below fail to match (their size), so the next sync looks again.
  const stamp = stampOf(await session.host.stat(path));
  if (!known && stamp && session.settings.rescan !== true) {
    const check = await checkStat(session, path, stamp, claim);
    if (check?.kind === "unchanged") {
      const { row } = check;
      session.reporter.report({
        event: "unchanged",
        file: path,
        conversationId: row.conversationId,
        jobId: row.jobId,
        sourceId: row.sourceId,
        lines: row.lineCount,
        pendingBytes: stamp.size - row.byteCount,
        checked: "stat",
        ...(check.movedFrom === undefined ? {} : { movedFrom: check.movedFrom }),
      });
      return { outcome: "unchanged" };
    }
    if (check?.kind === "grown") known = check.known;
  }
  const result = await syncContent(session, path, known, claim);
  if (result.known && (result.outcome === "imported" || result.outcome === "unchanged")) {
    session.preloaded?.touched.add(result.known.conversationId);
    if (stamp) await recordFileState(session, path, stamp, result.known);
    await releasePayloads(session, result.known.sourceId);
  }
  return result;
}

async function syncContent(
  session: SyncSession,
  path: string,
  known: KnownFile | undefined,
  claim: ConversationClaim | undefined,
): Promise<FileResult> {
  const started = Date.now();
  const { host, store, settings, reporter, signal } = session;
  const { scope } = settings;
  let conversationId: string;
  let conversationIdFrom: "session_meta" | "file name" | "known" = "known";
  let current: ImportRow | undefined;
  let scan: RolloutScan | undefined;
  let resumed = false;
  if (known) {
    conversationId = known.conversationId;
    await claim?.enter(conversationId);
    current = await store.tables.getImport(scope, conversationId);
    if (
      current && current.sourceId === known.sourceId && !current.damaged &&
      current.byteCount === known.byteCount && current.fileSha256 === known.sha256
    ) {
      scan = await scanRollout(host, path, {
        keepJudgements: store.judgements !== undefined,
        resume: {
          byteCount: known.byteCount,
          lineCount: known.lineCount,
          hash: known.hash,
          tail: known.tail,
        },
      });
      if (scan.rewritten) scan = undefined;
      else resumed = true;
    }
  }
  if (!scan) {
    const found = await findConversationId(host, path);
    conversationId = found.conversationId;
    conversationIdFrom = found.conversationIdFrom;
    await claim?.enter(conversationId);
    // Final now: files of other conversations may go ahead while this one is read.
    claim?.settle();
    current = await store.tables.getImport(scope, conversationId);
    scan = await scanRollout(host, path, {
      from: current?.byteCount ?? 0,
      keepJudgements: store.judgements !== undefined,
    });
  }
  conversationId = conversationId!;
  claim?.settle();
  if (signal.aborted) throw signal.reason;

  // Decide.
  let action:
    | { kind: "unchanged" }
    | { kind: "extend"; base: ImportRow }
    | { kind: "full"; reason: FullReason }
    | Comparison;
  if (!current) {
    action = { kind: "full", reason: "new" };
  } else if (
    resumed || (scan.byteCount >= current.byteCount && scan.prefixSha256 === current.fileSha256)
  ) {
    if (scan.byteCount === current.byteCount) {
      // A file this process synced itself (resumed) was checked then; otherwise a row
      // count catches rows gone missing (O(rows), on unchanged files only).
      const damaged = current.damaged || (!resumed &&
        (await store.tables.countRows(scope, current.rowSet, current.lineCount)).lines !==
          current.lineCount);
      action = damaged ? { kind: "full", reason: "repair" } : { kind: "unchanged" };
    } else if (scan.fromIsLineStart) {
      action = { kind: "extend", base: current };
    } else {
      // The import ended inside a line (an older version imported a last line without its
      // newline): the file moved forward, but its new bytes do not start a line.
      action = { kind: "full", reason: "forward" };
    }
  } else {
    const comparison = await compareWithImport(session, scan, current);
    action = settings.replace ? { kind: "full", reason: "replace" } : comparison;
  }
  if (action.kind === "full" && scan.from > 0) {
    scan = await scanRollout(host, path, {
      from: 0,
      keepJudgements: store.judgements !== undefined,
    });
    if (signal.aborted) throw signal.reason;
  }
  if (action.kind === "full" && scan.byteCount === 0) {
    reporter.report({
      event: "pending",
      file: path,
      conversationId,
      pendingBytes: scan.pendingBytes,
    });
    return { outcome: "pending" };
  }
  reporter.report({
    event: "scanned",
    file: path,
    bytes: scan.byteCount,
    lines: scan.lineCount,
    invalidLines: scan.invalidCount,
    pendingBytes: scan.pendingBytes,
    newLines: action.kind === "extend"
      ? scan.lineCount - action.base.lineCount
      : action.kind === "full"
      ? scan.lineCount
      : 0,
    conversationId,
    conversationIdFrom: conversationIdFrom === "known" ? "session_meta" : conversationIdFrom,
  });

  if (action.kind === "older" || action.kind === "diverged") {
    const cur = current!;
    reporter.report(
      action.kind === "older"
        ? {
          event: "older",
          file: path,
          conversationId,
          lines: scan.lineCount,
          currentLines: cur.lineCount,
          currentPath: cur.path,
          jobId: cur.jobId,
        }
        : {
          event: "diverged",
          file: path,
          conversationId,
          line: action.line,
          lines: scan.lineCount,
          currentLines: cur.lineCount,
          currentPath: cur.path,
          jobId: cur.jobId,
        },
    );
    return { outcome: action.kind };
  }

  if (action.kind === "unchanged") {
    const cur = current!;
    const known = knownOf(scan, conversationId, cur.sourceId, cur.invalidCount);
    if (session.unfinishedAtStart.has(cur.jobId)) {
      // The worker finished this file's interrupted job before we got to it.
      const imported = importedEvent(path, cur, started, scan.pendingBytes, {
        mode: cur.rowSet === cur.sourceId ? "full" : "extension",
        resumed: true,
        uploaded: { chunks: 0, bytes: 0 },
        skipped: { chunks: 0, bytes: 0 },
        reused: { chunks: 0, bytes: 0 },
        newLines: 0,
      });
      reporter.report(imported);
      return { outcome: "imported", known, imported };
    }
    reporter.report({
      event: "unchanged",
      file: path,
      conversationId,
      jobId: cur.jobId,
      sourceId: cur.sourceId,
      lines: cur.lineCount,
      pendingBytes: scan.pendingBytes,
      checked: "content",
      ...(cur.path === path ? {} : { importedFrom: cur.path }),
    });
    return { outcome: "unchanged", known };
  }

  let base = action.kind === "extend" ? action.base : undefined;
  let reason: FullReason | undefined = action.kind === "full" ? action.reason : undefined;
  if (reason === "repair" && !current!.damaged) {
    // Found by the row count: marked like `verify` does, so the current source is not
    // taken for this content's finished import.
    await store.tables.markDamaged(scope, conversationId, true);
  }
  for (;;) {
    if (scan.invalidCount > 0 && !settings.skipInvalid) {
      throw invalidRecord(scan, base?.lineCount ?? 0);
    }
    try {
      return await upload(session, scan, conversationId, base, reason, started);
    } catch (error) {
      if (!base || !isBaseRefusal(error, base.sourceId) || signal.aborted) throw error;
      // The import's source cannot be extended (extended already, expired, purged):
      // upload the file whole instead.
      base = undefined;
      reason = "fallback";
      scan = await scanRollout(host, path, {
        from: 0,
        keepJudgements: store.judgements !== undefined,
      });
      if (signal.aborted) throw signal.reason;
    }
  }
}

function importedEvent(
  path: string,
  row: ImportRow,
  started: number,
  pendingBytes: number,
  extra: Pick<
    Extract<ImportEvent, { event: "imported" }>,
    "mode" | "uploaded" | "skipped" | "reused" | "newLines" | "resumed" | "reason"
  >,
): Extract<ImportEvent, { event: "imported" }> {
  return {
    event: "imported",
    file: path,
    conversationId: row.conversationId,
    sourceId: row.sourceId,
    jobId: row.jobId,
    records: row.lineCount,
    invalidLines: row.invalidCount,
    bytes: row.byteCount,
    digest: row.digest,
    pendingBytes,
    verified: true,
    ms: Date.now() - started,
    ...extra,
  };
}

async function upload(
  session: SyncSession,
  scan: RolloutScan,
  conversationId: string,
  base: ImportRow | undefined,
  reason: FullReason | undefined,
  started: number,
): Promise<FileResult> {
  const { host, store, settings, reporter, signal } = session;
  const { scope } = settings;
  const path = scan.path;
  const invalidCount = (base?.invalidCount ?? 0) + scan.invalidCount;
  const data: RolloutManifestData = {
    kind: "codex-rollout",
    version: 2,
    path,
    fileSha256: scan.sha256,
    lineCount: scan.lineCount,
    invalidCount,
    trailingNewline: true,
    chunkSize: settings.chunkSize,
    // From the content, not the flag: the scan let invalid lines through only with it,
    // and the same content must give the same manifest (resuming with or without it).
    skipInvalid: invalidCount > 0,
  };
  if (base) {
    data.base = {
      sourceId: base.sourceId,
      fileSha256: base.fileSha256,
      lineCount: base.lineCount,
      invalidCount: base.invalidCount,
      byteCount: base.byteCount,
    };
    data.tailSha256 = scan.tailSha256;
  }
  const id = await sourceIdFor(
    path,
    scan.sha256,
    conversationId,
    settings.chunkSize,
    base?.sourceId,
  );
  const plan = await planSource(session, conversationId, id);
  const newLines = scan.lineCount - (base?.lineCount ?? 0);
  const mode = base ? "extension" as const : "full" as const;
  if (plan.kind === "finished") {
    const row = (await store.tables.getImport(scope, conversationId))!;
    const imported = importedEvent(path, row, started, scan.pendingBytes, {
      mode,
      resumed: true,
      uploaded: { chunks: 0, bytes: 0 },
      skipped: { chunks: 0, bytes: 0 },
      reused: { chunks: 0, bytes: 0 },
      newLines,
    });
    reporter.report(imported);
    return {
      outcome: "imported",
      known: knownOf(scan, conversationId, row.sourceId, invalidCount),
      imported,
    };
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
  const start = base?.byteCount ?? 0;
  const totalBytes = scan.byteCount - start;
  let poll: ReturnType<typeof setInterval> | undefined;
  let lastApplied = "";
  let finished = false;
  const watchJob = (jobId: string) => {
    let busy = false;
    poll = setInterval(() => {
      if (busy) return;
      busy = true;
      store.adapter.getJob({ scope, jobId }).then((job) => {
        const key = `${job.state}:${job.cursor}`;
        if (finished || key === lastApplied) return;
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
  let result: SyncConversationResult;
  // For this process's worker: the job of this source applies the lines just judged.
  if (scan.judged) store.judgements?.set(scope, plan.sourceId, scan.judged);
  try {
    result = await syncConversation(store.adapter, {
      scope,
      conversationId,
      sourceId: plan.sourceId,
      payload: rangeBytes(
        host,
        path,
        start,
        scan.byteCount,
        base ? scan.tailSha256 : scan.sha256,
      ),
      format: "bytes",
      extend: false,
      ...(base ? { appendTo: base.sourceId } : {}),
      chunkSize: settings.chunkSize,
      concurrency: settings.concurrency,
      manifestData: manifestDataValue(data),
      metadata: { path, fileSha256: scan.sha256, tool: "codex-sync" },
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
            totalBytes,
          });
        } else if (event.phase === "sealed") {
          reporter.report({
            event: "sealed",
            file: path,
            jobId: event.job.jobId,
            chunkCount: event.manifest.chunkCount,
            byteCount: event.manifest.byteCount,
            digest: event.manifest.digest,
            ...(event.job.base ? { appliesFrom: event.job.base.chunkCount } : {}),
          });
        } else if (event.phase === "waiting") {
          watchJob(event.job.jobId);
        }
      },
    });
  } finally {
    finished = true;
    if (poll !== undefined) clearInterval(poll);
    store.judgements?.delete(scope, plan.sourceId);
  }
  const { job } = result;
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
  const row = await store.tables.getImport(scope, conversationId);
  if (!row || row.sourceId !== job.sourceId) {
    throw new SyncError(
      "E_SYNC_INTERNAL",
      `job ${job.jobId} succeeded but conversation ${conversationId} does not name its source`,
    );
  }
  const imported = importedEvent(path, row, started, scan.pendingBytes, {
    mode,
    ...(plan.kind === "new" ? {} : { resumed: true }),
    uploaded: result.uploaded,
    skipped: result.skipped,
    reused: result.reused,
    newLines,
    ...(reason === undefined ? {} : { reason }),
  });
  imported.appliedNewOnly = job.base !== undefined;
  reporter.report(imported);
  return {
    outcome: "imported",
    known: knownOf(scan, conversationId, row.sourceId, invalidCount),
    imported,
  };
}
