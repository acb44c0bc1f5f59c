/**
 * The embedded driver: PGlite, PostgreSQL compiled to WebAssembly, in this process —
 * in memory, or persisted to a directory. PGlite runs one statement at a time and queues
 * transactions, so every transaction is serial.
 *
 * @module
 */

import { PGlite, type PGliteOptions } from "@electric-sql/pglite";
import type { PostgresDriver, SqlExecutor, SqlRow } from "./driver.ts";

/** Where the embedded database lives. */
export interface PGliteDriverOptions {
  /** A directory to persist to (created if missing); in memory when absent. */
  dataDir?: string;
  /** More PGlite options (`relaxedDurability`, `pgliteWasmModule`, `extensions`, …). */
  options?: PGliteOptions;
  /** An instance you opened yourself; the driver then leaves closing it to you. */
  pglite?: PGlite;
}

function executor(db: Pick<PGlite, "query">): SqlExecutor {
  return {
    query: async <R extends SqlRow = SqlRow>(text: string, params: readonly unknown[] = []) =>
      (await db.query<R>(text, params as unknown[])).rows,
  };
}

/** Opens (or wraps) a PGlite database as a driver. */
export async function createPGliteDriver(
  options: PGliteDriverOptions = {},
): Promise<PostgresDriver> {
  const owned = options.pglite === undefined;
  const settings: PGliteOptions = { ...options.options };
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
