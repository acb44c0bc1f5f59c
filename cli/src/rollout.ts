/**
 * Codex rollout files: finding them, splitting them into lines, judging each line, and
 * scanning a whole file before it is uploaded (digest, line count, conversation id,
 * the first malformed line).
 *
 * A line is the bytes between two `\n` (a `\r` before the `\n` stays part of the line);
 * the last line may lack its `\n`. A line is valid when it is UTF-8 and parses as JSON.
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import { IncrementalSha256 } from "@zakstam/codex-sync-engine";
import { CliError } from "./errors.ts";
import type { CliHost } from "./host.ts";

/** Files a directory walk picks up. */
export const ROLLOUT_FILE_PATTERN: RegExp = /^rollout-.*\.jsonl$/;

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One judged line. */
export type ParsedLine =
  | {
    valid: true;
    text: string;
    value: unknown;
    /** The record's `type` when it is a string. */
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

/** Judges one line (its bytes, without the `\n`). */
export function parseLine(bytes: Uint8Array): ParsedLine {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { valid: false, text: null, reason: "not valid UTF-8" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
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
    recordType: typeof type === "string" ? type : null,
    // Escapes are the only way such strings get in: raw ones are rejected above.
    jsonbSafe: !text.includes("\\u") || jsonbSafe(value),
  };
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
  let pending: Uint8Array = new Uint8Array(0);
  for await (const piece of pieces) {
    let start = 0;
    for (let i = piece.indexOf(10); i >= 0; i = piece.indexOf(10, start)) {
      const part = piece.subarray(start, i);
      yield { bytes: pending.length > 0 ? concat(pending, part) : part, terminated: true };
      pending = new Uint8Array(0);
      start = i + 1;
    }
    if (start < piece.length) pending = concat(pending, piece.subarray(start));
  }
  if (pending.length > 0) yield { bytes: pending, terminated: false };
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

/** What a scan learnt about a file. */
export interface RolloutScan {
  /** Canonical absolute path. */
  path: string;
  byteCount: number;
  /** SHA-256 of the whole file (lowercase hex). */
  sha256: string;
  lineCount: number;
  /** Lines that are not UTF-8 JSON. */
  invalidCount: number;
  /** The first few malformed lines (at most 20). */
  invalidLines: InvalidLine[];
  /** Lines whose JSON PostgreSQL's jsonb cannot hold (stored with a NULL `record`). */
  jsonbUnsafeCount: number;
  conversationId: string;
  conversationIdFrom: "session_meta" | "file name";
  /** True when the file ends with `\n` (or is empty). */
  trailingNewline: boolean;
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

/**
 * Scans a rollout file. Without `skipInvalid`, the first malformed line throws
 * `E_CLI_INVALID_RECORD` naming the file and line (before anything is uploaded).
 */
export async function scanRollout(
  host: CliHost,
  path: string,
  options: { skipInvalid: boolean },
): Promise<RolloutScan> {
  const hash = new IncrementalSha256();
  let byteCount = 0;
  let lineCount = 0;
  let invalidCount = 0;
  let jsonbUnsafeCount = 0;
  const invalidLines: InvalidLine[] = [];
  let sessionId: string | undefined;
  let trailingNewline = true;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const piece of readPieces(host.readFile(path))) {
      hash.update(piece);
      byteCount += piece.length;
      yield piece;
    }
  }
  for await (const { bytes, terminated } of splitLines(hashed())) {
    lineCount++;
    trailingNewline = terminated;
    const parsed = parseLine(bytes);
    if (!parsed.valid) {
      if (!options.skipInvalid) {
        throw new CliError(
          "E_CLI_INVALID_RECORD",
          `${path}:${lineCount}: ${parsed.reason}; nothing of this file was imported ` +
            `(fix the line, or pass --skip-invalid to record and skip such lines)`,
          { details: { path, line: lineCount, reason: parsed.reason } },
        );
      }
      invalidCount++;
      if (invalidLines.length < 20) invalidLines.push({ line: lineCount, reason: parsed.reason });
      continue;
    }
    if (!parsed.jsonbSafe) jsonbUnsafeCount++;
    sessionId ??= sessionIdOf(parsed.value);
  }
  return {
    path,
    byteCount,
    sha256: hash.digestHex(),
    lineCount,
    invalidCount,
    invalidLines,
    jsonbUnsafeCount,
    conversationId: sessionId ?? conversationIdFromFileName(path),
    conversationIdFrom: sessionId ? "session_meta" : "file name",
    trailingNewline,
  };
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
