/**
 * The `codex-sync` executable on Node.js (≥ 20): a {@link CliHost} over `node:*` APIs,
 * then `runCli`. The npm package's `bin` runs {@link runNodeCli}; `main.ts` is the Deno
 * counterpart and behaves the same.
 *
 * ```sh
 * npx codex-sync import ~/.codex/sessions
 * ```
 *
 * @module
 */

import { realpathSync, rmSync, watch as watchDir } from "node:fs";
import { mkdir, open, readdir, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runCli } from "./src/cli.ts";
import { fileStream } from "./src/file_stream.ts";
import type {
  CliHost,
  DirEntry,
  FileInfo,
  FileWatcher,
  HttpServer,
  TextOutput,
} from "./src/host.ts";
import { lockFiles } from "./src/lock_file.ts";

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/** An output stream of the process, with a way to wait until it is written out. */
interface NodeOutput {
  text: TextOutput;
  flush(): Promise<void>;
}

function output(stream: NodeJS.WriteStream, name: "stdout" | "stderr"): NodeOutput {
  const isTTY = stream.isTTY === true;
  let broken = false;
  // A closed pipe (`codex-sync jobs | head`) is not an error of the command.
  stream.on("error", (error) => {
    if (errorCode(error) === "EPIPE") broken = true;
    else throw error;
  });
  const text: TextOutput = {
    isTTY,
    write(chunk: string) {
      if (!broken && !stream.destroyed) stream.write(chunk);
    },
    writeBytes(bytes: Uint8Array) {
      if (broken || stream.destroyed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        // Resolves once written out, or at once when the stream can take more.
        if (stream.write(bytes, () => resolve())) resolve();
      });
    },
    columns() {
      if (!isTTY) return undefined;
      return stream.columns || (name === "stdout" ? 80 : undefined);
    },
  };
  /** Resolves once everything written so far has been handed to the OS. */
  const flush = (): Promise<void> =>
    broken || stream.destroyed
      ? Promise.resolve()
      : new Promise((resolve) => stream.write("", () => resolve()));
  return { text, flush };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return errorCode(error) === "EPERM";
  }
}

const locks = lockFiles({
  pid: process.pid,
  async createExclusive(path, text) {
    let file;
    try {
      file = await open(path, "wx");
    } catch (error) {
      if (errorCode(error) === "EEXIST") return false;
      throw error;
    }
    try {
      await file.writeFile(text);
    } finally {
      await file.close();
    }
    return true;
  },
  readText: (path) => readFile(path, "utf8").catch(() => ""),
  remove: (path) => rm(path, { force: true }).catch(() => {}),
  removeSync(path) {
    try {
      rmSync(path, { force: true });
    } catch { /* already gone */ }
  },
  processAlive,
});

function readFileStream(path: string, start = 0): ReadableStream<Uint8Array> {
  return fileStream(async () => {
    const file = await open(path, "r");
    let position = start;
    return {
      async read(buffer) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
        position += bytesRead;
        return bytesRead === 0 ? null : bytesRead;
      },
      close: () => file.close(),
    };
  });
}

let temporaries = 0;

async function writeFileAtomic(path: string, pieces: AsyncIterable<Uint8Array>): Promise<void> {
  const temporary = `${path}.codex-sync-${process.pid}-${++temporaries}.tmp`;
  const file = await open(temporary, "wx");
  try {
    try {
      for await (const piece of pieces) {
        let written = 0;
        while (written < piece.length) {
          written += (await file.write(piece, written, piece.length - written)).bytesWritten;
        }
      }
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {});
    throw error;
  }
}

function watchDirs(
  dirs: readonly string[],
  onChange: (paths: string[]) => void,
  onError: (error: unknown) => void,
): FileWatcher {
  const watchers: ReturnType<typeof watchDir>[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const watcher of watchers) watcher.close();
  };
  try {
    for (const dir of dirs) {
      const watcher = watchDir(dir, { recursive: true }, (_event, name) => {
        onChange([name ? join(dir, String(name)) : dir]);
      });
      watcher.on("error", (error) => {
        if (closed) return;
        close();
        onError(error);
      });
      watchers.push(watcher);
    }
  } catch (error) {
    close();
    throw error;
  }
  return { close };
}

