/**
 * The bytes a directory takes on disk: the sum of the sizes of every regular file under
 * it (symbolic links are not followed). What the import benchmark reports for an embedded
 * store's data directory (tables, indexes and WAL alike).
 *
 * @module
 */

import { join } from "node:path";

/** Sum of the sizes of the regular files under `dir`, recursively. */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) total += await directoryBytes(path);
    else if (entry.isFile) total += (await Deno.lstat(path)).size;
  }
  return total;
}
