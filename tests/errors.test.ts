import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  isSyncError,
  isSyncErrorCode,
  SYNC_ERROR_CODES,
  SyncError,
  type SyncErrorCode,
  syncErrorFromJSON,
  toSyncError,
} from "../src/errors.ts";

const ALL_CODES = Object.keys(SYNC_ERROR_CODES) as SyncErrorCode[];
const RETRYABLE_BY_DEFAULT = new Set<SyncErrorCode>([
  "E_SYNC_HANDLER_FAILED",
  "E_SYNC_BACKEND_UNAVAILABLE",
]);

/** The codes DESIGN §4 lists, independently of the source's table. */
const DESIGN_CODES = [
  "E_SYNC_INVALID_ARGUMENT",
  "E_SYNC_LIMIT_EXCEEDED",
  "E_SYNC_SOURCE_NOT_FOUND",
  "E_SYNC_SOURCE_NOT_COLLECTING",
  "E_SYNC_SOURCE_EXPIRED",
  "E_SYNC_CHUNK_CONFLICT",
  "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
  "E_SYNC_CHUNK_INDEX_GAP",
  "E_SYNC_MANIFEST_MISMATCH",
  "E_SYNC_SOURCE_CHECKSUM_MISMATCH",
  "E_SYNC_JOB_NOT_FOUND",
  "E_SYNC_JOB_SUPERSEDED",
  "E_SYNC_JOB_CANCELLED",
  "E_SYNC_JOB_FAILED",
  "E_SYNC_LEASE_LOST",
  "E_SYNC_HANDLER_FAILED",
  "E_SYNC_VERIFICATION_FAILED",
  "E_SYNC_TIMEOUT",
  "E_SYNC_ABORTED",
  "E_SYNC_BACKEND_UNAVAILABLE",
  "E_SYNC_INTERNAL",
];

function roundTrip(error: SyncError): SyncError {
  return syncErrorFromJSON(JSON.parse(JSON.stringify(error)));
}

describe("SyncError codes", () => {
  test("the code table is exactly the DESIGN list", () => {
    assert.deepEqual([...ALL_CODES].sort(), [...DESIGN_CODES].sort());
  });

  test("isSyncErrorCode accepts every code and rejects everything else", () => {
    for (const code of ALL_CODES) assert.equal(isSyncErrorCode(code), true, code);
    for (
      const junk of [
        "E_SYNC_NOPE",
        "e_sync_internal",
        "",
        "toString",
        "constructor",
        "__proto__",
        "hasOwnProperty",
        42,
        null,
        undefined,
        {},
      ]
    ) {
      assert.equal(isSyncErrorCode(junk), false, String(junk));
    }
  });
});

describe("SyncError construction", () => {
  for (const code of DESIGN_CODES as SyncErrorCode[]) {
    test(`${code} constructs with its default retryability`, () => {
      const error = new SyncError(code, `message of ${code}`);
      assert.ok(error instanceof SyncError);
      assert.ok(error instanceof Error);
      assert.equal(error.name, "SyncError");
      assert.equal(error.code, code);
      assert.equal(error.message, `message of ${code}`);
      assert.equal(error.retryable, RETRYABLE_BY_DEFAULT.has(code));
      assert.equal(error.details, undefined);
      assert.equal("cause" in error, false);
      assert.equal(typeof error.stack, "string");
    });
  }

  test("retryable can be overridden both ways", () => {
    assert.equal(
      new SyncError("E_SYNC_HANDLER_FAILED", "x", { retryable: false }).retryable,
      false,
    );
    assert.equal(
      new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "x", { retryable: false }).retryable,
      false,
    );
    assert.equal(new SyncError("E_SYNC_INTERNAL", "x", { retryable: true }).retryable, true);
    assert.equal(new SyncError("E_SYNC_TIMEOUT", "x", { retryable: true }).retryable, true);
    // Explicit undefined falls back to the default.
    assert.equal(
      new SyncError("E_SYNC_HANDLER_FAILED", "x", { retryable: undefined }).retryable,
      true,
    );
  });

  test("details and cause are kept", () => {
    const cause = new TypeError("boom");
    const error = new SyncError("E_SYNC_CHUNK_CONFLICT", "conflict", {
      details: { index: 3, expected: "a", actual: "b" },
      cause,
    });
    assert.deepEqual(error.details, { index: 3, expected: "a", actual: "b" });
    assert.equal(error.cause, cause);
  });

  test("a falsy but defined cause is kept", () => {
    const error = new SyncError("E_SYNC_INTERNAL", "x", { cause: 0 });
    assert.equal("cause" in error, true);
    assert.equal(error.cause, 0);
  });
});

