/**
 * Hostile inputs for property tests of every adapter operation: arbitrary values, and
 * plausible inputs with one field replaced by something a careless or hostile caller
 * might send (throwing getters and Proxy traps, sparse, huge or cyclic structures, odd
 * typed arrays). fast-check only ever sees recipes, so it can print and shrink them.
 *
 * @module
 */

import fc from "fast-check";
import { Buffer } from "node:buffer";

/** Values a careless or hostile caller might pass anywhere, built on demand. */
export const HOSTILE: Record<string, () => unknown> = {
  throwingGetter: () => ({
    get scope(): never {
      throw new Error("getter");
    },
    get sourceId(): never {
      throw new Error("getter");
    },
  }),
  throwingProxy: () =>
    new Proxy({}, {
      get() {
        throw new Error("get trap");
      },
      ownKeys() {
        throw new Error("ownKeys trap");
      },
      getPrototypeOf() {
        throw new Error("getPrototypeOf trap");
      },
    }),
  cyclic: () => {
    const value: Record<string, unknown> = { scope: "s" };
    value.self = value;
    return value;
  },
  sparseArray: () => new Array(2 ** 32 - 1),
  hugeString: () => "x".repeat(2_000_000),
  nan: () => NaN,
  infinity: () => Infinity,
  negativeZero: () => -0,
  unsafeInteger: () => 2 ** 53,
  negative: () => -1,
  fraction: () => 1.5,
  bigint: () => 10n,
  symbol: () => Symbol("s"),
  func: () => () => 1,
  date: () => new Date(0),
  int8Array: () => new Int8Array(4),
  float32Array: () => new Float32Array(2),
  nodeBuffer: () => Buffer.from("buffer"),
  arrayBuffer: () => new ArrayBuffer(8),
  emptyString: () => "",
  nul: () => "\u0000",
  loneSurrogate: () => "\uD800",
};

/**
 * A recipe for a hostile value: a plain arbitrary value, or the name of one of HOSTILE
 * (fast-check only ever sees the name, so it can print and shrink what it generated).
 */
export type Recipe = { plain: unknown } | { hostile: string };

function recipe(): fc.Arbitrary<Recipe> {
  return fc.oneof(
    fc.anything().map((plain) => ({ plain })),
    fc.constantFrom(...Object.keys(HOSTILE)).map((hostile) => ({ hostile })),
  );
}

function build(value: Recipe): unknown {
  return "hostile" in value ? HOSTILE[value.hostile]() : value.plain;
}

/** An operation input: a hostile value, or a plausible input with one field hostile. */
export function hostileInput(fields: readonly string[]): fc.Arbitrary<() => unknown> {
  const whole = recipe().map((value) => () => build(value));
  const oneField = fc.record({ field: fc.constantFrom(...fields), value: recipe() }).map(
    ({ field, value }) => () => {
      const input: Record<string, unknown> = {
        scope: "scope",
        conversationId: "conversation",
        sourceId: "source",
        jobId: "job",
        index: 0,
        bytes: new Uint8Array([1]),
        sha256: "0".repeat(64),
        manifest: { chunkCount: 0, byteCount: 0, digest: "0".repeat(64) },
        chunks: [],
      };
      input[field] = build(value);
      return input;
    },
  );
  return fc.oneof(whole, oneField);
}

export const OPERATIONS: ReadonlyArray<[string, readonly string[]]> = [
  ["createSource", ["scope", "conversationId", "sourceId", "metadata", "baseSourceId"]],
  ["appendChunk", ["scope", "sourceId", "index", "bytes", "sha256", "itemCount"]],
  ["listChunks", ["scope", "sourceId", "cursor", "limit"]],
  ["sealSource", ["scope", "sourceId", "manifest"]],
  ["uploadSource", ["scope", "conversationId", "chunks", "manifest", "metadata", "baseSourceId"]],
  ["getSource", ["scope", "sourceId"]],
  ["getLatestSource", ["scope", "conversationId"]],
  ["abandonSource", ["scope", "sourceId"]],
  ["getJob", ["scope", "jobId"]],
  ["listJobs", ["scope", "conversationId", "state", "cursor", "limit"]],
  ["cancelJob", ["scope", "jobId", "reason"]],
  ["waitForTerminal", ["scope", "jobId", "timeoutMs", "signal"]],
];

/** How long a call may take to settle, whatever its input. */
export const SETTLE_MS = 2000;

/** Whether `promise` rejected, and with what; throws if it does not settle within the bound. */
export async function settled(promise: Promise<unknown>): Promise<{ error?: unknown }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${SETTLE_MS} ms`)), SETTLE_MS);
  });
  try {
    await Promise.race([promise, deadline]);
    return {};
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("did not settle")) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}
