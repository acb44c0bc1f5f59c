/**
 * The host handler of a rollout import. Each chunk holds raw file bytes (the upload
 * splits the file at fixed sizes, not at line ends), so `apply` completes the partial
 * line carried over from the previous chunk, stores one row per complete line, and
 * carries the new partial line to the next chunk — all through the adapter's
 * transaction, so a chunk's rows and carry commit together with the job's progress.
 *
 * An import of a grown file is an extension source (DESIGN §9): when its job builds on
 * the base's applied job (`ctx.base`), `apply` sees only the new chunks, and appends
 * their lines to the current import's row set after its last line; `verify` then checks
 * only the new rows (against the digest of the new bytes, `tailSha256`). A job that
 * applies from chunk 0 writes a row set of its own, which replaces the conversation's
 * rows when it verifies.
 *
 * `verify` rebuilds the file from the stored rows and checks line count, invalid count,
 * byte count and the file's SHA-256 (and, for a source cut at one chunk size from its
 * first byte, the chunk count and the manifest's composite digest); then it makes the
 * source the conversation's current import (in the same transaction as `succeeded`).
 *
 * Re-applying a chunk is safe only where a failed apply leaves no trace: an adapter with
 * transactional apply (Postgres, PGlite), or the memory adapter (each apply writes its
 * rows and carry at the end, and nothing else runs its jobs).
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  type ApplyContext,
  chunkBytes,
  compositeDigest,
  type JsonValue,
  type Manifest,
  nonRetryable,
  sha256Hex,
  type SyncHandler,
  type VerifyContext,
} from "@zakstam/codex-sync-engine";
import type { Carry, ImportRow, NewRow, RecordTables, StoredLine } from "./records.ts";
import type { LineJudgements } from "./line_judgements.ts";
import { concat, joinParts, parseLines } from "./rollout.ts";

/** What an extension's manifest says of the import it extends. */
export interface RolloutBaseData {
  sourceId: string;
  fileSha256: string;
  lineCount: number;
  invalidCount: number;
  byteCount: number;
}

/** The manifest's domain data for a rollout import (deterministic for a given file). */
export type RolloutManifestData = {
  kind: "codex-rollout";
  /** 1: the whole file (written by older versions); 2: its complete lines. */
  version: 1 | 2;
  /** Canonical path of the imported file. */
  path: string;
  /** SHA-256 of the imported bytes (version 2: the file's complete lines). */
  fileSha256: string;
  lineCount: number;
  invalidCount: number;
  /** Whether the imported bytes end with a newline (always, in version 2, unless empty). */
  trailingNewline: boolean;
  chunkSize: number;
  /** Malformed lines are stored as invalid rows (else they fail the job). */
  skipInvalid: boolean;
  /** On an extension: the import it extends. */
  base?: RolloutBaseData;
  /** On an extension: SHA-256 of the bytes after the base's. */
  tailSha256?: string;
};

/** Reads the rollout data of a manifest, or throws (non-retryable). */
export function rolloutDataOf(manifest: Manifest): RolloutManifestData {
  const data = manifest.data as Partial<RolloutManifestData> | undefined;
  if (
    !data || data.kind !== "codex-rollout" || (data.version !== 1 && data.version !== 2) ||
    typeof data.chunkSize !== "number" || typeof data.lineCount !== "number"
  ) {
    throw nonRetryable(new Error("manifest data is not a codex-rollout import"));
  }
  return data as RolloutManifestData;
}

/** The manifest data as a JSON value for `syncConversation`'s `manifestData`. */
export function manifestDataValue(data: RolloutManifestData): JsonValue {
  return JSON.parse(JSON.stringify(data));
}

/** Options of {@link rolloutHandler}. */
export interface RolloutHandlerOptions {
  /**
   * When aborted, the next chunk fails with a retryable error before it writes anything:
   * the job goes to `retry_wait` and resumes promptly on the next run (Ctrl-C).
   */
  interrupt?: AbortSignal;
  /** Told after each applied chunk (inside the transaction, before commit). */
  onApplied?: (cursor: number, total: number) => void;
  /** Awaited before a chunk is applied, inside its transaction (a test's hold point). */
  beforeApply?: (index: number) => Promise<void>;
  /** Clock of `importedAt` (default `Date.now`). */
  now?: () => number;
  /** What this process's scans found of the lines of the sources it syncs. */
  judgements?: LineJudgements;
}

