/**
 * Benchmark (not a test): the HTTP transport's cost. Figure 11: a 64 MiB
 * `syncConversation` in 1 MiB chunks through `createHttpSyncAdapter` →
 * `createSyncHttpHandler` (on `Deno.serve`, 127.0.0.1) → the memory adapter, against the
 * same sync straight into the memory adapter in-process. The figure is the throughput
 * ratio (in-process time ÷ HTTP time, target ≥ 0.7), the median over alternating rounds
 * (A B, B A, … after an unrecorded warm-up), with a fresh memory adapter per run.
 *
 * The server runs in a child process (this script with `--serve`), as a deployed one
 * would: the figure. The same with client and server sharing this process (one JS
 * thread doing both sides' work) is measured too and reported in the details.
 *
 * Run: deno run --v8-flags=--expose-gc --allow-read --allow-run --allow-net=127.0.0.1
 *        scripts/bench_http.ts [--quick]
 * Output: JSON on stdout (`figures`, see scripts/bench/figure.ts), progress on stderr.
 */

import { type Job, syncConversation } from "../mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
} from "../adapters/http/mod.ts";
import { alternate, emit, type Figure, log, ms, round, stats } from "./bench/figure.ts";

const MIB = 1024 * 1024;

function payload(bytes: number, seed = 1): Uint8Array {
  const out = new Uint8Array(bytes);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state;
    out[i + 1] = state >>> 8;
    out[i + 2] = state >>> 16;
    out[i + 3] = state >>> 24;
  }
  return out;
}

const roundsOf = (values: number[]) => values.map((value) => round(value, 2));

function check(job: Job): void {
  if (job.state !== "succeeded") throw new Error(`benchmark job ended ${job.state}`);
}

async function syncInProcess(bytes: Uint8Array): Promise<void> {
  const adapter = createMemoryAdapter({ handler: { apply() {} } });
  try {
    const { job } = await syncConversation(adapter, {
      scope: "bench",
      conversationId: "bench",
      payload: bytes,
      format: "bytes",
      chunkSize: MIB,
    });
    check(job);
  } finally {
    await adapter.close();
  }
}

const TOKEN = "bench-token";
const RESET_PATH = "/bench/reset";

/**
 * A sync server over a memory adapter that `POST /bench/reset` replaces with a fresh
 * one (so every run starts empty, on a warm server).
 */
function benchServer(): Deno.HttpServer<Deno.NetAddr> {
  let adapter = createMemoryAdapter({ handler: { apply() {} } });
  const authenticate = createBearerAuthenticator([{ token: TOKEN, scope: "bench" }]);
  let handler = createSyncHttpHandler({ adapter, authenticate });
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (new URL(request.url).pathname === RESET_PATH) {
      await adapter.close();
      adapter = createMemoryAdapter({ handler: { apply() {} } });
      handler = createSyncHttpHandler({ adapter, authenticate });
      return new Response(null, { status: 204 });
    }
    return await handler(request);
  });
}

/** The server in a child process: `--serve` prints its port, then serves until killed. */
async function childServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", new URL(import.meta.url).pathname, "--serve"],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the bench server exited before listening");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const port = Number(text.trim());
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Syncs `bytes` through the server at `url` (reset to an empty adapter first). */
async function syncOverHttp(url: string, bytes: Uint8Array): Promise<void> {
  await (await fetch(url + RESET_PATH, { method: "POST" })).body?.cancel();
  const client = await createHttpSyncAdapter({ url, token: TOKEN });
  try {
    const { job } = await syncConversation(client, {
      scope: "bench",
      conversationId: "bench",
      payload: bytes,
      format: "bytes",
      chunkSize: MIB,
    });
    check(job);
  } finally {
    client.close();
  }
}

async function httpFigure(quick: boolean): Promise<Figure> {
  const bytes = payload(64 * MIB, 11);
  const rounds = quick ? 5 : 15;
  const child = await childServer();
  let runs;
  try {
    runs = await alternate(
      rounds,
      () => syncInProcess(bytes),
      () => syncOverHttp(child.url, bytes),
    );
  } finally {
    await child.stop();
  }
  const local = benchServer();
  let shared;
  try {
    const url = `http://127.0.0.1:${local.addr.port}`;
    shared = await alternate(rounds, () => syncInProcess(bytes), () => syncOverHttp(url, bytes));
  } finally {
    await local.shutdown();
  }
  // Throughput over HTTP ÷ throughput in-process = in-process time ÷ HTTP time.
  const ratio = stats(runs.ratios.map((r) => 1 / r));
  const sharedRatio = stats(shared.ratios.map((r) => 1 / r));
  const http = stats(runs.subjectMs);
  const inProcess = stats(runs.baselineMs);
  return {
    figure: 11,
    name: "HTTP on loopback ÷ in-process, memory adapter, 64 MiB in 1 MiB chunks (throughput)",
    measured: `${ms(http.median)} (${(64 / (http.median / 1000)).toFixed(0)} MiB/s; ` +
      `server in its own process; ${sharedRatio.median.toFixed(2)} with both in one)`,
    baseline: `${ms(inProcess.median)} (${
      (64 / (inProcess.median / 1000)).toFixed(0)
    } MiB/s in-process)`,
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    target: "≥ 0.7",
    met: ratio.median >= 0.7,
    details: {
      note: "Deno.serve on 127.0.0.1 in a child process, the runtime's fetch as the client",
      httpMs: roundsOf(runs.subjectMs),
      inProcessMs: roundsOf(runs.baselineMs),
      throughputRatios: roundsOf(runs.ratios.map((r) => 1 / r)),
      sameProcess: {
        note: "client and server sharing one process (one JS thread for both sides)",
        ratio: sharedRatio,
        httpMs: roundsOf(shared.subjectMs),
        inProcessMs: roundsOf(shared.baselineMs),
        cpuTimeRatio: stats(shared.cpuRatios!),
      },
    },
  };
}

async function main(): Promise<void> {
  if (Deno.args.includes("--serve")) {
    const server = benchServer();
    console.log(server.addr.port);
    return;
  }
  const quick = Deno.args.includes("--quick");
  log("bench:http", "11 HTTP ÷ in-process, 64 MiB");
  const figures = [await httpFigure(quick)];
  emit(figures, { gcExposed: "gc" in globalThis, quick });
}

if (import.meta.main) await main();
