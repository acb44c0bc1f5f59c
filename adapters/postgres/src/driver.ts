/**
 * The small driver interface the adapter runs on: parameterised queries, transactions,
 * LISTEN and close. Two implementations ship (postgres.js for a server, PGlite embedded);
 * any other client can be wrapped in a few lines.
 *
 * NOTIFY needs no method of its own: the store sends it with `pg_notify` as a plain
 * statement after the transaction that wrote jobs commits (see notifications.ts).
 *
 * @module
 */

/** One result row, keyed by column name. */
export type SqlRow = Record<string, unknown>;

/** Runs parameterised SQL (`$1`, `$2`, …) and returns the result rows. */
export interface SqlExecutor {
  query<R extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<R[]>;
}

/** Stops listening; resolves once the backend was told. */
export type Unlisten = () => Promise<void>;

/**
 * A connection (or pool) to one PostgreSQL database.
 *
 * Drivers throw their client's own errors; the store maps them to `SyncError`s (see
 * `toBackendError`). Parameters arrive as JS strings, numbers, booleans, `null` and
 * `Uint8Array` (for `bytea`); every statement casts its parameters explicitly.
 */
export interface PostgresDriver extends SqlExecutor {
  /** A short name for diagnostics (`"postgres.js"`, `"pglite"`). */
  readonly name: string;
  /**
   * True when transactions of other callers run while one is open (a connection pool);
   * false or absent for one connection that serialises them (PGlite).
   */
  readonly concurrentTransactions?: boolean;
  /**
   * True when the executor of `transaction` may be sent a statement before the previous
   * one's reply arrived: statements then run in the order sent, on one session, and once
   * one fails the transaction is aborted, so none after it takes effect and COMMIT rolls
   * back. The store then does not wait for the replies of writes it does not read.
   */
  readonly pipelines?: boolean;
  /**
   * Runs `fn` inside `BEGIN … COMMIT` on one connection; rolls back and rethrows when
   * `fn` throws. Statements of `fn` must go through the executor it receives.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` with the payload of every NOTIFY on `channel` (a lowercase
   * identifier). `onConnect` runs each time the listening connection is (re)established:
   * notifications sent while it was down are lost, so listeners re-read what they watch.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onConnect?: () => void,
  ): Promise<Unlisten>;
  /** Closes the connections; further calls fail. */
  close(): Promise<void>;
}
