/**
 * The store's lock file (`<data-dir>/lock`, holding the owner's pid), written once over
 * the few file operations each runtime's host provides.
 *
 * @module
 */

import { CliError } from "./errors.ts";
import type { Unlock } from "./host.ts";

/** The file operations a lock needs from the runtime. */
export interface LockFileSystem {
  /** This process's id, written into the lock file. */
  readonly pid: number;
  /** Creates `path` holding `text`; returns false when it already exists. */
  createExclusive(path: string, text: string): Promise<boolean>;
  /** The file's text, or "" when it cannot be read. */
  readText(path: string): Promise<string>;
  /** Removes a file, ignoring errors (it may be gone already). */
  remove(path: string): Promise<void>;
  /** Same as {@link remove}, synchronously (for an immediate exit). */
  removeSync(path: string): void;
  /** Whether a process with this id runs; undefined when the runtime cannot tell. */
  processAlive(pid: number): boolean | undefined;
}

/** Lock files taken through one {@link LockFileSystem}. */
export interface LockFiles {
  /**
   * Takes the lock at `path`; throws `E_CLI_STORE_LOCKED` when a live process holds it.
   * A lock left by a dead process is taken over.
   */
  take(path: string): Promise<Unlock>;
  /** Removes every lock still held (before the process exits at once). */
  releaseAllSync(): void;
}

/** Lock files over `fs`; the held ones are tracked so an immediate exit can remove them. */
export function lockFiles(fs: LockFileSystem): LockFiles {
  const held = new Set<string>();
  return {
    async take(path) {
      for (let attempt = 0; attempt < 2; attempt++) {
        if (await fs.createExclusive(path, `${fs.pid}\n`)) {
          held.add(path);
          return () => {
            // At once, not asynchronously: an immediate exit (a second Ctrl-C, or `deno
            // task` forwarding the SIGTERM its process group also got) while a removal was
            // pending would leave the file behind, and a runtime that cannot tell whether
            // its pid lives then refuses the store to every later run.
            if (held.delete(path)) fs.removeSync(path);
            return Promise.resolve();
          };
        }
        const pid = Number((await fs.readText(path)).trim());
        const alive = Number.isSafeInteger(pid) && pid > 0 ? fs.processAlive(pid) : false;
        if (alive === false && attempt === 0) {
          await fs.remove(path);
          continue;
        }
        throw new CliError(
          "E_CLI_STORE_LOCKED",
          `the store is in use by another codex-sync process${pid ? ` (pid ${pid})` : ""}; ` +
            `if none is running, delete ${path}`,
        );
      }
      throw new CliError("E_CLI_STORE_LOCKED", `cannot take the lock ${path}`);
    },
    releaseAllSync() {
      for (const path of held) fs.removeSync(path);
      held.clear();
    },
  };
}
