// CallBatches: calls that arrive while the slots are taken go together, within the limits;
// a batch the server refused is run again call by call; a batch lost with the connection
// is not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CallBatches } from "../src/call_batches.ts";

interface Deferred {
  items: number[];
  resolve(results: string[]): void;
  reject(error: unknown): void;
}

/** A CallBatches whose runs wait until the test settles them, recording what each run got. */
function recorded(
  limits: {
    maxItems?: number;
    maxWeight?: number;
    maxInFlight?: number;
    lockOrder?: (item: number) => string;
  } = {},
) {
  const runs: Deferred[] = [];
  const start = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => runs.push({ items, resolve, reject }));
  const batches = new CallBatches<number, string>({
    runOne: async (item) => (await start([item]))[0],
    runMany: (items) => start(items),
    weight: (item) => item,
    maxItems: limits.maxItems ?? 10,
    maxWeight: limits.maxWeight ?? 1_000,
    maxInFlight: limits.maxInFlight ?? 1,
    lockOrder: limits.lockOrder,
  });
  return { batches, runs };
}

const answer = (run: Deferred) => run.resolve(run.items.map((item) => `r${item}`));
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Calls 1 (answered) and then `items`, which wait behind it and start as one batch, runs[1]. */
async function batchBehindOne(
  batches: CallBatches<number, string>,
  runs: Deferred[],
  items: number[],
): Promise<Promise<string>[]> {
  const first = batches.call(1);
  const rest = items.map((item) => batches.call(item));
  answer(runs[0]);
  await first;
  await settle();
  assert.deepEqual(runs[1].items, items);
  return rest;
}

test("call batches: a lone call runs at once; those that arrive meanwhile go as one batch", async () => {
  const { batches, runs } = recorded();
  const first = batches.call(1);
  const rest = [2, 3, 4].map((item) => batches.call(item));
  assert.deepEqual(runs.map((run) => run.items), [[1]], "the rest wait for the slot");
  answer(runs[0]);
  assert.equal(await first, "r1");
  await settle();
  assert.deepEqual(runs.map((run) => run.items), [[1], [2, 3, 4]]);
  answer(runs[1]);
  assert.deepEqual(await Promise.all(rest), ["r2", "r3", "r4"]);
});

test("call batches: at most maxInFlight runs at once, maxItems and maxWeight per batch", async () => {
  const { batches, runs } = recorded({ maxItems: 3, maxWeight: 10, maxInFlight: 2 });
  const calls = [1, 1, 1, 1, 1, 1, 8, 5, 20, 1].map((item) => batches.call(item));
  assert.deepEqual(runs.map((run) => run.items), [[1], [1]]);
  answer(runs[0]);
  await settle();
  assert.deepEqual(runs.slice(2).map((run) => run.items), [[1, 1, 1]], "maxItems");
  answer(runs[1]);
  await settle();
  assert.deepEqual(runs.slice(3).map((run) => run.items), [[1, 8]], "maxWeight");
  answer(runs[2]);
  answer(runs[3]);
  await settle();
  // 5 + 20 would pass the weight: 5 goes alone, then 20 (heavier than any batch) alone.
  assert.deepEqual(runs.slice(4).map((run) => run.items), [[5], [20]]);
  answer(runs[4]);
  answer(runs[5]);
  await settle();
  assert.deepEqual(runs.slice(6).map((run) => run.items), [[1]]);
  answer(runs[6]);
  assert.deepEqual(await Promise.all(calls), [1, 1, 1, 1, 1, 1, 8, 5, 20, 1].map((i) => `r${i}`));
});

test("call batches: a batch the server refused is run again call by call; one bad call fails alone", async () => {
  const { batches, runs } = recorded();
  const rest = await batchBehindOne(batches, runs, [2, 3, 4]);
  runs[1].reject(Object.assign(new Error("value out of range"), { code: "22003" }));
  await settle();
  assert.deepEqual(runs.slice(2).map((run) => run.items), [[2], [3], [4]]);
  answer(runs[2]);
  runs[3].reject(Object.assign(new Error("value out of range"), { code: "22003" }));
  answer(runs[4]);
  const results = await Promise.allSettled(rest);
  assert.deepEqual(results.map((result) => result.status), ["fulfilled", "rejected", "fulfilled"]);
  assert.equal((results[0] as PromiseFulfilledResult<string>).value, "r2");
});

test("call batches: a batch lost with its connection is not run again (it may have committed)", async () => {
  const { batches, runs } = recorded();
  const rest = await batchBehindOne(batches, runs, [2, 3]);
  const lost = Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" });
  runs[1].reject(lost);
  for (const call of rest) await assert.rejects(call, (error) => error === lost);
  await settle();
  assert.equal(runs.length, 2, "nothing ran again");
  // The slot is free again.
  const next = batches.call(5);
  assert.deepEqual(runs[2].items, [5]);
  answer(runs[2]);
  assert.equal(await next, "r5");
});

test("call batches: a batch answering with the wrong number of results is run call by call", async () => {
  const { batches, runs } = recorded();
  const rest = await batchBehindOne(batches, runs, [2, 3]);
  runs[1].resolve(["only one"]);
  await settle();
  assert.deepEqual(runs.slice(2).map((run) => run.items), [[2], [3]]);
  answer(runs[2]);
  answer(runs[3]);
  assert.deepEqual(await Promise.all(rest), ["r2", "r3"]);
});

test("call batches: lockOrder sends a batch sorted by its key, stably; each caller gets its own result", async () => {
  // The tens digit is the lock: 31 and 35 share one and keep their order.
  const { batches, runs } = recorded({ lockOrder: (item) => String(Math.floor(item / 10)) });
  const first = batches.call(1);
  const rest = [35, 12, 31, 20].map((item) => batches.call(item));
  answer(runs[0]);
  await first;
  await settle();
  assert.deepEqual(runs[1].items, [12, 20, 35, 31]);
  answer(runs[1]);
  assert.deepEqual(await Promise.all(rest), ["r35", "r12", "r31", "r20"]);
});
