/**
 * Running the suite: as registered tests in any harness, or programmatically.
 *
 * @module
 */

import type { Capability } from "../src/contracts/capabilities.ts";
import { assert } from "./assert.ts";
import { CaseContext } from "./context.ts";
import type {
  ConformanceCase,
  ConformanceFactory,
  ConformanceHarness,
  HarnessHook,
} from "./types.ts";
import { conformanceCases } from "./cases/mod.ts";

/** What an adapter under test declares. */
export interface SuiteTarget {
  factory: ConformanceFactory;
  /** The adapter's capabilities. */
  capabilities: readonly Capability[];
  /** The harness hooks the factory provides. */
  hooks?: readonly HarnessHook[];
  /** Run only cases whose name includes one of these strings. */
  only?: readonly string[];
  /**
   * Real-time bound of each step of a case — building its harness, running it, closing
   * it (default {@link DEFAULT_CASE_TIMEOUT_MS}; a case may ask for a multiple, see
   * `ConformanceCase.timeoutFactor`): a case whose adapter never settles an operation
   * fails with its name instead of hanging the run. Generous on purpose — it is a guard,
   * never a wait; the suite's clock is manual. It fires when the case waits on something
   * that never settles (a promise, I/O, a timer); JavaScript cannot interrupt a case that
   * never yields at all.
   */
  caseTimeoutMs?: number;
}

/** Default real-time bound of one case: one minute. */
export const DEFAULT_CASE_TIMEOUT_MS = 60_000;

/** Thrown when a case (or its harness setup or teardown) outlives its deadline. */
export class ConformanceTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConformanceTimeoutError";
  }
}

/** A case planned for a target: run it, or skip it with the reason. */
export interface PlannedCase {
  name: string;
  /** Why the case is skipped, when it is. */
  skip?: string;
  run(): Promise<void>;
}

/** Result of one case in {@link runConformance}. */
export interface CaseResult {
  name: string;
  status: "passed" | "failed" | "skipped";
  /** Skip reason, or failure message. */
  reason?: string;
  error?: unknown;
}

/** Registers one test; `skip` is set when the case is skipped. */
export type TestRegistrar = (name: string, run: () => Promise<void>, skip?: string) => void;

function skipReason(entry: ConformanceCase, target: SuiteTarget): string | undefined {
  const missing = (entry.requires ?? []).filter((cap) => !target.capabilities.includes(cap));
  if (missing.length > 0) return `needs capability ${missing.join(", ")}`;
  const hooks = target.hooks ?? [];
  const absent = (entry.hooks ?? []).filter((hook) => !hooks.includes(hook));
  if (absent.length > 0) return `needs harness hook ${absent.join(", ")}`;
  return undefined;
}

/** The case deadline of `target`, checked. */
function caseTimeout(target: SuiteTarget): number {
  const ms = target.caseTimeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;
  if (!(typeof ms === "number" && Number.isFinite(ms) && ms > 0)) {
    throw new RangeError(`caseTimeoutMs must be a positive number of ms, got ${ms}`);
  }
  return ms;
}

/**
 * Settles like `promise`, or rejects with a {@link ConformanceTimeoutError} naming
 * `what` once `ms` of real time passed. The timer is cleared as soon as `promise`
 * settles, so a passing case never waits for it.
 */
async function bounded<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConformanceTimeoutError(what())), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `harness` provides `hook`. */
function provides(harness: ConformanceHarness, hook: HarnessHook): boolean {
  switch (hook) {
    case "newWorker":
    case "restart":
    case "peer":
    case "effects":
      return harness[hook] !== undefined;
    default:
      return harness.oracle?.[hook] !== undefined;
  }
}

async function runCase(
  entry: ConformanceCase,
  factory: ConformanceFactory,
  timeoutMs: number,
): Promise<void> {
  const name = JSON.stringify(entry.name);
  timeoutMs *= entry.timeoutFactor ?? 1;
  const context = await bounded(
    CaseContext.create(factory, entry.policy),
    timeoutMs,
    () => `case ${name}: the factory did not build a harness within ${timeoutMs} ms`,
  );
  let failure: { error: unknown } | undefined;
  try {
    const absent = (entry.hooks ?? []).filter((hook) => !provides(context.harness, hook));
    assert(
      absent.length === 0,
      `the target declares harness hook ${absent.join(", ")}, but its factory's harness ` +
        "does not provide it",
    );
    await bounded(
      entry.run(context),
      timeoutMs,
      () =>
        `case ${name} did not finish within ${timeoutMs} ms (caseTimeoutMs): an adapter ` +
        "operation, drain or notification never settled",
    );
  } catch (error) {
    failure = { error };
  }
  // A case that timed out may leave work running: closing is bounded too, and the
  // case's own failure wins over the teardown's.
  try {
    await bounded(
      context.harness.close(),
      timeoutMs,
      () => `case ${name}: harness.close() did not settle within ${timeoutMs} ms`,
    );
  } catch (error) {
    failure ??= { error };
  }
  if (failure) throw failure.error;
}

