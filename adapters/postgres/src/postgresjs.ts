/**
 * The server driver: postgres.js, as a pool of single-connection lanes for statements
 * and transactions, plus one connection for LISTEN that re-subscribes on its own.
 *
 * @module
 */

import { BYTEA_OID, byteaText, parseByteaText } from "./bytea.ts";
import type { PostgresDriver } from "./driver.ts";
import { LanePool, type PostgresJsOptions } from "./postgresjs/lanes.ts";
import { ListenConnection } from "./postgresjs/listen.ts";

export type { PostgresJsOptions };

/** How to reach the server. */
export interface PostgresJsDriverOptions {
  /** `postgres://user:password@host:port/database` (may be omitted when `options` says it all). */
  connectionString?: string;
  /**
   * postgres.js options for every connection; `max` is the number of connections for
   * statements and transactions (default 10), one more is opened for LISTEN.
   */
  options?: PostgresJsOptions;
}

const DEFAULT_CONNECTIONS = 10;

/**
 * Seconds before reconnecting after failed attempts. postgres.js's default grows to 20 s,
 * which would keep the adapter away from a server long after a short outage; capped at
 * one second instead.
 */
function reconnectBackoff(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2);
}

/** A driver for a PostgreSQL server through postgres.js. */
export function createPostgresJsDriver(options: PostgresJsDriverOptions): PostgresDriver {
  const settings: PostgresJsOptions = {
    onnotice: () => {},
    backoff: reconnectBackoff,
    ...options.options,
    // postgres.js's own bytea codec goes through Buffer (JavaScript under Deno).
    types: {
      bytea: {
        to: BYTEA_OID,
        from: [BYTEA_OID],
        serialize: (value: Uint8Array) => byteaText(value),
        parse: parseByteaText,
      },
      ...options.options?.types,
    },
  };
  const size = settings.max ?? DEFAULT_CONNECTIONS;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(`postgres.js option max must be a positive integer, got ${size}`);
  }
  const pool = new LanePool(size, options.connectionString, settings);
  let listener: ListenConnection | undefined;
  return {
    name: "postgres.js",
    concurrentTransactions: true,
    // One connection per lane: postgres.js sends each statement at once, in call order.
    pipelines: true,
    query: (text, params) => pool.query(text, params),
    transaction: (fn) => pool.transaction(fn),
    listen: (channel, onNotify, onConnect) => {
      listener ??= new ListenConnection(options.connectionString, settings);
      return listener.add(channel, onNotify, onConnect);
    },
    close: async () => {
      await listener?.close();
      await pool.end();
    },
  };
}