/**
 * The current import an extension's job builds on, checked against the manifest: the
 * job appends after its last line, so it must be exactly the import the CLI extended.
 */
async function baseImport(
  tables: RecordTables,
  context: ApplyContext | VerifyContext,
  data: RolloutManifestData,
): Promise<ImportRow> {
  const { job, source } = context;
  const base = job.base!;
  const current = await tables.getImport(job.scope, job.conversationId);
  const problem = !data.base
    ? "its manifest does not describe the import it extends"
    : !current
    ? "the conversation has no current import"
    : current.sourceId !== base.sourceId || data.base.sourceId !== base.sourceId
    ? `the current import is ${current.sourceId}, not the base ${base.sourceId}`
    : current.fileSha256 !== data.base.fileSha256 || current.lineCount !== data.base.lineCount ||
        current.byteCount !== data.base.byteCount ||
        (source.base !== undefined && source.base.byteCount !== current.byteCount)
    ? "the current import differs from the base the manifest describes"
    : undefined;
  if (problem !== undefined) {
    throw nonRetryable(new Error(`cannot extend the import of ${job.conversationId}: ${problem}`));
  }
  return current!;
}

/** The handler, writing through `tablesOf(context)`. */
export function rolloutHandler<TExtras extends object>(
  tablesOf: (context: TExtras) => RecordTables,
  options: RolloutHandlerOptions = {},
): SyncHandler<TExtras> {
  const now = options.now ?? Date.now;
  return {
    async apply(chunk, context: ApplyContext & TExtras) {
      await options.beforeApply?.(chunk.index);
      if (options.interrupt?.aborted) {
        throw new Error("interrupted (Ctrl-C); the job resumes on the next run");
      }
      const { job, manifest } = context;
      const data = rolloutDataOf(manifest);
      const tables = tablesOf(context);
      let carry: Carry;
      if (context.base && chunk.index === context.base.chunkCount) {
        // The first new chunk of an extension building on the applied base: its lines
        // follow the base's last line, in the base's row set.
        const current = await baseImport(tables, context, data);
        await tables.deleteRowsAfter(job.scope, current.rowSet, current.lineCount);
        carry = {
          nextLine: current.lineCount + 1,
          pending: new Uint8Array(0),
          rowSet: current.rowSet,
        };
      } else if (chunk.index === 0) {
        carry = { nextLine: 1, pending: new Uint8Array(0), rowSet: job.sourceId };
      } else {
        const stored = await tables.loadCarry(job.scope, job.sourceId);
        if (!stored) {
          throw nonRetryable(new Error(`no carried line before chunk ${chunk.index}`));
        }
        carry = stored;
      }
      const bytes = carry.pending.length > 0 ? concat(carry.pending, chunk.bytes) : chunk.bytes;
      const last = chunk.index === manifest.chunkCount - 1;
      // The lines this chunk completes (the last chunk: its unterminated last line too),
      // judged in one block; what follows the last newline is carried to the next chunk.
      const lastNewline = bytes.lastIndexOf(10);
      const end = last && lastNewline < bytes.length - 1 ? bytes.length : lastNewline;
      const rows: NewRow[] = [];
      let lineNo = carry.nextLine;
      let text: string | null = null;
      if (end >= 0 && bytes.length > 0) {
        const block = bytes.subarray(0, end);
        const judged = options.judgements?.get(job.scope, job.sourceId);
        const firstLineNo = lineNo;
        const known = judged &&
          ((index: number, length: number) => judged.get(firstLineNo + index, length));
        text = parseLines(block, lineNo === 1, (parsed, from, to) => {
          const lineBytes = block.subarray(from, to);
          if (parsed.valid) {
            rows.push({
              lineNo,
              recordType: parsed.recordType,
              text: parsed.text,
              bytes: lineBytes,
              valid: true,
              jsonbSafe: parsed.jsonbSafe,
            });
          } else if (data.skipInvalid) {
            rows.push({
              lineNo,
              recordType: null,
              text: parsed.text,
              bytes: lineBytes,
              valid: false,
              jsonbSafe: false,
            });
          } else {
            throw nonRetryable(new Error(`${data.path}:${lineNo}: ${parsed.reason}`));
          }
          lineNo++;
        }, known);
      }
      const start = end < 0 ? 0 : Math.min(end + 1, bytes.length);
      await tables.insertRows(
        job.scope,
        carry.rowSet,
        job.conversationId,
        rows,
        end > 0 ? { bytes: bytes.subarray(0, end), text } : undefined,
      );
      if (last) await tables.deleteCarry(job.scope, job.sourceId);
      else {
        await tables.saveCarry(job.scope, job.sourceId, job.conversationId, {
          nextLine: lineNo,
          pending: bytes.slice(start),
          rowSet: carry.rowSet,
        });
      }
      options.onApplied?.(chunk.index + 1, manifest.chunkCount);
    },
    async verify(context: VerifyContext & TExtras) {
      const { job, manifest, source } = context;
      const tables = tablesOf(context);
      const data = rolloutDataOf(manifest);
      let rowSet = job.sourceId;
      if (job.base) {
        const current = await baseImport(tables, context, data);
        rowSet = current.rowSet;
        const check = await checkNewRows(tables, job.scope, current, manifest);
        if (!check.ok) throw new Error(check.problems.join("; "));
      } else {
        const check = await checkStoredRows(tables, job.scope, rowSet, manifest, {
          uniformChunks: source.base === undefined,
        });
        if (!check.ok) throw new Error(check.problems.join("; "));
      }
      const carry = await tables.loadCarry(job.scope, job.sourceId);
      if (carry) {
        throw new Error(`a partial line of ${carry.pending.length} bytes was never completed`);
      }
      await tables.setImport({
        scope: job.scope,
        conversationId: job.conversationId,
        sourceId: job.sourceId,
        rowSet,
        jobId: job.jobId,
        path: data.path,
        fileSha256: data.fileSha256,
        lineCount: data.lineCount,
        invalidCount: data.invalidCount,
        byteCount: manifest.byteCount,
        digest: manifest.digest,
        importedAt: now(),
      });
    },
  };
}

