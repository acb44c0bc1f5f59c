/**
 * Runs a benchmark's subject as a child process and measures its wall time and peak
 * resident set size. With GNU time (`/usr/bin/time -v`) the peak is the kernel's
 * `ru_maxrss` of the process (the largest of it and its waited-for descendants); without
 * it, `VmHWM` of /proc/<pid>/status polled every 20 ms (the process alone; a peak shorter
 * than the interval may be missed; Deno reads /proc only with --allow-all). Every run is bounded: past `timeoutMs` the child is
 * killed and the run fails.
 *
 * @module
 */

/** How the peak RSS was measured. */
export type PeakRssMethod = "/usr/bin/time -v" | "/proc/<pid>/status VmHWM polling";

const GNU_TIME = "/usr/bin/time";
const TIMEOUT = "/usr/bin/timeout";

/** One measured run. */
export interface MeasuredRun {
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
  peakRssBytes: number;
  /** User + system CPU milliseconds of the process (GNU time only). */
  cpuMs?: number;
  method: PeakRssMethod;
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link measuredRun}. */
export interface MeasuredRunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Kill the child and fail after this long (default 15 minutes). */
  timeoutMs?: number;
  /** Force a method (default: GNU time when installed, else polling). */
  method?: PeakRssMethod;
}

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** GNU time when it is installed (with coreutils' timeout to bound it), else polling. */
export function defaultPeakRssMethod(): PeakRssMethod {
  return installed(GNU_TIME) && installed(TIMEOUT)
    ? "/usr/bin/time -v"
    : "/proc/<pid>/status VmHWM polling";
}

/** `Maximum resident set size (kbytes): N` of GNU time's report, in bytes. */
export function parseGnuTimePeak(report: string): number {
  const match = /Maximum resident set size \(kbytes\): (\d+)/.exec(report);
  if (!match) throw new Error(`no peak RSS in GNU time's report: ${report.slice(-500)}`);
  return Number(match[1]) * 1024;
}

/** `User time` + `System time` of GNU time's report, in milliseconds. */
export function parseGnuTimeCpu(report: string): number {
  const seconds = (label: string) => {
    const match = new RegExp(`${label} \\(seconds\\): ([\\d.]+)`).exec(report);
    if (!match) throw new Error(`no ${label} in GNU time's report: ${report.slice(-500)}`);
    return Number(match[1]);
  };
  return Math.round((seconds("User time") + seconds("System time")) * 1000);
}

/** `VmHWM:  N kB` of a /proc/<pid>/status, in bytes (undefined when absent). */
export function parseVmHwm(status: string): number | undefined {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

function failure(what: string, ms: number, timeoutMs: number): Error {
  return new Error(
    `${what} did not end within ${timeoutMs} ms (killed after ${Math.round(ms)} ms)`,
  );
}

async function withGnuTime(
  command: string,
  args: string[],
  options: MeasuredRunOptions,
  timeoutMs: number,
): Promise<MeasuredRun> {
  const report = await Deno.makeTempFile({ prefix: "codex-sync-bench-time-" });
  try {
    // time → timeout → command: timeout kills the command (and GNU time then reports).
    const seconds = (timeoutMs / 1000).toFixed(3);
    const started = performance.now();
    const output = await new Deno.Command(GNU_TIME, {
      args: ["-v", "-o", report, TIMEOUT, "--kill-after=5", seconds, command, ...args],
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const ms = performance.now() - started;
    // timeout's own code for a command it had to stop.
    if (output.code === 124 || output.code === 137) throw failure(command, ms, timeoutMs);
    const text = await Deno.readTextFile(report);
    return {
      ms,
      peakRssBytes: parseGnuTimePeak(text),
      cpuMs: parseGnuTimeCpu(text),
      method: "/usr/bin/time -v",
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

async function withPolling(
  command: string,
  args: string[],
  options: MeasuredRunOptions,
  timeoutMs: number,
): Promise<MeasuredRun> {
  const started = performance.now();
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  let timedOut = false;
  let denied: unknown;
  const sample = () => {
    try {
      peak = Math.max(peak, parseVmHwm(Deno.readTextFileSync(`/proc/${child.pid}/status`)) ?? 0);
    } catch (error) {
      // Deno reads /proc only with --allow-all; anything else: exited between two samples.
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        denied = error;
        child.kill("SIGKILL");
      }
    }
  };
  sample();
  const poll = setInterval(sample, 20);
  const deadline = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    const output = await child.output();
    const ms = performance.now() - started;
    if (denied) {
      throw new Error(`VmHWM polling cannot read /proc (run with --allow-all): ${denied}`);
    }
    if (timedOut) throw failure(command, ms, timeoutMs);
    if (peak === 0) throw new Error(`${command} ended before its VmHWM could be read`);
    return {
      ms,
      peakRssBytes: peak,
      method: "/proc/<pid>/status VmHWM polling",
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    clearInterval(poll);
    clearTimeout(deadline);
  }
}

/** Runs `command args` to its end, measuring wall time and peak RSS. */
export function measuredRun(
  command: string,
  args: string[],
  options: MeasuredRunOptions = {},
): Promise<MeasuredRun> {
  const timeoutMs = options.timeoutMs ?? 15 * 60_000;
  const method = options.method ?? defaultPeakRssMethod();
  return method === "/usr/bin/time -v"
    ? withGnuTime(command, args, options, timeoutMs)
    : withPolling(command, args, options, timeoutMs);
}

/** {@link measuredRun} that fails (with the child's output) unless it exits 0. */
export async function measuredSuccess(
  what: string,
  command: string,
  args: string[],
  options: MeasuredRunOptions = {},
): Promise<MeasuredRun> {
  const run = await measuredRun(command, args, options);
  if (run.code !== 0) {
    throw new Error(
      `${what} exited with code ${run.code}: ${run.stderr.slice(-2000)}${run.stdout.slice(-2000)}`,
    );
  }
  return run;
}
