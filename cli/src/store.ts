/**
 * Opening the store a command works on: the embedded PGlite database in a data
 * directory (default `./.codex-sync`), a PostgreSQL server (`--database-url`), or memory
 * (`--store memory`, a dry run that keeps nothing).
 *
 * @module
 */

import { join, resolve } from "node:path";
import type { SyncAdapter } from "@zakstam/codex-sync-engine";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import type {
  PostgresAdapter,
  PostgresExtras,
  SqlExecutor,
} from "@zakstam/codex-sync-engine-postgres";
import { CliError, usage } from "./errors.ts";
import { openServerStore } from "./remote.ts";
import { rolloutHandler, type RolloutHandlerOptions } from "./handler.ts";
import type { CliHost, Unlock } from "./host.ts";
import { LineJudgements } from "./line_judgements.ts";
import {
  ensureRecordTables,
  memoryRecordTables,
  recordTableNames,
  type RecordTables,
  sqlRecordTables,
  type SqlRecordTablesOptions,
} from "./records.ts";

/** Default data directory of the embedded store, relative to the working directory. */
export const DEFAULT_DATA_DIR = ".codex-sync";

/** Which store, and where. */
export interface StoreOptions {
  kind: "pglite" | "postgres" | "memory" | "server";
  /** Server: a `codex-sync serve` (`--server`), and the token to present. */
  server?: { url: string; token: string };
  /** PGlite: the CLI's data directory (the database lives in `<dir>/pgdata`). */
  dataDir?: string;
  /** Postgres: the connection string. */
  databaseUrl?: string;
}

/** An open store. */
export interface OpenStore {
  kind: StoreOptions["kind"];
  /** Where it is, for messages (a directory, a redacted URL, or "memory"). */
  location: string;
  adapter: SyncAdapter;
  /** Reads and writes of the record tables outside jobs (autocommit). */
  tables: RecordTables;
  /** Runs `fn` on the record tables inside one transaction. */
  transaction<T>(fn: (tables: RecordTables) => Promise<T>): Promise<T>;
  /**
   * Where a sync leaves its scan's judgements for the in-process worker's handler (absent
   * where jobs run elsewhere: `--server`).
   */
  judgements?: LineJudgements;
  /** Starts the in-process worker (import runs jobs itself). */
  startWorker(): void;
  /**
   * Gives the space of deleted rows and released chunk payloads back (`gc`): VACUUM —
   * FULL (the tables rewritten, files shrunk) on the embedded store or with `full`, then,
   * on the embedded store, a CHECKPOINT so that old WAL segments can go. Absent where the
   * store is not a database this process opened (memory, `--server`).
   */
  reclaimSpace?(options: { full: boolean }): Promise<void>;
  close(): Promise<void>;
}

/**
 * Resolves `--store`, `--data-dir`, `--database-url`, `--server` and `--token` (and their
 * environment variables). `local`: a local store only (`serve`), whatever
 * `CODEX_SYNC_SERVER` says.
 */
export function storeOptions(
  host: CliHost,
  options: Record<string, unknown>,
  local = false,
): StoreOptions {
  const localGiven = ["store", "data-dir", "database-url"].filter((name) =>
    options[name] !== undefined
  );
  const serverOption = options.server as string | undefined;
  const serverUrl = local
    ? undefined
    : serverOption ?? (localGiven.length === 0 ? host.env("CODEX_SYNC_SERVER") : undefined);
  if (serverUrl !== undefined) {
    if (localGiven.length > 0) {
      throw usage(`--server cannot be combined with --${localGiven[0]}`);
    }
    if (options.scope !== undefined) {
      throw usage("--scope cannot be combined with --server: the token decides the scope");
    }
    if (!/^https?:\/\/[^/]/i.test(serverUrl)) {
      throw usage(`--server expects an http:// or https:// URL, got ${JSON.stringify(serverUrl)}`);
    }
    const token = (options.token as string | undefined) ?? host.env("CODEX_SYNC_TOKEN");
    if (!token) throw usage("--server needs --token (or CODEX_SYNC_TOKEN)");
    return { kind: "server", server: { url: serverUrl, token } };
  }
  if (options.token !== undefined) throw usage("--token is for --server only");
  const databaseUrl = (options["database-url"] as string | undefined) ??
    host.env("CODEX_SYNC_DATABASE_URL");
  let kind = options.store as StoreOptions["kind"] | undefined;
  if (kind === undefined) kind = databaseUrl ? "postgres" : "pglite";
  if (kind === "postgres" && !databaseUrl) {
    throw usage("--store postgres needs --database-url (or CODEX_SYNC_DATABASE_URL)");
  }
  if (kind !== "postgres" && options["database-url"] !== undefined) {
    throw usage(`--database-url cannot be combined with --store ${kind}`);
  }
  if (kind !== "pglite" && options["data-dir"] !== undefined) {
    throw usage(`--data-dir is for the embedded store only (not --store ${kind})`);
  }
  const dataDir = resolve(
    host.cwd(),
    (options["data-dir"] as string | undefined) ?? host.env("CODEX_SYNC_DATA_DIR") ??
      DEFAULT_DATA_DIR,
  );
  return kind === "postgres"
    ? { kind, databaseUrl }
    : kind === "pglite"
    ? { kind, dataDir }
    : { kind };
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, "$1***@");
}

/** How to open. */
export interface OpenOptions {
  /** Create the embedded store when missing (import); otherwise a missing one is `E_CLI_NOT_FOUND`. */
  create: boolean;
  handler?: RolloutHandlerOptions;
  /**
   * The caller holds the embedded store's lock already ({@link lockEmbeddedStore}; import's
   * stat cache, written after the store is closed): it is neither taken nor released here.
   */
  lockHeld?: boolean;
}

