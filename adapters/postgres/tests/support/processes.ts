/** Worker processes for the fault test: spawned, SIGKILLed and respawned. */

import { fileURLToPath as fromFileUrl } from "node:url";

const ROOT = fromFileUrl(new URL("../../../../", import.meta.url));
const WORKER = fromFileUrl(new URL("./fault_worker.ts", import.meta.url));

/** One worker slot: at most one live process at a time. */
export class WorkerProcess {
  readonly id: string;
  readonly #env: Record<string, string>;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<unknown> = Promise.resolve();
  #stderr: string[] = [];
  /** Processes started in this slot so far. */
  starts = 0;

  constructor(id: string, env: Record<string, string>) {
    this.id = id;
    this.#env = env;
  }

  /** Whatever the slot's processes wrote to stderr (for a failure report). */
  get stderr(): string {
    return this.#stderr.join("");
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  start(): void {
    if (this.#child) return;
    this.starts++;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-env", "--allow-net=127.0.0.1", "--allow-read", WORKER],
      cwd: ROOT,
      env: { ...this.#env, FAULT_WORKER_ID: `${this.id}.${this.starts}`, NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const decoder = new TextDecoder();
    const drain = (async () => {
      for await (const bytes of child.stderr) this.#stderr.push(decoder.decode(bytes));
    })();
    this.#exited = Promise.all([child.status, drain]);
  }

  /** SIGKILL: no cleanup, open transactions die with the connection. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#exited;
  }
}
