/**
 * Minimal assertions for the suite. The suite is published library code, so it cannot
 * rely on `node:assert` (nor on `@std/assert`, which is not installable from npm).
 *
 * @module
 */

/** Thrown when a conformance expectation fails. */
export class ConformanceAssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConformanceAssertionError";
  }
}

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ConformanceAssertionError(message);
}

function show(value: unknown): string {
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Structural equality: primitives by `Object.is`, arrays, plain objects, Uint8Arrays. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) {
      return false;
    }
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => deepEqual(item, b[i]));
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const aKeys = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bKeys = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (aKeys.length !== bKeys.length) return false;
  return aKeys.every((k) =>
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

/** Fails unless `actual` and `expected` are structurally equal. */
export function assertEquals(actual: unknown, expected: unknown, message: string): void {
  if (!deepEqual(actual, expected)) {
    throw new ConformanceAssertionError(
      `${message}: expected ${show(expected)}, got ${show(actual)}`,
    );
  }
}