/** The engine's upload cache in the CLI (`policy.uploadCacheBytes`). */
export const CLI_UPLOAD_CACHE_BYTES = 8 * 1024 * 1024;

/** Where the embedded store in `dataDir` keeps its database and its lock file. */
export function embeddedStorePaths(dataDir: string): { pgdata: string; lock: string } {
  return { pgdata: join(dataDir, "pgdata"), lock: join(dataDir, "lock") };
}

/** Takes the embedded store's lock (creating the data directory when missing). */
export async function lockEmbeddedStore(host: CliHost, dataDir: string): Promise<Unlock> {
  await host.mkdir(dataDir);
  return await host.lock(embeddedStorePaths(dataDir).lock);
}

/** Opens the store; its worker is stopped until {@link OpenStore.startWorker}. */
export async function openStore(
  host: CliHost,
  store: StoreOptions,
  options: OpenOptions,
): Promise<OpenStore> {
  if (store.kind === "memory") return openMemory(options);
  if (store.kind === "server") return await openServerStore(store.server!);
  const names = recordTableNames();
  let unlock: Unlock | undefined;
  let adapter: PostgresAdapter;
  // PGlite takes a byte parameter as it is; postgres.js would hex-encode it (records.ts).
  const lines: SqlRecordTablesOptions = {
    lineParameter: store.kind === "pglite" ? "bytea" : "text",
  };
  const judgements = new LineJudgements();
  const handler = rolloutHandler<PostgresExtras>(
    (context) => sqlRecordTables(context.sql, names, lines),
    { ...options.handler, judgements },
  );
  const common = {
    handler,
    mode: "manual" as const,
    pollIntervalMs: 1_000,
    // Enough for the small files and appends of the daily case; a large file's chunks
    // are read back instead of held (peak memory, issue 17's figure 21).
    policy: { uploadCacheBytes: CLI_UPLOAD_CACHE_BYTES },
  };
  // Loaded only here: PGlite's code alone takes about half a second to load, which a
  // command that opens no database (import answered by its stat cache, memory, --server,
  // help) need not pay.
  const { createPostgresAdapter } = await import("@zakstam/codex-sync-engine-postgres");
  if (store.kind === "pglite") {
    const dataDir = store.dataDir!;
    const { pgdata } = embeddedStorePaths(dataDir);
    if (!options.create && !(await host.stat(pgdata))?.isDirectory) {
      throw new CliError(
        "E_CLI_NOT_FOUND",
        `no store in ${dataDir} yet (run "codex-sync import <file>" first, or pass --data-dir)`,
      );
    }
    if (!options.lockHeld) unlock = await lockEmbeddedStore(host, dataDir);
    try {
      adapter = await createPostgresAdapter({ ...common, dataDir: pgdata });
      await settleWal(adapter.driver);
    } catch (error) {
      await unlock?.();
      throw error;
    }
  } else {
    adapter = await createPostgresAdapter({ ...common, connectionString: store.databaseUrl! });
  }
  try {
    await ensureRecordTables(adapter.driver, names);
  } catch (error) {
    await adapter.close().catch(() => {});
    await unlock?.();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    kind: store.kind,
    location: store.kind === "pglite" ? store.dataDir! : redactUrl(store.databaseUrl!),
    adapter,
    tables: sqlRecordTables(adapter.driver, names, lines),
    judgements,
    transaction: (fn) => adapter.driver.transaction((tx) => fn(sqlRecordTables(tx, names, lines))),
    startWorker: () => adapter.startWorker(),
    async reclaimSpace({ full }) {
      // The embedded store is this process's alone (locked): a full rewrite blocks nobody.
      await adapter.driver.query(full || store.kind === "pglite" ? "VACUUM FULL" : "VACUUM");
      if (store.kind === "pglite") await adapter.driver.query("CHECKPOINT");
    },
    close: () =>
      closing ??= (async () => {
        try {
          await adapter.close();
        } finally {
          await unlock?.();
        }
      })(),
  };
}

/**
 * PostgreSQL keeps at least `min_wal_size` (80 MB) of WAL segments, renamed for reuse
 * (`wal_recycle`), whatever the data's size: on the embedded store, where the WAL is part
 * of what the store weighs on disk, 32 MB (two segments) and segments deleted rather than
 * recycled, so that `gc`'s CHECKPOINT shrinks it. Settings of the data directory
 * (`ALTER SYSTEM`), in effect from the next start (segments a first run left for reuse
 * are written through and then deleted).
 */
async function settleWal(db: SqlExecutor): Promise<void> {
  const [row] = await db.query(
    `SELECT current_setting('wal_recycle') AS recycle, current_setting('min_wal_size') AS min`,
  );
  if (row?.recycle === "off" && row?.min === "32MB") return;
  await db.query(`ALTER SYSTEM SET wal_recycle = off`);
  await db.query(`ALTER SYSTEM SET min_wal_size = '32MB'`);
}

function openMemory(options: OpenOptions): OpenStore {
  const tables = memoryRecordTables();
  const judgements = new LineJudgements();
  const adapter = createMemoryAdapter({
    handler: rolloutHandler(() => tables, { ...options.handler, judgements }),
  });
  return {
    ...memoryOpenStore(adapter, tables, "memory (dry run: nothing is kept)"),
    judgements,
  };
}

/**
 * A store over a memory adapter whose handler writes `tables` (`--store memory`, and the
 * in-process tests): nothing to start, reclaim or lock.
 */
export function memoryOpenStore(
  adapter: SyncAdapter & { close(): Promise<void> },
  tables: RecordTables,
  location = "memory",
): OpenStore {
  return {
    kind: "memory",
    location,
    adapter,
    tables,
    transaction: (fn) => fn(tables),
    startWorker: () => {},
    close: () => adapter.close(),
  };
}
