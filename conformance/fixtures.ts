/**
 * Fixtures: sample payloads (multi-byte text, binary), bad-input tables, known digests.
 *
 * Bad-input tables are built relative to a valid input: each entry's `input(valid)`
 * returns a copy of `valid` broken in exactly one way, so a case can feed every entry to
 * the operation and expect `E_SYNC_INVALID_ARGUMENT` with nothing stored.
 *
 * @module
 */

import type {
  AppendChunkInput,
  CreateSourceInput,
  SealSourceInput,
} from "../src/contracts/inputs.ts";

/** Composite digest of zero chunks (SHA-256 of the empty input). */
export const EMPTY_COMPOSITE_DIGEST =
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** SHA-256 of the empty byte string (the digest an empty chunk would declare). */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** A composite-digest test vector: chunks given as UTF-8 text. */
export interface KnownDigest {
  /** A short label. */
  name: string;
  /** The chunks, as UTF-8 text (encode each to get the chunk bytes). */
  chunks: readonly string[];
  /** Lowercase hex SHA-256 of each chunk. */
  chunkDigests: readonly string[];
  /** `hex(SHA-256(d0 ‖ d1 ‖ …))` over the raw 32-byte chunk digests. */
  digest: string;
}

/**
 * Composite digests computed independently of this package (Python `hashlib`):
 * `sha256(b"".join(sha256(c).digest() for c in chunks)).hexdigest()`.
 */
