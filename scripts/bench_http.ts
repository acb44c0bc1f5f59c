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
 * Figure 12: many small conversations, the shape of figure 7's Postgres one — 2 000
 * one-record conversations through `syncConversation`, 16 in flight, into a backend where
 * one adapter takes the calls and 4 worker adapters over its store run the jobs — through
 * HTTP (the same child server, memory backend) against the same in-process; the ratio is
 * again in-process time ÷ HTTP time. Each conversation costs the client 3 requests
 * (`getLatestSource` for an extension base, `uploadSource`, one long-poll), so this
 * figure measures the transport's per-request cost where figure 11 measures its
 * throughput; the details give the CPU time per conversation of both processes.
 *
 * Run: deno run --v8-flags=--expose-gc --allow-read --allow-run --allow-net=127.0.0.1
 *        scripts/bench_http.ts [--quick] [--small (figure 12 only)] [--sources N]
 * Output: JSON on stdout (`figures`, see scripts/bench/figure.ts), progress on stderr.
 */

import { type Job, type SyncAdapter, syncConversation } from "../mod.ts";
import process from "node:process";
import { createMemoryAdapter, type MemoryAdapter, MemoryStore } from "../memory/mod.ts";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
} from "../adapters/http/mod.ts";
import {
  alternate,
  alternateTimed,
  collectGarbage,
  emit,
  type Figure,
  log,
  ms,
  numberOption,
  round,
  stats,
} from "./bench/figure.ts";

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
const CPU_PATH = "/bench/cpu";
const noop = { apply() {} };

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once. */
async function bounded(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}

/**
 * A memory backend: with `workers` 0, one adapter in auto mode (it runs its own jobs);
 * otherwise a manual adapter that takes the calls and `workers` auto adapters over the
 * same store that run the jobs (as figure 7's Postgres setup: an uploader, 4 workers).
 */
function memoryBackend(workers: number): { adapter: MemoryAdapter; close(): Promise<void> } {
  if (workers === 0) {
    const adapter = createMemoryAdapter({ handler: noop });
    return { adapter, close: () => adapter.close() };
  }
  const store = new MemoryStore();
  const adapter = createMemoryAdapter({ handler: noop, store, mode: "manual" });
  const runners = Array.from(
    { length: workers },
    (_, w) => createMemoryAdapter({ handler: noop, store, workerId: `bench-worker-${w}` }),
  );
  return {
    adapter,
    async close() {
      for (const runner of runners) await runner.close();
      await adapter.close();
    },
  };
}

/**
 * A sync server over a memory backend that `POST /bench/reset?workers=N` replaces with a
 * fresh one (so every run starts empty, on a warm server).
 */
