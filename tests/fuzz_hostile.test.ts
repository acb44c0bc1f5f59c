// Property: whatever a caller throws at an operation (wrong types, getters, proxies,
// huge, sparse or cyclic structures, odd typed arrays), the call settles within a bound
// with a SyncError of a documented code, and a refused call leaves the store as it was.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { hostileInput, OPERATIONS, settled } from "./support/hostile_inputs.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError, isSyncErrorCode } from "../src/errors.ts";
import { createMemoryAdapter, type MemoryAdapter } from "../memory/mod.ts";

describe("fuzz: hostile input to every operation of the memory adapter", () => {
  for (const [operation, fields] of OPERATIONS) {
    test(`${operation}: settles with a documented SyncError and changes nothing`, async () => {
      const clock = new ManualClock();
      const adapter = createMemoryAdapter({ handler: { apply() {} }, clock, mode: "manual" });
      // A store with something in it, so that "nothing changed" means something.
      await adapter.createSource({ scope: "scope", conversationId: "conversation" });
      try {
        await fc.assert(
          fc.asyncProperty(hostileInput(fields), async (makeInput) => {
            const input = makeInput();
            const before = adapter.store.oracle.totals();
            const call = (adapter[operation as keyof MemoryAdapter] as (
              input: unknown,
            ) => Promise<unknown>).bind(
              adapter,
            );
            let outcome: { error?: unknown };
            try {
              outcome = await settled(Promise.resolve().then(() => call(input)));
            } catch (error) {
              throw new Error(`${operation} hung`, { cause: error });
            }
            if (!("error" in outcome)) return; // a valid input after all
            const { error } = outcome;
            assert.ok(
              isSyncError(error),
              `${operation} rejected with ${error instanceof Error ? error.stack : String(error)}`,
            );
            assert.ok(isSyncErrorCode(error.code));
            assert.deepEqual(adapter.store.oracle.totals(), before, "store after a refused call");
          }),
          { numRuns: 150, seed: 20261201 + operation.length },
        );
      } finally {
        await adapter.close();
      }
    });
  }
});
