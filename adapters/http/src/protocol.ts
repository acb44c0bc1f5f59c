/**
 * The wire protocol shared by the server and the client: version, header names, the
 * status of each error code, `Content-Digest` (RFC 9530) and id path segments. The
 * package README specifies it for implementers in other languages.
 *
 * @module
 */

import { SyncError, type SyncErrorCode } from "@zakstam/codex-sync-engine/errors";

/** Protocol version, reported by `GET /v1/capabilities` (routes live under `/v1`). */
export const PROTOCOL_VERSION = 1;

/** Longest a single long-poll (`GET /v1/jobs/:jobId/wait`) is held by default, in ms. */
export const DEFAULT_MAX_WAIT_MS = 25_000;

/** Header carrying a chunk's item count on `PUT …/chunks/:index`. */
export const ITEM_COUNT_HEADER = "sync-item-count";

/** Header giving the length in bytes of the JSON head of a `POST /v1/uploads` body. */
export const UPLOAD_HEAD_LENGTH_HEADER = "sync-upload-head-length";

/** Media type of a `POST /v1/uploads` body (JSON head followed by the chunks' bytes). */
export const UPLOAD_MEDIA_TYPE = "application/vnd.codex-sync.upload";

/** What `GET /v1/capabilities` answers. */
export interface CapabilitiesDocument {
  /** {@link PROTOCOL_VERSION}. */
  protocol: number;
  /** The adapter's capabilities, as far as the server exposes them. */
  capabilities: string[];
  /** The largest chunk body `PUT …/chunks/:index` accepts. */
  maxChunkBytes: number;
  /** The longest the server holds one long-poll, in ms. */
  maxWaitMs: number;
  /** The largest JSON body (and upload head) the server reads. */
  maxJsonBytes: number;
  /** The optional operations the server routes (see {@link OPTIONAL_OPERATIONS}). */
  operations: OptionalOperation[];
  /** The limits the adapter's engine enforces, when the adapter says (clients pre-check). */
  limits?: Record<string, number>;
}

/** Operations a server routes only when its adapter has them. */
export const OPTIONAL_OPERATIONS = [
  "uploadSource",
  "getLatestSource",
  "abandonSource",
  "releasePayloads",
] as const;

/** One of {@link OPTIONAL_OPERATIONS}. */
export type OptionalOperation = typeof OPTIONAL_OPERATIONS[number];

/** What `GET /v1/jobs/:jobId/wait` answers with status 200. */
export interface WaitResponse<TJob> {
  /** True when `job` is terminal; false when the poll's time ran out first. */
  terminal: boolean;
  /** The job's snapshot (the terminal one when `terminal`). */
  job: TJob;
}

/** HTTP status of a response carrying an error of each code (README, "Status codes"). */
export const STATUS_BY_CODE: Readonly<Record<SyncErrorCode, number>> = Object.freeze({
  E_SYNC_INVALID_ARGUMENT: 400,
  E_SYNC_LIMIT_EXCEEDED: 413,
  E_SYNC_SOURCE_NOT_FOUND: 404,
  E_SYNC_SOURCE_NOT_COLLECTING: 409,
  E_SYNC_SOURCE_EXPIRED: 410,
  E_SYNC_CHUNK_CONFLICT: 409,
  E_SYNC_CHUNK_CHECKSUM_MISMATCH: 422,
  E_SYNC_CHUNK_INDEX_GAP: 422,
  E_SYNC_MANIFEST_MISMATCH: 422,
  E_SYNC_SOURCE_CHECKSUM_MISMATCH: 422,
  E_SYNC_JOB_NOT_FOUND: 404,
  E_SYNC_JOB_SUPERSEDED: 409,
  E_SYNC_JOB_CANCELLED: 409,
  E_SYNC_JOB_FAILED: 409,
  E_SYNC_LEASE_LOST: 409,
  E_SYNC_HANDLER_FAILED: 500,
  E_SYNC_VERIFICATION_FAILED: 422,
  E_SYNC_TIMEOUT: 408,
  E_SYNC_ABORTED: 499,
  E_SYNC_BACKEND_UNAVAILABLE: 503,
  E_SYNC_INTERNAL: 500,
});

/** The HTTP status for an error of `code`. */
export function statusOf(code: SyncErrorCode): number {
  return STATUS_BY_CODE[code] ?? 500;
}

const HEX = /^[0-9a-f]{64}$/;

/** `sha-256=:<base64>:` for a lowercase hex SHA-256 (RFC 9530 `Content-Digest`). */
export function contentDigestOf(sha256Hex: string): string {
  if (!HEX.test(sha256Hex)) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "expected a lowercase hex SHA-256 digest");
  }
  let binary = "";
  for (let i = 0; i < 64; i += 2) {
    binary += String.fromCharCode(parseInt(sha256Hex.slice(i, i + 2), 16));
  }
  return `sha-256=:${btoa(binary)}:`;
}

// One RFC 8941 dictionary member whose value is a byte sequence, parameters allowed.
const MEMBER = /^([a-z*][a-z0-9_.*-]*)=:([A-Za-z0-9+/]*={0,2}):(?:;.*)?$/;

/**
 * The lowercase hex SHA-256 named by a `Content-Digest` (or `Repr-Digest`) field value:
 * the `sha-256` member of the dictionary (other algorithms are ignored). Throws
 * `E_SYNC_INVALID_ARGUMENT` when the field is malformed or has no 32-byte `sha-256`.
 */
export function sha256FromDigestField(field: string): string {
  let found: string | undefined;
  for (const raw of field.split(",")) {
    const member = raw.trim();
    if (member === "") continue;
    const match = MEMBER.exec(member);
    if (!match) throw badDigest(`malformed member ${JSON.stringify(member.slice(0, 80))}`);
    if (match[1] !== "sha-256") continue;
    let binary: string;
    try {
      binary = atob(match[2]);
    } catch {
      throw badDigest("sha-256 is not valid base64");
    }
    if (binary.length !== 32) throw badDigest("sha-256 is not 32 bytes");
    let hex = "";
    for (let i = 0; i < binary.length; i++) {
      hex += binary.charCodeAt(i).toString(16).padStart(2, "0");
    }
    if (found !== undefined && found !== hex) throw badDigest("two different sha-256 values");
    found = hex;
  }
  if (found === undefined) throw badDigest("no sha-256 member");
  return found;
}

function badDigest(why: string): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", `Content-Digest: ${why}`, {
    details: { header: "content-digest" },
  });
}

/** The longest id the transport carries in a path segment (before percent-encoding). */
export const MAX_PATH_ID_LENGTH = 4096;

/**
 * An id as one path segment: percent-encoded (`encodeURIComponent`). `.` and `..` cannot
 * travel in a path (URL parsers remove such segments) and are refused.
 */
export function pathSegment(field: string, id: string): string {
  if (id === "." || id === "..") {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${field} ${JSON.stringify(id)} cannot be sent over HTTP (a dot path segment)`,
      { details: { field } },
    );
  }
  if (id.length > MAX_PATH_ID_LENGTH) {
    throw new SyncError(
      "E_SYNC_LIMIT_EXCEEDED",
      `${field} is longer than ${MAX_PATH_ID_LENGTH} characters`,
      { details: { field, limit: MAX_PATH_ID_LENGTH, actual: id.length } },
    );
  }
  return encodeURIComponent(id);
}
