/**
 * The memory store made transactional, for the conformance suite: the handler runs in the
 * store's transaction (`transactionalApply`), and the effects it writes through
 * `ctx.effect(…)` are staged per transaction and kept only when it commits, so the suite's
 * `effects` hook reads what committed (exactly-once effects).
 */

import type { ConformanceEffects } from "../../conformance/mod.ts";
import { MemoryStore } from "../../memory/mod.ts";
import type { StoreTransaction, SyncStore } from "../../src/contracts/store.ts";

/** What the handler may write: kept only if the transaction commits. */
export interface EffectExtras {
  effect(entry: string): void;
}

/** The memory store's transactions, holding the handler and staging its effects. */
export class TransactionalMemoryStore implements SyncStore<EffectExtras> {
  readonly transactionalApply = true;
  /** Effects of committed transactions, in commit order. */
  readonly committed: string[] = [];

  constructor(readonly inner: MemoryStore = new MemoryStore()) {}

  async transaction<T>(fn: (tx: StoreTransaction<EffectExtras>) => Promise<T>): Promise<T> {
    const staged: string[] = [];
    const extras: EffectExtras = { effect: (entry) => void staged.push(entry) };
    const result = await this.inner.transaction((tx) =>
      fn(Object.assign(Object.create(tx), { extras }) as StoreTransaction<EffectExtras>)
    );
    this.committed.push(...staged);
    return result;
  }

  subscribeJob(scope: string, jobId: string, listener: () => void): () => void {
    return this.inner.subscribeJob(scope, jobId, listener);
  }
}

/** The suite's effects hook over a {@link TransactionalMemoryStore}. */
export function memoryEffects(store: TransactionalMemoryStore): ConformanceEffects {
  return {
    write: (context, effect) => {
      (context as unknown as EffectExtras).effect(effect);
      return Promise.resolve();
    },
    read: () => Promise.resolve([...store.committed]),
  };
}
