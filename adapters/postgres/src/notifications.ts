/**
 * Change notification for jobs. Every transaction that writes a job sends a NOTIFY on the
 * tables' channel (delivered at commit); this hub LISTENs on it and fans out to the
 * process's waiters and worker. Writes made through this hub's own stores are fanned out
 * directly after commit (their NOTIFY echo is ignored); writes by other processes arrive
 * over LISTEN. Notifications can be lost while the listening connection is down, so on
 * every (re)connect everyone is told to look again, and waiters are also re-checked by a
 * bounded poll on the clock.
 *
 * @module
 */

import type { Clock, Job, JobState } from "@zakstam/codex-sync-engine";
import type { PostgresDriver, Unlisten } from "./driver.ts";

/** A committed job write, as announced. */
export interface JobNotice {
  scope: string;
  jobId: string;
  state: JobState;
  runAt: number;
}

/**
 * Told about job writes: a notice, or `undefined` when anything may have changed
 * (the listening connection was re-established).
 */
export type JobNoticeListener = (notice: JobNotice | undefined) => void;

// NOTIFY payloads must stay below 8000 bytes; longer ones become a bare "look again".
const MAX_PAYLOAD_BYTES = 7_900;
const encoder = new TextEncoder();

const jobKey = (scope: string, jobId: string): string => `${scope.length}:${scope}:${jobId}`;

function parseNotice(payload: string): { origin: string; notice?: JobNotice } | undefined {
  try {
    const value: unknown = JSON.parse(payload);
    if (!Array.isArray(value) || typeof value[0] !== "string") return undefined;
    const [origin, scope, jobId, state, runAt] = value;
    if (typeof scope !== "string" || typeof jobId !== "string") return { origin };
    return { origin, notice: { scope, jobId, state, runAt: Number(runAt) } };
  } catch {
    return undefined;
  }
}

/** Fans job writes out to subscribers; one per adapter, shared by its stores. */
export class JobNotifications {
  /** Identifies this hub's own NOTIFYs, so their echo is not delivered twice. */
  readonly origin: string = crypto.randomUUID();
  readonly #driver: PostgresDriver;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #pollIntervalMs: number;
  readonly #jobListeners = new Map<string, Set<() => void>>();
  readonly #listeners = new Set<JobNoticeListener>();
  #unlisten: Unlisten | undefined;
  #pollTimer: unknown;
  #closed = false;

  constructor(driver: PostgresDriver, channel: string, clock: Clock, pollIntervalMs: number) {
    this.#driver = driver;
    this.#channel = channel;
    this.#clock = clock;
    this.#pollIntervalMs = pollIntervalMs;
  }

  /** The channel NOTIFYs go to. */
  get channel(): string {
    return this.#channel;
  }

  /** Starts listening for other processes' job writes. */
  async start(): Promise<void> {
    this.#unlisten = await this.#driver.listen(
      this.#channel,
      (payload) => this.#onPayload(payload),
      () => this.#announceAll(),
    );
  }

  /** The NOTIFY payload announcing a write of `job`. */
  payload(job: Job): string {
    const full = JSON.stringify([this.origin, job.scope, job.jobId, job.state, job.runAt]);
    return encoder.encode(full).length <= MAX_PAYLOAD_BYTES ? full : JSON.stringify([this.origin]);
  }

  /** Announces jobs written by a transaction of this hub's stores that just committed. */
  publish(jobs: Iterable<Job>): void {
    for (const job of jobs) {
      this.#announce({ scope: job.scope, jobId: job.jobId, state: job.state, runAt: job.runAt });
    }
  }

  /** Calls `listener` after each committed write of the job (and on every poll tick). */
  subscribeJob(scope: string, jobId: string, listener: () => void): () => void {
    const key = jobKey(scope, jobId);
    let listeners = this.#jobListeners.get(key);
    if (!listeners) this.#jobListeners.set(key, listeners = new Set());
    listeners.add(listener);
    this.#armPoll();
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.#jobListeners.get(key) === listeners) {
        this.#jobListeners.delete(key);
      }
      if (this.#jobListeners.size === 0) this.#disarmPoll();
    };
  }

  /** Calls `listener` for every job write, local or remote. */
  onJob(listener: JobNoticeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops listening and polling. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#disarmPoll();
    this.#jobListeners.clear();
    this.#listeners.clear();
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.().catch(() => {});
  }

  #onPayload(payload: string): void {
    const parsed = parseNotice(payload);
    if (!parsed || parsed.origin === this.origin) return;
    if (parsed.notice) this.#announce(parsed.notice);
    else this.#announceAll();
  }

  #announce(notice: JobNotice): void {
    if (this.#closed) return;
    for (
      const listener of [...(this.#jobListeners.get(jobKey(notice.scope, notice.jobId)) ?? [])]
    ) {
      listener();
    }
    for (const listener of [...this.#listeners]) listener(notice);
  }

  #announceAll(): void {
    if (this.#closed) return;
    this.#pokeWaiters();
    for (const listener of [...this.#listeners]) listener(undefined);
  }

  #pokeWaiters(): void {
    for (const listeners of [...this.#jobListeners.values()]) {
      for (const listener of [...listeners]) listener();
    }
  }

  #armPoll(): void {
    if (this.#pollTimer !== undefined || this.#closed) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      if (this.#jobListeners.size === 0) return;
      this.#pokeWaiters();
      this.#armPoll();
    }, this.#pollIntervalMs);
  }

  #disarmPoll(): void {
    if (this.#pollTimer === undefined) return;
    this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }
}
