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
  return {
    isTTY,
    write(text: string) {
      const bytes = encoder.encode(text);
      let written = 0;
      try {
        while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
      } catch (error) {
        // A closed pipe (`codex-sync jobs | head`) is not an error of the command.
        if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
      }
    },
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

function processAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
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

function readFile(path: string): ReadableStream<Uint8Array> {
  return fileStream(async () => {
    const file = await Deno.open(path, { read: true });
    return { read: (buffer) => file.read(buffer), close: () => file.close() };
  });
}

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
        return { isFile: info.isFile, isDirectory: info.isDirectory, size: info.size };
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
    lock: (path) => locks.take(path),
    importModule: (path) => import(pathToFileURL(path).href),
    onInterrupt(listener) {
      Deno.addSignalListener("SIGINT", listener);
      return () => Deno.removeSignalListener("SIGINT", listener);
    },
    exit(code) {
      locks.releaseAllSync();
      Deno.exit(code);
    },
  };
}

if (import.meta.main) {
  const code = await runCli(Deno.args, denoHost());
  Deno.exit(code);
}
