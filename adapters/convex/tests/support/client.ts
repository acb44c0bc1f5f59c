/**
 * A Convex client over `convex-test`: queries and mutations go to the in-process
 * backend, and `onUpdate` subscriptions are re-evaluated after every write the harness
 * makes, the way a deployment pushes new query results to a `ConvexClient`.
 */

import type { FunctionReference } from "convex/server";
import type { ConvexFunctionCaller } from "../../mod.ts";

/** The part of a `convexTest()` instance this client uses. */
export interface TestBackend {
  query(
    query: FunctionReference<"query", "public">,
    args: Record<string, unknown>,
  ): Promise<unknown>;
  mutation(
    mutation: FunctionReference<"mutation", "public">,
    args: Record<string, unknown>,
  ): Promise<unknown>;
}

interface Subscription {
  query: FunctionReference<"query">;
  args: Record<string, unknown>;
  callback: (result: unknown) => unknown;
  onError?: (error: Error) => unknown;
  last?: string;
  active: boolean;
}

/** A `ConvexClient` stand-in with subscriptions; `refresh()` pushes changed results. */
export class TestConvexClient implements ConvexFunctionCaller {
  readonly #backend: TestBackend;
  readonly #subscriptions = new Set<Subscription>();

  constructor(backend: TestBackend) {
    this.#backend = backend;
  }

  /** The same client without subscriptions, like a `ConvexHttpClient`. */
  withoutSubscriptions(): ConvexFunctionCaller {
    return {
      query: (query, args) => this.query(query, args),
      mutation: (mutation, args) => this.mutation(mutation, args),
    };
  }

  query(query: FunctionReference<"query">, args: Record<string, unknown>): Promise<unknown> {
    return this.#backend.query(query, args);
  }

  async mutation(
    mutation: FunctionReference<"mutation">,
    args: Record<string, unknown>,
  ): Promise<unknown> {
    try {
      return await this.#backend.mutation(mutation, args);
    } finally {
      await this.refresh();
    }
  }

  onUpdate(
    query: FunctionReference<"query">,
    args: Record<string, unknown>,
    callback: (result: unknown) => unknown,
    onError?: (error: Error) => unknown,
  ): () => void {
    const subscription: Subscription = { query, args, callback, onError, active: true };
    this.#subscriptions.add(subscription);
    void this.#evaluate(subscription);
    return () => {
      subscription.active = false;
      this.#subscriptions.delete(subscription);
    };
  }

  /** Re-runs every subscribed query and calls back where the result changed. */
  async refresh(): Promise<void> {
    for (const subscription of [...this.#subscriptions]) await this.#evaluate(subscription);
  }

  /** Drops every subscription. */
  close(): void {
    for (const subscription of this.#subscriptions) subscription.active = false;
    this.#subscriptions.clear();
  }

  async #evaluate(subscription: Subscription): Promise<void> {
    let result: unknown;
    try {
      result = await this.#backend.query(subscription.query, subscription.args);
    } catch (error) {
      if (subscription.active) subscription.onError?.(error as Error);
      return;
    }
    const seen = JSON.stringify(result);
    if (!subscription.active || seen === subscription.last) return;
    subscription.last = seen;
    subscription.callback(result);
  }
}
