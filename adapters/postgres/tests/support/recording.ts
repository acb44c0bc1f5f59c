/**
 * A driver that records every statement it runs, and whether it ran in a transaction.
 *
 * @module
 */

import type {
  PostgresAdapter,
  PostgresDriver,
  SqlExecutor,
} from "@zakstam/codex-sync-engine-postgres";

/** A statement a recording driver ran. */
export interface Recorded {
  text: string;
  params: readonly unknown[];
  inTransaction: boolean;
}

/** `driver`, recording into `statements` (which a test may clear). */
export function recording(driver: PostgresDriver): {
  driver: PostgresDriver;
  statements: Recorded[];
} {
  const statements: Recorded[] = [];
  const wrapped: PostgresDriver = {
    name: driver.name,
    pipelines: driver.pipelines,
    concurrentTransactions: driver.concurrentTransactions,
    query: (text, params) => {
      statements.push({ text, params: params ?? [], inTransaction: false });
      return driver.query(text, params);
    },
    transaction: (fn) =>
      driver.transaction((tx) => {
        const view: SqlExecutor = {
          query: (text, params) => {
            statements.push({ text, params: params ?? [], inTransaction: true });
            return tx.query(text, params);
          },
        };
        return fn(view);
      }),
    listen: (channel, onNotify, onConnect) => driver.listen(channel, onNotify, onConnect),
    close: () => driver.close(),
  };
  return { driver: wrapped, statements };
}

/** Counts the store's statements on `adapter`'s driver that call the function `fn`. */
export function countCalls(adapter: PostgresAdapter, fn: string): { count: number } {
  const counted = { count: 0 };
  const driver = adapter.driver;
  const query = driver.query.bind(driver);
  driver.query = ((text: string, params?: unknown[]) => {
    if (text.includes(`${fn}"(`)) counted.count++;
    return query(text, params);
  }) as typeof driver.query;
  return counted;
}
