/**
 * The `codex-sync` executable on Deno: a {@link CliHost} over Deno APIs, then `runCli`.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-net cli/main.ts import ~/.codex/sessions
 * ```
 *
 * @module
 */

import { pathToFileURL } from "node:url";
import { runCli } from "./src/cli.ts";
import { fileStream } from "./src/file_stream.ts";
import { lockFiles } from "./src/lock_file.ts";
import type { CliHost, DirEntry, FileInfo, TextOutput } from "./src/host.ts";

const encoder = new TextEncoder();

function output(
  stream: typeof Deno.stdout | typeof Deno.stderr,
  rid: "stdout" | "stderr",
): TextOutput {
  const isTTY = stream.isTerminal();
  let broken = false;
  const writeAll = (bytes: Uint8Array) => {
    if (broken) return;
    let written = 0;
    try {
      while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
    } catch (error) {
      // A closed pipe (`codex-sync jobs | head`) is not an error of the command.
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
      broken = true;
    }
  };
  return {
    isTTY,
    write: (text: string) => writeAll(encoder.encode(text)),
    writeBytes: (bytes: Uint8Array) => Promise.resolve(writeAll(bytes)),
    columns() {
      if (!isTTY) return undefined;
      try {
        return Deno.consoleSize().columns;
      } catch {
        return rid === "stdout" ? 80 : undefined;
      }
    },
  };
}

/**
 * Whether `pid` runs, from `/proc` on Linux; undefined where that cannot be told. Deno
 * lets only `--allow-all` read `/proc/<pid>` (NotCapable otherwise, under the CLI's own
 * permissions too): a refusal says nothing about the process, so the lock is kept.
 */
function processAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? false : undefined;
  }
}

const locks = lockFiles({
  pid: Deno.pid,
  async createExclusive(path, text) {
    try {
      await Deno.writeTextFile(path, text, { createNew: true });
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      throw error;
    }
  },
  readText: (path) => Deno.readTextFile(path).catch(() => ""),
  remove: (path) => Deno.remove(path).catch(() => {}),
  removeSync(path) {
    try {
      Deno.removeSync(path);
    } catch { /* already gone */ }
  },
  processAlive,
});

function readFile(path: string, start = 0): ReadableStream<Uint8Array> {
  return fileStream(async () => {
    const file = await Deno.open(path, { read: true });
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    return { read: (buffer) => file.read(buffer), close: () => file.close() };
  });
}

let temporaries = 0;

async function writeFile(path: string, pieces: AsyncIterable<Uint8Array>): Promise<void> {
  const temporary = `${path}.codex-sync-${Deno.pid}-${++temporaries}.tmp`;
  const file = await Deno.open(temporary, { write: true, createNew: true });
  try {
    try {
      for await (const piece of pieces) {
        let written = 0;
        while (written < piece.length) written += await file.write(piece.subarray(written));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

function watch(
  dirs: readonly string[],
  onChange: (paths: string[]) => void,
  onError: (error: unknown) => void,
) {
  const watcher = Deno.watchFs([...dirs], { recursive: true });
  let closed = false;
  (async () => {
    try {
      for await (const event of watcher) {
        if (event.kind !== "access") onChange(event.paths);
      }
    } catch (error) {
      if (!closed) onError(error);
    }
  })();
  return {
    close() {
      if (closed) return;
      closed = true;
      try {
        watcher.close();
      } catch { /* closed already */ }
    },
  };
}

/** The signals that stop a command: SIGINT everywhere, SIGTERM where Deno has it. */
const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

/** The CLI's host on Deno. */
export function denoHost(): CliHost {
  return {
    stdout: output(Deno.stdout, "stdout"),
    stderr: output(Deno.stderr, "stderr"),
    // `deno task cli` runs in the repository root and passes the caller's directory
    // (INIT_CWD) as CODEX_SYNC_CWD, so relative paths mean what the caller meant.
    cwd: () => Deno.env.get("CODEX_SYNC_CWD") || Deno.cwd(),
    env: (name) => Deno.env.get(name),
    async stat(path): Promise<FileInfo | undefined> {
      try {
        const info = await Deno.stat(path);
        const stat: FileInfo = {
          isFile: info.isFile,
          isDirectory: info.isDirectory,
          size: info.size,
        };
        if (info.mtime) stat.mtimeMs = info.mtime.getTime();
        if (info.ino !== null && info.dev !== null) stat.fileId = `${info.dev}:${info.ino}`;
        return stat;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
    },
    realPath: (path) => Deno.realPath(path),
    async *readDir(path): AsyncIterable<DirEntry> {
      for await (const entry of Deno.readDir(path)) yield entry;
    },
    readFile,
    mkdir: (path) => Deno.mkdir(path, { recursive: true }),
    writeFile,
    watch,
    lock: (path) => locks.take(path),
    // A `file://` template is a specifier `deno publish` can analyze (any other expression
    // warns unanalyzable-dynamic-import); the pathname is already percent-encoded.
    importModule: (path) => import(`file://${pathToFileURL(path).pathname}`),
    onInterrupt(listener) {
      for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, listener);
      return () => {
        for (const signal of STOP_SIGNALS) Deno.removeSignalListener(signal, listener);
      };
    },
    async serve({ hostname, port }, handler) {
      const controller = new AbortController();
      const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
      const server = Deno.serve({
        hostname,
        port,
        signal: controller.signal,
        onListen: (addr) => resolve(addr as Deno.NetAddr),
      }, handler);
      const addr = await promise;
      return {
        hostname: addr.hostname,
        port: addr.port,
        async close() {
          controller.abort();
          await server.finished;
        },
      };
    },
    exit(code) {
      locks.releaseAllSync();
      Deno.exit(code);
    },
  };
}

if (import.meta.main) {
  const code = await runCli(Deno.args, denoHost());
  // A lock still held now has no process behind it once this one ends.
  locks.releaseAllSync();
  Deno.exit(code);
}
