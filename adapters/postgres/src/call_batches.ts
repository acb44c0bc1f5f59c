/**
 * Calls that arrive while earlier ones are in flight go to the database together, as one
 * statement: a call waits only for a slot, never for a timer, so a lone call costs what
 * it did before and a burst costs one round trip and one commit per batch.
 *
 * @module
 */

import { isConnectionLost } from "./errors.ts";

/** How {@link CallBatches} runs calls. */
export interface CallBatchesOptions<T, R> {
  /** Runs one call on its own. */
  runOne(item: T): Promise<R>;
  /**
   * Runs several calls as one atomic statement, one result per item in order. When it
   * throws an error the server reported, nothing of the batch was stored, and each item
   * is run again on its own, so one bad item fails alone.
   */
  runMany(items: T[]): Promise<R[]>;
  /** An item's size, counted against {@link maxWeight}. */
  weight(item: T): number;
  /** Items per batch at most. */
  maxItems: number;
  /** Total weight per batch at most (a heavier item goes alone). */
  maxWeight: number;
  /** Batches (or lone calls) in flight at once. */
  maxInFlight: number;
  /**
   * Sorts a batch's items by this key (stably: items of one key keep their order) before
   * it is sent, so that batches in flight together take their locks in one order and
   * never wait for each other in a cycle.
   */
  lockOrder?(item: T): string;
}

interface Pending<T, R> {
  item: T;
  resolve(result: R): void;
  reject(error: unknown): void;
}

/** A queue that sends what is waiting as soon as a slot frees, in batches. */
export class CallBatches<T, R> {
  readonly #options: CallBatchesOptions<T, R>;
  readonly #waiting: Pending<T, R>[] = [];
  #inFlight = 0;

  constructor(options: CallBatchesOptions<T, R>) {
    this.#options = options;
  }

  /** Runs `item`, alone or with others waiting beside it; its own result. */
  call(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      this.#next();
    });
  }

  #next(): void {
    while (this.#inFlight < this.#options.maxInFlight && this.#waiting.length > 0) {
      const batch = this.#take();
      this.#inFlight++;
      void this.#run(batch).finally(() => {
        this.#inFlight--;
        this.#next();
      });
    }
  }

  /** The longest prefix of the queue within the limits (at least one item). */
  #take(): Pending<T, R>[] {
    const { maxItems, maxWeight, weight } = this.#options;
    let count = 1;
    let total = weight(this.#waiting[0].item);
    while (count < this.#waiting.length && count < maxItems) {
      const next = weight(this.#waiting[count].item);
      if (total + next > maxWeight) break;
      total += next;
      count++;
    }
    return this.#waiting.splice(0, count);
  }

  async #run(batch: Pending<T, R>[]): Promise<void> {
    if (batch.length === 1) return await this.#runAlone(batch[0]);
    const { lockOrder } = this.#options;
    if (lockOrder) {
      const keys = new Map(batch.map((pending) => [pending, lockOrder(pending.item)]));
      batch.sort((a, b) => {
        const [x, y] = [keys.get(a)!, keys.get(b)!];
        return x < y ? -1 : x > y ? 1 : 0;
      });
    }
    let results: R[];
    try {
      results = await this.#options.runMany(batch.map((pending) => pending.item));
      if (results.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} calls returned ${results.length} results`);
      }
    } catch (error) {
      // Lost with the connection: whether the batch committed is unknown, as it would be
      // for a lone call, so each caller hears of it rather than running its call again.
      if (isConnectionLost(error)) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      await Promise.all(batch.map((pending) => this.#runAlone(pending)));
      return;
    }
    batch.forEach((pending, i) => pending.resolve(results[i]));
  }

  async #runAlone(pending: Pending<T, R>): Promise<void> {
    try {
      pending.resolve(await this.#options.runOne(pending.item));
    } catch (error) {
      pending.reject(error);
    }
  }
}