/**
 * A target claiming a capability its adapter does not declare would run cases the
 * adapter never promised to pass (or hide that the claim is wrong): checked first.
 */
const CAPABILITY_CHECK = "capabilities: the adapter declares every capability the target claims";

/** The first case: the adapter declares every capability the target claims. */
function capabilityCheck(target: SuiteTarget): ConformanceCase {
  return {
    name: CAPABILITY_CHECK,
    run(t) {
      const declared = t.adapter.capabilities;
      const unbacked = target.capabilities.filter((cap) => !declared.includes(cap));
      assert(
        unbacked.length === 0,
        `the target claims ${unbacked.join(", ")}, which the adapter does not declare ` +
          `(it declares ${declared.length > 0 ? declared.join(", ") : "none"})`,
      );
      return Promise.resolve();
    },
  };
}

/** The cases for `target`, each runnable or skipped by name with its reason. */
export function planConformance(
  target: SuiteTarget,
  cases: readonly ConformanceCase[] = conformanceCases,
): PlannedCase[] {
  const selected = (name: string) =>
    !target.only || target.only.some((part) => name.includes(part));
  const planned: PlannedCase[] = [];
  const timeoutMs = caseTimeout(target);
  if (selected(CAPABILITY_CHECK)) {
    const check = capabilityCheck(target);
    planned.push({ name: check.name, run: () => runCase(check, target.factory, timeoutMs) });
  }
  for (const entry of cases) {
    if (!selected(entry.name)) continue;
    const next: PlannedCase = {
      name: entry.name,
      run: () => runCase(entry, target.factory, timeoutMs),
    };
    const skip = skipReason(entry, target);
    if (skip) next.skip = skip;
    planned.push(next);
  }
  return planned;
}

/** Registers every case with a test harness through `register`. */
export function registerConformance(
  register: TestRegistrar,
  target: SuiteTarget,
  cases?: readonly ConformanceCase[],
): void {
  for (const planned of planConformance(target, cases)) {
    register(planned.name, planned.run, planned.skip);
  }
}

/** Runs every case in sequence and reports per-case results (for CLIs and mutation tests). */
export async function runConformance(
  target: SuiteTarget,
  cases?: readonly ConformanceCase[],
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const planned of planConformance(target, cases)) {
    if (planned.skip) {
      results.push({ name: planned.name, status: "skipped", reason: planned.skip });
      continue;
    }
    try {
      await planned.run();
      results.push({ name: planned.name, status: "passed" });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      results.push({ name: planned.name, status: "failed", reason, error });
    }
  }
  return results;
}

/** A `node:test` / `bun:test` style `test(name, options, fn)` function. */
export type NodeStyleTest = (
  name: string,
  options: { skip?: string | boolean },
  fn: () => Promise<void>,
) => unknown;

/**
 * A registrar for `node:test` (works in Node, Deno and Bun, which all provide
 * `node:test`): `registerConformance(nodeTestRegistrar(test), target)`.
 */
export function nodeTestRegistrar(test: NodeStyleTest): TestRegistrar {
  return (name, run, skip) => {
    test(name, skip ? { skip } : {}, run);
  };
}

/** A `Deno.test`-style function. */
export type DenoStyleTest = (definition: {
  name: string;
  ignore?: boolean;
  fn: () => Promise<void>;
  sanitizeOps?: boolean;
  sanitizeResources?: boolean;
}) => unknown;

/** A registrar for `Deno.test` (skipped cases are `ignore`d, with the reason in the name). */
export function denoTestRegistrar(test: DenoStyleTest): TestRegistrar {
  return (name, run, skip) => {
    test({
      name: skip ? `${name} (skipped: ${skip})` : name,
      ignore: skip !== undefined,
      fn: run,
      sanitizeOps: false,
      sanitizeResources: false,
    });
  };
}
