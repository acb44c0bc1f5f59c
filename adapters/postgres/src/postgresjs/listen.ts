/**
 * One connection holding every LISTEN of a driver. When it drops (server restart,
 * network) it re-subscribes on its own, with backoff, and tells the listeners, since
 * notifications sent in between are lost.
 *
 * @module
 */

import postgres from "postgres";
import type { Unlisten } from "../driver.ts";
import type { PostgresJsOptions } from "./lanes.ts";

const RELISTEN_FIRST_DELAY_MS = 100;
const RELISTEN_MAX_DELAY_MS = 5_000;

type Sql = postgres.Sql<Record<string, unknown>>;

interface Listener {
  onNotify: (payload: string) => void;
  onConnect?: () => void;
}

function quoteChannel(channel: string): string {
  return `"${channel.replace(/"/g, '""')}"`;
}

/** The LISTEN connection of one driver. */
export class ListenConnection {
  readonly #sql: Sql;
  readonly #channels = new Map<string, Set<Listener>>();
  #closed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryDelay = RELISTEN_FIRST_DELAY_MS;

  constructor(connectionString: string | undefined, options: PostgresJsOptions) {
    // `onnotify` is the (untyped) option postgres.js's own `listen` is built on.
    const settings: PostgresJsOptions & {
      onnotify: (channel: string, payload: string) => void;
    } = {
      ...options,
      max: 1,
      idle_timeout: undefined,
      max_lifetime: null,
      fetch_types: false,
      onnotify: (channel, payload) => {
        for (const listener of this.#channels.get(channel) ?? []) listener.onNotify(payload);
      },
      onclose: () => this.#scheduleRelisten(),
    };
    this.#sql =
      (connectionString === undefined
        ? postgres(settings)
        : postgres(connectionString, settings)) as unknown as Sql;
  }

  /** Listens on `channel` (LISTEN is sent for its first listener only). */
  async add(
    channel: string,
    onNotify: (payload: string) => void,
    onConnect?: () => void,
  ): Promise<Unlisten> {
    const listener: Listener = { onNotify, onConnect };
    let listeners = this.#channels.get(channel);
    const first = !listeners;
    if (!listeners) this.#channels.set(channel, listeners = new Set());
    listeners.add(listener);
    if (first) {
      try {
        await this.#sql.unsafe(`LISTEN ${quoteChannel(channel)}`);
      } catch (error) {
        this.#channels.delete(channel);
        throw error;
      }
    }
    onConnect?.();
    return async () => {
      listeners.delete(listener);
      if (listeners.size > 0 || this.#channels.get(channel) !== listeners) return;
      this.#channels.delete(channel);
      if (!this.#closed) {
        await this.#sql.unsafe(`UNLISTEN ${quoteChannel(channel)}`).catch(() => {});
      }
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#channels.clear();
    await this.#sql.end({ timeout: 0 });
  }

  #scheduleRelisten(): void {
    if (this.#closed || this.#retryTimer !== undefined || this.#channels.size === 0) return;
    this.#retryTimer = setTimeout(() => void this.#relisten(), this.#retryDelay);
  }

  async #relisten(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    try {
      for (const channel of this.#channels.keys()) {
        await this.#sql.unsafe(`LISTEN ${quoteChannel(channel)}`);
      }
    } catch {
      this.#retryDelay = Math.min(this.#retryDelay * 2, RELISTEN_MAX_DELAY_MS);
      this.#scheduleRelisten();
      return;
    }
    this.#retryDelay = RELISTEN_FIRST_DELAY_MS;
    for (const listeners of [...this.#channels.values()]) {
      for (const listener of [...listeners]) listener.onConnect?.();
    }
  }
}
