/**
 * Scratch directories for test databases: on a RAM disk (/dev/shm) when there is one,
 * so that the many small databases the tests create cost no disk I/O. node:* APIs only,
 * so the PGlite conformance test also runs under Node and Bun.
 */

import { statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

function ramDisk(): string | undefined {
  try {
    return statSync("/dev/shm").isDirectory() ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** A new, empty temp directory; the caller removes it. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = ramDisk();
  if (dir !== undefined) {
    try {
      return await mkdtemp(join(dir, prefix));
    } catch { /* not writable: fall back to the temp dir */ }
  }
  return await mkdtemp(join(tmpdir(), prefix));
}
