/**
 * The embedded store's stat cache (issue 17, figure 23): a no-op re-import without opening
 * PGlite, whose start-up alone (~1 s of wasm instantiation) is more than the whole no-op.
 *
 * After an `import` that opened the embedded store, `<data-dir>/stat-cache.json` holds, for
 * each path of the scope's imports, what the store recorded (the file's stat with the
 * conversation's current import, and the import's ids and counts), and a fingerprint of the
 * store's files taken after the store was closed: `global/pg_control` (size, mtime, and a
 * digest of its content, which PostgreSQL rewrites when it starts and again at its shutdown
 * checkpoint) and every entry of `pg_wal` (name, size, mtime). Any process that opens the
 * store — any command, finished or killed — changes it.
 *
 * The next import (without `--rescan` or `--replace`) takes the store's lock, compares the
 * fingerprint and stats every file: when each one has the stamp recorded for its path,
 * they are reported `unchanged` (`"checked":"stat-cache"`), exactly as the store's own
 * stat check (`sync_file.ts`) would have found them, and the store is not opened. Anything
 * else — a file missing from the cache or with another stamp, another scope, a cache that
 * is missing, unreadable or of another format, a fingerprint that changed — opens the
 * store as before. The trust model is the store's: append-only files, `--rescan` reads
 * them, `verify` checks the rows.
 *
 * @module
 */

import { join } from "node:path";
import { sha256Hex } from "@zakstam/codex-sync-engine";
import { formatError } from "./errors.ts";
import { sameStamp, stampOf } from "./file_state.ts";
import type { CliHost, FileInfo, Unlock } from "./host.ts";
import type { ImportEvent } from "./progress.ts";
import type { FileState } from "./records.ts";
import { joinParts } from "./rollout.ts";
import {
  embeddedStorePaths,
  lockEmbeddedStore,
  type OpenOptions,
  type OpenStore,
  openStore,
  type StoreOptions,
} from "./store.ts";
import { preloadImports, unfinishedJobs } from "./sync_file.ts";

/** The cache's file name in the data directory (beside `pgdata/`, which PGlite owns). */
export const STAT_CACHE_FILE = "stat-cache.json";

/** The `format` and `version` a cache must have to be read. */
export const STAT_CACHE_FORMAT = "codex-sync-stat-cache";
export const STAT_CACHE_VERSION = 1;

/** What the store recorded of one path: the import's file state, ids and counts. */
export interface StatCacheEntry {
  path: string;
  conversationId: string;
  sourceId: string;
  jobId: string;
  lineCount: number;
  /** Bytes of complete lines imported (the rest of the file's size is pending). */
  byteCount: number;
  file: FileState;
}

/** The cache file's content. */
export interface StatCache {
  format: typeof STAT_CACHE_FORMAT;
  version: typeof STAT_CACHE_VERSION;
  scope: string;
  /** {@link storeFingerprint} after the store was closed. */
  store: string;
  files: StatCacheEntry[];
}

/** An `unchanged` event, as the cache reports it. */
export type UnchangedEvent = Extract<ImportEvent, { event: "unchanged" }>;

/** Where the cache of the embedded store in `dataDir` lives. */
export function statCachePath(dataDir: string): string {
  return join(dataDir, STAT_CACHE_FILE);
}

/** The modification time a stat reports, at the precision the runtime has. */
function mtimeOf(info: FileInfo): string {
  return info.mtimeNs ?? (info.mtimeMs === undefined ? "?" : `${info.mtimeMs}ms`);
}

/** The bytes of a small file, or undefined when it is missing or larger than `limit`. */
async function readSmall(
  host: CliHost,
  path: string,
  limit: number,
): Promise<Uint8Array | undefined> {
  const pieces: Uint8Array[] = [];
  let length = 0;
  for await (const piece of host.readFile(path)) {
    length += piece.length;
    if (length > limit) return undefined;
    pieces.push(piece);
  }
  return joinParts(pieces, length);
}

/**
 * A digest of what changes whenever PostgreSQL opens or writes the database in `pgdata`:
 * `global/pg_control` (stat and content) and the stat of every entry of `pg_wal`.
 * Undefined when they cannot be read (no store there).
 */
