/**
 * Codex rollout files: finding them, splitting them into lines, judging each line, and
 * scanning a file before it is uploaded (digest, line count, the malformed lines, the
 * part already imported).
 *
 * A line is the bytes up to and including a `\n` (a `\r` before the `\n` stays part of
 * the line). Bytes after the last `\n` are a line still being written: *pending*, not
 * imported until its newline arrives. A line is valid when it is UTF-8 and parses as
 * JSON; the first line may start with a UTF-8 byte order mark (kept in the text, ignored
 * by the JSON parse).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { IncrementalSha256 } from "@zakstam/codex-sync-engine";
import { CliError } from "./errors.ts";
import type { CliHost } from "./host.ts";
import { JudgedLines, type KnownLine } from "./line_judgements.ts";

/** Files a directory walk picks up. */
export const ROLLOUT_FILE_PATTERN: RegExp = /^rollout-.*\.jsonl$/;

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One judged line, without its parsed value (see {@link parseLines}). */
export type JudgedLine =
  | {
    valid: true;
    text: string;
    /** The record's `type` when it is a string that text can hold. */
    recordType: string | null;
    /** False when PostgreSQL's jsonb cannot hold the value (`\u0000`, lone surrogates). */
    jsonbSafe: boolean;
  }
  | {
    valid: false;
    /** The line as text, when it is UTF-8. */
    text: string | null;
    reason: string;
  };

/** One judged line, with its parsed value when it is valid. */
export type ParsedLine =
  | (Extract<JudgedLine, { valid: true }> & { value: unknown })
  | Extract<JudgedLine, { valid: false }>;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NUL = String.fromCharCode(0);

/** False for text PostgreSQL's jsonb rejects: NUL characters and lone surrogates. */
function jsonbSafeText(text: string): boolean {
  return !text.includes(NUL) && !LONE_SURROGATE.test(text);
}

function jsonbSafe(value: unknown): boolean {
  if (typeof value === "string") return jsonbSafeText(value);
  if (Array.isArray(value)) return value.every(jsonbSafe);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).every(([key, item]) => jsonbSafeText(key) && jsonbSafe(item));
  }
  return true;
}

const BOM = "\ufeff";

/**
 * Judges one line (its bytes, without the `\n`). With `firstLine`, a leading byte order
 * mark is allowed: it stays in `text` and is skipped by the JSON parse.
 */
export function parseLine(bytes: Uint8Array, firstLine = false): ParsedLine {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { valid: false, text: null, reason: "not valid UTF-8" };
  }
  return parseLineText(text, firstLine);
}

/** Judges one line already decoded from UTF-8 (see {@link parseLine}). */
function parseLineText(text: string, firstLine: boolean): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(firstLine && text.startsWith(BOM) ? text.slice(1) : text);
  } catch (error) {
    const reason = text.trim() === ""
      ? "empty line"
      : `malformed JSON (${error instanceof Error ? error.message : String(error)})`;
    return { valid: false, text, reason };
  }
  const type = typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as { type?: unknown }).type
    : undefined;
  return {
    valid: true,
    text,
    value,
    // A type text cannot hold (a NUL, a lone surrogate) is not kept: the row has none.
    recordType: typeof type === "string" && jsonbSafeText(type) ? type : null,
    // Escapes are the only way such strings get in: raw ones are rejected above.
    jsonbSafe: !text.includes("\\u") || jsonbSafe(value),
  };
}

/**
 * Judges each line of `bytes` — lines separated by `\n`, the last one ending where
 * `bytes` ends (so no bytes are one empty line) — and tells `visit` each judgement with
 * the line's byte range in `bytes`. Judges exactly as {@link parseLine} line by line
 * (`firstLine` for the first line only), but decodes the block once: a `\n` is never
 * part of a multi-byte sequence, so the block is UTF-8 exactly when each of its lines
 * is, and each line's text is a slice of the block's. Returns the block's text (its
 * lines' texts joined by newlines), or null when it is not UTF-8 (then each line was
 * decoded on its own, and those that are not UTF-8 are judged so).
 *
 * With `known`, a line of a UTF-8 block it vouches for (by the line's index in the block
 * and its byte length: a valid line judged earlier, `line_judgements.ts`) is not parsed.
 */
