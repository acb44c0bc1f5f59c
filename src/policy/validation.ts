/**
 * Input validation: shape (zod schemas of the contracts) and limits (the policy).
 * Shape problems are `E_SYNC_INVALID_ARGUMENT`, size problems `E_SYNC_LIMIT_EXCEEDED`.
 *
 * @module
 */

import type { z } from "zod";
import type { JsonValue } from "../contracts/domain.ts";
import { SyncError } from "../errors.ts";
import type { Limits } from "./policy.ts";

/** Parses `input` with `schema`; throws `E_SYNC_INVALID_ARGUMENT` naming the bad fields. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, operation: string): T {
  let result: z.ZodSafeParseResult<T>;
  try {
    result = schema.safeParse(input);
  } catch (cause) {
    // A getter or a Proxy trap of the input threw while it was read.
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${operation}: the input could not be read: ${describe(cause)}`,
      { details: { operation }, cause },
    );
  }
  if (result.success) return result.data;
  let issues: { path: string; message: string }[];
  try {
    // Zod words its issues lazily, looking at the offending values again.
    issues = result.error.issues.map((issue) => ({
      path: issue.path.map(String).join("."),
      message: issue.message,
    }));
  } catch (cause) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${operation}: the input could not be read: ${describe(cause)}`,
      { details: { operation }, cause },
    );
  }
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${operation}: ${summary}`, {
    details: { operation, issues },
  });
}

/** Why a chunk at `index` may not be stored (`E_SYNC_LIMIT_EXCEEDED`), or undefined. */
export function chunkIndexRefusal(
  limits: Limits,
  operation: string,
  index: number,
): SyncError | undefined {
  if (index < limits.maxChunksPerSource) return undefined;
  return new SyncError(
    "E_SYNC_LIMIT_EXCEEDED",
    `${operation}: index ${index} is beyond the limit of ${limits.maxChunksPerSource} chunks`,
    { details: { limit: limits.maxChunksPerSource, index } },
  );
}

/** Why a source may not hold `byteCount` bytes (`E_SYNC_LIMIT_EXCEEDED`), or undefined. */
export function sourceBytesRefusal(
  limits: Limits,
  operation: string,
  byteCount: number,
): SyncError | undefined {
  if (byteCount <= limits.maxSourceBytes) return undefined;
  return new SyncError(
    "E_SYNC_LIMIT_EXCEEDED",
    `${operation}: source would exceed the limit of ${limits.maxSourceBytes} bytes`,
    { details: { limit: limits.maxSourceBytes } },
  );
}

