/**
 * Benchmarks (not tests): every figure is a ratio of two timings taken side by side in
 * the same run. JSON on stdout; `--md` prints a markdown table instead.
 *
 * Run: deno task bench [--md] [--quick]
 *
 * 1. checksum: the client's chunk hashing (chunker + SHA-256 per chunk + composite)
 *    throughput ÷ raw `crypto.subtle.digest` over the same chunks (target ≥ 0.8)
 * 2. e2e-memory: 64 MiB in 1 MiB chunks, time to verified terminal ÷ time to SHA-256
 *    the same bytes once (target ≤ 4)
 * 3. per-chunk: 20 000 chunks of 200 B end to end ÷ a loop doing the same digests
 * 4. scaling: time per chunk at 1 000, 10 000 and 100 000 chunks; 100 000 ÷ 1 000
 *    (target ≤ 1.5)
 * 5. wait latency: terminal commit → `waitForTerminal` resolving (memory adapter)
 *
 * Postgres figures: `deno task bench:postgres` (64 MiB vs a bulk INSERT) and
 * `deno task bench:postgres-workers` (NOTIFY wait latency, 2 000 sources vs pg-boss).
 */

import { chunkBytes, compositeDigest, type Job, sha256Hex, syncConversation } from "../mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { hexDigestToBytes, IncrementalSha256 } from "../src/checksum.ts";

const MIB = 1024 * 1024;
const quick = Deno.args.includes("--quick");
const markdown = Deno.args.includes("--md");

interface Figure {
  name: string;
  value: number;
  unit: string;
  target?: string;
  met?: boolean;
  details: Record<string, unknown>;
}

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

async function time(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

/** Best of `rounds` timings (ms): the least disturbed run of each side. */
async function best(rounds: number, run: () => Promise<unknown>): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < rounds; i++) fastest = Math.min(fastest, await time(run));
  return fastest;
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

async function checksumFigure(): Promise<Figure> {
  const bytes = payload(64 * MIB);
  const chunks = split(bytes, MIB);
  const clientHashing = async () => {
    const composite = new IncrementalSha256();
    for await (const chunk of chunkBytes(bytes, MIB)) {
      composite.update(hexDigestToBytes(await sha256Hex(chunk.bytes)));
    }
    composite.digestHex();
  };
  // Rounds alternate between the two sides so that warm-up and GC fall on both alike.
  let raw = Infinity;
  let client = Infinity;
  for (let round = 0; round < 5; round++) {
    raw = Math.min(raw, await time(() => rawDigests(chunks)));
    client = Math.min(client, await time(clientHashing));
  }
  const ratio = raw / client;
  return {
    name: "checksum throughput ÷ raw crypto.subtle",
    value: ratio,
    unit: "ratio",
    target: "≥ 0.8",
    met: ratio >= 0.8,
    details: { rawMs: raw, clientMs: client, mib: 64, chunkBytes: MIB },
  };
}

/** Syncs `chunks` through a fresh memory adapter; returns ms to the verified job. */
async function syncThroughMemory(
  bytes: Uint8Array,
  chunkSize: number,
): Promise<{ ms: number; job: Job }> {
  const adapter = createMemoryAdapter({ handler: { apply() {} } });
  const started = performance.now();
  const result = await syncConversation(adapter, {
    scope: "bench",
    conversationId: "bench",
    payload: bytes,
    format: "bytes",
    chunkSize,
  });
  const ms = performance.now() - started;
  await adapter.close();
  if (result.job.state !== "succeeded") throw new Error("benchmark job did not succeed");
  return { ms, job: result.job };
}

async function endToEndFigure(): Promise<Figure> {
  const bytes = payload(64 * MIB, 2);
  const chunks = split(bytes, MIB);
  const hashOnce = await best(3, () => rawDigests(chunks));
  const e2e = await best(3, async () => (await syncThroughMemory(bytes, MIB)).ms);
  const ratio = e2e / hashOnce;
  return {
    name: "e2e memory 64 MiB ÷ hashing it once",
    value: ratio,
    unit: "ratio",
    target: "≤ 4",
    met: ratio <= 4,
    details: { e2eMs: e2e, hashOnceMs: hashOnce, mibPerSecond: 64 / (e2e / 1000) },
  };
}

