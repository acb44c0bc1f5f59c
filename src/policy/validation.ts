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
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  throw new SyncError("E_SYNC_INVALID_ARGUMENT", `${operation}: ${summary}`, {
    details: { operation, issues },
  });
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

const MAX_JSON_DEPTH = 64;

/**
 * True for plain JSON data: null, booleans, finite numbers, strings, arrays and plain
 * objects, nested at most 64 deep, without cycles.
 */
export function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  if (depth > MAX_JSON_DEPTH) return false;
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJsonValue(item, depth + 1));
  if (typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(value).every((item) => isJsonValue(item, depth + 1));
}

const encoder = new TextEncoder();

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
  if (!isJsonValue(value)) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      `${operation}: ${field} must be plain JSON data (no cycles, at most ${MAX_JSON_DEPTH} deep)`,
      { details: { field } },
    );
  }
  const size = encoder.encode(JSON.stringify(value)).length;
  if (size > maxBytes) {
    throw new SyncError(
      "E_SYNC_LIMIT_EXCEEDED",
      `${operation}: ${field} is ${size} bytes, more than the limit of ${maxBytes}`,
      { details: { field, limit: maxBytes, actual: size } },
    );
  }
  return size;
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
