/**
 * What an import remembers of the file it read, so the next import of that file does not
 * read it again (DESIGN §11, issue 17): its size, mtime and identity (`dev:ino`, where the
 * runtime tells it) taken before the read, and the SHA-256 state after the imported bytes.
 *
 * Trust model: rollout files are append-only. A file whose size and mtime (and identity)
 * are those recorded is taken as unchanged without being opened; one that grew is checked
 * only where an append could have gone wrong — its first line and the imported part's last
 * bytes are compared with the stored rows — and then only its new bytes are read and
 * hashed (from the recorded state). Anything else is read whole, as before. `import
 * --rescan` reads every file whole; `verify` re-checks the stored rows.
 *
 * @module
 */

import { IncrementalSha256, SyncError } from "@zakstam/codex-sync-engine";
import type { FileInfo } from "./host.ts";
import type { FileState, ImportRow } from "./records.ts";
import { readPieces, sameBytes, TAIL_BYTES } from "./rollout.ts";
import type { KnownFile, SyncSession } from "./sync_file.ts";

/** A file's stat, as a {@link FileState} records it. */
export interface FileStamp {
  size: number;
  mtimeNs: string;
  fileId?: string;
}

/** The stamp of a regular file with a known mtime; undefined otherwise. */
export function stampOf(info: FileInfo | undefined): FileStamp | undefined {
  if (!info?.isFile) return undefined;
  const mtimeNs = info.mtimeNs ??
    (info.mtimeMs === undefined
      ? undefined
      : String(BigInt(Math.round(info.mtimeMs * 1000)) * 1000n));
  if (mtimeNs === undefined) return undefined;
  return {
    size: info.size,
    mtimeNs,
    ...(info.fileId === undefined ? {} : { fileId: info.fileId }),
  };
}

/** The same file (identity, where both know it), at the same size and mtime. */
export function sameStamp(state: FileState, stamp: FileStamp): boolean {
  return state.size === stamp.size && state.mtimeNs === stamp.mtimeNs && sameFile(state, stamp);
}

/** Not known to be another file: equal identities, or one of them unknown. */
export function sameFile(state: FileState, stamp: FileStamp): boolean {
  return state.fileId === undefined || stamp.fileId === undefined ||
    state.fileId === stamp.fileId;
}

/** The byte count a saved SHA-256 state has hashed (`<length>:…`). */
function hashedLength(hashState: string): number {
  return Number(hashState.slice(0, hashState.indexOf(":")));
}

/** Lines read back from the store before the import's end: the tail to check. */
const TAIL_LINES = 8;

/**
 * What a sync needs to read only the appended bytes of `path`, from the current import
 * `row` and its recorded file state: the hash state, and the stored rows' last bytes
 * (which the scan compares with the file's before reading on). Undefined — read the file
 * whole — when the state does not fit the import or the file's first line is not the
 * stored one.
 */
export async function storedKnownFile(
  session: SyncSession,
  row: ImportRow,
  path: string,
): Promise<KnownFile | undefined> {
  const state = row.file;
  if (!state || row.lineCount === 0 || hashedLength(state.hashState) !== row.byteCount) {
    return undefined;
  }
  let hash: IncrementalSha256;
  try {
    hash = IncrementalSha256.restore(state.hashState);
  } catch (error) {
    if (error instanceof SyncError) return undefined;
    throw error;
  }
  const { tables } = session.store;
  const { scope } = session.settings;
  const after = Math.max(0, row.lineCount - TAIL_LINES);
  const last = await tables.readLines(scope, row.rowSet, after, TAIL_LINES, row.lineCount);
  if (last.length !== row.lineCount - after || last.at(-1)?.lineNo !== row.lineCount) {
    return undefined;
  }
  const withNewline = (bytes: Uint8Array) => {
    const out = new Uint8Array(bytes.length + 1);
    out.set(bytes);
    out[bytes.length] = 10;
    return out;
  };
  const tailParts = last.map((line) => withNewline(line.bytes));
  const tailLength = tailParts.reduce((n, part) => n + part.length, 0);
  const joined = new Uint8Array(tailLength);
  tailParts.reduce((offset, part) => (joined.set(part, offset), offset + part.length), 0);
  const tail = joined.slice(Math.max(0, joined.length - TAIL_BYTES));
  // The first line names the conversation: the file must still start with it.
  const first = after === 0
    ? last[0]
    : (await tables.readLines(scope, row.rowSet, 0, 1, row.lineCount))[0];
  if (first?.lineNo !== 1) return undefined;
  const expected = withNewline(first.bytes);
  if (!sameBytes(await readHead(session, path, expected.length), expected)) return undefined;
  return {
    path,
    conversationId: row.conversationId,
    sourceId: row.sourceId,
    byteCount: row.byteCount,
    lineCount: row.lineCount,
    invalidCount: row.invalidCount,
    sha256: row.fileSha256,
    hash,
    tail,
    size: state.size,
  };
}

/** The first `length` bytes of a file (fewer when it is shorter). */
async function readHead(session: SyncSession, path: string, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let read = 0;
  for await (const piece of readPieces(session.host.readFile(path), length)) {
    out.set(piece, read);
    read += piece.length;
  }
  return out.subarray(0, read);
}

/**
 * Records `path`'s state with the conversation's current import once a sync has read it
 * (imported, or found it unchanged), if the read saw exactly the file that was stat'ed
 * (nothing appended in between) and the import is still `known.sourceId`. The import's
 * path follows the file unless the path it names still exists (then this is a copy, and
 * the import stays with its own file).
 */
export async function recordFileState(
  session: SyncSession,
  path: string,
  stamp: FileStamp,
  known: KnownFile,
): Promise<void> {
  if (known.size !== stamp.size) return;
  const { tables } = session.store;
  const { scope } = session.settings;
  const current = await tables.getImport(scope, known.conversationId);
  if (!current || current.sourceId !== known.sourceId || current.byteCount !== known.byteCount) {
    return;
  }
  if (current.path !== path && (await session.host.stat(current.path)) !== undefined) return;
  await tables.setFileState(scope, known.conversationId, known.sourceId, path, {
    ...stamp,
    hashState: known.hash.save(),
  });
}
