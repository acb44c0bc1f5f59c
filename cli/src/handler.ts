/**
 * The host handler of a rollout import. Each chunk holds raw file bytes (the upload
 * splits the file at fixed sizes, not at line ends), so `apply` completes the partial
 * line carried over from the previous chunk, stores one row per complete line, and
 * carries the new partial line to the next chunk — all through the adapter's
 * transaction, so a chunk's rows and carry commit together with the job's progress.
 *
 * `verify` rebuilds the file from the stored rows, re-chunks it at the upload's chunk
 * size and checks line count, invalid count, byte count, chunk count, the manifest's
 * composite digest and the file's SHA-256; then it makes the source the conversation's
 * current import (in the same transaction as `succeeded`).
 *
 * Re-applying a chunk is safe only where a failed apply leaves no trace: an adapter with
 * transactional apply (Postgres, PGlite), or the memory adapter (each apply writes its
 * rows and carry at the end, and nothing else runs its jobs).
 *
 * @module
 */

import {
  type ApplyContext,
  chunkBytes,
  compositeDigest,
  IncrementalSha256,
  type JsonValue,
  type Manifest,
  nonRetryable,
  sha256Hex,
  type SyncHandler,
  type VerifyContext,
} from "@zakstam/codex-sync-engine";
import type { Carry, NewRow, RecordTables } from "./records.ts";
import { concat, parseLine } from "./rollout.ts";

/** The manifest's domain data for a rollout import (deterministic for a given file). */
export type RolloutManifestData = {
  kind: "codex-rollout";
  version: 1;
  /** Canonical path of the imported file. */
  path: string;
  fileSha256: string;
  lineCount: number;
  invalidCount: number;
  trailingNewline: boolean;
  chunkSize: number;
  skipInvalid: boolean;
};

/** Reads the rollout data of a manifest, or throws (non-retryable). */
export function rolloutDataOf(manifest: Manifest): RolloutManifestData {
  const data = manifest.data as Partial<RolloutManifestData> | undefined;
  if (
    !data || data.kind !== "codex-rollout" || data.version !== 1 ||
    typeof data.chunkSize !== "number" || typeof data.lineCount !== "number"
  ) {
    throw nonRetryable(new Error("manifest data is not a codex-rollout import"));
  }
  return data as RolloutManifestData;
}

/** The manifest data as a JSON value for `syncConversation`'s `manifestData`. */
export function manifestDataValue(data: RolloutManifestData): JsonValue {
  return { ...data };
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
  /** Clock of `importedAt` (default `Date.now`). */
  now?: () => number;
}

