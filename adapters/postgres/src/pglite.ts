/**
 * The embedded driver: PGlite, PostgreSQL compiled to WebAssembly, in this process —
 * in memory, or persisted to a directory. PGlite runs one statement at a time and queues
 * transactions, so every transaction is serial.
 *
 * @module
 */

import { PGlite, type PGliteOptions } from "@electric-sql/pglite";
import { BYTEA_OID, parseByteaText } from "./bytea.ts";
import type { PostgresDriver, SqlExecutor, SqlRow } from "./driver.ts";

// The two types below stand in for PGlite's own in this package's public declarations:
// PGlite's `.d.ts` files need Emscripten's and Node's ambient types, so a consumer
// type-checking with `skipLibCheck: false` would fail on them (issue 13).

/**
 * PGlite options passed through to `PGlite.create`: PGlite's `PGliteOptions` (see its
 * documentation), with PGlite-specific value types loosened to `unknown`.
 */
export interface PGliteSettings {
  noInitDb?: boolean;
  dataDir?: string;
  username?: string;
  database?: string;
  fs?: unknown;
  pgDataProxyFs?: unknown;
  debug?: number;
  relaxedDurability?: boolean;
  extensions?: Record<string, unknown>;
  loadDataDir?: Blob;
  icuDataDir?: Blob;
  initialMemory?: number;
  pgliteWasmModule?: WebAssembly.Module;
  initdbWasmModule?: WebAssembly.Module;
  fsBundle?: Blob;
  parsers?: Record<number, (value: string, typeId: number) => unknown>;
  serializers?: Record<number, (value: unknown) => string>;
  startParams?: string[];
  initDbStartParams?: string[];
  postgresqlconf?: string[] | string;
  onStdout?: (text: string) => boolean;
  onStderr?: (text: string) => boolean;
}

/** What the driver uses of a PGlite instance (`new PGlite()` / `PGlite.create()`). */
export interface PGliteInstance {
  readonly closed: boolean;
  query<R>(text: string, params?: unknown[], options?: PGliteQueryCodecs): Promise<{ rows: R[] }>;
  transaction<T>(
    fn: (tx: {
      query<R>(
        text: string,
        params?: unknown[],
        options?: PGliteQueryCodecs,
      ): Promise<{ rows: R[] }>;
    }) => Promise<T>,
  ): Promise<T>;
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Where the embedded database lives. */
export interface PGliteDriverOptions {
  /** A directory to persist to (created if missing); in memory when absent. */
  dataDir?: string;
  /** More PGlite options (`relaxedDurability`, `pgliteWasmModule`, `extensions`, …). */
  options?: PGliteSettings;
  /** An instance you opened yourself; the driver then leaves closing it to you. */
  pglite?: PGliteInstance;
}

/** Per-query codecs of PGlite's `query` (the part of its `QueryOptions` used here). */
export interface PGliteQueryCodecs {
  parsers?: Record<number, (value: string, typeId: number) => unknown>;
  serializers?: Record<number, (value: unknown) => unknown>;
}

/**
 * PGlite's own bytea codec builds a string per byte both ways. A byte array returned by
 * a serializer is sent as a binary parameter (the bytes as they are); results come back
 * as text, decoded by the native hex codec (bytea.ts). Given per query, so an instance
 * the caller opened gets them too.
 */
const BYTEA_CODECS: PGliteQueryCodecs = {
  serializers: {
    [BYTEA_OID]: (value) => ArrayBuffer.isView(value) ? value : String(value),
  },
  parsers: { [BYTEA_OID]: parseByteaText },
};

function executor(db: Pick<PGliteInstance, "query">): SqlExecutor {
  return {
    query: async <R extends SqlRow = SqlRow>(text: string, params: readonly unknown[] = []) =>
      (await db.query<R>(text, params as unknown[], BYTEA_CODECS)).rows,
  };
}

/** Opens (or wraps) a PGlite database as a driver. */
export async function createPGliteDriver(
  options: PGliteDriverOptions = {},
): Promise<PostgresDriver> {
  const owned = options.pglite === undefined;
  const settings = { ...options.options } as PGliteOptions;
  if (options.dataDir !== undefined) settings.dataDir = options.dataDir;
  const db = options.pglite ?? await PGlite.create(settings);
  const pool = executor(db);
  return {
    name: "pglite",
    query: pool.query,
    transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> =>
      db.transaction((tx) => fn(executor(tx))),
    listen: async (channel, onNotify, onConnect) => {
      const unlisten = await db.listen(channel, onNotify);
      onConnect?.();
      return () => unlisten();
    },
    close: async () => {
      if (owned && !db.closed) await db.close();
    },
  };
}