/** The signals that stop a command. */
const STOP_SIGNALS: NodeJS.Signals[] = process.platform === "win32"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

let outputs: { stdout: NodeOutput; stderr: NodeOutput } | undefined;

/** The process's outputs, set up once (each adds an error listener to its stream). */
function processOutputs(): { stdout: NodeOutput; stderr: NodeOutput } {
  return outputs ??= {
    stdout: output(process.stdout, "stdout"),
    stderr: output(process.stderr, "stderr"),
  };
}

async function answer(
  handler: (request: Request) => Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, {
    method,
    headers,
    signal: abort.signal,
    ...(hasBody
      ? { body: Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>, duplex: "half" }
      : {}),
  } as RequestInit);
  let response: Response;
  try {
    response = await handler(request);
  } catch {
    response = new Response("internal error", { status: 500 });
  }
  res.statusCode = response.status;
  response.headers.forEach((value, name) => res.appendHeader(name, value));
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((resolve) => res.once("drain", resolve));
      if (abort.signal.aborted) break;
    }
  } catch {
    /* the client went away */
  } finally {
    reader.cancel().catch(() => {});
    res.end();
  }
}

function serveHttp(
  { hostname, port }: { hostname: string; port: number },
  handler: (request: Request) => Promise<Response>,
): Promise<HttpServer> {
  const server = createServer((req, res) => void answer(handler, req, res));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      const address = server.address() as AddressInfo;
      resolve({
        hostname: address.address,
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** The CLI's host on Node.js. */
export function nodeHost(): CliHost {
  const { stdout, stderr } = processOutputs();
  return {
    stdout: stdout.text,
    stderr: stderr.text,
    // Same as the Deno host, which `deno task cli` runs from the repository root.
    cwd: () => process.env.CODEX_SYNC_CWD || process.cwd(),
    env: (name) => process.env[name],
    async stat(path): Promise<FileInfo | undefined> {
      try {
        const info = await stat(path, { bigint: true });
        return {
          isFile: info.isFile(),
          isDirectory: info.isDirectory(),
          size: Number(info.size),
          mtimeMs: Number(info.mtimeMs),
          mtimeNs: String(info.mtimeNs),
          fileId: `${info.dev}:${info.ino}`,
        };
      } catch (error) {
        if (errorCode(error) === "ENOENT") return undefined;
        throw error;
      }
    },
    realPath: (path) => realpath(path),
    async *readDir(path): AsyncIterable<DirEntry> {
      for (const entry of await readdir(path, { withFileTypes: true })) {
        yield {
          name: entry.name,
          isFile: entry.isFile(),
          isDirectory: entry.isDirectory(),
          isSymlink: entry.isSymbolicLink(),
        };
      }
    },
    readFile: readFileStream,
    mkdir: async (path) => {
      await mkdir(path, { recursive: true });
    },
    writeFile: writeFileAtomic,
    watch: watchDirs,
    lock: (path) => locks.take(path),
    // A `file://` template is a specifier `deno publish` can analyze (any other expression
    // warns unanalyzable-dynamic-import); the pathname is already percent-encoded.
    importModule: (path) => import(`file://${pathToFileURL(path).pathname}`),
    onInterrupt(listener) {
      for (const signal of STOP_SIGNALS) process.on(signal, listener);
      return () => {
        for (const signal of STOP_SIGNALS) process.off(signal, listener);
      };
    },
    serve: serveHttp,
    exit(code) {
      locks.releaseAllSync();
      process.exit(code);
    },
  };
}

/** Runs `codex-sync` with the process's arguments and exits with its exit code. */
export async function runNodeCli(argv: readonly string[] = process.argv.slice(2)): Promise<never> {
  const code = await runCli(argv, nodeHost());
  // process.exit drops output still queued on a pipe (asynchronous on some platforms).
  const { stdout, stderr } = processOutputs();
  await Promise.all([stdout.flush(), stderr.flush()]);
  // A lock still held now has no process behind it once this one ends.
  locks.releaseAllSync();
  process.exit(code);
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) await runNodeCli();
