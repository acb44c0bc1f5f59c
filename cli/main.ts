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
import { CliError } from "./src/errors.ts";
import type { CliHost, DirEntry, FileInfo, TextOutput, Unlock } from "./src/host.ts";

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

/** Lock files this process holds, removed even when it exits at once (second Ctrl-C). */
const heldLocks = new Set<string>();

async function takeLock(path: string): Promise<Unlock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await Deno.open(path, { createNew: true, write: true });
      await file.write(encoder.encode(`${Deno.pid}\n`));
      file.close();
      heldLocks.add(path);
      return async () => {
        if (!heldLocks.delete(path)) return;
        await Deno.remove(path).catch(() => {});
      };
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      const pid = Number((await Deno.readTextFile(path).catch(() => "")).trim());
      const alive = Number.isSafeInteger(pid) && pid > 0 ? processAlive(pid) : false;
      if (alive === false && attempt === 0) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      throw new CliError(
        "E_CLI_STORE_LOCKED",
        `the store is in use by another codex-sync process${pid ? ` (pid ${pid})` : ""}; ` +
          `if none is running, delete ${path}`,
      );
    }
  }
  throw new CliError("E_CLI_STORE_LOCKED", `cannot take the lock ${path}`);
}

function readFile(path: string): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let closed = false;
  const close = () => {
    if (file && !closed) file.close();
    closed = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      file ??= await Deno.open(path, { read: true });
      // A fresh buffer per read: the consumer may keep the pieces.
      const buffer = new Uint8Array(256 * 1024);
      const read = await file.read(buffer);
      if (read === null) {
        close();
        controller.close();
      } else controller.enqueue(buffer.subarray(0, read));
    },
    cancel: close,
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
    lock: takeLock,
    importModule: (path) => import(pathToFileURL(path).href),
    onInterrupt(listener) {
      Deno.addSignalListener("SIGINT", listener);
      return () => Deno.removeSignalListener("SIGINT", listener);
    },
    exit(code) {
      for (const path of heldLocks) {
        try {
          Deno.removeSync(path);
        } catch { /* already gone */ }
      }
      Deno.exit(code);
    },
  };
}

if (import.meta.main) {
  const code = await runCli(Deno.args, denoHost());
  Deno.exit(code);
}
