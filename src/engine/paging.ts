/**
 * Opaque page cursors.
 *
 * @module
 */

import type { JobListPosition } from "../contracts/store.ts";
import { SyncError } from "../errors.ts";

function invalidCursor(): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", "malformed page cursor");
}

/** Encodes a job-list position as an opaque cursor. */
export function encodeJobCursor(position: JobListPosition): string {
  return `j${position.createdAt}:${position.jobId}`;
}

/** Decodes a job-list cursor; throws `E_SYNC_INVALID_ARGUMENT` when malformed. */
export function decodeJobCursor(cursor: string): JobListPosition {
  const match = /^j(-?\d{1,16}):([\s\S]+)$/.exec(cursor);
  const createdAt = match ? Number(match[1]) : NaN;
  if (!match || !Number.isSafeInteger(createdAt)) throw invalidCursor();
  return { createdAt, jobId: match[2] };
}

/** Encodes a chunk-list position (the last index returned). */
export function encodeChunkCursor(lastIndex: number): string {
  return `i${lastIndex}`;
}

/** Decodes a chunk-list cursor; throws `E_SYNC_INVALID_ARGUMENT` when malformed. */
export function decodeChunkCursor(cursor: string): number {
  const match = /^i(0|[1-9]\d{0,15})$/.exec(cursor);
  const index = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(index)) throw invalidCursor();
  return index;
}
