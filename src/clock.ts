/**
 * Clock implementations: the system clock, and a manual clock for tests and the
 * conformance suite (time moves only when told to).
 *
 * @module
 */

import type { Clock, TimerHandle } from "./contracts/clock.ts";

/** Real time and real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface ManualTimer {
  id: number;
  at: number;
  callback: () => void;
}

/** A clock that only moves when {@link ManualClock.advance} or {@link ManualClock.set} is called. */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Map<number, ManualTimer>();
  #nextId = 1;

  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Time of the earliest pending timer, if any. */
  nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const timer of this.#timers.values()) {
      if (next === undefined || timer.at < next) next = timer.at;
    }
    return next;
  }

  /** Moves time forward by `ms`, firing due timers in time order. */
  advance(ms: number): void {
    this.set(this.#now + Math.max(0, ms));
  }

  /** Moves time to `time` (never backwards), firing due timers in time order. */
  set(time: number): void {
    const target = Math.max(this.#now, time);
    for (;;) {
      let due: ManualTimer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at <= target && (due === undefined || timer.at < due.at)) due = timer;
      }
      if (due === undefined) break;
      this.#timers.delete(due.id);
      this.#now = Math.max(this.#now, due.at);
      due.callback();
    }
    this.#now = target;
  }
}