/** Throws `E_SYNC_LIMIT_EXCEEDED` when an id or scope is longer than the limit. */
export function checkIdLengths(
  limits: Limits,
  operation: string,
  ids: Record<string, string | undefined>,
): void {
  for (const [field, value] of Object.entries(ids)) {
    if (value !== undefined && value.length > limits.maxIdLength) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${operation}: ${field} is longer than ${limits.maxIdLength} characters`,
        { details: { field, limit: limits.maxIdLength, actual: value.length } },
      );
    }
  }
}

function describe(cause: unknown): string {
  try {
    return cause instanceof Error ? cause.message : String(cause);
  } catch {
    return "unreadable error";
  }
}

const MAX_JSON_DEPTH = 64;

/**
 * True for plain JSON data: null, booleans, finite numbers, strings, arrays (without
 * holes) and plain objects (without undefined members), nested at most 64 deep, without
 * cycles. Reading it may not throw (a throwing getter or Proxy answers false).
 */
export function isJsonValue(value: unknown): value is JsonValue {
  try {
    copyJson(value, 0, { left: Infinity });
    return true;
  } catch {
    return false;
  }
}

/** Thrown by {@link copyJson} for data that is not JSON. */
class NotJson extends Error {}

/** Thrown by {@link copyJson} once the serialisation is known to exceed the budget. */
class OverBudget extends Error {}

/**
 * A plain deep copy of JSON data, each property read once. `budget.left` is a lower bound
 * of the bytes its serialisation still may take; crossing zero stops the walk at once, so
 * the work is bounded by the budget (a sparse array of 2^32−1 slots is refused before any
 * slot is read).
 */
function copyJson(value: unknown, depth: number, budget: { left: number }): JsonValue {
  const spend = (bytes: number) => {
    budget.left -= bytes;
    if (budget.left < 0) throw new OverBudget();
  };
  if (depth > MAX_JSON_DEPTH) throw new NotJson(`nested more than ${MAX_JSON_DEPTH} deep`);
  if (value === null) return spend(4), null;
  switch (typeof value) {
    case "boolean":
      return spend(4), value;
    case "number":
      if (!Number.isFinite(value)) throw new NotJson("a number that is not finite");
      return spend(1), value;
    case "string":
      return spend(value.length + 2), value;
    case "object":
      break;
    default:
      throw new NotJson(`a value of type ${typeof value}`);
  }
  if (Array.isArray(value)) {
    const length = value.length;
    spend(length + 1);
    const out: JsonValue[] = [];
    for (let i = 0; i < length; i++) {
      if (!(i in value)) throw new NotJson("an array with holes");
      const item = value[i];
      if (item === undefined) throw new NotJson("undefined in an array");
      out.push(copyJson(item, depth + 1, budget));
    }
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new NotJson("an object of a class");
  const out: { [key: string]: JsonValue } = {};
  // Members are judged before they are counted: non-JSON data is refused as such, unless
  // it hides past the size limit.
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) throw new NotJson(`an undefined member ${JSON.stringify(key)}`);
    // Defined, not assigned: a member named "__proto__" must stay a member.
    Object.defineProperty(out, key, {
      value: copyJson(item, depth + 1, budget),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    spend(key.length + 3);
  }
  spend(1);
  return out;
}

const encoder = new TextEncoder();

/**
 * A plain copy of `value`, checked to be JSON data (`E_SYNC_INVALID_ARGUMENT`) whose
 * serialisation fits in `maxBytes` UTF-8 bytes (`E_SYNC_LIMIT_EXCEEDED`), with the size.
 * The work is bounded by `maxBytes` whatever the value (huge, sparse, cyclic, getters);
 * the copy cannot change behind the caller's back.
 */
export function snapshotJson(
  operation: string,
  field: string,
  value: unknown,
  maxBytes: number,
): { value: JsonValue; size: number } {
  let copy: JsonValue;
  try {
    copy = copyJson(value, 0, { left: maxBytes });
  } catch (cause) {
    if (cause instanceof OverBudget) {
      throw new SyncError(
        "E_SYNC_LIMIT_EXCEEDED",
        `${operation}: ${field} is more than the limit of ${maxBytes} bytes`,
        { details: { field, limit: maxBytes } },
      );
    }
    const reason = cause instanceof NotJson
      ? `found ${cause.message}`
      : `reading it threw: ${describe(cause)}`;
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${operation}: ${field} must be plain JSON data (no cycles, at most ${MAX_JSON_DEPTH} ` +
        `deep); ${reason}`,
      { details: { field } },
    );
  }
  // Bounded: the walk proved the serialisation is at most a few times maxBytes.
  const size = encoder.encode(JSON.stringify(copy)).length;
  if (size > maxBytes) {
    throw new SyncError(
      "E_SYNC_LIMIT_EXCEEDED",
      `${operation}: ${field} is ${size} bytes, more than the limit of ${maxBytes}`,
      { details: { field, limit: maxBytes, actual: size } },
    );
  }
  return { value: copy, size };
}

/**
 * Checks that `value` is JSON data (`E_SYNC_INVALID_ARGUMENT`) whose serialisation fits
 * in `maxBytes` UTF-8 bytes (`E_SYNC_LIMIT_EXCEEDED`). Returns the serialised size.
 */
export function checkJsonField(
  operation: string,
  field: string,
  value: unknown,
  maxBytes: number,
): number {
  return snapshotJson(operation, field, value, maxBytes).size;
}

/** A stable serialisation (object keys sorted) for comparing JSON data. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    // Like JSON.stringify, an undefined member is absent: `{a: undefined}` equals `{}`.
    const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