export function parseLines(
  bytes: Uint8Array,
  firstLine: boolean,
  visit: (judged: JudgedLine, start: number, end: number) => void,
  known?: (index: number, byteLength: number) => KnownLine | undefined,
): string | null {
  let text: string | null;
  try {
    text = decoder.decode(bytes);
  } catch {
    text = null;
  }
  let start = 0;
  let textStart = 0;
  for (let index = 0;; index++) {
    const newline = bytes.indexOf(10, start);
    const end = newline < 0 ? bytes.length : newline;
    const first = firstLine && start === 0;
    if (text === null) visit(parseLine(bytes.subarray(start, end), first), start, end);
    else {
      const textEnd = newline < 0 ? text.length : text.indexOf("\n", textStart);
      const lineText = text.slice(textStart, textEnd);
      const judged = known?.(index, end - start);
      visit(
        judged ? { valid: true, text: lineText, ...judged } : parseLineText(lineText, first),
        start,
        end,
      );
      textStart = textEnd + 1;
    }
    if (newline < 0) return text;
    start = newline + 1;
  }
}

/** The session id of a `session_meta` record, if `value` is one. */
export function sessionIdOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const record = value as { type?: unknown; payload?: { id?: unknown } };
  if (record.type !== "session_meta") return undefined;
  const id = record.payload?.id;
  return typeof id === "string" && id.length > 0 && id.length <= 256 ? id : undefined;
}

const UUID_AT_END = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The conversation id a file name implies: its trailing UUID, else its stem. */
export function conversationIdFromFileName(path: string): string {
  const stem = basename(path).replace(/\.jsonl$/i, "");
  return (UUID_AT_END.exec(stem)?.[1] ?? stem).slice(0, 256) || "rollout";
}

/** Splits a byte stream into lines; the last line is yielded even without its `\n`. */
export async function* splitLines(
  pieces: AsyncIterable<Uint8Array>,
): AsyncGenerator<{ bytes: Uint8Array; terminated: boolean }> {
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  for await (const piece of pieces) {
    let start = 0;
    for (let i = piece.indexOf(10); i >= 0; i = piece.indexOf(10, start)) {
      const part = piece.subarray(start, i);
      if (pendingLength === 0) yield { bytes: part, terminated: true };
      else {
        pending.push(part);
        yield { bytes: joinParts(pending, pendingLength + part.length), terminated: true };
        pending = [];
        pendingLength = 0;
      }
      start = i + 1;
    }
    if (start < piece.length) {
      pending.push(piece.subarray(start));
      pendingLength += piece.length - start;
    }
  }
  if (pendingLength > 0) yield { bytes: joinParts(pending, pendingLength), terminated: false };
}

