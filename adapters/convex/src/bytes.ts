/**
 * Bytes ↔ `v.bytes()` values: Convex carries bytes as an `ArrayBuffer`.
 *
 * @module
 */

/** An `ArrayBuffer` holding exactly `bytes` (the view's own buffer when it covers it all). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  ) {
    return bytes.buffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}
