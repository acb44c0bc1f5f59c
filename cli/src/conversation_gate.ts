/**
 * When `import` works on several files at once (`--files-at-once`): files of one
 * conversation are synced one after another, in the order they are listed, so that every
 * file's outcome is the one the sequential run gives (a copy left alone, a moved file
 * followed, an older or diverging copy judged against the import the earlier file made).
 *
 * A file learns which conversation it works on while it runs — the import recorded for
 * its path, the session id its first lines name — and works on one at a time: it
 * `enter`s a conversation before it reads or writes anything of it (dropping the one it
 * held), and `settle`s once it will enter no other. The rule: a file may enter
 * conversation C once every earlier file still running has settled on a conversation
 * other than C. Until an earlier file settles it could still turn out to be C, so it
 * holds up every later file; after that, only later files of its own conversation wait,
 * until it is finished. A file waits only for earlier ones, so nothing deadlocks; per
 * conversation, each file sees the store as the earlier files of that conversation left
 * it, and no later one has touched it yet — exactly the sequential run's view.
 *
 * @module
 */

import { SyncError } from "@zakstam/codex-sync-engine";

/** What a file's sync asks of the gate (see the module doc). */
export interface ConversationClaim {
  /**
   * Waits until this file may work on `conversationId`, then holds it (and not the one
   * held before). Rejects with the signal's reason when the run is interrupted meanwhile.
   */
  enter(conversationId: string): Promise<void>;
  /** This file will enter no other conversation than the one it holds. */
  settle(): void;
}

/** One file's place in the gate's order. */
export interface FileTurn extends ConversationClaim {
  /** The file's sync ended (however): it holds nothing any more. Idempotent. */
  finish(): void;
}

/** Orders the syncs of the files of a run (see the module doc). */
export interface ConversationGate {
  /** The turn of the next file, in the run's order (take it when the file starts). */
  next(): FileTurn;
}

interface Slot {
  held?: string;
  settled: boolean;
}

/** A gate for one run; `signal` ends every wait (Ctrl-C). */
export function conversationGate(signal?: AbortSignal): ConversationGate {
  /** The files still running, in the run's order. */
  const running: Slot[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const check of [...waiters]) check();
  };

  const mayEnter = (slot: Slot, conversationId: string): boolean => {
    for (const other of running) {
      if (other === slot) return true;
      if (!other.settled || other.held === conversationId) return false;
    }
    return true;
  };

  const until = (ready: () => boolean): Promise<void> => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        waiters.delete(check);
        signal?.removeEventListener("abort", abort);
      };
      const check = () => {
        if (!ready()) return;
        done();
        resolve();
      };
      const abort = () => {
        done();
        reject(signal!.reason);
      };
      waiters.add(check);
      signal?.addEventListener("abort", abort, { once: true });
    });
  };

  return {
    next() {
      const slot: Slot = { settled: false };
      running.push(slot);
      return {
        async enter(conversationId) {
          if (slot.held === conversationId) return;
          if (slot.settled) {
            throw new SyncError(
              "E_SYNC_INTERNAL",
              `a file settled on conversation ${slot.held} asked for ${conversationId}`,
            );
          }
          slot.held = undefined;
          await until(() => mayEnter(slot, conversationId));
          slot.held = conversationId;
        },
        settle() {
          if (slot.settled) return;
          slot.settled = true;
          wake();
        },
        finish() {
          const at = running.indexOf(slot);
          if (at < 0) return;
          running.splice(at, 1);
          slot.held = undefined;
          wake();
        },
      };
    },
  };
}
