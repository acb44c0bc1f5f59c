/**
 * SHA-256 helpers and the composite digest.
 *
 * Chunk digests use Web Crypto (`crypto.subtle`). The composite digest is
 * `hex(SHA-256(d0 ‖ d1 ‖ … ‖ dn-1))` over the raw 32-byte chunk digests; it is computed
 * with an incremental hasher whose state fits in a short string, so a job can carry the
 * running composite of the chunks it has applied and a store can compute it page by
 * page without holding every digest at once.
 *
 * @module
 */

import { SyncError } from "./errors.ts";

const HEX_DIGEST = /^[0-9a-f]{64}$/;

/** True for a lowercase hex SHA-256 digest. */
export function isHexDigest(value: unknown): value is string {
  return typeof value === "string" && HEX_DIGEST.test(value);
}

/** The runtime's own `Uint8Array.prototype.toHex` (lowercase), where it has one. */
const nativeToHex = (Uint8Array.prototype as { toHex?: (this: Uint8Array) => string }).toHex;

/** Lowercase hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): string {
  if (nativeToHex !== undefined) return nativeToHex.call(bytes);
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX_TABLE[bytes[i]];
  return out;
}

const HEX_TABLE: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** Bytes of a lowercase hex digest; throws `E_SYNC_INVALID_ARGUMENT` for anything else. */
export function hexDigestToBytes(hex: string): Uint8Array {
  return checkedDigestInto(hex, new Uint8Array(32));
}

/** Writes the bytes of the hex digest `hex` into `out` (32 bytes), after checking it. */
function checkedDigestInto(hex: string, out: Uint8Array): Uint8Array {
  if (!isHexDigest(hex)) {
    throw new SyncError("E_SYNC_INVALID_ARGUMENT", "expected a lowercase hex SHA-256 digest");
  }
  readHex(hex, out.length, out);
  return out;
}

/** Writes the first `count` bytes of lowercase hex `hex` (already checked) into `out`. */
function readHex(hex: string, count: number, out: Uint8Array): void {
  for (let i = 0; i < count; i++) out[i] = (nibble(hex, i * 2) << 4) | nibble(hex, i * 2 + 1);
}

/** The big-endian 32-bit word of the 8 lowercase hex digits at `offset` (already checked). */
function readWord(hex: string, offset: number): number {
  let word = 0;
  for (let i = 0; i < 8; i++) word = (word << 4) | nibble(hex, offset + i);
  return word;
}

/** The value of the lowercase hex digit at `index` of `hex` (already checked). */
function nibble(hex: string, index: number): number {
  const code = hex.charCodeAt(index);
  return code <= 57 ? code - 48 : code - 87; // '0'-'9', 'a'-'f'
}

const SMALL_INPUT_BYTES = 1024;

/** SHA-256 of `bytes` (through Web Crypto, but for small inputs), as lowercase hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // Below about 1 KiB the pure hasher beats a round trip into Web Crypto.
  if (bytes.length < SMALL_INPUT_BYTES) return new IncrementalSha256().update(bytes).digestHex();
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return bytesToHex(new Uint8Array(digest));
}

// Int32Array, as are the state and the schedule: the words stay small integers in the
// compiled code (a Uint32Array read above 2^31 is a double).
const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

const INITIAL_STATE = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));

// The message schedule, scratch space of every compression (each runs to completion).
const SCHEDULE = new Int32Array(64);
// Scratch space of digestHex, save and the composite helpers, which all run to completion
// (typed array allocations would otherwise cost more than hashing a short input).
const FINAL_STATE = new Int32Array(8);
const TAIL = new Uint8Array(128);
const TAIL_VIEW = new DataView(TAIL.buffer);
const WORDS = new Uint8Array(32);
const WORDS_VIEW = new DataView(WORDS.buffer);
const DIGEST = new Uint8Array(32);

/** Compresses one 64-byte block into `h` (mutated). */
function compress(h: Int32Array, block: Uint8Array, offset: number): void {
  const w = SCHEDULE;
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15];
    const b = w[i - 2];
    const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
    const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (let i = 0; i < 64; i++) {
    const s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const ch = (e & f) ^ (~e & g);
    const t1 = (hh + s1 + ch + K[i] + w[i]) | 0;
    const s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (s0 + maj) | 0;
    hh = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
  h[5] = (h[5] + f) | 0;
  h[6] = (h[6] + g) | 0;
  h[7] = (h[7] + hh) | 0;
}

/** Lowercase hex of eight 32-bit words, big-endian. */
function wordsHex(h: Int32Array): string {
  for (let i = 0; i < 8; i++) WORDS_VIEW.setInt32(i * 4, h[i]);
  return bytesToHex(WORDS);
}

