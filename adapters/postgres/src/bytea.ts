/**
 * `bytea` on the wire, for both drivers. Chunk payloads are the bulk of what the adapter
 * sends and reads, and the clients' own codecs handle them a byte at a time (PGlite builds
 * one string per byte; postgres.js goes through `Buffer`, which under Deno is JavaScript):
 * in a profiled PGlite import, half the CPU time was spent there (issue 17). These use the
 * runtime's native hex codec where it has one (`Uint8Array.fromHex`/`toHex` in Deno and
 * Bun, `Buffer` in Node) and a table-driven loop elsewhere.
 *
 * @module
 */

/** OID of `bytea`. */
export const BYTEA_OID = 17;

/** Lowercase hex without prefix, both ways; `decode` throws a TypeError for anything else. */
export interface HexCodec {
  readonly name: string;
  encode(bytes: Uint8Array): string;
  decode(hex: string): Uint8Array;
}

function malformed(why: string): TypeError {
  return new TypeError(`malformed bytea value: ${why}`);
}

function checkLength(hex: string): void {
  if (hex.length % 2 !== 0) throw malformed("odd number of hex digits");
}

const HEX_DIGITS = "0123456789abcdef";
const HEX_PAIRS: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => HEX_DIGITS[i >> 4] + HEX_DIGITS[i & 15],
);
/** Value of each hex digit's char code, -1 for anything else. */
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  NIBBLE[HEX_DIGITS.charCodeAt(i)] = i;
  NIBBLE[HEX_DIGITS.toUpperCase().charCodeAt(i)] = i;
}

/** Plain JavaScript, for runtimes without a native codec. */
export const TABLE_HEX: HexCodec = {
  name: "table",
  encode(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i++) out += HEX_PAIRS[bytes[i]];
    return out;
  },
  decode(hex) {
    checkLength(hex);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) {
      const high = NIBBLE[hex.charCodeAt(2 * i)] ?? -1;
      const low = NIBBLE[hex.charCodeAt(2 * i + 1)] ?? -1;
      if (high < 0 || low < 0) throw malformed("not hex");
      out[i] = (high << 4) | low;
    }
    return out;
  },
};

/** `Uint8Array.fromHex` / `toHex` (Deno, Bun, recent V8), when the runtime has them. */
export function nativeHex(): HexCodec | undefined {
  const fromHex = (Uint8Array as { fromHex?: (hex: string) => Uint8Array }).fromHex;
  const toHex = (Uint8Array.prototype as { toHex?: () => string }).toHex;
  if (typeof fromHex !== "function" || typeof toHex !== "function") return undefined;
  return {
    name: "native",
    encode: (bytes) => toHex.call(bytes),
    decode(hex) {
      checkLength(hex);
      try {
        return fromHex(hex);
      } catch {
        throw malformed("not hex");
      }
    },
  };
}

interface NodeBufferClass {
  from(value: string, encoding: "hex"): Uint8Array;
  from(value: ArrayBufferLike, offset: number, length: number): {
    toString(encoding: "hex"): string;
  };
}

const HEX_ONLY = /^[0-9a-fA-F]*$/;

/** Node's global `Buffer` (no import: library code stays runtime-agnostic), when present. */
export function bufferHex(): HexCodec | undefined {
  const buffer = (globalThis as { Buffer?: NodeBufferClass }).Buffer;
  if (buffer === undefined) return undefined;
  return {
    name: "buffer",
    encode: (bytes) => buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex"),
    decode(hex) {
      checkLength(hex);
      // Buffer stops at the first bad digit instead of failing.
      if (!HEX_ONLY.test(hex)) throw malformed("not hex");
      const decoded = buffer.from(hex, "hex");
      return new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.length);
    },
  };
}

/** The fastest codec this runtime has. */
export const HEX: HexCodec = nativeHex() ?? bufferHex() ?? TABLE_HEX;

/** A `bytea` in PostgreSQL's text output (`\x` and hex, the default `bytea_output`). */
export function parseByteaText(text: string): Uint8Array {
  if (!text.startsWith("\\x")) {
    throw malformed("expected hex output (\\x…); set bytea_output = 'hex'");
  }
  return HEX.decode(text.slice(2));
}

/** `bytes` as a `bytea` text input. */
export function byteaText(bytes: Uint8Array): string {
  return "\\x" + HEX.encode(bytes);
}
