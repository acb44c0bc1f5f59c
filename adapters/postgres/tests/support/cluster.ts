/**
 * A PostgreSQL server for the tests: `DATABASE_URL` when set, else a throwaway cluster
 * of the machine's PostgreSQL (Debian's /usr/lib/postgresql/<version>/bin) in a temp
 * dir, listening on 127.0.0.1 only, on a free port, with its socket in the temp dir. As
 * root it runs as the unprivileged `postgres` user (PostgreSQL refuses root). It is
 * stopped and deleted by `dispose()`, and also when the test process exits or is
 * interrupted.
 */

import { execFile, spawnSync } from "node:child_process";
import { readdirSync, rmSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { scratchDir } from "./scratch.ts";

// node:* APIs only (no Deno.*): the conformance suite on a server also runs under Bun
// from source and under Node against the built npm packages.

/** A server the tests can use. */
export interface TestServer {
  /** `postgres://…` for the `postgres` database. */
  readonly url: string;
  /** False for `DATABASE_URL` (not ours to stop or restart). */
  readonly controllable: boolean;
  /** Stops the server (`pg_ctl stop -m fast`), keeping its data and port. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it for good and deletes its files. */
  dispose(): Promise<void>;
}

function postgresBinDir(): string {
  const versions: number[] = [];
  try {
    for (const name of readdirSync("/usr/lib/postgresql")) {
      const version = Number(name);
      if (Number.isInteger(version)) {
        try {
          statSync(`/usr/lib/postgresql/${name}/bin/initdb`);
          versions.push(version);
        } catch { /* not a server install */ }
      }
    }
  } catch { /* no PostgreSQL installed */ }
  if (versions.length === 0) {
    throw new Error(
      "no PostgreSQL server found in /usr/lib/postgresql/*/bin (apt-get install postgresql), " +
        "and DATABASE_URL is not set",
    );
  }
  return `/usr/lib/postgresql/${Math.max(...versions)}/bin`;
}

/** The global event target that gets "unload" at exit (Deno; absent in Node and Bun). */
function unloadTarget(): EventTarget | undefined {
  const target = globalThis as unknown as Partial<EventTarget> & { Deno?: unknown };
  return target.Deno !== undefined && typeof target.addEventListener === "function"
    ? target as EventTarget
    : undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** A program and its arguments. */
interface Command {
  path: string;
  args: string[];
}

/** Runs a PostgreSQL tool, as `postgres` when we are root. */
function command(bin: string, tool: string, args: string[]): Command {
  const path = join(bin, tool);
  return isRoot()
    ? { path: "runuser", args: ["-u", "postgres", "--", path, ...args] }
    : { path, args };
}

/** Runs `cmd` to its end (output captured); fails with its output when it fails. */
function run(cmd: Command, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd.path, cmd.args, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`${what} failed (exit ${error.code}): ${stderr}${stdout}`));
      } else resolve();
    });
    child.stdin?.end();
  });
}

class ThrowawayCluster implements TestServer {
  readonly controllable = true;
  readonly #bin: string;
  readonly #dir: string;
  readonly #durable: boolean;
  #port = 0;
  #running = false;
  #disposed = false;
  readonly #onExit = () => this.#disposeSync();
  readonly #onSignal = () => {
    this.#disposeSync();
    process.exit(130);
  };

  constructor(bin: string, dir: string, durable: boolean) {
    this.#bin = bin;
    this.#dir = dir;
    this.#durable = durable;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.#port}/postgres`;
  }

  get #data(): string {
    return join(this.#dir, "data");
  }

  async init(): Promise<void> {
    process.on("exit", this.#onExit);
    process.on("SIGINT", this.#onSignal);
    process.on("SIGTERM", this.#onSignal);
    // Deno does not emit node's "exit" when `deno test` ends (a filtered run whose tests
    // never ran, so no `after` hook disposed the cluster): its "unload" event does.
    unloadTarget()?.addEventListener("unload", this.#onExit);
    if (isRoot()) await run({ path: "chown", args: ["postgres", this.#dir] }, "chown");
    await run(
      command(this.#bin, "initdb", [
        "-D",
        this.#data,
        "--auth=trust",
        "--username=postgres",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
      ]),
      "initdb",
    );
    for (let attempt = 1;; attempt++) {
      this.#port = await freePort();
      try {
        await this.start();
        return;
      } catch (error) {
        // Another process may have taken the port in between: try another one.
        if (attempt >= 3) throw error;
      }
    }
  }

  async start(): Promise<void> {
    const options = [
      "-c listen_addresses=127.0.0.1",
      `-p ${this.#port}`,
      `-k ${this.#dir}`,
      // A throwaway cluster needs no durability across an OS crash (benchmarks do).
      ...(this.#durable
        ? []
        : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
      "-c max_connections=200",
      // Segments in the data dir, so even an immediate stop leaves nothing behind.
      "-c dynamic_shared_memory_type=mmap",
    ].join(" ");
    await run(
      command(this.#bin, "pg_ctl", [
        "start",
        "-D",
        this.#data,
        "-l",
        join(this.#dir, "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
      ]),
      "pg_ctl start",
    );
    this.#running = true;
  }

  async stop(): Promise<void> {
    await run(
      command(this.#bin, "pg_ctl", ["stop", "-D", this.#data, "-m", "fast", "-w"]),
      "pg_ctl stop",
    );
    this.#running = false;
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    process.off("exit", this.#onExit);
    process.off("SIGINT", this.#onSignal);
    process.off("SIGTERM", this.#onSignal);
    unloadTarget()?.removeEventListener("unload", this.#onExit);
    if (this.#running) {
      await run(
        command(this.#bin, "pg_ctl", ["stop", "-D", this.#data, "-m", "fast", "-w"]),
        "pg_ctl stop",
      )
        .catch(() => {});
      this.#running = false;
    }
    await rm(this.#dir, { recursive: true, force: true }).catch(() => {});
  }

  #disposeSync(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#running) {
      const stop = command(this.#bin, "pg_ctl", [
        "stop",
        "-D",
        this.#data,
        "-m",
        "immediate",
        "-w",
      ]);
      spawnSync(stop.path, stop.args, { stdio: "ignore" });
    }
    try {
      rmSync(this.#dir, { recursive: true, force: true });
    } catch { /* best effort */ }
  }
}

class ExternalServer implements TestServer {
  readonly controllable = false;
  readonly url: string;

  constructor(url: string) {
    this.url = url;
  }

  stop(): Promise<void> {
    return Promise.reject(new Error("DATABASE_URL points at a server the tests do not control"));
  }

  start(): Promise<void> {
    return this.stop();
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/** How to start the test server. */
export interface TestServerOptions {
  /** Start a throwaway cluster even when `DATABASE_URL` is set (to stop and start it). */
  requireControl?: boolean;
  /** Keep fsync and synchronous commit on, with the data on disk (for benchmarks). */
  durable?: boolean;
}

/** `DATABASE_URL`'s server, or a fresh throwaway cluster. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const url = process.env.DATABASE_URL;
  if (url && !options.requireControl) return new ExternalServer(url);
  const durable = options.durable ?? false;
  const dir = durable
    ? await mkdtemp(join(tmpdir(), "codex-sync-pg-"))
    : await scratchDir("codex-sync-pg-");
  const cluster = new ThrowawayCluster(postgresBinDir(), dir, durable);
  try {
    await cluster.init();
  } catch (error) {
    await cluster.dispose();
    throw error;
  }
  return cluster;
}