/**
 * An incremental SHA-256 whose whole state serialises to a string
 * ({@link IncrementalSha256.save} / {@link IncrementalSha256.restore}). Pure and
 * synchronous: used for composite digests (32 bytes per chunk), not for bulk data.
 */
export class IncrementalSha256 {
  #h = INITIAL_STATE.slice();
  #buffer = new Uint8Array(64);
  #buffered = 0;
  #length = 0;

  /** Feeds `bytes`. Returns `this` for chaining. */
  update(bytes: Uint8Array): this {
    let offset = 0;
    this.#length += bytes.length;
    if (this.#buffered > 0) {
      const take = Math.min(64 - this.#buffered, bytes.length);
      this.#buffer.set(bytes.subarray(0, take), this.#buffered);
      this.#buffered += take;
      offset = take;
      if (this.#buffered < 64) return this;
      compress(this.#h, this.#buffer, 0);
      this.#buffered = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) compress(this.#h, bytes, offset);
    if (offset < bytes.length) {
      this.#buffer.set(bytes.subarray(offset), 0);
      this.#buffered = bytes.length - offset;
    }
    return this;
  }

  /** The digest of everything fed so far, as lowercase hex. Does not change the state. */
  digestHex(): string {
    const h = FINAL_STATE;
    h.set(this.#h);
    const length = this.#buffered < 56 ? 64 : 128;
    TAIL.fill(0, 0, length);
    for (let i = 0; i < this.#buffered; i++) TAIL[i] = this.#buffer[i];
    TAIL[this.#buffered] = 0x80;
    const bits = this.#length * 8;
    TAIL_VIEW.setUint32(length - 8, Math.floor(bits / 0x1_0000_0000));
    TAIL_VIEW.setUint32(length - 4, bits >>> 0);
    for (let offset = 0; offset < length; offset += 64) compress(h, TAIL, offset);
    return wordsHex(h);
  }

  /** Serialises the state: `<length>:<8 state words hex>:<buffered bytes hex>`. */
  save(): string {
    const buffered = this.#buffered === 0
      ? ""
      : bytesToHex(this.#buffer.subarray(0, this.#buffered));
    return `${this.#length}:${wordsHex(this.#h)}:${buffered}`;
  }

  /** Rebuilds a hasher from {@link IncrementalSha256.save}; throws on a malformed state. */
  static restore(state: string): IncrementalSha256 {
    const match = /^(\d{1,15}):([0-9a-f]{64}):((?:[0-9a-f]{2}){0,63})$/.exec(state);
    const length = match ? Number(match[1]) : NaN;
    if (!match || length % 64 !== match[3].length / 2) {
      throw new SyncError("E_SYNC_INTERNAL", "malformed incremental digest state");
    }
    const hasher = new IncrementalSha256();
    const words = match[2];
    for (let i = 0; i < 8; i++) hasher.#h[i] = readWord(words, i * 8);
    const buffered = match[3];
    readHex(buffered, buffered.length / 2, hasher.#buffer);
    hasher.#buffered = buffered.length / 2;
    hasher.#length = length;
    return hasher;
  }
}

/** The serialised state of a composite digest over zero chunks. */
export const EMPTY_COMPOSITE_STATE: string = new IncrementalSha256().save();

/** Extends a serialised composite state with one more chunk digest (pure). */
export function extendComposite(state: string, chunkSha256: string): string {
  return IncrementalSha256.restore(state).update(checkedDigestInto(chunkSha256, DIGEST)).save();
}

/** Finishes a serialised composite state into the composite digest (pure). */
export function finishComposite(state: string): string {
  return IncrementalSha256.restore(state).digestHex();
}

/**
 * The composite digest of chunk digests given in index order:
 * `hex(SHA-256(d0 ‖ … ‖ dn-1))`. Zero digests give the SHA-256 of the empty input.
 */
export function compositeDigest(chunkDigests: Iterable<string>): string {
  return compositeHasher(chunkDigests).digestHex();
}

/**
 * The serialised composite state after chunk digests given in index order (what an
 * extension resumes from; {@link finishComposite} turns it into the digest).
 */
export function compositeState(chunkDigests: Iterable<string>): string {
  return compositeHasher(chunkDigests).save();
}

function compositeHasher(chunkDigests: Iterable<string>): IncrementalSha256 {
  const hasher = new IncrementalSha256();
  for (const digest of chunkDigests) hasher.update(checkedDigestInto(digest, DIGEST));
  return hasher;
}