/** The outcome of checking stored rows against a manifest. */
export interface RowCheck {
  ok: boolean;
  /** What did not match, in words. */
  problems: string[];
  lineCount: number;
  invalidCount: number;
  byteCount: number;
  /** Chunks compared (0 when the chunk boundaries were not known). */
  chunkCount: number;
  /** Composite digest of the rebuilt file at the source's chunk boundaries, when known. */
  digest?: string;
  fileSha256: string;
}

/** Options of {@link checkStoredRows}. */
export interface CheckOptions {
  /**
   * The source's chunks (length and digest, in index order, as `listChunks` lists
   * them): each is compared with the rebuilt bytes at its boundaries.
   */
  chunks?: readonly { byteLength: number; sha256: string }[];
  /**
   * Without `chunks`: the source was cut at the manifest's chunk size from its first
   * byte (not an extension), so the chunks can be rebuilt and the composite compared.
   */
  uniformChunks?: boolean;
}

const PAGE = 2_000;
const NEWLINE = new Uint8Array([10]);

/** The file's bytes rebuilt from rows `afterLine + 1 .. upToLine` (each with its newline). */
async function* rebuiltLines(
  tables: RecordTables,
  scope: string,
  rowSet: string,
  afterLine: number,
  upToLine: number,
  trailingNewline: boolean,
  seen: { lines: number; invalid: number; problems: string[] },
): AsyncGenerator<Uint8Array> {
  let after = afterLine;
  for (;;) {
    const page: StoredLine[] = await tables.readLines(scope, rowSet, after, PAGE, upToLine);
    for (const row of page) {
      const expected = afterLine + seen.lines + 1;
      if (row.lineNo !== expected && seen.problems.length < 10) {
        seen.problems.push(`line ${expected} is missing (next stored line is ${row.lineNo})`);
      }
      if (seen.lines > 0) yield NEWLINE;
      yield row.bytes;
      seen.lines++;
      if (!row.valid) seen.invalid++;
      after = row.lineNo;
    }
    if (page.length < PAGE) break;
  }
  if (seen.lines > 0 && trailingNewline) yield NEWLINE;
}

/** Cuts `pieces` at the given lengths (anything past their sum as one more piece). */
async function* cutAt(
  pieces: AsyncIterable<Uint8Array>,
  lengths: readonly number[],
): AsyncGenerator<Uint8Array> {
  let index = 0;
  let parts: Uint8Array[] = [];
  let size = 0;
  const target = () => lengths[index] ?? Infinity;
  for await (const piece of pieces) {
    let offset = 0;
    while (offset < piece.length) {
      const take = Math.min(target() - size, piece.length - offset);
      parts.push(piece.subarray(offset, offset + take));
      size += take;
      offset += take;
      if (size === target()) {
        yield joinParts(parts, size);
        parts = [];
        size = 0;
        index++;
      }
    }
  }
  if (size > 0) yield joinParts(parts, size);
}