export async function storeFingerprint(
  host: CliHost,
  pgdata: string,
): Promise<string | undefined> {
  try {
    const control = join(pgdata, "global", "pg_control");
    const info = await host.stat(control);
    if (!info?.isFile) return undefined;
    const content = await readSmall(host, control, 64 * 1024);
    if (!content) return undefined;
    const lines = [`pg_control ${info.size} ${mtimeOf(info)} ${await sha256Hex(content)}`];
    const wal = join(pgdata, "pg_wal");
    const entries: string[] = [];
    for await (const entry of host.readDir(wal)) {
      const stat = await host.stat(join(wal, entry.name));
      entries.push(
        stat
          ? `${entry.name} ${stat.isFile ? "file" : "dir"} ${stat.size} ${mtimeOf(stat)}`
          : `${entry.name} gone`,
      );
    }
    lines.push(...entries.sort());
    return await sha256Hex(new TextEncoder().encode(lines.join("\n")));
  } catch {
    return undefined;
  }
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isEntry(value: unknown): value is StatCacheEntry {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  const file = entry.file as Record<string, unknown> | null | undefined;
  return typeof entry.path === "string" && typeof entry.conversationId === "string" &&
    typeof entry.sourceId === "string" && typeof entry.jobId === "string" &&
    isCount(entry.lineCount) && isCount(entry.byteCount) &&
    typeof file === "object" && file !== null && isCount(file.size) &&
    typeof file.mtimeNs === "string" && typeof file.hashState === "string" &&
    (file.fileId === undefined || typeof file.fileId === "string");
}

/** The cache in `text`, or undefined when it is not one this version reads. */
export function parseStatCache(text: string): StatCache | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const cache = value as Record<string, unknown>;
  if (
    cache.format !== STAT_CACHE_FORMAT || cache.version !== STAT_CACHE_VERSION ||
    typeof cache.scope !== "string" || typeof cache.store !== "string" ||
    !Array.isArray(cache.files) || !cache.files.every(isEntry)
  ) return undefined;
  return value as StatCache;
}