describe("isSyncError", () => {
  test("true for instances of every code", () => {
    for (const code of ALL_CODES) assert.equal(isSyncError(new SyncError(code, "m")), true);
  });

  test("true for a plain look-alike (another copy of the package, or its JSON)", () => {
    assert.equal(
      isSyncError({ name: "SyncError", code: "E_SYNC_TIMEOUT", message: "m", retryable: false }),
      true,
    );
    const fromJson = JSON.parse(JSON.stringify(new SyncError("E_SYNC_ABORTED", "aborted")));
    assert.equal(isSyncError(fromJson), true);
    // An Error subclass from "another copy" that is not our class.
    class ForeignSyncError extends Error {
      code = "E_SYNC_LEASE_LOST";
      retryable = false;
      constructor() {
        super("foreign");
        this.name = "SyncError";
      }
    }
    assert.equal(isSyncError(new ForeignSyncError()), true);
  });

  test("rejects junk", () => {
    const base = { name: "SyncError", code: "E_SYNC_TIMEOUT", message: "m", retryable: false };
    const junk: unknown[] = [
      null,
      undefined,
      0,
      "SyncError",
      "E_SYNC_TIMEOUT",
      true,
      [],
      {},
      new Error("plain"),
      Object.assign(new Error("x"), { code: "E_SYNC_TIMEOUT", retryable: false }),
      { ...base, name: "Error" },
      { ...base, code: "E_SYNC_NOPE" },
      { ...base, code: undefined },
      { ...base, retryable: "false" },
      { ...base, retryable: undefined },
      { ...base, message: 42 },
      { ...base, message: undefined },
    ];
    for (const value of junk) assert.equal(isSyncError(value), false, JSON.stringify(value));
  });
});

describe("toSyncError", () => {
  test("passes a SyncError through unchanged (same object)", () => {
    const error = new SyncError("E_SYNC_JOB_FAILED", "failed", { details: { a: 1 } });
    assert.equal(toSyncError(error), error);
  });

  test("an Error becomes E_SYNC_INTERNAL with its message and the original as cause", () => {
    const original = new RangeError("out of range");
    const error = toSyncError(original);
    assert.ok(error instanceof SyncError);
    assert.equal(error.code, "E_SYNC_INTERNAL");
    assert.equal(error.message, "out of range");
    assert.equal(error.retryable, false);
    assert.equal(error.cause, original);
  });

  test("a string becomes the message; anything else takes the fallback message", () => {
    const fromString = toSyncError("went wrong");
    assert.equal(fromString.code, "E_SYNC_INTERNAL");
    assert.equal(fromString.message, "went wrong");
    assert.equal(fromString.cause, "went wrong");

    const fromNumber = toSyncError(42);
    assert.equal(fromNumber.code, "E_SYNC_INTERNAL");
    assert.equal(fromNumber.message, "internal error");
    assert.equal(fromNumber.cause, 42);

    const fromObject = toSyncError({ some: "thing" }, "custom fallback");
    assert.equal(fromObject.message, "custom fallback");
    assert.deepEqual(fromObject.cause, { some: "thing" });

    const fromUndefined = toSyncError(undefined);
    assert.equal(fromUndefined.code, "E_SYNC_INTERNAL");
    assert.equal(fromUndefined.message, "internal error");
  });

  test("an Error that merely has a code field is not trusted", () => {
    const original = Object.assign(new Error("lookalike"), { code: "E_SYNC_TIMEOUT" });
    const error = toSyncError(original);
    assert.equal(error.code, "E_SYNC_INTERNAL");
    assert.equal(error.cause, original);
  });

  test("revives the JSON form of a SyncError", () => {
    const original = new SyncError("E_SYNC_BACKEND_UNAVAILABLE", "db down", {
      retryable: false,
      details: { backend: "pg" },
    });
    const revived = toSyncError(JSON.parse(JSON.stringify(original)));
    assert.ok(revived instanceof SyncError);
    assert.equal(revived.code, "E_SYNC_BACKEND_UNAVAILABLE");
    assert.equal(revived.message, "db down");
    assert.equal(revived.retryable, false);
    assert.deepEqual(revived.details, { backend: "pg" });
  });

  test("property: always returns a SyncError with a known code", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const error = toSyncError(value);
        assert.ok(error instanceof SyncError);
        assert.equal(isSyncErrorCode(error.code), true);
        assert.equal(typeof error.message, "string");
        assert.equal(typeof error.retryable, "boolean");
      }),
      { numRuns: 300 },
    );
  });
});