export const KNOWN_DIGESTS: readonly KnownDigest[] = Object.freeze([
  Object.freeze({
    name: "no chunks",
    chunks: Object.freeze([]) as readonly string[],
    chunkDigests: Object.freeze([]) as readonly string[],
    digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  }),
  Object.freeze({
    name: '["hello"]',
    chunks: Object.freeze(["hello"]),
    chunkDigests: Object.freeze([
      "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ]),
    digest: "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50",
  }),
  Object.freeze({
    name: '["a", "b", "c"]',
    chunks: Object.freeze(["a", "b", "c"]),
    chunkDigests: Object.freeze([
      "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
      "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d",
      "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6",
    ]),
    digest: "3a050f1d08fb8581d3d72ae727651e981043de0d6ca8e744328758f716602beb",
  }),
]);

// ---------------------------------------------------------------------------------------
// Sample payloads

const encoder = new TextEncoder();

/** The records of {@link multiByteConversation}, before encoding. */
const CONVERSATION_RECORDS: readonly Record<string, string>[] = [
  { role: "user", text: "Hello 👋 world 🌍🎉" },
  { role: "assistant", text: "漢字とかな、한국어도 — 中文测试" },
  { role: "user", text: "שלום עולם · مرحبا بالعالم" },
  { role: "assistant", text: "Combining: e\u0301 a\u0308 n\u0303, Zalgo Z\u0351\u0308\u0302o" },
  { role: "user", text: "Family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin 👍🏽, math 𝔸𝔹" },
];

/**
 * Where {@link multiByteConversation} cuts its bytes: inside the given character, this
 * many bytes into its UTF-8 encoding (so the chunk boundary splits the character).
 */
const CONVERSATION_CUTS: readonly { marker: string; into: number }[] = [
  { marker: "👋", into: 2 },
  { marker: "漢", into: 1 },
  { marker: "ש", into: 1 },
  { marker: "\u0301", into: 1 },
  { marker: "👨", into: 3 },
  { marker: "𝔹", into: 1 },
];

/** The JSON Lines text of {@link multiByteConversation}. */
export function multiByteConversationText(): string {
  return CONVERSATION_RECORDS.map((record) => JSON.stringify(record)).join("\n") + "\n";
}

/**
 * A JSON Lines conversation with emoji (incl. ZWJ sequences and flags), CJK, Hangul,
 * right-to-left Hebrew and Arabic, combining marks and astral-plane letters, split into
 * several chunks. Every chunk boundary falls inside a multi-byte character, so no chunk
 * but the first is valid UTF-8 on its own. Fresh arrays on every call.
 */
export function multiByteConversation(): Uint8Array[] {
  const text = multiByteConversationText();
  const bytes = encoder.encode(text);
  const cuts = CONVERSATION_CUTS.map(({ marker, into }) => {
    const at = text.indexOf(marker);
    if (at < 0) throw new Error(`fixture marker ${marker} not found`);
    return encoder.encode(text.slice(0, at)).length + into;
  }).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of cuts) {
    chunks.push(bytes.slice(start, cut));
    start = cut;
  }
  chunks.push(bytes.slice(start));
  return chunks;
}

/** Deterministic pseudo-random bytes (xorshift32 from `seed`; seed 0 is replaced). */
export function seededBytes(length: number, seed: number): Uint8Array {
  let state = (seed >>> 0) || 0x9e3779b9;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/**
 * Binary chunks: every byte value in order, a run of zeros, a run of 0xff, 4 KiB of
 * seeded pseudo-random bytes, every byte value descending, and a lone NUL byte.
 * Fresh arrays on every call.
 */
export function binaryChunks(): Uint8Array[] {
  const ascending = Uint8Array.from({ length: 256 }, (_, i) => i);
  return [
    ascending,
    new Uint8Array(1000),
    new Uint8Array(1000).fill(0xff),
    seededBytes(4096, 0x5eed),
    ascending.slice().reverse(),
    new Uint8Array([0]),
  ];
}

// ---------------------------------------------------------------------------------------
// Bad inputs

/** One malformed variant of a valid input. */
export interface BadInput<T> {
  /** What is wrong with it. */
  name: string;
  /** A copy of `valid` broken in one way. */
  input(valid: T): unknown;
}

/** A non-object argument, refused by every operation. */
export interface NonObjectInput {
  name: string;
  input: unknown;
}

function without<T extends object>(value: T, field: keyof T): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  delete copy[field as string];
  return copy;
}

function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

/** Arguments that are not an input object at all. */
export const NON_OBJECT_INPUTS: readonly NonObjectInput[] = Object.freeze([
  { name: "null", input: null },
  { name: "undefined", input: undefined },
  { name: "a string", input: "scope-a" },
  { name: "a number", input: 42 },
  { name: "an array", input: [] },
  { name: "a boolean", input: true },
]);

/** Malformed `createSource` inputs (relative to a valid one with a `sourceId`). */
export const BAD_CREATE_INPUTS: readonly BadInput<CreateSourceInput>[] = Object.freeze([
  { name: "scope empty", input: (v) => ({ ...v, scope: "" }) },
  { name: "scope a number", input: (v) => ({ ...v, scope: 7 }) },
  { name: "scope null", input: (v) => ({ ...v, scope: null }) },
  { name: "scope missing", input: (v) => without(v, "scope") },
  { name: "conversationId empty", input: (v) => ({ ...v, conversationId: "" }) },
  { name: "conversationId a number", input: (v) => ({ ...v, conversationId: 1 }) },
  { name: "conversationId missing", input: (v) => without(v, "conversationId") },
  { name: "sourceId empty", input: (v) => ({ ...v, sourceId: "" }) },
  { name: "sourceId a number", input: (v) => ({ ...v, sourceId: 12 }) },
  { name: "sourceId null", input: (v) => ({ ...v, sourceId: null }) },
  { name: "metadata with NaN", input: (v) => ({ ...v, metadata: { n: NaN } }) },
  { name: "metadata with Infinity", input: (v) => ({ ...v, metadata: [Infinity] }) },
  { name: "metadata a Date", input: (v) => ({ ...v, metadata: new Date(0) }) },
  { name: "metadata a Map", input: (v) => ({ ...v, metadata: new Map([["a", 1]]) }) },
  { name: "metadata a function", input: (v) => ({ ...v, metadata: { f: () => 1 } }) },
  { name: "metadata a bigint", input: (v) => ({ ...v, metadata: { n: 1n } }) },
  { name: "metadata cyclic", input: (v) => ({ ...v, metadata: cyclic() }) },
  { name: "unknown extra field", input: (v) => ({ ...v, owner: "someone" }) },
]);

/** Malformed `appendChunk` inputs (relative to a valid one at index 0). */
export const BAD_APPEND_INPUTS: readonly BadInput<AppendChunkInput>[] = Object.freeze([
  {
    name: "empty bytes (with their correct digest)",
    input: (v) => ({ ...v, bytes: new Uint8Array(0), sha256: EMPTY_SHA256 }),
  },
  { name: "negative index", input: (v) => ({ ...v, index: -1 }) },
  { name: "fractional index", input: (v) => ({ ...v, index: 0.5 }) },
  { name: "NaN index", input: (v) => ({ ...v, index: NaN }) },
  { name: "infinite index", input: (v) => ({ ...v, index: Infinity }) },
  { name: "unsafe index 2**53", input: (v) => ({ ...v, index: 2 ** 53 }) },
  { name: "index as a string", input: (v) => ({ ...v, index: String(v.index) }) },
  { name: "index missing", input: (v) => without(v, "index") },
  { name: "bytes as a number array", input: (v) => ({ ...v, bytes: Array.from(v.bytes) }) },
  {
    name: "bytes as a string",
    input: (v) => ({ ...v, bytes: new TextDecoder().decode(v.bytes) }),
  },
  { name: "bytes as an ArrayBuffer", input: (v) => ({ ...v, bytes: v.bytes.slice().buffer }) },
  { name: "bytes null", input: (v) => ({ ...v, bytes: null }) },
  { name: "bytes missing", input: (v) => without(v, "bytes") },
  { name: "sha256 uppercase", input: (v) => ({ ...v, sha256: v.sha256.toUpperCase() }) },
  { name: "sha256 short", input: (v) => ({ ...v, sha256: v.sha256.slice(0, 63) }) },
  { name: "sha256 not hex", input: (v) => ({ ...v, sha256: "g".repeat(64) }) },
  { name: "sha256 missing", input: (v) => without(v, "sha256") },
  { name: "itemCount negative", input: (v) => ({ ...v, itemCount: -1 }) },
  { name: "itemCount fractional", input: (v) => ({ ...v, itemCount: 1.5 }) },
  { name: "itemCount a string", input: (v) => ({ ...v, itemCount: "1" }) },
  { name: "unknown extra field", input: (v) => ({ ...v, offset: 0 }) },
  { name: "scope empty", input: (v) => ({ ...v, scope: "" }) },
  { name: "scope a number", input: (v) => ({ ...v, scope: 1 }) },
  { name: "scope missing", input: (v) => without(v, "scope") },
  { name: "sourceId empty", input: (v) => ({ ...v, sourceId: "" }) },
  { name: "sourceId missing", input: (v) => without(v, "sourceId") },
]);

/** Malformed `sealSource` inputs (relative to a valid one). */
export const BAD_SEAL_INPUTS: readonly BadInput<SealSourceInput>[] = Object.freeze([
  { name: "manifest missing", input: (v) => without(v, "manifest") },
  { name: "manifest null", input: (v) => ({ ...v, manifest: null }) },
  { name: "manifest an array", input: (v) => ({ ...v, manifest: [v.manifest] }) },
  {
    name: "negative chunkCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, chunkCount: -1 } }),
  },
  {
    name: "fractional chunkCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, chunkCount: v.manifest.chunkCount + 0.5 } }),
  },
  {
    name: "chunkCount as a string",
    input: (v) => ({
      ...v,
      manifest: { ...v.manifest, chunkCount: String(v.manifest.chunkCount) },
    }),
  },
  {
    name: "chunkCount missing",
    input: (v) => ({ ...v, manifest: without(v.manifest, "chunkCount") }),
  },
  {
    name: "fractional byteCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, byteCount: v.manifest.byteCount + 0.5 } }),
  },
  {
    name: "negative byteCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, byteCount: -1 } }),
  },
  {
    name: "NaN byteCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, byteCount: NaN } }),
  },
  {
    name: "digest uppercase",
    input: (v) => ({ ...v, manifest: { ...v.manifest, digest: v.manifest.digest.toUpperCase() } }),
  },
  {
    name: "digest short",
    input: (v) => ({ ...v, manifest: { ...v.manifest, digest: v.manifest.digest.slice(1) } }),
  },
  {
    name: "digest not hex",
    input: (v) => ({ ...v, manifest: { ...v.manifest, digest: "z".repeat(64) } }),
  },
  {
    name: "digest missing",
    input: (v) => ({ ...v, manifest: without(v.manifest, "digest") }),
  },
  {
    name: "negative itemCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, itemCount: -2 } }),
  },
  {
    name: "fractional itemCount",
    input: (v) => ({ ...v, manifest: { ...v.manifest, itemCount: 0.25 } }),
  },
  {
    name: "manifest data with NaN",
    input: (v) => ({ ...v, manifest: { ...v.manifest, data: { keys: [NaN] } } }),
  },
  {
    name: "manifest data a Date",
    input: (v) => ({ ...v, manifest: { ...v.manifest, data: new Date(0) } }),
  },
  {
    name: "manifest data cyclic",
    input: (v) => ({ ...v, manifest: { ...v.manifest, data: cyclic() } }),
  },
  {
    name: "extra key in the manifest",
    input: (v) => ({ ...v, manifest: { ...v.manifest, algorithm: "sha256" } }),
  },
  { name: "unknown extra field", input: (v) => ({ ...v, force: true }) },
  { name: "scope empty", input: (v) => ({ ...v, scope: "" }) },
  { name: "scope a number", input: (v) => ({ ...v, scope: 3 }) },
  { name: "scope missing", input: (v) => without(v, "scope") },
  { name: "sourceId empty", input: (v) => ({ ...v, sourceId: "" }) },
  { name: "sourceId missing", input: (v) => without(v, "sourceId") },
]);