/** Joins `parts` (of `length` bytes in all) into one array (the part itself when alone). */
export function joinParts(parts: readonly Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Concatenates two byte arrays into a fresh one. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A malformed line. */
export interface InvalidLine {
  line: number;
  reason: string;
}

/** How many bytes of the imported part a scan keeps, to tell a rewrite from an append. */
export const TAIL_BYTES = 4096;

/** Where a scan starts: a part of the file known to be imported already. */
export interface ScanResume {
  /** Bytes already imported (a line boundary). */
  byteCount: number;
  lineCount: number;
  /** SHA-256 over those bytes, not finished (copied, never changed). */
  hash: IncrementalSha256;
  /** Their last bytes (at most {@link TAIL_BYTES}): the scan checks they are unchanged. */
  tail: Uint8Array;
}

/** What a scan learnt about a file. */
export interface RolloutScan {
  /** Canonical absolute path. */
  path: string;
  /** Bytes of the complete lines: what an import takes. */
  byteCount: number;
  /** Bytes after the last newline (a line still being written), not imported. */
  pendingBytes: number;
  /** SHA-256 of the complete lines (lowercase hex). */
  sha256: string;
  /**
   * The hash of the complete lines, unfinished (for a later {@link ScanResume}; its
   * `save()` is what an import stores to resume from in a later process).
   */
  hash: IncrementalSha256;
  /** The last bytes of the complete lines (at most {@link TAIL_BYTES}). */
  tail: Uint8Array;
  /** Complete lines. */
  lineCount: number;
  /** Where judging started (`from`, or the resumed byte count). */
  from: number;
  /** Lines before `from`. */
  linesBefore: number;
  /** SHA-256 of the bytes before `from`, when the file has that many complete bytes. */
  prefixSha256?: string;
  /** True when `from` is 0 or the byte before it is a newline. */
  fromIsLineStart: boolean;
  /** SHA-256 of the complete lines from `from` on. */
  tailSha256: string;
  /** Malformed lines from `from` on. */
  invalidCount: number;
  /** The first few malformed lines (at most 20). */
  invalidLines: InvalidLine[];
  /** Lines whose JSON PostgreSQL's jsonb cannot hold (no `record` in the views). */
  jsonbUnsafeCount: number;
  /** A resumed scan found the imported part's last bytes changed (nothing else is set). */
  rewritten?: boolean;
  /** The judged lines (with {@link ScanOptions.keepJudgements}, when there were any). */
  judged?: JudgedLines;
}

/** Options of {@link scanRollout}. */
export interface ScanOptions {
  /** Lines before this byte offset are counted and hashed, not judged (default 0). */
  from?: number;
  /** Continue after a part known to be imported, without reading it again. */
  resume?: ScanResume;
  /** Keep what was found of each judged line ({@link RolloutScan.judged}). */
  keepJudgements?: boolean;
}

/** Reads `stream` as an async iterable of pieces (fresh copies, at most `limit` bytes). */
export async function* readPieces(
  stream: ReadableStream<Uint8Array>,
  limit = Infinity,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let read = 0;
  try {
    while (read < limit) {
      const { value, done } = await reader.read();
      if (done) return;
      const piece = value.length > limit - read ? value.slice(0, limit - read) : value;
      read += piece.length;
      if (piece.length > 0) yield piece;
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Equal bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** SHA-256 of nothing. */
const EMPTY_SHA256 = createHash("sha256").digest("hex");

/** An independent copy of `hash` (the original keeps its state). */
export function copyHash(hash: IncrementalSha256): IncrementalSha256 {
  return IncrementalSha256.restore(hash.save());
}

/** Newlines in `bytes`. */
function countNewlines(bytes: Uint8Array): number {
  let count = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) count++;
  return count;
}

/** The last bytes of a sequence of pieces (views kept only until enough follow). */
class TailKeeper {
  #parts: Uint8Array[] = [];
  #length = 0;

  constructor(initial: Uint8Array) {
    this.add(initial);
  }

  add(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#parts.push(bytes);
    this.#length += bytes.length;
    while (this.#parts.length > 1 && this.#length - this.#parts[0].length >= TAIL_BYTES) {
      this.#length -= this.#parts.shift()!.length;
    }
  }

  /** A fresh copy of the last {@link TAIL_BYTES} bytes (or fewer). */
  take(): Uint8Array {
    const joined = joinParts(this.#parts, this.#length);
    return joined.slice(Math.max(0, joined.length - TAIL_BYTES));
  }
}

/**
 * About how many bytes of lines {@link judgeInBlocks} decodes at once: a block's text is
 * then a small, young string (a large one lives until the next full garbage collection).
 */
const JUDGE_BLOCK_BYTES = 32 * 1024;

/**
 * {@link parseLines} over `lines` (none of them a file's first line) in blocks of about
 * {@link JUDGE_BLOCK_BYTES}, cut at newlines.
 */
function judgeInBlocks(
  lines: Uint8Array,
  visit: (judged: JudgedLine, byteLength: number) => void,
): void {
  for (let start = 0;;) {
    let end = lines.length;
    if (end - start > JUDGE_BLOCK_BYTES) {
      const cut = lines.lastIndexOf(10, start + JUDGE_BLOCK_BYTES);
      end = cut > start ? cut : lines.indexOf(10, start + JUDGE_BLOCK_BYTES);
      if (end < 0) end = lines.length;
    }
    parseLines(lines.subarray(start, end), false, (judged, from, to) => visit(judged, to - from));
    if (end >= lines.length) return;
    start = end + 1;
  }
}

/**
 * Scans a rollout file: hashes its complete lines, counts them, and judges those from
 * `from` on (or after `resume`, reading only from there). Bytes before `from` are only
 * hashed and their newlines counted. Never throws for a malformed line: the caller
 * decides (see `invalidLines`).
 */
export async function scanRollout(
  host: CliHost,
  path: string,
  options: ScanOptions = {},
): Promise<RolloutScan> {
  const { resume } = options;
  const from = resume ? resume.byteCount : Math.max(0, options.from ?? 0);
  /** Over the complete lines seen so far (never the open line after the last newline). */
  // A hash whose state can be stored with the import: a later process extends it with
  // an append's bytes instead of reading the file again (slower than node:crypto's, whose
  // state cannot be saved; the bytes after `from` also get the native one below).
  const hash = resume ? copyHash(resume.hash) : new IncrementalSha256();
  /** From 0 the judged bytes are all the bytes: their digest is `hash`'s. */
  const tailHash = from === 0 ? undefined : createHash("sha256");
  const tail = new TailKeeper(resume?.tail ?? new Uint8Array(0));
  let lineCount = resume?.lineCount ?? 0;
  let linesBefore = lineCount;
  let prefixSha256: string | undefined = from === 0 ? EMPTY_SHA256 : undefined;
  let fromIsLineStart = from === 0 || resume !== undefined;
  let invalidCount = 0;
  let jsonbUnsafeCount = 0;
  const invalidLines: InvalidLine[] = [];
  /** Absolute offset after the last newline, and of the next byte read. */
  let complete = resume ? from : 0;
  let offset = complete;
  // The line still open (after the last newline), in parts: a long line spans many pieces.
  let open: Uint8Array[] = [];
  let openLength = 0;
  /** Hashes the open parts and `bytes` (which ends with a newline) as complete. */
  const completeWith = (bytes: Uint8Array, judged: boolean) => {
    for (const part of open) {
      hash.update(part);
      tail.add(part);
      if (judged) tailHash?.update(part);
    }
    hash.update(bytes);
    tail.add(bytes);
    if (judged) tailHash?.update(bytes);
    complete += openLength + bytes.length;
  };
  let judged: JudgedLines | undefined;
  const count = (parsed: JudgedLine, byteLength: number) => {
    lineCount++;
    if (options.keepJudgements) {
      judged ??= new JudgedLines(lineCount);
      judged.add(byteLength, parsed.valid ? parsed : undefined);
    }
    if (!parsed.valid) {
      invalidCount++;
      if (invalidLines.length < 20) invalidLines.push({ line: lineCount, reason: parsed.reason });
    } else if (!parsed.jsonbSafe) jsonbUnsafeCount++;
  };

  const pieces = readPieces(host.readFile(path, resume ? from - resume.tail.length : 0));
  let head = resume?.tail.length ?? 0;
  let headBytes: Uint8Array = new Uint8Array(0);
  for await (let piece of pieces) {
    if (head > 0) {
      // A resumed scan first re-reads the imported part's last bytes: unchanged?
      const take = Math.min(head, piece.length);
      headBytes = concat(headBytes, piece.subarray(0, take));
      head -= take;
      piece = piece.subarray(take);
      if (head === 0 && !sameBytes(headBytes, resume!.tail)) return rewritten(path, resume!);
      if (piece.length === 0) continue;
    }
    if (offset < from) {
      // Before `from`: hashed and counted, not judged.
      const before = piece.subarray(0, Math.min(piece.length, from - offset));
      const last = before.lastIndexOf(10);
      if (last >= 0) {
        const lines = countNewlines(before.subarray(0, last + 1));
        lineCount += lines;
        linesBefore += lines;
        completeWith(before.subarray(0, last + 1), false);
        open = [];
        openLength = 0;
      }
      const rest = before.subarray(last + 1);
      if (rest.length > 0) {
        open.push(rest);
        openLength += rest.length;
      }
      offset += before.length;
      piece = piece.subarray(before.length);
      if (offset === from) {
        const prefix = copyHash(hash);
        for (const part of open) prefix.update(part);
        prefixSha256 = prefix.digestHex();
        fromIsLineStart = openLength === 0;
      }
      if (piece.length === 0) continue;
    }
    offset += piece.length;
    const last = piece.lastIndexOf(10);
    if (last < 0) {
      open.push(piece);
      openLength += piece.length;
      continue;
    }
    // Judge each line ending in this piece (the first may have begun in earlier pieces;
    // the others in one block), then take them all as complete at once.
    const firstEnd = piece.indexOf(10);
    const segment = piece.subarray(0, firstEnd);
    const firstLine = openLength > 0
      ? joinParts([...open, segment], openLength + segment.length)
      : segment;
    count(parseLine(firstLine, lineCount === 0), firstLine.length);
    // The piece's first line was just counted: the lines after it are not the file's first.
    if (firstEnd < last) judgeInBlocks(piece.subarray(firstEnd + 1, last), count);
    completeWith(piece.subarray(0, last + 1), true);
    open = last + 1 < piece.length ? [piece.subarray(last + 1)] : [];
    openLength = piece.length - last - 1;
  }
  if (head > 0) return rewritten(path, resume!);
  const sha256 = hash.digestHex();
  return {
    path,
    byteCount: complete,
    pendingBytes: openLength,
    sha256,
    hash,
    tail: tail.take(),
    lineCount,
    from,
    linesBefore,
    ...(prefixSha256 === undefined || resume ? {} : { prefixSha256 }),
    fromIsLineStart,
    tailSha256: tailHash ? tailHash.digest("hex") : sha256,
    invalidCount,
    invalidLines,
    jsonbUnsafeCount,
    ...(judged === undefined ? {} : { judged }),
  };
}

function rewritten(path: string, resume: ScanResume): RolloutScan {
  return {
    path,
    byteCount: 0,
    pendingBytes: 0,
    sha256: "",
    hash: resume.hash,
    tail: new Uint8Array(0),
    lineCount: 0,
    from: resume.byteCount,
    linesBefore: 0,
    fromIsLineStart: false,
    tailSha256: "",
    invalidCount: 0,
    invalidLines: [],
    jsonbUnsafeCount: 0,
    rewritten: true,
  };
}

/**
 * The conversation id of a rollout file: the id of its first `session_meta` record
 * (read only as far as that record), else the one its file name implies.
 */
export async function findConversationId(
  host: CliHost,
  path: string,
): Promise<{ conversationId: string; conversationIdFrom: "session_meta" | "file name" }> {
  let lineNo = 0;
  for await (const { bytes, terminated } of splitLines(readPieces(host.readFile(path)))) {
    if (!terminated) break;
    lineNo++;
    const parsed = parseLine(bytes, lineNo === 1);
    const id = parsed.valid ? sessionIdOf(parsed.value) : undefined;
    if (id !== undefined) return { conversationId: id, conversationIdFrom: "session_meta" };
  }
  return { conversationId: conversationIdFromFileName(path), conversationIdFrom: "file name" };
}

/**
 * The complete lines of `path` from byte `start` to `end` (an imported range), read
 * again for upload and checked against `sha256`: a file rewritten since its scan fails
 * with `E_CLI_FILE_CHANGED` before anything is sealed.
 */
export async function* rangeBytes(
  host: CliHost,
  path: string,
  start: number,
  end: number,
  sha256: string,
): AsyncGenerator<Uint8Array> {
  const hash = createHash("sha256");
  let length = 0;
  for await (const piece of readPieces(host.readFile(path, start), end - start)) {
    hash.update(piece);
    length += piece.length;
    yield piece;
  }
  if (length !== end - start || hash.digest("hex") !== sha256) {
    throw new CliError(
      "E_CLI_FILE_CHANGED",
      `${path} changed while it was being imported; run the import again`,
    );
  }
}

/**
 * The files to import: each file argument as is (any name), each directory walked
 * recursively for `rollout-*.jsonl`. Sorted, duplicates removed; a missing path throws
 * `E_CLI_NOT_FOUND`.
 */
export async function findRolloutFiles(
  host: CliHost,
  inputs: readonly string[],
): Promise<string[]> {
  const found = new Set<string>();
  for (const input of inputs) {
    const path = resolve(host.cwd(), input);
    const info = await host.stat(path);
    if (!info) throw new CliError("E_CLI_NOT_FOUND", `no such file or directory: ${input}`);
    if (info.isDirectory) {
      const files: string[] = [];
      await walk(host, path, files, 0);
      for (const file of files.sort()) found.add(await host.realPath(file));
    } else {
      found.add(await host.realPath(path));
    }
  }
  return [...found];
}

async function walk(host: CliHost, dir: string, out: string[], depth: number): Promise<void> {
  if (depth > 32) return;
  const entries: { name: string; isFile: boolean; isDirectory: boolean }[] = [];
  for await (const entry of host.readDir(dir)) {
    if (entry.isSymlink) {
      const info = await host.stat(join(dir, entry.name));
      if (info) entries.push({ name: entry.name, isFile: info.isFile, isDirectory: false });
    } else entries.push(entry);
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await walk(host, path, out, depth + 1);
    else if (entry.isFile && ROLLOUT_FILE_PATTERN.test(entry.name)) out.push(path);
  }
}
