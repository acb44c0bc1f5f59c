/**
 * Records to rows and back: the statement parameters of sources, jobs and chunks, and
 * the decoding of result rows (drivers differ in how they return `bigint` and `bytea`).
 *
 * @module
 */

import {
  type Chunk,
  type ChunkInfo,
  isTerminalJobState,
  type Job,
  type Source,
  type SourceUpdate,
  SyncError,
} from "@zakstam/codex-sync-engine";
import type { SqlRow } from "./driver.ts";

// PostgreSQL text cannot hold NUL, and drivers encode an unpaired surrogate as U+FFFD,
// which would silently merge distinct ids (and scopes).
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Returns `value` when PostgreSQL can store it as a key; else `E_SYNC_INVALID_ARGUMENT`. */
export function storableKey(field: string, value: string): string {
  if (value.includes("\0") || UNPAIRED_SURROGATE.test(value)) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${field} contains a NUL character or an unpaired surrogate, which postgres cannot store`,
      { details: { field } },
    );
  }
  return value;
}

/** Parameters 1-8 of `insertSource` / `updateSource`. */
export function sourceParams(source: Source): unknown[] {
  return [
    storableKey("scope", source.scope),
    storableKey("sourceId", source.sourceId),
    storableKey("conversationId", source.conversationId),
    source.state,
    source.expiresAt,
    source.updatedAt,
    source.chunksPurgedAt ?? null,
    JSON.stringify(source),
  ];
}

/** Parameters 1-9 of `insertJob`. */
export function newJobParams(job: Job): unknown[] {
  return [
    storableKey("scope", job.scope),
    storableKey("jobId", job.jobId),
    storableKey("sourceId", job.sourceId),
    storableKey("conversationId", job.conversationId),
    job.state,
    job.runAt,
    job.createdAt,
    completedAt(job),
    JSON.stringify(job),
  ];
}

/** Throws `E_SYNC_INVALID_ARGUMENT` unless PostgreSQL can store the job's key. */
export function checkJobKey(job: Job): void {
  storableKey("scope", job.scope);
  storableKey("jobId", job.jobId);
}

/** Parameters 1-6 of `updateJob`. */
export function jobUpdateParams(job: Job): unknown[] {
  return [
    storableKey("scope", job.scope),
    storableKey("jobId", job.jobId),
    job.state,
    job.runAt,
    completedAt(job),
    JSON.stringify(job),
  ];
}

/**
 * The parameter of `updateJobs`: `updateJob`'s rows as a JSON array, each record inlined
 * as JSON (stored as the same text `updateJob` would store). Each job's key was checked
 * ({@link checkJobKey}) when its update was held.
 */
export function jobUpdateRows(jobs: Iterable<Job>): string {
  const rows: string[] = [];
  for (const job of jobs) {
    rows.push(jsonWithInlined({
      scope: job.scope,
      job_id: job.jobId,
      state: job.state,
      run_at: job.runAt,
      completed_at: completedAt(job),
    }, { record: JSON.stringify(job) }));
  }
  return `[${rows.join(",")}]`;
}

/**
 * `fields` as a JSON object with each of `inlined` (JSON text already) as one more member:
 * a record goes in as the text the store writes, not escaped into a string.
 */
function jsonWithInlined(fields: Record<string, unknown>, inlined: Record<string, string>): string {
  const members = Object.entries(inlined).map(([name, json]) => `${JSON.stringify(name)}:${json}`);
  const plain = JSON.stringify(fields).slice(1, -1);
  return `{${[...(plain ? [plain] : []), ...members].join(",")}}`;
}

function completedAt(job: Job): number | null {
  return isTerminalJobState(job.state) ? job.completedAt ?? null : null;
}

/** Parameters 1-7 of `insertChunk`. */
export function chunkParams(scope: string, sourceId: string, chunk: Chunk): unknown[] {
  return [
    storableKey("scope", scope),
    storableKey("sourceId", sourceId),
    chunk.index,
    chunk.byteLength,
    chunk.sha256,
    chunk.itemCount ?? null,
    chunk.bytes,
  ];
}

/**
 * Parameters 2-3 of `insertSealedExtension`: the sources to update as `updateSource`'s
 * rows in a JSON array, each record as read and as written inlined as JSON (stored as the
 * same text `updateSource` would store), and the base's job as read.
 */
export function sealedExtensionReads(
  updates: readonly SourceUpdate[],
  baseJob: Job,
): [string, string] {
  const rows = updates.map(({ read, write }) => {
    const [
      scope,
      source_id,
      conversation_id,
      state,
      expires_at,
      updated_at,
      chunks_purged_at,
      record,
    ] = sourceParams(write);
    return jsonWithInlined(
      { scope, source_id, conversation_id, state, expires_at, updated_at, chunks_purged_at },
      { read: JSON.stringify(read), record: record as string },
    );
  });
  const job = jsonWithInlined(
    { scope: storableKey("scope", baseJob.scope), job_id: storableKey("jobId", baseJob.jobId) },
    { record: JSON.stringify(baseJob) },
  );
  return [`[${rows.join(",")}]`, job];
}

/**
 * Parameters 10-11 of `insertSealedSource`: the chunks' metadata as a JSON array and
 * their bytes concatenated in the same order (the statement cuts them apart).
 */
export function chunkListParams(chunks: readonly Chunk[]): [string, Uint8Array] {
  const infos = chunks.map((chunk) => ({
    idx: chunk.index,
    byte_length: chunk.bytes.length,
    sha256: chunk.sha256,
    item_count: chunk.itemCount ?? null,
  }));
  return [JSON.stringify(infos), concatBytes(chunks.map((chunk) => chunk.bytes))];
}

/**
 * The parameters of a one-step call (`insertSealedSource`: 20, `insertSealedExtension`:
 * 23), one of them the chunks' bytes, at {@link OneStepCall.bytesAt}.
 */
export interface OneStepCall {
  params: unknown[];
  bytesAt: number;
  /** The conversation's lock key: batches take their calls' locks in its order. */
  lockKey: string;
}

/** Where `insertSealedSource`'s chunk bytes are among its parameters. */
export const SEALED_SOURCE_BYTES_AT = 10;
/** Where `insertSealedExtension`'s chunk bytes are among its parameters. */
export const SEALED_EXTENSION_BYTES_AT = 13;

/** The chunk bytes one call carries. */
export function oneStepBytes(call: OneStepCall): number {
  return (call.params[call.bytesAt] as Uint8Array).length;
}

/**
 * The 2 parameters of a batch of one-step calls (`insertSealedSources`,
 * `insertSealedExtensions`): each call's parameters as a JSON array, its bytes replaced
 * by their offset and length in the second parameter, every call's bytes concatenated.
 */
export function oneStepBatchParams(calls: readonly OneStepCall[]): [string, Uint8Array] {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const items = calls.map(({ params, bytesAt }) => {
    const bytes = params[bytesAt] as Uint8Array;
    parts.push(bytes);
    const item = [...params.slice(0, bytesAt), offset, bytes.length, ...params.slice(bytesAt + 1)];
    offset += bytes.length;
    return item;
  });
  return [JSON.stringify(items), concatBytes(parts)];
}

/** `parts` one after the other (the part itself when there is one). */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

/** The record stored in a row's `record` column (selected as text). */
export function recordOf<T extends Source | Job>(row: SqlRow): T {
  return JSON.parse(row.record as string) as T;
}

/** A chunk row's metadata. */
export function chunkInfoOf(row: SqlRow): ChunkInfo {
  const info: ChunkInfo = {
    index: Number(row.idx),
    byteLength: Number(row.byte_length),
    sha256: row.sha256 as string,
  };
  if (row.item_count !== null && row.item_count !== undefined) {
    info.itemCount = Number(row.item_count);
  }
  return info;
}

/** A chunk row with its bytes, as a plain `Uint8Array` the caller owns; undefined once released. */
export function chunkOf(row: SqlRow): Chunk | undefined {
  const raw = row.bytes as Uint8Array | null;
  if (raw === null || raw === undefined) return undefined;
  // postgres.js returns a Buffer: copy into a plain Uint8Array.
  const bytes = raw.constructor === Uint8Array ? raw : new Uint8Array(raw);
  return { ...chunkInfoOf(row), bytes };
}
