/**
 * A pool of "lanes": postgres.js clients of exactly one connection each, leased to one
 * caller at a time. A transaction runs `BEGIN … COMMIT` on a lane it holds.
 *
 * Why not `sql.begin` / `sql.reserve`: when the server drops a connection, postgres.js
 * 3.4 can write to the dead socket again (its own ROLLBACK, or any statement sent before
 * the close event), which either throws an uncaught TypeError from a timer and kills the
 * process (postgres.js issues 1154, 1208) or leaves that statement's promise pending
 * forever. So this pool never sends another statement on a session once it failed: the
 * transaction stops (the server rolls a lost session back by itself), and the lane gets
 * a fresh client before anyone uses it again.
 *
 * @module
 */

import postgres from "postgres";
import type { SqlExecutor, SqlRow } from "../driver.ts";
import { isConnectionLost } from "../errors.ts";

/** postgres.js connection options (`ssl`, `max`, `connect_timeout`, …). */
export type PostgresJsOptions = postgres.Options<Record<string, postgres.PostgresType>>;

type Sql = postgres.Sql<Record<string, unknown>>;

/** One single-connection client, replaced whenever its session fails. */
interface Lane {
  sql: Sql;
  /** How many times the current client's connection closed. */
  closes: number;
  /** Set when a statement failed with a lost connection: renew before reuse. */
  broken: boolean;
}

/** The error of a statement refused because its transaction's session is gone. */
export function connectionClosed(): Error {
  return Object.assign(new Error("the connection closed during the transaction"), {
    code: "CONNECTION_CLOSED",
  });
}

function poolClosed(): Error {
  return Object.assign(new Error("the connection pool is closed"), { code: "CONNECTION_ENDED" });
}

/** A fixed set of lanes, handed out first come, first served. */
export class LanePool {
  readonly #connectionString: string | undefined;
  readonly #options: PostgresJsOptions;
  readonly #lanes: Lane[] = [];
  readonly #idle: Lane[] = [];
  readonly #waiting: Array<{ resolve: (lane: Lane) => void; reject: (error: Error) => void }> = [];
  #ended = false;

  constructor(size: number, connectionString: string | undefined, options: PostgresJsOptions) {
    this.#connectionString = connectionString;
    this.#options = options;
    for (let i = 0; i < size; i++) {
      const lane = { closes: 0, broken: false } as Lane;
      lane.sql = this.#client(lane);
      this.#lanes.push(lane);
      this.#idle.push(lane);
    }
  }

  /** Runs one statement on the next free lane. */
  query<R extends SqlRow>(text: string, params?: readonly unknown[]): Promise<R[]> {
    return this.#use((lane) => this.#run<R>(lane, text, params));
  }

  /** Runs `fn` in a transaction on a lane held for its whole duration. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.#use(async (lane) => {
      const closesAtBegin = lane.closes;
      const usable = () => !lane.broken && lane.closes === closesAtBegin;
      let open = true;
      const tx: SqlExecutor = {
        query: <R extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]) =>
          open && usable() ? this.#run<R>(lane, text, params) : Promise.reject(connectionClosed()),
      };
      await this.#run(lane, "BEGIN");
      try {
        const result = await fn(tx);
        if (!usable()) throw connectionClosed();
        await this.#run(lane, "COMMIT");
        return result;
      } catch (error) {
        // A lost session was rolled back by the server; nothing more is sent to it.
        if (usable()) await this.#run(lane, "ROLLBACK").catch(() => {});
        throw error;
      } finally {
        open = false;
      }
    });
  }

  /** Closes every lane; waiting callers are refused. */
  async end(): Promise<void> {
    this.#ended = true;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(poolClosed());
    await Promise.all(this.#lanes.map((lane) => lane.sql.end({ timeout: 5 })));
  }

  #client(lane: Lane): Sql {
    const settings: PostgresJsOptions = {
      max_lifetime: null,
      ...this.#options,
      max: 1,
      onclose: (id) => {
        if (lane.sql === client) lane.closes++;
        this.#options.onclose?.(id);
      },
    };
    const client =
      (this.#connectionString === undefined
        ? postgres(settings)
        : postgres(this.#connectionString, settings)) as unknown as Sql;
    return client;
  }

  async #run<R extends SqlRow>(
    lane: Lane,
    text: string,
    params: readonly unknown[] = [],
  ): Promise<R[]> {
    try {
      // Prepared (and cached per connection): one round trip per statement, where an
      // unprepared statement with parameters takes two.
      const rows = await lane.sql.unsafe(text, params as postgres.ParameterOrJSON<never>[], {
        prepare: params.length > 0,
      });
      // A plain array, like PGlite's (postgres.js returns an Array subclass).
      return Array.from(rows) as unknown as R[];
    } catch (error) {
      if (isConnectionLost(error)) lane.broken = true;
      throw error;
    }
  }

  async #use<T>(fn: (lane: Lane) => Promise<T>): Promise<T> {
    const lane = await this.#acquire();
    try {
      return await fn(lane);
    } finally {
      if (lane.broken) this.#renew(lane);
      this.#release(lane);
    }
  }

  /** Gives the lane a fresh client; the old one is destroyed with whatever it holds. */
  #renew(lane: Lane): void {
    const old = lane.sql;
    lane.sql = this.#client(lane);
    lane.closes = 0;
    lane.broken = false;
    old.end({ timeout: 0 }).catch(() => {});
  }

  #acquire(): Promise<Lane> {
    if (this.#ended) return Promise.reject(poolClosed());
    const lane = this.#idle.pop();
    if (lane) return Promise.resolve(lane);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #release(lane: Lane): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(lane);
    else this.#idle.push(lane);
  }
}
