/**
 * Scratch directories for test databases: on a RAM disk (/dev/shm) when there is one,
 * so that the many small databases the tests create cost no disk I/O.
 */

function ramDisk(): string | undefined {
  try {
    const info = Deno.statSync("/dev/shm");
    return info.isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** A new, empty temp directory; the caller removes it. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = ramDisk();
  try {
    return await Deno.makeTempDir(dir === undefined ? { prefix } : { dir, prefix });
  } catch {
    return await Deno.makeTempDir({ prefix });
  }
}
