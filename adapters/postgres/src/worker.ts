/**
 * The background worker of one adapter: runs the engine's due jobs when they become due.
 * It is woken by job writes (this process's commits, other processes' NOTIFYs), by a
 * timer on the engine's clock for the earliest future `runAt` (a retry or a lease
 * expiry), and by a bounded poll as a safety net for notifications lost while the
 * listening connection was down.
 *
 * @module
 */

import { type Clock, isTerminalJobState } from "@zakstam/codex-sync-engine";
import type { JobNotice, JobNotifications } from "./notifications.ts";

/** What the worker drives. */
export interface WorkerDeps {
  engine: {
    runDueJobs(options?: { signal?: AbortSignal; endWhenDrained?: boolean }): Promise<number>;
  };
  store: { nextRunAt(): Promise<number | undefined> };
  notifications: JobNotifications;
  clock: Clock;
  /** Safety-net poll period (ms, on `clock`). */
  pollIntervalMs: number;
  /** Jobs run at once. */
  concurrency: number;
  /** Told about failures of background runs (they are retried). */
  onError?: (error: unknown) => void;
}

// How soon to look again after a failed pass (the database is unreachable, say), or when a
// job is due but was not claimable (another worker holds its row inside a transaction).
const RECHECK_DELAY_MS = 1_000;

/** Runs due jobs, on demand (`drain`) or in the background (`start`). */
export class JobWorker {
  readonly #deps: WorkerDeps;
  #started = false;
  #stopping: AbortController | undefined;
  #running: Promise<number> | undefined;
  #rerun = false;
  #timer: unknown;
  #timerAt = Infinity;
  #pollTimer: unknown;
  #unsubscribe: (() => void) | undefined;

  constructor(deps: WorkerDeps) {
    this.#deps = deps;
  }

  /** Starts running due jobs in the background. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stopping = new AbortController();
    this.#unsubscribe = this.#deps.notifications.onJobState((notice) => this.#onNotice(notice));
    this.#armPoll();
    this.#wake();
  }

  /** Stops the background worker and waits for the jobs it is running. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#stopping?.abort();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#clearTimer();
    if (this.#pollTimer !== undefined) this.#deps.clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    await this.#running?.catch(() => 0);
  }

  /** Runs due work until none is due now; returns how many job runs it made. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const ran = await this.#runLoop();
      total += ran;
      if (ran === 0) return total;
    }
  }

  #onNotice(notice: JobNotice | undefined): void {
    if (notice === undefined) this.#wake();
    else if (!isTerminalJobState(notice.state)) this.#schedule(notice.runAt);
  }

  #schedule(runAt: number | undefined): void {
    if (!this.#started || runAt === undefined || runAt >= this.#timerAt) return;
    const { clock } = this.#deps;
    if (runAt <= clock.now()) {
      this.#wake();
      return;
    }
    this.#clearTimer();
    this.#timerAt = runAt;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#wake();
    }, Math.max(0, runAt - clock.now()));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #armPoll(): void {
    const { clock, pollIntervalMs } = this.#deps;
    this.#pollTimer = clock.setTimeout(() => {
      if (!this.#started) return;
      this.#armPoll();
      this.#wake();
    }, pollIntervalMs);
  }

  #wake(): void {
    if (!this.#started) return;
    this.#runLoop().catch((error) => {
      this.#deps.onError?.(error);
      this.#recheckSoon();
    });
  }

  /** One pass of every loop; concurrent callers share it (and ask for another pass). */
  #runLoop(): Promise<number> {
    if (this.#running) {
      this.#rerun = true;
      return this.#running;
    }
    const run = (async () => {
      try {
        let total = 0;
        do {
          this.#rerun = false;
          total += await this.#runConcurrently();
        } while (this.#rerun && !this.#stopping?.signal.aborted);
        this.#scheduleNextDue();
        return total;
      } finally {
        // Cleared before any awaiting caller resumes, so its next call starts a new pass.
        this.#running = undefined;
      }
    })();
    this.#running = run;
    return run;
  }

  async #runConcurrently(): Promise<number> {
    const signal = this.#started ? this.#stopping?.signal : undefined;
    // Every job write wakes this worker (see #onNotice), so a run may end once it finds
    // nothing due; `drain` runs passes until one runs nothing.
    const options = signal ? { signal, endWhenDrained: true } : { endWhenDrained: true };
    const runs = Array.from(
      { length: Math.max(1, this.#deps.concurrency) },
      () => this.#deps.engine.runDueJobs(options),
    );
    // Settle every loop before reporting a failure, so no run outlives its pass.
    const results = await Promise.allSettled(runs);
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    return results.reduce(
      (sum, result) => sum + (result.status === "fulfilled" ? result.value : 0),
      0,
    );
  }

  #scheduleNextDue(): void {
    if (!this.#started) return;
    this.#deps.store.nextRunAt().then(
      (runAt) => {
        // Due yet not claimed by the pass that just ended: its row is held elsewhere.
        if (runAt !== undefined && runAt <= this.#deps.clock.now()) this.#recheckSoon();
        else this.#schedule(runAt);
      },
      (error) => {
        this.#deps.onError?.(error);
        this.#recheckSoon();
      },
    );
  }

  #recheckSoon(): void {
    const { clock, pollIntervalMs } = this.#deps;
    this.#schedule(clock.now() + Math.min(RECHECK_DELAY_MS, pollIntervalMs));
  }
}
