/**
 * Payload generators for the job and lifecycle cases: multi-byte text cut inside UTF-8
 * sequences, binary chunks covering every byte value, tiny chunks for scale runs.
 * Everything is deterministic (no randomness), so a failing case reproduces exactly.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Text mixing 1-, 2-, 3- and 4-byte UTF-8 sequences (Latin, accents, CJK, emoji,
 * combining marks, right-to-left script, a surrogate pair, escapes and a NUL), repeated
 * `repeat` times.
 */
export function multiByteText(repeat = 8): string {
  const pattern = 'a é € 中文 😀 e\u0301 שלום 𝄞 "q" \\ \u0000 \n{"k":"ü"}';
  return Array.from({ length: repeat }, (_, i) => `${i}:${pattern}`).join("|");
}

/** The UTF-8 bytes of `text`. */
export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Cuts `bytes` into consecutive chunks of `size` bytes (the last one may be shorter). */
export function splitEvery(bytes: Uint8Array, size: number): Uint8Array[] {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError("size must be >= 1");
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    chunks.push(bytes.slice(offset, offset + size));
  }
  return chunks;
}

/** The chunks joined back into one buffer. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  return 2;
}

/**
 * For chunks cut from UTF-8 text: the lengths (2, 3 or 4) of the multi-byte sequences
 * that a chunk boundary falls inside. Lets a case prove its payload really splits
 * characters.
 */
export function splitSequenceLengths(chunks: readonly Uint8Array[]): Set<number> {
  const all = concatBytes(chunks);
  const found = new Set<number>();
  let offset = 0;
  for (const chunk of chunks.slice(0, -1)) {
    offset += chunk.length;
    if (offset >= all.length || (all[offset] & 0xc0) !== 0x80) continue;
    let lead = offset - 1;
    while (lead > 0 && (all[lead] & 0xc0) === 0x80) lead--;
    found.add(sequenceLength(all[lead]));
  }
  return found;
}

/** `count` tiny distinct chunks (`"c<index>;"` in ASCII), e.g. for scale runs. */
export function tinyChunks(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => encoder.encode(`c${i};`));
}

/** `count` small distinct text chunks tagged with `tag`. */
export function textChunks(count: number, tag = "chunk"): Uint8Array[] {
  return Array.from(
    { length: count },
    (_, i) => encoder.encode(`${tag}-${i}:${"x".repeat(i + 1)}`),
  );
}