async function perChunkFigure(): Promise<Figure> {
  const count = quick ? 5_000 : 20_000;
  const bytes = payload(count * 200, 3);
  const chunks = split(bytes, 200);
  const digests = await best(3, () => rawDigests(chunks));
  const e2e = await best(2, async () => (await syncThroughMemory(bytes, 200)).ms);
  return {
    name: `per-chunk overhead: ${count} × 200 B e2e ÷ digest loop`,
    value: e2e / digests,
    unit: "ratio",
    details: {
      e2eMs: e2e,
      digestLoopMs: digests,
      e2eMicrosecondsPerChunk: (e2e * 1000) / count,
    },
  };
}

async function scalingFigure(): Promise<Figure> {
  const sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
  const perChunk: Record<string, number> = {};
  for (const count of sizes) {
    const bytes = payload(count * 64, 4);
    const { ms } = await syncThroughMemory(bytes, 64);
    perChunk[String(count)] = (ms * 1000) / count;
  }
  const ratio = perChunk[String(sizes[sizes.length - 1])] / perChunk["1000"];
  return {
    name: `scaling: µs per chunk at ${sizes.at(-1)} ÷ at 1 000 chunks`,
    value: ratio,
    unit: "ratio",
    target: "≤ 1.5",
    met: ratio <= 1.5,
    details: { microsecondsPerChunk: perChunk },
  };
}

async function waitLatencyFigure(): Promise<Figure> {
  const samples: number[] = [];
  for (let i = 0; i < (quick ? 20 : 100); i++) {
    let committedAt = 0;
    const adapter = createMemoryAdapter({ handler: { apply() {} }, mode: "manual" });
    adapter.store.onJobWrite((job) => {
      if (job.state === "succeeded") committedAt = performance.now();
    });
    const source = await adapter.createSource({ scope: "bench", conversationId: "wait" });
    const bytes = payload(1024, i + 1);
    const sha256 = await sha256Hex(bytes);
    await adapter.appendChunk({
      scope: "bench",
      sourceId: source.sourceId,
      index: 0,
      bytes,
      sha256,
    });
    const { job } = await adapter.sealSource({
      scope: "bench",
      sourceId: source.sourceId,
      manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
    });
    const waiting = adapter.waitForTerminal({ scope: "bench", jobId: job.jobId });
    await adapter.drain();
    await waiting;
    samples.push(performance.now() - committedAt);
    await adapter.close();
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)];
  return {
    name: "wait latency, memory adapter (median)",
    value: median,
    unit: "ms",
    details: { p90Ms: samples[Math.floor(samples.length * 0.9)], samples: samples.length },
  };
}

const figures: Figure[] = [];
for (
  const measure of [
    checksumFigure,
    endToEndFigure,
    perChunkFigure,
    scalingFigure,
    waitLatencyFigure,
  ]
) {
  figures.push(await measure());
}

const machine = {
  runtime: `deno ${Deno.version.deno}`,
  os: Deno.build.os,
  arch: Deno.build.arch,
  cpus: navigator.hardwareConcurrency,
  date: new Date().toISOString().slice(0, 10),
};

if (markdown) {
  console.log(
    `Machine: ${machine.cpus} cores, ${machine.os}/${machine.arch}, ${machine.runtime}, ${machine.date}\n`,
  );
  console.log("| figure | value | target | met |");
  console.log("| --- | --- | --- | --- |");
  for (const f of figures) {
    const value = f.unit === "ratio" ? f.value.toFixed(2) : `${f.value.toFixed(3)} ${f.unit}`;
    console.log(
      `| ${f.name} | ${value} | ${f.target ?? "—"} | ${
        f.met === undefined ? "—" : f.met ? "yes" : "no"
      } |`,
    );
  }
} else {
  console.log(JSON.stringify({ machine, figures }, null, 2));
}
