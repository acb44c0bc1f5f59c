// The suite must catch broken adapters: each seeded defect fails the case it is pinned to,
// and the unbroken adapters pass every case. A case cannot hang: an adapter whose
// operation never settles fails the case, by name, at the case deadline.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ConformanceTimeoutError,
  registerConformance,
  runConformance,
  type SuiteTarget,
} from "../conformance/mod.ts";
import { memoryTarget } from "./support/memory_harness.ts";
import {
  DURABLE_CONTROL,
  KEEPS_BYTES_CONTROL,
  MUTANTS,
  mutantTarget,
  TRANSACTIONAL_CONTROL,
} from "./support/mutants.ts";

async function failures(target: SuiteTarget): Promise<string[]> {
  const results = await runConformance(target);
  assert.ok(results.filter((result) => result.status === "passed").length > 0);
  return results.filter((result) => result.status === "failed").map((result) =>
    `${result.name}: ${result.reason}`
  );
}

describe("conformance suite catches seeded bugs", () => {
  test("control: the unbroken memory adapter passes every case", async () => {
    assert.deepEqual(await failures(memoryTarget()), []);
  });

  test("control: the unbroken memory store with a restart hook passes every case", async () => {
    const results = await runConformance(mutantTarget(DURABLE_CONTROL));
    const failed = results.filter((result) => result.status === "failed");
    assert.deepEqual(failed.map((result) => `${result.name}: ${result.reason}`), []);
    const durable = results.filter((result) => result.name.includes("durability:"));
    assert.ok(durable.length > 0 && durable.every((result) => result.status === "passed"));
  });

  test("control: the memory store made transactional passes every case", async () => {
    const results = await runConformance(mutantTarget(TRANSACTIONAL_CONTROL));
    const failed = results.filter((result) => result.status === "failed");
    assert.deepEqual(failed.map((result) => `${result.name}: ${result.reason}`), []);
    const effects = results.filter((result) => result.name.startsWith("transactional apply:"));
    assert.ok(effects.length > 0 && effects.every((result) => result.status === "passed"));
  });

  test("control: a release that keeps the bytes passes every release case", async () => {
    const results = await runConformance({
      ...mutantTarget(KEEPS_BYTES_CONTROL),
      only: ["release:"],
    });
    const released = results.filter((result) => result.name.startsWith("release:"));
    assert.ok(released.length > 0 && released.every((result) => result.status === "passed"));
  });

  for (const mutant of MUTANTS) {
    test(`detects: ${mutant.name}`, async () => {
      // Only the pinned case runs: it must fail, for this defect.
      const target = { ...mutantTarget(mutant), only: [mutant.caughtBy] };
      const results = await runConformance(target);
      assert.ok(results.length > 0, `no case is named "${mutant.caughtBy}…"`);
      const pinned = results.filter((result) => result.name.startsWith(mutant.caughtBy));
      assert.ok(pinned.length > 0, `no case starts with "${mutant.caughtBy}"`);
      const skipped = pinned.filter((result) => result.status === "skipped");
      assert.deepEqual(skipped.map((result) => `${result.name}: ${result.reason}`), []);
      assert.ok(
        pinned.some((result) => result.status === "failed"),
        `"${mutant.caughtBy}…" passed on mutant "${mutant.name}"`,
      );
    });
  }

  test("every mutant is pinned to a distinct defect name", () => {
    const names = MUTANTS.map((mutant) => mutant.name);
    assert.equal(new Set(names).size, names.length);
  });
});

/** A memory adapter whose getJob never settles. */
const HANGING_GET_JOB = mutantTarget({
  name: "getJob never settles",
  caughtBy: "",
  adapter: () => ({ getJob: () => new Promise(() => {}) }),
});

describe("conformance suite bounds every case", () => {
  test("a case whose adapter never settles an operation fails by name at the deadline", async () => {
    const started = Date.now();
    const results = await runConformance({
      ...HANGING_GET_JOB,
      only: ["cancel: a queued job is cancelled and never runs"],
      caseTimeoutMs: 200,
    });
    assert.deepEqual(results.map((result) => result.status), ["failed"]);
    assert.ok(results[0].error instanceof ConformanceTimeoutError);
    assert.match(
      results[0].reason ?? "",
      /case "cancel: a queued job is cancelled and never runs" did not finish within 200 ms/,
    );
    assert.ok(Date.now() - started < 5_000, "the run ended soon after the deadline");
  });

  test("registered cases are bounded too, and a hanging close() does not hang the run", async () => {
    const runs: [string, () => Promise<void>][] = [];
    const hangingClose: SuiteTarget = {
      ...HANGING_GET_JOB,
      only: ["wait: resolves with the terminal snapshot once the job finishes"],
      caseTimeoutMs: 200,
      factory: async (input) => ({
        ...(await HANGING_GET_JOB.factory(input)),
        close: () => new Promise<void>(() => {}),
      }),
    };
    registerConformance((name, run, skip) => {
      if (!skip) runs.push([name, run]);
    }, hangingClose);
    assert.deepEqual(runs.map(([name]) => name), [
      "wait: resolves with the terminal snapshot once the job finishes",
    ]);
    await assert.rejects(runs[0][1](), (error: unknown) => {
      assert.ok(error instanceof ConformanceTimeoutError);
      assert.match(String(error), /did not finish within 200 ms/);
      return true;
    });
  });

  test("a slow-by-design case gets a multiple of the deadline", async () => {
    const results = await runConformance({
      ...HANGING_GET_JOB,
      only: ["scale:"],
      caseTimeoutMs: 100,
    });
    assert.deepEqual(results.map((result) => result.status), ["failed"]);
    assert.match(results[0].reason ?? "", /did not finish within 500 ms/);
  });

  test("caseTimeoutMs must be a positive number", () => {
    for (const caseTimeoutMs of [0, -1, Number.NaN, Infinity]) {
      assert.throws(() => registerConformance(() => {}, { ...memoryTarget(), caseTimeoutMs }));
    }
  });
});

describe("conformance suite checks the target's claims", () => {
  test("a target declaring a hook its harness lacks fails the case, naming the hook", async () => {
    const target = memoryTarget();
    const results = await runConformance({
      ...target,
      only: ["fencing: a cancel made through another adapter instance"],
      factory: async (input) => ({ ...(await target.factory(input)), peer: undefined }),
    });
    assert.deepEqual(results.map((result) => result.status), ["failed"]);
    assert.match(results[0].reason ?? "", /declares harness hook peer, but its factory's harness/);
  });

  test("a target claiming a capability its adapter does not declare fails the first case", async () => {
    const target = { ...memoryTarget(), capabilities: ["concurrent-workers", "durable"] as const };
    const results = await runConformance({ ...target, only: ["capabilities:"] });
    assert.equal(results.length, 1);
    assert.equal(results[0].status, "failed");
    assert.match(results[0].reason ?? "", /claims durable, which the adapter does not declare/);
  });

  test("a target claiming less than its adapter declares passes it", async () => {
    const target = { ...memoryTarget(), capabilities: [] };
    const results = await runConformance({ ...target, only: ["capabilities:"] });
    assert.deepEqual(results.map((result) => result.status), ["passed"]);
  });
});
