// Property (issue 15): whatever a caller throws at an operation of the Postgres adapter on
// PGlite, the call settles within a bound with a SyncError of a documented code, and a
// refused call leaves every table as it was.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isSyncError, isSyncErrorCode, ManualClock } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter, type PostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { hostileInput, OPERATIONS, settled } from "../../../tests/support/hostile_inputs.ts";

/** Rows of every table of the adapter: the store's state for "nothing changed". */
async function rowCounts(adapter: PostgresAdapter): Promise<Record<string, number>> {
  const { sources, chunks, jobs } = adapter.tables;
  const [row] = await adapter.driver.query<Record<string, number>>(
    `SELECT (SELECT count(*) FROM ${sources})::integer AS sources,
            (SELECT count(*) FROM ${chunks})::integer AS chunks,
            (SELECT count(*) FROM ${jobs})::integer AS jobs,
            (SELECT coalesce(sum(length(record::text)), 0) FROM ${sources})::integer AS sourceText`,
  );
  return row;
}

describe("fuzz: hostile input to every operation of the Postgres adapter on PGlite", () => {
  test("every operation settles with a documented SyncError and changes nothing", async () => {
    const adapter = await createPostgresAdapter({
      handler: { apply() {} },
      clock: new ManualClock(),
      mode: "manual",
    });
    try {
      await adapter.createSource({ scope: "scope", conversationId: "conversation" });
      for (const [operation, fields] of OPERATIONS) {
        await fc.assert(
          fc.asyncProperty(hostileInput(fields), async (makeInput) => {
            const input = makeInput();
            const before = await rowCounts(adapter);
            const call = (adapter[operation as keyof PostgresAdapter] as (
              input: unknown,
            ) => Promise<unknown>).bind(adapter);
            const outcome = await settled(Promise.resolve().then(() => call(input)));
            if (!("error" in outcome)) return; // a valid input after all
            const { error } = outcome;
            assert.ok(
              isSyncError(error),
              `${operation} rejected with ${error instanceof Error ? error.stack : String(error)}`,
            );
            assert.ok(isSyncErrorCode(error.code));
            assert.deepEqual(await rowCounts(adapter), before, `${operation}: the tables`);
          }),
          { numRuns: 60, seed: 20261201 + operation.length },
        );
      }
    } finally {
      await adapter.close();
    }
  });
});