/**
 * Rebuilds the file from the rows of `rowSet` (a page at a time, lines up to the
 * manifest's line count) and compares everything the manifest and its data declare; the
 * chunks too when their boundaries are known (see {@link CheckOptions}).
 */
export async function checkStoredRows(
  tables: RecordTables,
  scope: string,
  rowSet: string,
  manifest: Manifest,
  options: CheckOptions = {},
): Promise<RowCheck> {
  const data = rolloutDataOf(manifest);
  const seen = { lines: 0, invalid: 0, problems: [] as string[] };
  const fileHash = createHash("sha256");
  let byteCount = 0;
  const bytes = rebuiltLines(tables, scope, rowSet, 0, data.lineCount, data.trailingNewline, seen);
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const piece of bytes) {
      fileHash.update(piece);
      byteCount += piece.length;
      yield piece;
    }
  }
  const digests: string[] = [];
  let chunkProblems = 0;
  const chunks = options.chunks;
  if (chunks) {
    let index = 0;
    for await (const piece of cutAt(hashed(), chunks.map((chunk) => chunk.byteLength))) {
      const sha256 = await sha256Hex(piece);
      digests.push(sha256);
      if (chunks[index]?.sha256 !== sha256 && chunkProblems++ < 3) {
        seen.problems.push(`chunk ${index}: rebuilt bytes do not match the stored chunk`);
      }
      index++;
    }
  } else if (options.uniformChunks) {
    for await (const chunk of chunkBytes(hashed(), data.chunkSize)) {
      digests.push(await sha256Hex(chunk.bytes));
    }
  } else {
    for await (const _ of hashed()) { /* hashed and counted */ }
  }
  const fileSha256 = fileHash.digest("hex");
  const problems = seen.problems;
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) problems.push(`${what}: stored ${actual}, manifest ${expected}`);
  };
  expect("line count", seen.lines, data.lineCount);
  expect("invalid lines", seen.invalid, data.invalidCount);
  expect("byte count", byteCount, manifest.byteCount);
  let digest: string | undefined;
  if (chunks || options.uniformChunks) {
    digest = compositeDigest(digests);
    expect("chunk count", digests.length, manifest.chunkCount);
    expect("composite digest", digest, manifest.digest);
  }
  expect("file sha256", fileSha256, data.fileSha256);
  const result: RowCheck = {
    ok: problems.length === 0,
    problems,
    lineCount: seen.lines,
    invalidCount: seen.invalid,
    byteCount,
    chunkCount: digests.length,
    fileSha256,
  };
  if (digest !== undefined) result.digest = digest;
  return result;
}

/**
 * Checks the rows an extension's job appended after `current` (the import it builds
 * on): their count, invalid count, bytes and SHA-256 (`tailSha256`). The rows before
 * were verified when `current` was imported.
 */
async function checkNewRows(
  tables: RecordTables,
  scope: string,
  current: ImportRow,
  manifest: Manifest,
): Promise<RowCheck> {
  const data = rolloutDataOf(manifest);
  const seen = { lines: 0, invalid: 0, problems: [] as string[] };
  const hash = createHash("sha256");
  let byteCount = 0;
  for await (
    const piece of rebuiltLines(
      tables,
      scope,
      current.rowSet,
      current.lineCount,
      data.lineCount,
      true,
      seen,
    )
  ) {
    hash.update(piece);
    byteCount += piece.length;
  }
  const tailSha256 = hash.digest("hex");
  const problems = seen.problems;
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) problems.push(`${what}: stored ${actual}, manifest ${expected}`);
  };
  expect("new lines", seen.lines, data.lineCount - current.lineCount);
  expect("new invalid lines", seen.invalid, data.invalidCount - current.invalidCount);
  expect("new bytes", byteCount, manifest.byteCount - current.byteCount);
  expect("sha256 of the new bytes", tailSha256, data.tailSha256);
  return {
    ok: problems.length === 0,
    problems,
    lineCount: current.lineCount + seen.lines,
    invalidCount: current.invalidCount + seen.invalid,
    byteCount: current.byteCount + byteCount,
    chunkCount: 0,
    fileSha256: data.fileSha256,
  };
}
