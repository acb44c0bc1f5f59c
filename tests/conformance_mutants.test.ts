// The suite must catch broken adapters: each seeded defect fails at least one case,
// and the unbroken adapter passes them all.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runConformance } from "../conformance/mod.ts";
import { memoryTarget } from "./support/memory_harness.ts";
import { DURABLE_CONTROL, MUTANTS, mutantTarget } from "./support/mutants.ts";

describe("conformance suite catches seeded bugs", () => {
  test("control: the unbroken memory adapter passes every case", async () => {
    const results = await runConformance(memoryTarget());
    const failed = results.filter((result) => result.status === "failed");
    assert.deepEqual(failed.map((result) => `${result.name}: ${result.reason}`), []);
    assert.ok(results.filter((result) => result.status === "passed").length > 0);
  });

  test("control: the unbroken memory store with a restart hook passes every case", async () => {
    const results = await runConformance(mutantTarget(DURABLE_CONTROL));
    const failed = results.filter((result) => result.status === "failed");
    assert.deepEqual(failed.map((result) => `${result.name}: ${result.reason}`), []);
    const durable = results.filter((result) => result.name.includes("durability:"));
    assert.ok(durable.length > 0 && durable.every((result) => result.status === "passed"));
  });

  for (const mutant of MUTANTS) {
    test(`detects: ${mutant.name}`, async () => {
      const results = await runConformance(mutantTarget(mutant));
      const failed = results.filter((result) => result.status === "failed");
      assert.ok(failed.length > 0, `no case failed for mutant "${mutant.name}"`);
      assert.ok(
        failed.some((result) => result.name.startsWith(mutant.caughtBy)),
        `expected a failure of "${mutant.caughtBy}…", got: ${failed.map((r) => r.name).join("; ")}`,
      );
    });
  }
});

describe("conformance suite checks the target's claims", () => {
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
