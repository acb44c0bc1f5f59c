/**
 * Benchmark (not a test), in-process, memory adapter: figures 1–4 of issue 6 and the
 * memory half of figure 6. Every ratio is taken side by side in this run; where a figure
 * is measured over several rounds, the rounds alternate baseline and subject (A B, B A,
 * …, after an unrecorded warm-up round), every round is kept, and the figure is the
 * median of the per-round ratios, with their min and max.
 *
 * 1. checksum: the client's chunk hashing (chunker + SHA-256 per chunk + composite)
 *    throughput ÷ raw `crypto.subtle.digest` over the same chunks (target ≥ 0.8)
 * 2. e2e-memory: 64 MiB in 1 MiB chunks, time to verified terminal ÷ time to SHA-256
 *    the same bytes once (target ≤ 3.0, issue 17; ≤ 4 in issue 6)
 * 3. per-chunk: 20 000 chunks of 200 B end to end ÷ a loop doing the same digests
 * 4. scaling: time per chunk at 1 000, 10 000 and 100 000 chunks; 100 000 ÷ 1 000
 *    (target ≤ 1.5)
 * 6. wait latency: terminal commit → `waitForTerminal` resolving (memory adapter)
 *
 * Run: deno run --v8-flags=--expose-gc scripts/bench_memory.ts [--quick]
 * (or all figures: deno task bench). With `gc` exposed, garbage is collected before
 * every timed run, so no run pays for the one before it.
 * Output: JSON on stdout (`figures`, see scripts/bench/figure.ts), progress on stderr.
 */

import { chunkBytes, compositeDigest, type Job, sha256Hex, syncConversation } from "../mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { hexDigestToBytes, IncrementalSha256 } from "../src/checksum.ts";
import {
  alternate,
  emit,
  type Figure,
  log,
  ms,
  quantile,
  round,
  stats,
  time,
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

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    out.push(bytes.subarray(offset, offset + size));
  }
  return out;
}

async function rawDigests(chunks: Uint8Array[]): Promise<void> {
  for (const chunk of chunks) {
    await crypto.subtle.digest("SHA-256", chunk as Uint8Array<ArrayBuffer>);
  }
}

const roundsOf = (values: number[]) => values.map((value) => round(value, 2));

async function checksumFigure(quick: boolean): Promise<Figure> {
  const bytes = payload(64 * MIB);
  const chunks = split(bytes, MIB);
  const clientHashing = async () => {
    const composite = new IncrementalSha256();
    for await (const chunk of chunkBytes(bytes, MIB)) {
      composite.update(hexDigestToBytes(await sha256Hex(chunk.bytes)));
    }
    composite.digestHex();
  };
  const runs = await alternate(quick ? 5 : 11, () => rawDigests(chunks), clientHashing);
  // Throughput ratio: raw time ÷ client time, per round.
  const ratio = stats(runs.ratios.map((r) => 1 / r));
  const client = stats(runs.subjectMs);
  const raw = stats(runs.baselineMs);
  return {
    figure: 1,
    name: "client chunk hashing ÷ raw crypto.subtle.digest, 64 MiB in 1 MiB chunks",
    measured: `${ms(client.median)} (${(64 / (client.median / 1000)).toFixed(0)} MiB/s)`,
    baseline: `${ms(raw.median)} (${(64 / (raw.median / 1000)).toFixed(0)} MiB/s)`,
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    target: "≥ 0.8",
    met: ratio.median >= 0.8,
    details: {
      mib: 64,
      chunkBytes: MIB,
      clientMs: roundsOf(runs.subjectMs),
      rawMs: roundsOf(runs.baselineMs),
    },
  };
}

/** Syncs `bytes` through a fresh memory adapter; returns the verified job. */
async function syncThroughMemory(bytes: Uint8Array, chunkSize: number): Promise<Job> {
  const adapter = createMemoryAdapter({ handler: { apply() {} } });
  try {
    const result = await syncConversation(adapter, {
      scope: "bench",
      conversationId: "bench",
      payload: bytes,
      format: "bytes",
      chunkSize,
    });
    if (result.job.state !== "succeeded") throw new Error("benchmark job did not succeed");
    return result.job;
  } finally {
    await adapter.close();
  }
}

async function endToEndFigure(quick: boolean): Promise<Figure> {
  const bytes = payload(64 * MIB, 2);
  const chunks = split(bytes, MIB);
  const runs = await alternate(
    quick ? 7 : 21,
    () => rawDigests(chunks),
    () => syncThroughMemory(bytes, MIB),
  );
  const ratio = stats(runs.ratios);
  const cpu = stats(runs.cpuRatios!);
  const e2e = stats(runs.subjectMs);
  const once = stats(runs.baselineMs);
  return {
    figure: 2,
    name: "end to end, memory adapter, 64 MiB in 1 MiB chunks ÷ SHA-256 once",
    measured: `${ms(e2e.median)} (${(64 / (e2e.median / 1000)).toFixed(0)} MiB/s; ` +
      `CPU time ${cpu.median.toFixed(1)}× the baseline's)`,
    baseline: ms(once.median),
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    target: "≤ 3.0",
    met: ratio.median <= 3,
    details: {
      note: "every byte is hashed twice: by the client and by the engine on append; the " +
        "job applies the engine's verified copy (policy.uploadCacheBytes), not a re-read",
      e2eMs: roundsOf(runs.subjectMs),
      hashOnceMs: roundsOf(runs.baselineMs),
      ratios: roundsOf(runs.ratios),
      cpuTimeRatio: cpu,
      cpuTimeRatios: roundsOf(runs.cpuRatios!),
    },
  };
}

