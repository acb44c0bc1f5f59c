/**
 * What the CLI needs from its runtime: output streams, files, environment, interrupts,
 * module loading and a lock. `main.ts` implements it with Deno APIs, `node_main.ts` with
 * `node:*` ones; the commands only see this interface, so they run wherever it is
 * implemented (and in-process in tests).
 *
 * @module
 */

/** A text output. */
export interface TextOutput {
  write(text: string): void;
  /** True when connected to a terminal (progress bars, colour). */
  readonly isTTY: boolean;
  /** Terminal width in columns, when known. */
  columns(): number | undefined;
}

/** What `stat` reports. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  size: number;
}

/** One directory entry. */
export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** Releases a lock taken with {@link CliHost.lock}. */
export type Unlock = () => Promise<void>;

/** The runtime services the CLI runs on. */
export interface CliHost {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  /** The working directory (absolute). */
  cwd(): string;
  env(name: string): string | undefined;
  /** File information, following symlinks; undefined when the path does not exist. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** Canonical absolute path (symlinks resolved). */
  realPath(path: string): Promise<string>;
  readDir(path: string): AsyncIterable<DirEntry>;
  /** The bytes of a file, as a stream of fresh (never reused) pieces. */
  readFile(path: string): ReadableStream<Uint8Array>;
  /** Creates a directory and its parents. */
  mkdir(path: string): Promise<void>;
  /**
   * Takes an exclusive, process-level lock file at `path`; throws `E_CLI_STORE_LOCKED`
   * when a live process holds it (a lock left by a dead process is taken over).
   */
  lock(path: string): Promise<Unlock>;
  /** Imports an ES module by absolute file path. */
  importModule(path: string): Promise<Record<string, unknown>>;
  /** Calls `listener` on each interrupt (Ctrl-C / SIGINT); returns an unsubscribe. */
  onInterrupt(listener: () => void): () => void;
  /** Ends the process at once (a second Ctrl-C). */
  exit(code: number): never;
}
