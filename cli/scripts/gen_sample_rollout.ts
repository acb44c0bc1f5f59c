/**
 * Writes the bundled sample rollout, `cli/fixtures/sample-rollout.jsonl` (about 3 MB,
 * deterministic). With `--check`, verifies the file on disk is exactly what the
 * generator produces instead of writing it.
 *
 * Run: `deno run --allow-read --allow-write cli/scripts/gen_sample_rollout.ts [--check]`.
 *
 * @module
 */

import { sampleRolloutText } from "./sample_rollout.ts";

/** Session id of the bundled sample (its conversation id once imported). */
export const SAMPLE_SESSION_ID = "0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17";

/** Where the bundled sample lives. */
export const SAMPLE_PATH: URL = new URL("../fixtures/sample-rollout.jsonl", import.meta.url);

/** The bundled sample's exact bytes. */
export function sampleFixtureBytes(): Uint8Array {
  return new TextEncoder().encode(
    sampleRolloutText({ sessionId: SAMPLE_SESSION_ID, targetBytes: 3 * 1024 * 1024, seed: 2025 }),
  );
}

if (import.meta.main) {
  const bytes = sampleFixtureBytes();
  if (Deno.args.includes("--check")) {
    const onDisk = await Deno.readFile(SAMPLE_PATH);
    const same = onDisk.length === bytes.length && onDisk.every((byte, i) => byte === bytes[i]);
    if (!same) {
      console.error(`${SAMPLE_PATH.pathname} differs from the generator's output; regenerate it`);
      Deno.exit(1);
    }
    console.log(`${SAMPLE_PATH.pathname} is up to date (${bytes.length} bytes)`);
  } else {
    await Deno.writeFile(SAMPLE_PATH, bytes);
    console.log(`wrote ${SAMPLE_PATH.pathname} (${bytes.length} bytes)`);
  }
}