function benchServer(): Deno.HttpServer<Deno.NetAddr> {
  let backend = memoryBackend(0);
  const authenticate = createBearerAuthenticator([{ token: TOKEN, scope: "bench" }]);
  let handler = createSyncHttpHandler({ adapter: backend.adapter, authenticate });
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname === CPU_PATH) return Response.json({ cpuMs: cpuMs() });
    if (url.pathname === RESET_PATH) {
      await backend.close();
      backend = memoryBackend(Number(url.searchParams.get("workers") ?? 0));
      handler = createSyncHttpHandler({ adapter: backend.adapter, authenticate });
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

const SMALL_WORKERS = 4;
const SMALL_PARALLEL = 16;

/** Wall-clock and CPU milliseconds of one run (CPU: every process involved, all threads). */
interface SmallRun {
  ms: number;
  cpuMs: number;
  /** HTTP runs: the server's share of `cpuMs`, and the client's requests. */
  serverCpuMs?: number;
  requests?: number;
}

/** This process's CPU milliseconds so far (user + system, all threads). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * `sources` one-record conversations through `syncConversation`, `SMALL_PARALLEL` in
 * flight, each awaited to `succeeded`.
 */
async function syncSmallSources(adapter: SyncAdapter, sources: number): Promise<void> {
  await bounded(sources, SMALL_PARALLEL, async (i) => {
    const { job } = await syncConversation(adapter, {
      scope: "bench",
      conversationId: `conversation-${i}`,
      payload: [{ type: "message", n: i, text: "a small conversation" }],
    });
    check(job);
  });
}

async function smallSourcesInProcess(sources: number): Promise<SmallRun> {
  const backend = memoryBackend(SMALL_WORKERS);
  try {
    collectGarbage();
    const cpu = cpuMs();
    const started = performance.now();
    await syncSmallSources(backend.adapter, sources);
    return { ms: performance.now() - started, cpuMs: cpuMs() - cpu };
  } finally {
    await backend.close();
  }
}

/** The server process's CPU milliseconds so far (`GET /bench/cpu`). */
async function serverCpuMs(url: string): Promise<number> {
  const response = await fetch(url + CPU_PATH);
  return ((await response.json()) as { cpuMs: number }).cpuMs;
}

/** The same through the server at `url`, reset first to a backend with the workers. */
async function smallSourcesOverHttp(url: string, sources: number): Promise<SmallRun> {
  const reset = await fetch(`${url}${RESET_PATH}?workers=${SMALL_WORKERS}`, { method: "POST" });
  await reset.body?.cancel();
  let requests = 0;
  const client = await createHttpSyncAdapter({
    url,
    token: TOKEN,
    fetch: (request) => {
      requests++;
      return fetch(request);
    },
  });
  try {
    requests = 0;
    collectGarbage();
    const server = await serverCpuMs(url);
    const cpu = cpuMs();
    const started = performance.now();
    await syncSmallSources(client, sources);
    const ms = performance.now() - started;
    const clientCpuMs = cpuMs() - cpu;
    const serverCpu = (await serverCpuMs(url)) - server;
    return { ms, cpuMs: clientCpuMs + serverCpu, serverCpuMs: serverCpu, requests };
  } finally {
    client.close();
  }
}

async function smallSourcesFigure(quick: boolean, sources: number): Promise<Figure> {
  const rounds = quick ? 3 : 7;
  const local: SmallRun[] = [];
  const remote: SmallRun[] = [];
  const child = await childServer();
  let runs;
  try {
    runs = await alternateTimed(
      rounds,
      async () => (local[local.length] = await smallSourcesInProcess(sources)).ms,
      async () => (remote[remote.length] = await smallSourcesOverHttp(child.url, sources)).ms,
    );
  } finally {
    await child.stop();
  }
  // Only the recorded rounds (alternateTimed drops its warm-up round).
  const inProcessRuns = local.slice(-rounds);
  const httpRuns = remote.slice(-rounds);
  const ratio = stats(runs.ratios.map((r) => 1 / r));
  const http = stats(runs.subjectMs);
  const inProcess = stats(runs.baselineMs);
  const perSecond = (msTaken: number) => (sources / (msTaken / 1000)).toFixed(0);
  const cpuPer = (list: SmallRun[], pick: (run: SmallRun) => number) =>
    round(stats(list.map((run) => pick(run) / sources)).median, 3);
  const httpCpu = cpuPer(httpRuns, (run) => run.cpuMs);
  const inProcessCpu = cpuPer(inProcessRuns, (run) => run.cpuMs);
  const requests = stats(httpRuns.map((run) => run.requests! / sources)).median;
  const count = sources.toLocaleString("en");
  return {
    figure: 12,
    name: `HTTP on loopback ÷ in-process, memory adapter, ${count} one-chunk conversations ` +
      `(syncConversation, ${SMALL_PARALLEL} in flight, ${SMALL_WORKERS} workers; throughput)`,
    measured: `${ms(http.median)} (${perSecond(http.median)} conversations/s, ` +
      `${round(requests, 2)} requests and ${httpCpu} ms CPU each; server in its own process)`,
    baseline: `${ms(inProcess.median)} (${perSecond(inProcess.median)} conversations/s, ` +
      `${inProcessCpu} ms CPU each)`,
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    details: {
      note: "Deno.serve on 127.0.0.1 in a child process, the runtime's fetch as the client; " +
        `the server's backend is a manual memory adapter taking the calls and ${SMALL_WORKERS} ` +
        "auto memory adapters over its store running the jobs; the same in-process. CPU is " +
        "user + system time of every thread of the processes involved (client and server)",
      sources,
      httpMs: roundsOf(runs.subjectMs),
      inProcessMs: roundsOf(runs.baselineMs),
      throughputRatios: roundsOf(runs.ratios.map((r) => 1 / r)),
      requestsPerConversation: requests,
      cpuMsPerConversation: {
        http: httpCpu,
        httpServer: cpuPer(httpRuns, (run) => run.serverCpuMs!),
        inProcess: inProcessCpu,
      },
      cpuTimeRatio: stats(httpRuns.map((run, i) => run.cpuMs / inProcessRuns[i].cpuMs)),
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
  const only = Deno.args.includes("--small") ? "small" : undefined;
  const sources = numberOption(Deno.args, "sources", quick ? 500 : 2000);
  const figures: Figure[] = [];
  if (only === undefined) {
    log("bench:http", "11 HTTP ÷ in-process, 64 MiB");
    figures.push(await httpFigure(quick));
  }
  log("bench:http", `12 HTTP ÷ in-process, ${sources} one-chunk conversations`);
  figures.push(await smallSourcesFigure(quick, sources));
  emit(figures, { gcExposed: "gc" in globalThis, quick });
}

if (import.meta.main) await main();