describe("JSON round trip", () => {
  test("toJSON has the documented shape and no cause or stack", () => {
    const error = new SyncError("E_SYNC_CHUNK_INDEX_GAP", "hole at 4", {
      details: { missing: [4] },
      cause: new Error("inner"),
    });
    assert.deepEqual(JSON.parse(JSON.stringify(error)), {
      name: "SyncError",
      code: "E_SYNC_CHUNK_INDEX_GAP",
      message: "hole at 4",
      retryable: false,
      details: { missing: [4] },
    });
    assert.equal("details" in new SyncError("E_SYNC_TIMEOUT", "t").toJSON(), false);
  });

  for (const code of DESIGN_CODES as SyncErrorCode[]) {
    test(`${code} survives JSON.stringify/JSON.parse/syncErrorFromJSON`, () => {
      for (const retryable of [true, false]) {
        const original = new SyncError(code, `${code} happened`, {
          retryable,
          details: { code, nested: { list: [1, "two", null] } },
        });
        const revived = roundTrip(original);
        assert.ok(revived instanceof SyncError);
        assert.equal(revived.code, code);
        assert.equal(revived.message, `${code} happened`);
        assert.equal(revived.retryable, retryable);
        assert.deepEqual(revived.details, { code, nested: { list: [1, "two", null] } });
      }
      const plain = roundTrip(new SyncError(code, "no details"));
      assert.equal(plain.retryable, RETRYABLE_BY_DEFAULT.has(code));
      assert.equal(plain.details, undefined);
    });
  }

  test("property: arbitrary code/message/retryable/details survive", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALL_CODES),
        fc.string(),
        fc.boolean(),
        fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: undefined }),
        (code, message, retryable, details) => {
          const original = new SyncError(code, message, { retryable, details });
          const revived = roundTrip(original);
          assert.equal(revived.code, code);
          assert.equal(revived.message, message);
          assert.equal(revived.retryable, retryable);
          // Compare with what JSON itself preserves (e.g. -0 becomes 0).
          assert.deepEqual(
            revived.details,
            details === undefined ? undefined : JSON.parse(JSON.stringify(details)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test("an unknown code becomes E_SYNC_INTERNAL, keeping the message and the payload as cause", () => {
    const payload = {
      name: "SyncError",
      code: "E_SYNC_FROM_THE_FUTURE",
      message: "new",
      retryable: true,
    };
    const error = syncErrorFromJSON(payload);
    assert.equal(error.code, "E_SYNC_INTERNAL");
    assert.equal(error.message, "new");
    assert.equal(error.retryable, false);
    assert.equal(error.cause, payload);
  });

  test("a missing retryable falls back to the code's default", () => {
    assert.equal(
      syncErrorFromJSON({ code: "E_SYNC_HANDLER_FAILED", message: "m" }).retryable,
      true,
    );
    assert.equal(
      syncErrorFromJSON({ code: "E_SYNC_TIMEOUT", message: "m", retryable: "yes" }).retryable,
      false,
    );
  });

  test("malformed payloads become E_SYNC_INTERNAL", () => {
    for (const payload of [null, undefined, 42, "E_SYNC_TIMEOUT", true]) {
      const error = syncErrorFromJSON(payload);
      assert.ok(error instanceof SyncError);
      assert.equal(error.code, "E_SYNC_INTERNAL");
      assert.equal(error.message, "malformed error payload");
      assert.equal(error.retryable, false);
      assert.equal(error.cause, payload);
    }
    const empty = syncErrorFromJSON({});
    assert.equal(empty.code, "E_SYNC_INTERNAL");
    assert.equal(empty.message, "malformed error payload");

    const badMessage = syncErrorFromJSON({ code: "E_SYNC_ABORTED", message: 7 });
    assert.equal(badMessage.code, "E_SYNC_ABORTED");
    assert.equal(badMessage.message, "malformed error payload");

    const badDetails = syncErrorFromJSON({ code: "E_SYNC_ABORTED", message: "m", details: "x" });
    assert.equal(badDetails.details, undefined);
    const nullDetails = syncErrorFromJSON({ code: "E_SYNC_ABORTED", message: "m", details: null });
    assert.equal(nullDetails.details, undefined);
  });
});