async function perChunkFigure(quick: boolean): Promise<Figure> {
  const count = quick ? 5_000 : 20_000;
  const bytes = payload(count * 200, 3);
  const chunks = split(bytes, 200);
  const runs = await alternate(
    quick ? 3 : 5,
    () => rawDigests(chunks),
    () => syncThroughMemory(bytes, 200),
  );
  const ratio = stats(runs.ratios);
  const e2e = stats(runs.subjectMs);
  const loop = stats(runs.baselineMs);
  return {
    figure: 3,
    name: `${count.toLocaleString("en")} chunks of 200 B end to end ÷ the same digests in a loop`,
    measured: `${ms(e2e.median)} (${((e2e.median * 1000) / count).toFixed(0)} µs/chunk)`,
    baseline: `${ms(loop.median)} (${((loop.median * 1000) / count).toFixed(1)} µs/chunk)`,
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    details: { count, e2eMs: roundsOf(runs.subjectMs), digestLoopMs: roundsOf(runs.baselineMs) },
  };
}

async function scalingFigure(quick: boolean): Promise<Figure> {
  // Each size: the median of its rounds (small sizes get more), after a warm-up run.
  const sizes: [count: number, rounds: number][] = quick
    ? [[1_000, 5], [10_000, 1]]
    : [[1_000, 7], [10_000, 3], [100_000, 1]];
  await syncThroughMemory(payload(1_000 * 64, 4), 64);
  const perChunk: Record<string, number> = {};
  const runsMs: Record<string, number[]> = {};
  // Half of each size's rounds on the way up, the rest on the way down (1 000, 10 000,
  // 100 000, 10 000, 1 000), so that a slow patch of the machine is not all on one size.
  const timings = new Map(sizes.map(([count]) => [count, [] as number[]]));
  const passes = [sizes.map(([c, r]) => [c, Math.ceil(r / 2)]), sizes.map(([c, r]) => [c, r >> 1])];
  for (const pass of [passes[0], passes[1].reverse()]) {
    for (const [count, rounds] of pass) {
      const bytes = payload(count * 64, 4);
      for (let i = 0; i < rounds; i++) {
        timings.get(count)!.push(await time(() => syncThroughMemory(bytes, 64)));
      }
    }
  }
  for (const [count, runs] of timings) {
    runsMs[String(count)] = roundsOf(runs);
    perChunk[String(count)] = round((stats(runs).median * 1000) / count, 2);
  }
  const largest = sizes[sizes.length - 1][0];
  const ratio = perChunk[String(largest)] / perChunk["1000"];
  return {
    figure: 4,
    name: `scaling: µs per chunk at ${largest.toLocaleString("en")} ÷ at 1,000 chunks (64 B)`,
    measured: `${perChunk[String(largest)].toFixed(0)} µs/chunk`,
    baseline: `${perChunk["1000"].toFixed(0)} µs/chunk`,
    value: ratio,
    unit: "ratio",
    target: "≤ 1.5",
    met: ratio <= 1.5,
    details: { microsecondsPerChunk: perChunk, runsMs },
  };
}

async function waitLatencyFigure(quick: boolean): Promise<Figure> {
  const samples: number[] = [];
  for (let i = 0; i < (quick ? 20 : 100); i++) {
    let committedAt = 0;
    const adapter = createMemoryAdapter({ handler: { apply() {} }, mode: "manual" });
    adapter.store.onJobWrite((job) => {
      if (job.state === "succeeded") committedAt = performance.now();
    });
    const bytes = payload(1024, i + 1);
    const sha256 = await sha256Hex(bytes);
    const { job } = await adapter.uploadSource({
      scope: "bench",
      conversationId: "wait",
      chunks: [{ index: 0, bytes, sha256 }],
      manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
    });
    const waiting = adapter.waitForTerminal({ scope: "bench", jobId: job.jobId });
    await adapter.drain();
    await waiting;
    samples.push(performance.now() - committedAt);
    await adapter.close();
  }
  samples.sort((a, b) => a - b);
  const median = quantile(samples, 0.5);
  const p90 = quantile(samples, 0.9);
  return {
    figure: 6,
    name: "wait latency: terminal commit → waitForTerminal resolving, memory adapter",
    measured: `${ms(median)} median, p90 ${ms(p90)}`,
    baseline: "—",
    value: median,
    unit: "ms",
    details: { samples: samples.length, medianMs: median, p90Ms: p90 },
  };
}

async function main(): Promise<void> {
  const quick = Deno.args.includes("--quick");
  const figures: Figure[] = [];
  const steps: [string, (quick: boolean) => Promise<Figure>][] = [
    ["1 checksum", checksumFigure],
    ["2 end to end 64 MiB", endToEndFigure],
    ["3 per-chunk overhead", perChunkFigure],
    ["4 scaling", scalingFigure],
    ["6 wait latency (memory)", waitLatencyFigure],
  ];
  for (const [label, measure] of steps) {
    log("bench:memory", label);
    figures.push(await measure(quick));
  }
  emit(figures, { gcExposed: "gc" in globalThis, quick });
}

if (import.meta.main) await main();
