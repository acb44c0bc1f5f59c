/**
 * Fixtures: sample payloads (multi-byte text, binary), bad-input tables, known digests.
 *
 * @module
 */

/** Composite digest of zero chunks (SHA-256 of the empty input). */
export const EMPTY_COMPOSITE_DIGEST =
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
