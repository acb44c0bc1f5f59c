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
  /**
   * Writes raw bytes (`export` to stdout); resolves once they are handed to the OS, so a
   * large export does not pile up in memory. Optional: without it, `export` to stdout
   * is refused.
   */
  writeBytes?(bytes: Uint8Array): Promise<void>;
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
  /** Last modification, ms since the epoch, when known (watch's polling compares it). */
  mtimeMs?: number;
  /**
   * Last modification in nanoseconds since the epoch (decimal), where the runtime has that
   * precision (`import` takes an unchanged size and mtime for unchanged bytes).
   */
  mtimeNs?: string;
  /** The file's identity (`dev:ino`), where the runtime tells it (a moved file keeps it). */
  fileId?: string;
}

/** A file-system watcher started by {@link CliHost.watch}. */
export interface FileWatcher {
  /** Stops watching (idempotent). */
  close(): void;
}

/** One directory entry. */
export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** An HTTP server started by {@link CliHost.serve}. */
export interface HttpServer {
  /** The address it listens on (the port chosen when 0 was asked). */
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting connections and ends those in flight. */
  close(): Promise<void>;
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
  /**
   * The bytes of a file from offset `start` (default 0), as a stream of fresh (never
   * reused) pieces.
   */
  readFile(path: string, start?: number): ReadableStream<Uint8Array>;
  /** Creates a directory and its parents. */
  mkdir(path: string): Promise<void>;
  /**
   * Writes `pieces` to `path` atomically: into a temporary file next to it, renamed over
   * `path` once complete (a failure or an interrupt leaves `path` as it was).
   */
  writeFile(path: string, pieces: AsyncIterable<Uint8Array>): Promise<void>;
  /**
   * Watches directories recursively: `onChange` gets the paths of changed entries (as
   * the runtime reports them; possibly directories, possibly batched), `onError` a
   * failure after which the watcher stops. Optional: without it (or when it throws),
   * `watch` polls.
   */
  watch?(
    dirs: readonly string[],
    onChange: (paths: string[]) => void,
    onError: (error: unknown) => void,
  ): FileWatcher;
  /**
   * Takes an exclusive, process-level lock file at `path`; throws `E_CLI_STORE_LOCKED`
   * when a live process holds it (a lock left by a dead process is taken over).
   */
  lock(path: string): Promise<Unlock>;
  /** Imports an ES module by absolute file path. */
  importModule(path: string): Promise<Record<string, unknown>>;
  /**
   * Calls `listener` on each interrupt (Ctrl-C / SIGINT, and SIGTERM where the runtime
   * has it); returns an unsubscribe.
   */
  onInterrupt(listener: () => void): () => void;
  /**
   * Serves `handler` (a fetch-style handler) on `hostname:port` (0: any free port).
   * Optional: without it, `serve` is refused.
   */
  serve?(
    options: { hostname: string; port: number },
    handler: (request: Request) => Promise<Response>,
  ): Promise<HttpServer>;
  /** Ends the process at once (a second Ctrl-C). */
  exit(code: number): never;
}