/** The cache of the store in `dataDir`, or undefined when missing or unreadable. */
export async function readStatCache(
  host: CliHost,
  dataDir: string,
): Promise<StatCache | undefined> {
  try {
    const bytes = await readSmall(host, statCachePath(dataDir), 256 * 1024 * 1024);
    return bytes && parseStatCache(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

/**
 * The `unchanged` events of `files` when every one of them has the stamp the cache
 * recorded for its path; undefined at the first that does not.
 */
export async function unchangedByStatCache(
  host: CliHost,
  cache: StatCache,
  files: readonly string[],
): Promise<UnchangedEvent[] | undefined> {
  const byPath = new Map(cache.files.map((entry) => [entry.path, entry]));
  const events: UnchangedEvent[] = [];
  for (const path of files) {
    const entry = byPath.get(path);
    if (!entry) return undefined;
    const stamp = stampOf(await host.stat(path));
    if (!stamp || !sameStamp(entry.file, stamp)) return undefined;
    events.push({
      event: "unchanged",
      file: path,
      conversationId: entry.conversationId,
      jobId: entry.jobId,
      sourceId: entry.sourceId,
      lines: entry.lineCount,
      pendingBytes: stamp.size - entry.byteCount,
      checked: "stat-cache",
    });
  }
  return events;
}

/**
 * What the store recorded for each path of `scope`'s imports that its stat check could
 * find unchanged (a file state, not damaged); undefined while the scope has unfinished
 * jobs (an import then resumes them, which needs the store).
 */
export async function recordedFiles(
  store: OpenStore,
  scope: string,
): Promise<StatCacheEntry[] | undefined> {
  if ((await unfinishedJobs(store.adapter, scope)).size > 0) return undefined;
  const entries: StatCacheEntry[] = [];
  for (const row of (await preloadImports(store, scope)).byPath.values()) {
    if (!row.file || row.damaged) continue;
    entries.push({
      path: row.path,
      conversationId: row.conversationId,
      sourceId: row.sourceId,
      jobId: row.jobId,
      lineCount: row.lineCount,
      byteCount: row.byteCount,
      file: row.file,
    });
  }
  return entries;
}

/** How `import` uses the cache. */
export interface StatCacheSettings {
  scope: string;
  /** The files to import. */
  files: readonly string[];
  /** Answer from the cache when it can (false with `--rescan` or `--replace`). */
  answer: boolean;
  /** Say on stderr why the cache could not be written. */
  verbose: boolean;
  /** The import's interrupt: an interrupted import closes the store at once, writing no cache. */
  signal: AbortSignal;
}

/** What {@link openForImport} found. */
export type ImportOpening =
  /** Every file unchanged by the cache: the store was not opened. */
  | { kind: "unchanged"; location: string; events: UnchangedEvent[] }
  /** The store, open; on the embedded store, closing it writes the cache. */
  | { kind: "open"; store: OpenStore };

/**
 * Opens the store for `import`, or, on the embedded store, answers from the cache without
 * opening it (see the module doc). The lock is held from the cache's check until the cache
 * written after the store's close (or until the answer).
 */
export async function openForImport(
  host: CliHost,
  target: StoreOptions,
  options: OpenOptions,
  settings: StatCacheSettings,
): Promise<ImportOpening> {
  if (target.kind !== "pglite") {
    return { kind: "open", store: await openStore(host, target, options) };
  }
  const dataDir = target.dataDir!;
  const { pgdata } = embeddedStorePaths(dataDir);
  const unlock = await lockEmbeddedStore(host, dataDir);
  let store: OpenStore;
  try {
    const events = settings.answer
      ? await answerFromCache(host, dataDir, pgdata, settings)
      : undefined;
    if (events) {
      await unlock();
      return { kind: "unchanged", location: dataDir, events };
    }
    store = await openStore(host, target, { ...options, lockHeld: true });
  } catch (error) {
    await unlock();
    throw error;
  }
  return {
    kind: "open",
    store: writingCacheOnClose(host, store, pgdata, dataDir, settings, unlock),
  };
}

/** The cache's `unchanged` events, when it is this scope's and the store is as it left it. */
async function answerFromCache(
  host: CliHost,
  dataDir: string,
  pgdata: string,
  settings: StatCacheSettings,
): Promise<UnchangedEvent[] | undefined> {
  const cache = await readStatCache(host, dataDir);
  if (!cache || cache.scope !== settings.scope) return undefined;
  if (cache.store !== await storeFingerprint(host, pgdata)) return undefined;
  return await unchangedByStatCache(host, cache, settings.files);
}

/** `store`, whose close writes the cache (after the store's own close) and then unlocks. */
function writingCacheOnClose(
  host: CliHost,
  store: OpenStore,
  pgdata: string,
  dataDir: string,
  settings: StatCacheSettings,
  unlock: Unlock,
): OpenStore {
  const note = (error: unknown) => {
    if (settings.verbose) {
      host.stderr.write(
        `note: the stat cache ${statCachePath(dataDir)} was not written: ` +
          `${formatError(error, false)}\n`,
      );
    }
  };
  let closing: Promise<void> | undefined;
  return {
    ...store,
    close: () =>
      closing ??= (async () => {
        try {
          const files = settings.signal.aborted
            ? undefined
            : await recordedFiles(store, settings.scope).catch((error) => {
              note(error);
              return undefined;
            });
          await store.close();
          if (files) await writeStatCache(host, dataDir, pgdata, settings.scope, files, note);
        } finally {
          await unlock();
        }
      })(),
  };
}

/** Writes the cache atomically; a failure is passed to `note`, never thrown. */
async function writeStatCache(
  host: CliHost,
  dataDir: string,
  pgdata: string,
  scope: string,
  files: StatCacheEntry[],
  note: (error: unknown) => void,
): Promise<void> {
  try {
    const store = await storeFingerprint(host, pgdata);
    if (store === undefined) throw new Error(`cannot read the store's files in ${pgdata}`);
    const cache: StatCache = {
      format: STAT_CACHE_FORMAT,
      version: STAT_CACHE_VERSION,
      scope,
      store,
      files,
    };
    const bytes = new TextEncoder().encode(JSON.stringify(cache));
    await host.writeFile(
      statCachePath(dataDir),
      (async function* () {
        yield bytes;
      })(),
    );
  } catch (error) {
    note(error);
  }
}
