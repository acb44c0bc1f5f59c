/**
 * Abort plumbing: a signal whose reason is always the `SyncError` to reject with,
 * racing a promise against it, and sleeping on an injected clock.
 *
 * @module
 */

import type { Clock } from "../contracts/clock.ts";
import { SyncError } from "../errors.ts";

/** The error a sync rejects with when its caller aborts it. */
export function abortedError(signal?: AbortSignal): SyncError {
  return new SyncError("E_SYNC_ABORTED", "the sync was aborted", { cause: signal?.reason });
}

/** A controller that also aborts when a parent signal does. */
export interface LinkedAbort {
  /** Aborted by {@link LinkedAbort.abort} or by the parent; its reason is a `SyncError`. */
  readonly signal: AbortSignal;
  /** Aborts with `reason` (the first reason wins). */
  abort(reason: SyncError): void;
  /** Detaches from the parent signal. */
  dispose(): void;
}

/** Links a new controller to `parent`, translating the parent's reason with `toReason`. */
export function linkAbort(
  parent: AbortSignal | undefined,
  toReason: (parent: AbortSignal) => SyncError,
): LinkedAbort {
  const controller = new AbortController();
  const onParentAbort = (): void => controller.abort(toReason(parent as AbortSignal));
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  return {
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    dispose: () => parent?.removeEventListener("abort", onParentAbort),
  };
}

/**
 * Settles like `promise`, or rejects with `signal.reason` as soon as `signal` aborts,
 * whichever comes first. The losing promise keeps running; its outcome is ignored.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Waits `ms` on `clock`; rejects with `signal.reason` (and clears the timer) on abort. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal.reason);
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