/** The handler, writing through `tablesOf(context)`. */
export function rolloutHandler<TExtras extends object>(
  tablesOf: (context: TExtras) => RecordTables,
  options: RolloutHandlerOptions = {},
): SyncHandler<TExtras> {
  const now = options.now ?? Date.now;
  return {
    async apply(chunk, context: ApplyContext & TExtras) {
      if (options.interrupt?.aborted) {
        throw new Error("interrupted (Ctrl-C); the job resumes on the next run");
      }
      const { job, manifest } = context;
      const data = rolloutDataOf(manifest);
      const tables = tablesOf(context);
      let carry: Carry = { nextLine: 1, pending: new Uint8Array(0) };
      if (chunk.index > 0) {
        const stored = await tables.loadCarry(job.scope, job.sourceId);
        if (!stored) {
          throw nonRetryable(new Error(`no carried line before chunk ${chunk.index}`));
        }
        carry = stored;
      }
      const bytes = carry.pending.length > 0 ? concat(carry.pending, chunk.bytes) : chunk.bytes;
      const last = chunk.index === manifest.chunkCount - 1;
      const rows: NewRow[] = [];
      let lineNo = carry.nextLine;
      let start = 0;
      const take = (end: number): void => {
        const lineBytes = bytes.subarray(start, end);
        const parsed = parseLine(lineBytes);
        if (parsed.valid) {
          rows.push({
            lineNo,
            recordType: parsed.recordType,
            text: parsed.text,
            valid: true,
            jsonbSafe: parsed.jsonbSafe,
          });
        } else if (data.skipInvalid) {
          const row: NewRow = {
            lineNo,
            recordType: null,
            text: parsed.text,
            valid: false,
            jsonbSafe: false,
          };
          if (parsed.text === null) row.bytes = lineBytes.slice();
          rows.push(row);
        } else {
          throw nonRetryable(new Error(`${data.path}:${lineNo}: ${parsed.reason}`));
        }
        lineNo++;
      };
      for (let end = bytes.indexOf(10); end >= 0; end = bytes.indexOf(10, start)) {
        take(end);
        start = end + 1;
      }
      if (last && start < bytes.length) {
        take(bytes.length);
        start = bytes.length;
      }
      await tables.insertRows(job.scope, job.sourceId, job.conversationId, rows);
      if (last) await tables.deleteCarry(job.scope, job.sourceId);
      else {
        await tables.saveCarry(job.scope, job.sourceId, job.conversationId, {
          nextLine: lineNo,
          pending: bytes.slice(start),
        });
      }
      options.onApplied?.(chunk.index + 1, manifest.chunkCount);
    },
    async verify(context: VerifyContext & TExtras) {
      const { job, manifest } = context;
      const tables = tablesOf(context);
      const check = await checkStoredRows(tables, job.scope, job.sourceId, manifest);
      if (!check.ok) throw new Error(check.problems.join("; "));
      const data = rolloutDataOf(manifest);
      await tables.setImport({
        scope: job.scope,
        conversationId: job.conversationId,
        sourceId: job.sourceId,
        jobId: job.jobId,
        path: data.path,
        fileSha256: data.fileSha256,
        lineCount: check.lineCount,
        invalidCount: check.invalidCount,
        byteCount: check.byteCount,
        digest: check.digest,
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
  chunkCount: number;
  /** Composite digest of the rebuilt file, chunked like the upload. */
  digest: string;
  fileSha256: string;
}

const PAGE = 2_000;

/**
 * Rebuilds the file from the rows of `sourceId` (a page at a time), re-chunks it at the
 * upload's chunk size and compares everything the manifest and its data declare.
 */
export async function checkStoredRows(
  tables: RecordTables,
  scope: string,
  sourceId: string,
  manifest: Manifest,
): Promise<RowCheck> {
  const data = rolloutDataOf(manifest);
  const problems: string[] = [];
  const encoder = new TextEncoder();
  const newline = new Uint8Array([10]);
  const fileHash = new IncrementalSha256();
  let lineCount = 0;
  let byteCount = 0;
  async function* rebuilt(): AsyncGenerator<Uint8Array> {
    let after = 0;
    for (;;) {
      const page = await tables.readLines(scope, sourceId, after, PAGE);
      for (const row of page) {
        if (row.lineNo !== lineCount + 1 && problems.length < 10) {
          problems.push(`line ${lineCount + 1} is missing (next stored line is ${row.lineNo})`);
        }
        if (lineCount > 0) yield newline;
        yield row.text === null ? row.bytes ?? new Uint8Array(0) : encoder.encode(row.text);
        lineCount++;
        after = row.lineNo;
      }
      if (page.length < PAGE) break;
    }
    if (lineCount > 0 && data.trailingNewline) yield newline;
  }
  const digests: string[] = [];
  for await (const chunk of chunkBytes(rebuilt(), data.chunkSize)) {
    fileHash.update(chunk.bytes);
    byteCount += chunk.bytes.length;
    digests.push(await sha256Hex(chunk.bytes));
  }
  const digest = compositeDigest(digests);
  const fileSha256 = fileHash.digestHex();
  const counts = await tables.countRows(scope, sourceId);
  const carry = await tables.loadCarry(scope, sourceId);
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) problems.push(`${what}: stored ${actual}, manifest ${expected}`);
  };
  expect("line count", lineCount, data.lineCount);
  expect("invalid lines", counts.invalid, data.invalidCount);
  expect("byte count", byteCount, manifest.byteCount);
  expect("chunk count", digests.length, manifest.chunkCount);
  expect("composite digest", digest, manifest.digest);
  expect("file sha256", fileSha256, data.fileSha256);
  if (carry) problems.push(`a partial line of ${carry.pending.length} bytes was never completed`);
  return {
    ok: problems.length === 0,
    problems,
    lineCount,
    invalidCount: counts.invalid,
    byteCount,
    chunkCount: digests.length,
    digest,
    fileSha256,
  };
}
