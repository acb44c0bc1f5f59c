/**
 * What every benchmark entry point prints (a JSON document with a `figures` array of
 * {@link Figure}), and the helpers they share: alternating rounds, stats, formatting.
 * `scripts/bench.ts` runs the entry points as child processes and collects the figures.
 */

import process from "node:process";

/** One row of the benchmark table. */
export interface Figure {
  /** The figure's number in issue 6 (1–7). */
  figure: number;
  name: string;
  /** The subject's timing or amount, human-readable. */
  measured: string;
  /** What the subject is compared with, human-readable; "—" when nothing. */
  baseline: string;
  /** The ratio (`unit` "ratio") or the amount itself (ms, MiB). */
  value: number;
  unit: "ratio" | "ms" | "MiB" | "B";
  /** Over several alternating rounds: the value's median is `value`; this is its spread. */
  spread?: { min: number; max: number; rounds: number };
  target?: string;
  met?: boolean;
  details: Record<string, unknown>;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

export function stats(values: readonly number[]): Stats {
  if (values.length === 0) throw new Error("stats of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], rounds: sorted.length };
}

export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Collects garbage when V8 exposes `gc` (`--v8-flags=--expose-gc`), so that no run pays
 * for the garbage of the one before it. */
export function collectGarbage(): void {
  gc?.();
}

/** Milliseconds `run` takes, after a collection of the garbage left before it. */
export async function time(run: () => Promise<unknown>): Promise<number> {
  return (await timeWithCpu(run)).ms;
}

/** Wall-clock and process CPU milliseconds (user + system, all threads) of `run`. */
export async function timeWithCpu(
  run: () => Promise<unknown>,
): Promise<{ ms: number; cpuMs: number }> {
  collectGarbage();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await run();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

export interface Alternated {
  baselineMs: number[];
  subjectMs: number[];
  /** subject ÷ baseline, per round (the two timings of one round are adjacent). */
  ratios: number[];
  /** Process CPU time (all threads) ÷ the same of the baseline, per round, where measured:
   * less sensitive than wall time to other processes competing for the cores. */
  cpuRatios?: number[];
}

/**
 * Times `baseline` and `subject` side by side for `rounds` rounds, after `warmup` rounds
 * that are not recorded. Rounds alternate which side goes first (A B, B A, …) so that
 * warm-up, GC and machine noise fall on both sides alike; every round is kept.
 */
export async function alternate(
  rounds: number,
  baseline: () => Promise<unknown>,
  subject: () => Promise<unknown>,
  warmup = 1,
): Promise<Alternated> {
  const cpu = { baseline: [] as number[], subject: [] as number[] };
  const timed = async (side: "baseline" | "subject", run: () => Promise<unknown>) => {
    const { ms, cpuMs } = await timeWithCpu(run);
    cpu[side].push(cpuMs);
    return ms;
  };
  const out = await alternateTimed(
    rounds,
    () => timed("baseline", baseline),
    () => timed("subject", subject),
    warmup,
  );
  out.cpuRatios = cpu.subject.slice(warmup).map((s, i) => s / cpu.baseline[warmup + i]);
  return out;
}

/** {@link alternate} for sides that time themselves: each returns its milliseconds. */
export async function alternateTimed(
  rounds: number,
  baseline: () => Promise<number>,
  subject: () => Promise<number>,
  warmup = 1,
): Promise<Alternated> {
  const out: Alternated = { baselineMs: [], subjectMs: [], ratios: [] };
  for (let i = 0; i < warmup + rounds; i++) {
    let b: number;
    let s: number;
    if (i % 2 === 0) {
      b = await baseline();
      s = await subject();
    } else {
      s = await subject();
      b = await baseline();
    }
    if (i < warmup) continue;
    out.baselineMs.push(b);
    out.subjectMs.push(s);
    out.ratios.push(s / b);
  }
  return out;
}

export function ms(value: number): string {
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 10) return `${value.toFixed(0)} ms`;
  if (value >= 0.1) return `${value.toFixed(2)} ms`;
  return `${value.toFixed(3)} ms`;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Prints an entry point's report (JSON, `figures` first) on stdout. */
export function emit(figures: Figure[], rest: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ figures, ...rest }, null, 2));
}

export function log(prefix: string, message: string): void {
  console.error(`${prefix}: ${message}`);
}

/** `--name <positive number>` from `args`, or `fallback`. */
export function numberOption(args: readonly string[], name: string, fallback: number): number {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(args[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}
